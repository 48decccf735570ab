"""Prompt text for the Claude planner (L2) and implementer (L3).

Room: agents. Pure string building; no I/O. The stable parts (system prompt, the SIS, the
file excerpts) are kept separate from the varying parts (feedback) so the caller can mark
the stable prefix for prompt caching.
"""

from __future__ import annotations

import json

from hybrid_tui.spec.models import SisTask

MAX_TREE_ENTRIES = 2000
MAX_EXCERPT_CHARS = 12_000
MAX_FEEDBACK_CHARS = 12_000

PLANNER_SYSTEM = """\
You are a planning agent (L2) in a hybrid agent system. You turn one issue against a git \
repository into a Structured Implementation Spec (SIS): a small set of independent tasks that \
implementation agents will carry out in parallel, each in its own copy of the repository.

Rules for a good SIS:
- Call the submit_sis tool exactly once with the whole SIS. sis_version is "1.0"; issue.id and \
issue.title must be the issue's id and title given below (issue.body may be left empty).
- task_id: short, unique, [A-Za-z0-9._-], prefixed with the issue id (e.g. "<issue>-1").
- Split work so two tasks rarely edit the same file; list every file a task changes in its \
file_operations. Use "edit" (old_string must occur exactly once in the file), "create" (full \
content), "delete", or "intent" (path + a precise description) when the exact text is unknown.
- dependencies name task_ids of this SIS that must be integrated first; no cycles.
- validation.commands: shell commands run from the repository root that prove the task works \
(e.g. the project's tests for that area); all must exit 0.
- priority: CRITICAL, HIGH, MEDIUM or LOW; estimated_duration_minutes realistic; paths are \
relative to the repository root and must exist unless created.
"""

IMPLEMENTER_SYSTEM = """\
You are an implementation agent (L3) working in a git worktree of a repository. You carry out \
exactly one task of a Structured Implementation Spec (SIS).

How to work:
- Use the tools: read_file (with optional line ranges), list_files, search (regex), edit_file \
(replace an exact string that occurs exactly once), write_file (whole file), run_checks (runs \
the task's validation commands and shows their output).
- Paths are relative to the repository root. Stay inside the task: change the files it \
declares; touching other files may be refused if another task holds them.
- Read before editing. Keep changes minimal and in the project's style.
- Run run_checks before finishing; if they fail, read the output, fix, and run them again.
- When the task is done, call finish with a short summary of what you changed. Do not commit: \
the coordinator integrates your work.
"""


def planner_user_message(
    issue_id: str,
    title: str,
    body: str,
    file_tree: list[str],
    excerpts: dict[str, str],
    known_task_ids: list[str] = (),  # type: ignore[assignment]
) -> str:
    tree = file_tree[:MAX_TREE_ENTRIES]
    more = len(file_tree) - len(tree)
    parts = [
        f"# Issue {issue_id}: {title}\n\n{body.strip()}\n",
        "# Repository files\n" + "\n".join(tree) + (f"\n... and {more} more" if more > 0 else ""),
    ]
    if excerpts:
        parts.append("# Relevant file excerpts")
        for path, content in excerpts.items():
            parts.append(f"## {path}\n```\n{_clip(content, MAX_EXCERPT_CHARS)}\n```")
    if known_task_ids:
        parts.append(
            "# Tasks of the mission's other issues\nA task of this issue may list these in its dependencies "
            "(and must not reuse their ids):\n" + "\n".join(f"- {tid}" for tid in known_task_ids)
        )
    parts.append("Plan this issue now: call submit_sis with the complete SIS.")
    return "\n\n".join(parts)


def planner_repair_message(problems: list[str]) -> str:
    return (
        "The SIS you submitted is invalid. Fix every problem below and call submit_sis again "
        "with the complete corrected SIS:\n" + "\n".join(f"- {p}" for p in problems)
    )


def task_block(task: SisTask, excerpts: dict[str, str]) -> str:
    """The stable part of the implementer's first message: the task and the declared files."""
    parts = [
        "# Your task (SIS)\n```json\n" + json.dumps(task.model_dump(mode="json"), indent=2) + "\n```",
    ]
    if task.validation.commands:
        parts.append("Validation commands (run by run_checks):\n" + "\n".join(f"- `{c}`" for c in task.validation.commands))
    if excerpts:
        parts.append("# Declared files as they are now")
        for path, content in excerpts.items():
            parts.append(f"## {path}\n```\n{_clip(content, MAX_EXCERPT_CHARS)}\n```")
    return "\n\n".join(parts)


BATCH_INSTRUCTIONS = """\
# A batch of {count} tasks
This attempt carries out several small tasks of one domain together: the repository and the \
files below are loaded once for all of them. Do every task; each lands as its own commit, so \
change only each task's own declared files (the batch's tasks never share a file). run_checks \
runs every task's validation commands."""


def batch_block(tasks: list[SisTask], excerpts: dict[str, str]) -> str:
    """The stable part of a batched attempt's first message: the shared context (the
    declared files as they are now) once, then each task's SIS."""
    parts = [BATCH_INSTRUCTIONS.format(count=len(tasks))]
    for k, task in enumerate(tasks, start=1):
        parts.append(f"## Task {k} of {len(tasks)}: {task.task_id}\n```json\n"
                     + json.dumps(task.model_dump(mode="json"), indent=2) + "\n```")
        if task.validation.commands:
            parts.append("Its validation commands:\n" + "\n".join(f"- `{c}`" for c in task.validation.commands))
    if excerpts:
        parts.append("# Declared files as they are now")
        for path, content in excerpts.items():
            parts.append(f"## {path}\n```\n{_clip(content, MAX_EXCERPT_CHARS)}\n```")
    return "\n\n".join(parts)


def request_block(task: SisTask, batch_tasks: list[SisTask], excerpts: dict[str, str]) -> str:
    """The task block of an attempt: :func:`task_block`, or :func:`batch_block` for a batch."""
    return batch_block(batch_tasks, excerpts) if batch_tasks else task_block(task, excerpts)


def feedback_block(feedback: str, attempt: int) -> str:
    return (
        f"# Feedback: attempt {attempt - 1} of this task failed\n"
        "Its changes were discarded. Avoid the same mistake; the failure was:\n```\n"
        + _clip_tail(feedback, MAX_FEEDBACK_CHARS)
        + "\n```"
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n... [{len(text) - limit} more characters]"


def _clip_tail(text: str, limit: int) -> str:
    # Failures print their cause last (tracebacks, pytest summaries): keep the end.
    return text if len(text) <= limit else f"[{len(text) - limit} characters omitted] ...\n" + text[-limit:]
