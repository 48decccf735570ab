"""Room: core. What a cascading rollback reverts (review §5.3 phase 2: "build dependency
graph, calculate rollback scope"). Pure: it reads the commits and dependencies it is given.

The scope of rolling back task T is T's commit plus every later live commit that either
belongs to a task depending on one in the scope (directly or through other tasks) or
touched a file that a commit already in the scope changed before it. Taking the commits in
the order they landed, one pass finds the closure: a commit can only be pulled in by one
that landed before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar


class LandedCommit(Protocol):
    @property
    def task_id(self) -> str: ...

    @property
    def files(self) -> list[str]: ...


CommitT = TypeVar("CommitT", bound=LandedCommit)


def rollback_scope(root: CommitT, later: Sequence[CommitT], dependencies: Iterable[tuple[str, str]]) -> list[CommitT]:
    """The commits a cascading rollback of ``root`` reverts, oldest first (revert them in
    reverse). ``later``: the live commits landed after ``root``, oldest first;
    ``dependencies``: (task id, the task it depends on) pairs of the whole mission."""
    dependents: dict[str, list[str]] = {}
    for task_id, depends_on in dependencies:
        dependents.setdefault(depends_on, []).append(task_id)
    scope = [root]
    pulled = _descendants(root.task_id, dependents)
    files = set(root.files)
    for commit in later:
        if commit.task_id in pulled or files.intersection(commit.files):
            scope.append(commit)
            pulled |= _descendants(commit.task_id, dependents)
            files.update(commit.files)
    return scope


def _descendants(task_id: str, dependents: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    stack = [task_id]
    while stack:
        for child in dependents.get(stack.pop(), ()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen
