"""What a cascading rollback reverts: the task, every later commit of a task built on it
(through any chain of dependencies), and every later commit that touched a file already in
the scope - found in one pass over the commits in the order they landed."""

from __future__ import annotations

from typing import NamedTuple

from hybrid_tui.core.rollback_scope import rollback_scope


class Commit(NamedTuple):
    task_id: str
    files: list[str]


def scope_ids(root: Commit, later: list[Commit], deps: list[tuple[str, str]]) -> list[str]:
    return [c.task_id for c in rollback_scope(root, later, deps)]


def test_dependents_through_any_chain_are_in_scope_and_unrelated_commits_are_not():
    a = Commit("a", ["a.py"])
    later = [Commit("b", ["b.py"]), Commit("c", ["c.py"]), Commit("d", ["d.py"])]
    deps = [("b", "a"), ("d", "b")]  # d depends on a through b; c on nothing
    assert scope_ids(a, later, deps) == ["a", "b", "d"]


def test_a_later_commit_on_a_file_of_the_scope_is_in_scope_and_pulls_in_its_own_dependents():
    a = Commit("a", ["shared.py"])
    later = [Commit("x", ["shared.py", "x.py"]), Commit("y", ["x.py"]), Commit("z", ["z.py"]), Commit("w", ["w.py"])]
    deps = [("w", "x")]
    # x touched a's file; y touched x's file; w depends on x; z is unrelated
    assert scope_ids(a, later, deps) == ["a", "x", "y", "w"]


def test_a_file_touched_before_the_scope_reached_it_does_not_count():
    a = Commit("a", ["a.py"])
    later = [Commit("early", ["late.py"]), Commit("b", ["b.py", "late.py"])]
    assert scope_ids(a, later, [("b", "a")]) == ["a", "b"]  # "early" landed before b touched late.py


def test_a_task_alone_is_its_own_scope():
    assert scope_ids(Commit("a", ["a.py"]), [], []) == ["a"]
