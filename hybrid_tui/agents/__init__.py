"""L2 planners and L3 implementers behind two small protocols (see ``base``).

Room: agents. An agent gets a sandboxed worktree and reports a result; it never touches
the store or git directly.
"""
