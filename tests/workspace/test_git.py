"""MissionRepo on real repositories: isolation, exactly-once integration, conflicts, rollback."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hybrid_tui.workspace.git import BranchMoved, MissionError, MissionRepo, prepare_repository
from hybrid_tui.workspace.sandbox import Sandbox

from .conftest import git

BRANCH = "hybrid/test-mission"


def user_state(repo: Path) -> dict[str, str]:
    """Everything of the user's that must stay untouched."""
    return {
        "head": git(repo, "symbolic-ref", "HEAD"),
        "branches": git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/main", "refs/heads/feature"),
        "index": git(repo, "diff", "--cached"),
        "status": git(repo, "status", "--porcelain"),
        "a.py": (repo / "a.py").read_text(),
        "notes": (repo / "notes.txt").read_text(),
    }


def trailers(repo: Path, rev: str = BRANCH) -> list[str]:
    return git(repo, "log", "--format=%(trailers:key=Hybrid-Task,valueonly)", rev).split()


def test_prepare_creates_mission_branch_without_touching_the_user(user_repo: Path, tmp_path: Path) -> None:
    before = user_state(user_repo)
    repo = MissionRepo(user_repo, BRANCH, tmp_path / "run", "run1")
    base = repo.prepare("main")
    assert base == git(user_repo, "rev-parse", "main").strip() == repo.head()
    assert user_state(user_repo) == before
    # Resume: the branch is kept where it is.
    path = repo.worktree("agent-1")
    (path / "new.py").write_text("N = 1\n")
    first = repo.integrate("agent-1", "T1", "add new")
    again = MissionRepo(user_repo, BRANCH, tmp_path / "run", "run1")
    assert again.prepare("main") == base
    assert again.head() == first.sha
    assert user_state(user_repo) == before


def test_prepare_refuses_bad_input_without_side_effects(user_repo: Path, tmp_path: Path) -> None:
    before = git(user_repo, "for-each-ref")
    with pytest.raises(MissionError, match="base branch 'nope' does not exist"):
        MissionRepo(user_repo, BRANCH, tmp_path / "run", "r").prepare("nope")
    with pytest.raises(MissionError, match="not a valid git branch name"):
        MissionRepo(user_repo, "bad..name", tmp_path / "run", "r").prepare("main")
    git(user_repo, "branch", "checked")
    other = tmp_path / "other-checkout"
    git(user_repo, "worktree", "add", "-q", str(other), "checked")
    with pytest.raises(MissionError, match="is checked out in"):
        MissionRepo(user_repo, "checked", tmp_path / "run", "r").prepare("main")
    after = git(user_repo, "for-each-ref").splitlines()
    assert [line for line in after if "refs/heads/checked" not in line] == before.splitlines()


def test_integrate_makes_one_commit_with_trailers_and_never_twice(mission: MissionRepo, user_repo: Path) -> None:
    before = user_state(user_repo)
    start = mission.head()
    sandbox = Sandbox(mission.reset("agent-1"))
    sandbox.edit("b.py", "B = 1", "B = 2")
    sandbox.write_text("pkg/c.py", "C = 3\n")
    result = mission.integrate("agent-1", "T1", "Change B\nand add C\x1b[2J\x07")
    assert not result.already and not result.empty and result.conflict is None
    assert sorted(result.files) == ["b.py", "pkg/c.py"]
    assert git(user_repo, "rev-list", f"{start}..{BRANCH}").split() == [result.sha]
    message = git(user_repo, "log", "-1", "--format=%B", BRANCH)
    assert message.startswith("T1: Change B and add C [2J\n\n")  # escape bytes dropped: inert
    assert "\x1b" not in message and "\x07" not in message
    assert "Hybrid-Task: T1\nHybrid-Run: run1" in message
    assert git(user_repo, "show", f"{BRANCH}:b.py") == "B = 2\n"
    again = mission.integrate("agent-1", "T1", "Change B")
    assert again.already and again.sha == result.sha and sorted(again.files) == ["b.py", "pkg/c.py"]
    assert mission.head() == result.sha
    assert user_state(user_repo) == before


def test_integrated_trailer_survives_a_crash(mission: MissionRepo, user_repo: Path, tmp_path: Path) -> None:
    Sandbox(mission.reset("agent-1")).write_text("x.py", "X = 1\n")
    first = mission.integrate("agent-1", "T1", "x")
    # A new coordinator process (nothing in memory) must still see T1 as integrated.
    fresh = MissionRepo(user_repo, BRANCH, tmp_path / "run", "run1")
    assert fresh.find_integrated() == {"T1": first.sha}
    result = fresh.integrate("agent-1", "T1", "x")
    assert result.already and result.sha == first.sha
    assert trailers(user_repo).count("T1") == 1
    # Another run's trailers are not ours.
    other_run = MissionRepo(user_repo, BRANCH, tmp_path / "run", "run2")
    assert other_run.find_integrated() == {}


def test_empty_change_is_reported(mission: MissionRepo) -> None:
    mission.reset("agent-1")
    head = mission.head()
    result = mission.integrate("agent-1", "T1", "nothing")
    assert result.empty and result.sha is None and result.files == []
    assert mission.head() == head


def test_two_worktrees_editing_different_files_both_integrate(mission: MissionRepo, user_repo: Path) -> None:
    Sandbox(mission.reset("agent-1")).edit("a.py", "A = 1", "A = 10")
    Sandbox(mission.reset("agent-2")).edit("b.py", "B = 1", "B = 20")
    first = mission.integrate("agent-1", "T1", "a")
    second = mission.integrate("agent-2", "T2", "b")  # the branch moved since agent-2 was reset
    assert second.sha and second.conflict is None
    assert git(user_repo, "rev-list", "--parents", "-1", second.sha).split() == [second.sha, first.sha]
    assert git(user_repo, "show", f"{BRANCH}:a.py") == "A = 10\n"
    assert git(user_repo, "show", f"{BRANCH}:b.py") == "B = 20\n"
    assert second.files == ["b.py"]
    assert mission.changed_files(second.sha) == ["b.py"]
    assert trailers(user_repo) == ["T2", "T1"]
    assert mission.find_integrated() == {"T1": first.sha, "T2": second.sha}


def test_conflicting_edits_report_conflict_and_leave_branch_unchanged(mission: MissionRepo, user_repo: Path) -> None:
    Sandbox(mission.reset("agent-1")).edit("a.py", "A = 1", "A = 'one'")
    Sandbox(mission.reset("agent-2")).edit("a.py", "A = 1", "A = 'two'")
    first = mission.integrate("agent-1", "T1", "one")
    result = mission.integrate("agent-2", "T2", "two")
    assert result.sha is None and result.conflict is not None
    assert result.conflict.startswith("a.py: ") and "CONFLICT" in result.conflict
    assert mission.head() == first.sha
    assert git(user_repo, "show", f"{BRANCH}:a.py") == "A = 'one'\n"
    assert "T2" not in mission.find_integrated()


def test_branch_moved_by_someone_else_is_detected_not_overwritten(mission: MissionRepo, user_repo: Path) -> None:
    Sandbox(mission.reset("agent-1")).write_text("mine.py", "M = 1\n")
    # Someone commits on the mission branch behind our back.
    intruder = git(user_repo, "commit-tree", f"{BRANCH}^{{tree}}", "-p", BRANCH, "-m", "manual").strip()
    git(user_repo, "update-ref", f"refs/heads/{BRANCH}", intruder)
    with pytest.raises(BranchMoved, match=r"moved by someone else \(expected .*, found " + intruder[:12]):
        mission.integrate("agent-1", "T1", "mine")
    assert git(user_repo, "rev-parse", BRANCH).strip() == intruder
    # The operator accepts the move; integration then goes on top of it.
    mission.accept_head()
    result = mission.integrate("agent-1", "T1", "mine")
    assert git(user_repo, "rev-parse", f"{result.sha}^").strip() == intruder


def test_reset_clears_stale_index_lock_and_discards_changes(mission: MissionRepo, user_repo: Path) -> None:
    path = mission.worktree("agent-1")
    (path / "a.py").write_text("garbage\n")
    (path / "junk.txt").write_text("junk\n")
    gitdir = Path(git(path, "rev-parse", "--absolute-git-dir").strip())
    (gitdir / "index.lock").write_text("")  # a crash mid-`git add`
    mission.reset("agent-1")
    assert not (gitdir / "index.lock").exists()
    assert (path / "a.py").read_text() == "A = 1\n" and not (path / "junk.txt").exists()
    Sandbox(path).write_text("ok.py", "OK = 1\n")
    assert mission.integrate("agent-1", "T1", "after crash").files == ["ok.py"]


def test_rollback_reverts_one_task(mission: MissionRepo, user_repo: Path) -> None:
    Sandbox(mission.reset("agent-1")).edit("a.py", "A = 1", "A = 2")
    t1 = mission.integrate("agent-1", "T1", "a")
    Sandbox(mission.reset("agent-1")).write_text("c.py", "C = 1\n")
    t2 = mission.integrate("agent-1", "T2", "c")
    before = user_state(user_repo)
    result = mission.rollback("T1", t1.sha, later=[("T2", t2.sha)])
    assert result.ok and result.sha == mission.head()
    assert git(user_repo, "show", f"{BRANCH}:a.py") == "A = 1\n"
    assert git(user_repo, "show", f"{BRANCH}:c.py") == "C = 1\n"
    message = git(user_repo, "log", "-1", "--format=%B", BRANCH)
    assert "Hybrid-Rollback: T1" in message and "Hybrid-Run: run1" in message
    assert mission.find_integrated() == {"T2": t2.sha}
    assert user_state(user_repo) == before
    # Asked again (say the coordinator crashed before recording it): no second revert.
    again = mission.rollback("T1", t1.sha, later=[("T2", t2.sha)])
    assert again.ok and again.sha == result.sha and "already rolled back" in again.reason
    assert mission.head() == result.sha
    # A rolled-back task can be integrated again later.
    Sandbox(mission.reset("agent-1")).edit("a.py", "A = 1", "A = 3")
    redo = mission.integrate("agent-1", "T1", "a again")
    assert redo.sha and not redo.already


def test_rollback_refused_when_a_later_task_touched_the_same_files(mission: MissionRepo, user_repo: Path) -> None:
    Sandbox(mission.reset("agent-1")).edit("a.py", "A = 1", "A = 2")
    t1 = mission.integrate("agent-1", "T1", "a")
    Sandbox(mission.reset("agent-1")).edit("a.py", "A = 2", "A = 3")
    mission.integrate("agent-1", "T2", "a again")
    head = mission.head()
    # Even when the caller forgets to pass the later task, the branch history names it.
    result = mission.rollback("T1", t1.sha, later=[])
    assert not result.ok and result.sha is None
    assert "T2 (a.py)" in result.reason and "refused" in result.reason
    assert mission.head() == head


def test_plain_folder_is_initialised_in_the_run_dir(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "m.py").write_text("M = 1\n")
    run_dir = tmp_path / "run"
    repo = prepare_repository(folder, run_dir)
    assert repo == (run_dir / "repo").resolve()
    assert not (folder / ".git").exists()
    assert git(repo, "ls-files").split() == ["src/m.py"]
    assert git(repo, "status", "--porcelain") == ""
    assert prepare_repository(folder, run_dir) == repo  # resumed run reuses it


def test_git_repository_is_used_in_place(user_repo: Path, tmp_path: Path) -> None:
    assert prepare_repository(user_repo, tmp_path / "run") == user_repo.resolve()
    # A plain folder inside some other repository is not that repository.
    sub = user_repo / "sub"
    sub.mkdir()
    (sub / "f.txt").write_text("f\n")
    assert prepare_repository(sub, tmp_path / "run2") == (tmp_path / "run2" / "repo").resolve()


def test_diff_and_remove_worktrees(mission: MissionRepo, user_repo: Path) -> None:
    Sandbox(mission.reset("agent-1")).edit("b.py", "B = 1", "B = 5")
    result = mission.integrate("agent-1", "T1", "b")
    text = mission.diff(result.sha)
    assert "-B = 1" in text and "+B = 5" in text and "Hybrid-Task: T1" in text
    mission.worktree("agent-2")
    mission.remove_worktrees()
    assert git(user_repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert "hybrid/run1/" not in git(user_repo, "for-each-ref")
    assert git(user_repo, "rev-parse", BRANCH).strip() == result.sha


def test_odd_file_names_integrate_and_conflict_cleanly(mission: MissionRepo, user_repo: Path) -> None:
    names = ["we ird$(touch pwned).txt", "q'uote;|&.py", "dossier/é.md", "-dash.txt"]
    sandbox = Sandbox(mission.reset("agent-1"))
    for name in names:
        sandbox.write_text(name, "v1\n")
    result = mission.integrate("agent-1", "T1", "odd names")
    assert sorted(result.files) == sorted(names)
    assert sorted(mission.changed_files(result.sha)) == sorted(names)
    assert not (user_repo / "pwned").exists()
    Sandbox(mission.reset("agent-1")).write_text("dossier/é.md", "v2\n")
    Sandbox(mission.reset("agent-2")).write_text("dossier/é.md", "v3\n")
    mission.integrate("agent-1", "T2", "v2")
    conflict = mission.integrate("agent-2", "T3", "v3").conflict
    assert conflict is not None and conflict.startswith("dossier/é.md: ")


def test_integrate_from_missing_worktree_is_refused(mission: MissionRepo, user_repo: Path) -> None:
    before = user_state(user_repo)
    with pytest.raises(MissionError, match="agent ghost has no worktree"):
        mission.integrate("ghost", "T1", "x")
    assert user_state(user_repo) == before


# ------------------------------------------------- integration without diff-tree/commit-tree
# The usual path reads changed files from loose tree objects and writes the commit object
# itself; these tests hold it to what git's own commands produce, and check that git takes
# over whenever that shortcut cannot be sure (packed objects, non-default object settings).


def git_files(repo: Path, *args: str) -> list[str]:
    out = git(repo, "-c", "core.quotepath=false", "diff-tree", "-r", "--name-only", "-z", "--no-renames", *args)
    return [name for name in out.split("\0") if name]


def make_varied_changes(worktree: Path) -> None:
    """Every kind of tree change git reports: nested adds, deletions, a file becoming a folder
    and back, a symlink, an executable bit, names that sort around ``dir/``."""
    (worktree / "a.py").unlink()
    (worktree / "b.py").unlink()
    (worktree / "b.py").mkdir()  # file -> folder
    (worktree / "b.py" / "inner.py").write_text("I = 1\n")
    (worktree / "a.py.txt").write_text("sorts between a.py and a.py/\n")
    (worktree / "deep" / "er" / "est").mkdir(parents=True)
    (worktree / "deep" / "er" / "est" / "x.txt").write_text("x\n")
    (worktree / "deep" / "er-sibling").write_text("-\n")
    (worktree / "link").symlink_to("deep/er-sibling")
    script = worktree / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    (worktree / "é space.md").write_text("accent\n")


def test_integrated_files_and_commit_match_what_git_itself_reports(mission: MissionRepo, user_repo: Path) -> None:
    make_varied_changes(mission.reset("agent-1"))
    first = mission.integrate("agent-1", "T1", "varied")
    assert first.files == git_files(user_repo, f"{first.sha}^", first.sha)  # same names, same order
    assert mission.changed_files(first.sha) == first.files
    # Second round: the folder becomes a file again, the symlink and the executable go.
    worktree = mission.reset("agent-1")
    shutil.rmtree(worktree / "b.py")
    (worktree / "b.py").write_text("B = 2\n")
    (worktree / "link").unlink()
    (worktree / "run.sh").chmod(0o644)
    shutil.rmtree(worktree / "deep" / "er")
    second = mission.integrate("agent-1", "T2", "back")
    assert second.files == git_files(user_repo, first.sha, second.sha)
    assert {"b.py", "b.py/inner.py", "link", "run.sh", "deep/er/est/x.txt"} <= set(second.files)
    # The commit objects are what `git commit-tree` makes from the same tree, parent, message and time.
    for sha in (first.sha, second.sha):
        raw = git(user_repo, "cat-file", "commit", sha)
        stamp = raw.split("\ncommitter ", 1)[1].split("\n", 1)[0].rsplit(" ", 2)
        date = f"{stamp[1]} {stamp[2]}"
        remade = subprocess.run(
            ["git", "commit-tree", f"{sha}^{{tree}}", "-p", f"{sha}^", "-m", raw.split("\n\n", 1)[1].rstrip("\n")],
            cwd=user_repo, capture_output=True, text=True, check=True,
            env=os.environ | {"GIT_AUTHOR_NAME": "hybrid-tui", "GIT_AUTHOR_EMAIL": "hybrid-tui@localhost",
                              "GIT_COMMITTER_NAME": "hybrid-tui", "GIT_COMMITTER_EMAIL": "hybrid-tui@localhost",
                              "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date},
        ).stdout.strip()
        assert remade == sha
    git(user_repo, "fsck", "--strict", "--no-dangling")


def test_packed_history_still_gives_the_right_files(mission: MissionRepo, user_repo: Path) -> None:
    sandbox = Sandbox(mission.reset("agent-1"))
    sandbox.write_text("one.py", "1\n")
    sandbox.write_text("sub/deeper/two.py", "2\n")
    first = mission.integrate("agent-1", "T1", "one")
    git(user_repo, "repack", "-adq")
    git(user_repo, "prune-packed")  # nothing of the history is a loose object any more (a `git gc`)
    assert not list((user_repo / ".git" / "objects").glob("??/*"))
    Sandbox(mission.reset("agent-1")).write_text("one.py", "one\n")
    second = mission.integrate("agent-1", "T2", "packed parent")
    assert second.files == ["one.py"]
    # The new commit is loose, but the folder it removes is still only in the pack.
    shutil.rmtree(mission.reset("agent-1") / "sub")
    third = mission.integrate("agent-1", "T3", "packed folder")
    assert third.files == ["sub/deeper/two.py"] == git_files(user_repo, second.sha, third.sha)
    assert mission.changed_files(first.sha) == ["one.py", "sub/deeper/two.py"]
    assert mission.find_integrated() == {"T1": first.sha, "T2": second.sha, "T3": third.sha}


def test_shared_repository_objects_are_written_by_git(user_repo: Path, tmp_path: Path) -> None:
    git(user_repo, "config", "core.sharedRepository", "group")
    # Folders made before the setting (by the repository's first commit) keep their old mode.
    older = {folder.name for folder in (user_repo / ".git" / "objects").iterdir()}
    mission = MissionRepo(user_repo, BRANCH, tmp_path / "run", "run1")
    mission.prepare("main")
    checked = 0
    for number in range(6):
        Sandbox(mission.reset("agent-1")).write_text(f"f{number}.py", f"{number}\n")
        sha = mission.integrate("agent-1", f"T{number}", "shared").sha
        if sha[:2] in older:
            continue
        folder = user_repo / ".git" / "objects" / sha[:2]
        assert folder.stat().st_mode & 0o070 == 0o070, "other members of the group could not add objects here"
        checked += 1
    assert checked
    git(user_repo, "fsck", "--strict", "--no-dangling")


def test_usual_integration_runs_three_git_commands(mission: MissionRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    from hybrid_tui.workspace import git as workspace_git

    commands: list[str] = []
    real_run = workspace_git._run

    def counting(runner, *args, **kwargs):
        commands.append(args[0])
        return real_run(runner, *args, **kwargs)

    Sandbox(mission.reset("agent-1")).write_text("w.py", "0\n")
    mission.integrate("agent-1", "T0", "warm-up")  # reads the history and the object settings once
    Sandbox(mission.reset("agent-1")).write_text("x.py", "1\n")
    Sandbox(mission.reset("agent-2")).write_text("y.py", "2\n")
    monkeypatch.setattr(workspace_git, "_run", counting)
    assert mission.integrate("agent-1", "T1", "x").files == ["x.py"]
    assert commands == ["add", "write-tree", "update-ref"]
    commands.clear()
    assert mission.integrate("agent-2", "T2", "y").files == ["y.py"]  # the branch moved: a 3-way merge
    assert commands == ["add", "write-tree", "merge-tree", "update-ref"]


def test_commit_objects_get_the_permissions_git_gives_under_the_umask(user_repo: Path, tmp_path: Path) -> None:
    previous = os.umask(0o077)  # a private repository: nothing readable by others
    try:
        mission = MissionRepo(user_repo, BRANCH, tmp_path / "run", "run1")
        mission.prepare("main")
        Sandbox(mission.reset("agent-1")).write_text("private.py", "P = 1\n")
        sha = mission.integrate("agent-1", "T1", "private").sha
    finally:
        os.umask(previous)
    objects = user_repo / ".git" / "objects"
    tree = git(user_repo, "rev-parse", f"{sha}^{{tree}}").strip()  # written by `git write-tree`
    commit_mode = (objects / sha[:2] / sha[2:]).stat().st_mode & 0o777
    assert commit_mode == (objects / tree[:2] / tree[2:]).stat().st_mode & 0o777 == 0o400


def test_writing_an_existing_commit_object_again_keeps_it_from_a_prune(
    mission: MissionRepo, user_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hybrid_tui.workspace import git as workspace_git

    loose = mission._loose_objects()
    assert loose is not None and loose.writable
    head = mission.head()
    tree = git(user_repo, "rev-parse", f"{head}^{{tree}}").strip()
    monkeypatch.setattr(workspace_git.time, "time", lambda: 1_700_000_000.0)  # the same commit twice
    sha = loose.write_commit(tree, head, "unreferenced\n")
    path = user_repo / ".git" / "objects" / sha[:2] / sha[2:]
    os.utime(path, (1_000_000, 1_000_000))  # written long ago, unreachable: a prune would take it
    assert loose.write_commit(tree, head, "unreferenced\n") == sha
    git(user_repo, "prune", "--expire=1.hour.ago")
    assert git(user_repo, "cat-file", "-t", sha).strip() == "commit"


def test_setup_runs_once_per_slot_its_output_is_kept_and_only_the_agents_files_land(
    user_repo: Path, tmp_path: Path
) -> None:
    from hybrid_tui.spec.models import WorkspaceSection

    workspace = WorkspaceSection(setup=["echo run >> ../setup-count; mkdir -p .venv/bin; echo tool > .venv/bin/tool"],
                                 path=[".venv/bin"], env={"MODE": "test"})
    repo = MissionRepo(user_repo, BRANCH, tmp_path / "run", "run1", workspace=workspace)
    repo.prepare("main")
    before = user_state(user_repo)
    config = (user_repo / ".git" / "config").read_text()
    for number in range(3):
        path = repo.reset("agent-1")
        assert (path / ".venv" / "bin" / "tool").read_text() == "tool\n"  # kept between tasks
        Sandbox(path).write_text(f"work{number}.py", f"{number}\n")
        repo.stage_work("agent-1", [f"work{number}.py"])
        # What validation does after staging: artifacts, a branch, a moved ref, config.
        (path / "validation-artifact.txt").write_text("x\n")
        (path / "build").mkdir(exist_ok=True)
        (path / "build" / "out.bin").write_bytes(b"\0bin")
        (path / f"work{number}.py").write_text("changed by validation\n")
        git(path, "-c", "user.name=v", "-c", "user.email=v@v", "commit", "-q", "--allow-empty", "-m", "sneaky")
        git(path, "update-ref", "refs/heads/main", "HEAD")
        git(path, "checkout", "-q", "-b", f"x{number}")
        git(path, "config", "user.name", "x")
        result = repo.integrate("agent-1", f"T{number}", "work")
        assert result.files == [f"work{number}.py"]
        assert git(user_repo, "show", f"{result.sha}:work{number}.py") == f"{number}\n"  # as staged
    assert (tmp_path / "run" / "worktrees" / "setup-count").read_text() == "run\n"  # once for the slot
    assert repo.environment("agent-1")["PATH"].startswith(str(tmp_path / "run" / "worktrees" / "agent-1" / ".venv/bin"))
    assert user_state(user_repo) == before and (user_repo / ".git" / "config").read_text() == config
    assert "sneaky" not in git(user_repo, "log", "--all", "--format=%s")
    # A changed [workspace] redoes the setup on the slot's next reset.
    changed = MissionRepo(user_repo, BRANCH, tmp_path / "run", "run1",
                          workspace=WorkspaceSection(setup=["echo again >> ../setup-count"]))
    changed.prepare("main")
    path = changed.reset("agent-1")
    assert (tmp_path / "run" / "worktrees" / "setup-count").read_text() == "run\nagain\n"
    assert not (path / ".venv").exists()  # the old setup's output went with it


def test_a_blob_the_worktree_already_holds_privately_is_written_to_the_users_repository(
    user_repo: Path, tmp_path: Path
) -> None:
    """A `git add` in the slot's worktree (an agent CLI, a validation command, the recording of
    a failed attempt) put the blob of the agent's file in the worktree's own object store.
    Staging then found it there (an alternate) and did not write it where the mission branch
    lives: the task's commit named a blob the user's repository did not have ('fatal: unable
    to read ...' on `git show`)."""
    repo = MissionRepo(user_repo, BRANCH, tmp_path / "run", "run1")
    repo.prepare("main")
    path = repo.reset("agent-1")
    (path / "private.txt").write_text("only in the worktree's store\n")
    git(path, "add", "private.txt")  # the agent's own git: the blob goes to the worktree's store
    repo.stage_work("agent-1", ["private.txt"])
    result = repo.integrate("agent-1", "T1", "private")
    assert result.files == ["private.txt"]
    assert git(user_repo, "show", f"{BRANCH}:private.txt") == "only in the worktree's store\n"
    assert subprocess.run(["git", "fsck", "--no-dangling", "--connectivity-only"], cwd=user_repo,
                          capture_output=True).returncode == 0


def test_what_an_agent_staged_in_the_worktrees_index_is_not_the_tasks_work(user_repo: Path, tmp_path: Path) -> None:
    """Staging starts from the base, not from the worktree's index, which an agent CLI may have
    filled with `git add` (a scratch file it did not report must not land)."""
    repo = MissionRepo(user_repo, BRANCH, tmp_path / "run", "run1")
    repo.prepare("main")
    path = repo.reset("agent-1")
    (path / "work.txt").write_text("work\n")
    (path / ".agent-notes").write_text("scratch\n")
    git(path, "add", "-A")
    repo.stage_work("agent-1", ["work.txt"])
    assert repo.integrate("agent-1", "T1", "work").files == ["work.txt"]
