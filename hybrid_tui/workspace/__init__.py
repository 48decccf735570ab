"""Git worktrees, the integration queue, rollback, sandboxed file access and validation runs.

Room: workspace. Decides nothing about what runs next.
"""
