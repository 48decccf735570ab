"""The mission branch, agent worktrees, the integration queue's commits and rollback.

Room: workspace. Touches the target repository only through the one ref it owns (the
mission branch) and the objects it writes; the user's checkout, HEAD, index, config and
other branches are never modified. Git runs through GitPython's command interface
(``git.Git(path)``: no long-lived ``Repo`` objects).

Each agent slot works in a private repository under the run folder (``git init`` plus an
``objects/info/alternates`` entry naming the user's object store: no object is copied), not
a linked worktree: its HEAD, refs, index and config are its own, so a validation command
that creates a branch, moves ``main`` or runs ``git config`` there changes nothing of the
user's repository. The mission's ``[workspace] setup`` runs once per slot, in its fresh
worktree; what it creates is kept across the slot's tasks (excluded from the clean between
tasks) and is never staged. A task's commit holds only the files its agent changed, staged
before validation runs (:meth:`MissionRepo.stage_work`), so nothing setup or validation
writes can land.

Integration never checks anything out: the worktree's tree is committed with
``commit-tree``, merged onto the current mission head with ``merge-tree --write-tree``
when the branch moved since the worktree was reset, and published with a
compare-and-swap ``update-ref`` so a branch moved by someone else is detected. The usual
path is three git processes (``add -A``, ``write-tree``, ``update-ref``): the changed files
are read from the loose tree objects ``write-tree`` just wrote and the commit object is
written the way ``commit-tree`` writes it, both through gitdb (GitPython's loose object
store); ``diff-tree`` and ``commit-tree`` still run whenever that shortcut cannot be sure
(packed objects, non-default object settings).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import git as gitpython
import gitdb
import gitdb.exc

from hybrid_tui.spec.models import WorkspaceSection
from hybrid_tui.workspace.setup import run_setup
from hybrid_tui.workspace.tree import remove_stale_index_lock
from hybrid_tui.workspace.validation import workspace_environment

__all__ = [
    "BranchMoved",
    "IntegrationResult",
    "MissionError",
    "MissionRepo",
    "RollbackResult",
    "base_branch_problem",
    "prepare_repository",
]

TASK_TRAILER = "Hybrid-Task"
RUN_TRAILER = "Hybrid-Run"
ROLLBACK_TRAILER = "Hybrid-Rollback"

# Commits are made by hybrid-tui itself: a fixed identity works without any git config.
_IDENTITY = {
    "GIT_AUTHOR_NAME": "hybrid-tui",
    "GIT_AUTHOR_EMAIL": "hybrid-tui@localhost",
    "GIT_COMMITTER_NAME": "hybrid-tui",
    "GIT_COMMITTER_EMAIL": "hybrid-tui@localhost",
}
_RECORD = "\x1e"
_FIELD = "\x1f"
_TREE_MODE = b"40000"
_OBJECT_WRITE_SETTINGS = r"^core\.(sharedrepository|fsync|fsyncobjectfiles|fsyncmethod|compression|loosecompression)$"
# Settings under which git writes objects differently from a plain loose, unsigned SHA-1
# commit with no encoding header (config keys are matched lower-cased).
_NONDEFAULT_OBJECT_SETTINGS = (
    r"^(core\.(sharedrepository|fsync|fsyncobjectfiles)|i18n\.commitencoding|extensions\..*)$"
)


class MissionError(Exception):
    """A git operation on the mission that cannot proceed; the message says why."""


class BranchMoved(MissionError):
    """The mission branch was moved by someone other than this run."""




@dataclass
class IntegrationResult:
    sha: str | None
    files: list[str] = field(default_factory=list)
    already: bool = False
    conflict: str | None = None  # "<files>: <reason>"; the mission branch is unchanged
    empty: bool = False


@dataclass
class RollbackResult:
    ok: bool
    sha: str | None = None
    reason: str = ""


@dataclass
class CascadeResult:
    ok: bool
    reverts: dict[str, str]  # task id -> the commit that reverts it
    reason: str = ""


def _git(path: Path) -> gitpython.Git:
    # GitPython silently falls back to the process's own cwd for a missing folder: never
    # let a git command run anywhere but where it was meant to.
    if not Path(path).is_dir():
        raise MissionError(f"{path}: folder does not exist")
    runner = gitpython.Git(str(path))
    runner.update_environment(**_IDENTITY, GIT_TERMINAL_PROMPT="0")
    return runner


def _run(runner: gitpython.Git, *args: str, **kwargs) -> tuple[int, str, str]:
    """Run ``git <args>`` and return (status, stdout, stderr) without raising."""
    status, out, err = runner.execute(
        ["git", "-c", "core.quotepath=false", *args], with_extended_output=True, with_exceptions=False, strip_newline_in_stdout=False, **kwargs
    )
    return status, out, err


def _ok(runner: gitpython.Git, *args: str, what: str, **kwargs) -> str:
    status, out, err = _run(runner, *args, **kwargs)
    if status != 0:
        raise MissionError(f"{what}: {err.strip() or out.strip() or f'git {args[0]} failed'}")
    return out


def base_branch_problem(source: Path, base_branch: str | None) -> str | None:
    """Why ``base_branch`` cannot be the base of a run on the git repository ``source`` (it names
    no commit there), or None; None too for a plain folder (imported as a new repository) and
    no base branch (the checked-out one). The same check as :meth:`MissionRepo.prepare`, for
    ``validate`` and the preflight to say so before a run is created."""
    source = Path(source).resolve()
    if not base_branch or not source.is_dir():
        return None
    status, top, _ = _run(_git(source), "rev-parse", "--show-toplevel")
    if status != 0 or Path(top.strip()).resolve() != source:
        return None
    status, _, _ = _run(_git(source), "rev-parse", "--verify", "-q", f"{base_branch}^{{commit}}")
    return None if status == 0 else f"base branch {base_branch!r} does not exist in {source}"


def prepare_repository(source: Path, run_dir: Path) -> Path:
    """The repository to run on: ``source`` itself when it is a git repository's top level,
    else a copy of the plain folder in ``run_dir/repo`` with ``git init`` and one commit."""
    source = Path(source).resolve()
    if not source.is_dir():
        raise MissionError(f"{source}: repository folder does not exist")
    status, top, _ = _run(_git(source), "rev-parse", "--show-toplevel")
    if status == 0 and Path(top.strip()).resolve() == source:
        return source
    status, bare, _ = _run(_git(source), "rev-parse", "--is-bare-repository")
    if status == 0 and bare.strip() == "true":
        raise MissionError(f"{source}: is a bare git repository (no work tree); clone it and name the clone as repo")
    target = Path(run_dir).resolve() / "repo"
    if target.parent.is_relative_to(source):
        # The copy would hold the run folder that holds the copy, again and again.
        raise MissionError(f"{source}: the repository folder holds the runs folder {target.parent.parent}; "
                           "make the repository a git repository, or give --runs-dir outside it")
    if (target / ".git").exists():  # resumed run: already initialised
        return target
    if target.exists():
        shutil.rmtree(target)
    # symlinks=True copies links as links: a link pointing outside is not followed.
    shutil.copytree(source, target, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    runner = _git(target)
    _ok(runner, "init", "-q", "-b", "main", what=f"{target}: git init")
    _ok(runner, "add", "-A", what=f"{target}: git add")
    _ok(
        runner, "-c", "commit.gpgsign=false", "commit", "-q", "--no-verify", "--allow-empty",
        "-m", f"Initial import of {source.name}", what=f"{target}: initial commit",
    )
    return target


class MissionRepo:
    """Git operations of one run: mission branch, worktrees, integration, rollback.

    Integration is serialised by an internal lock; the runtime's single integration queue
    calls :meth:`integrate` from one place anyway.
    """

    def __init__(
        self, repo_path: Path, mission_branch: str, run_dir: Path, run_id: str,
        workspace: WorkspaceSection | None = None,
    ) -> None:
        self.repo_path = Path(repo_path).resolve()
        self.workspace = workspace or WorkspaceSection()
        self.mission_branch = mission_branch
        self.mission_ref = f"refs/heads/{mission_branch}"
        self.run_dir = Path(run_dir).resolve()
        self.run_id = run_id
        self.worktrees_dir = self.run_dir / "worktrees"
        self.base_sha: str | None = None
        self._created_branch = False  # by prepare(), so a refused start can take it back
        self._lock = threading.RLock()
        self._known_head: str | None = None  # the mission head as this run last left it
        self._integrated: dict[str, str] | None = None  # cache, valid for _known_head
        self._reset_base: dict[str, str] = {}  # agent -> mission head its worktree was reset to
        self._loose: _LooseObjects | bool | None = None  # None: not looked up yet; False: unusable
        self._objects: Path | None = None
        self._object_env: dict[str, str] | None = None
        self._staged: dict[str, str] = {}  # agent -> tree of its task's work, staged before validation

    # ------------------------------------------------------------- basics

    def _repo(self) -> gitpython.Git:
        return _git(self.repo_path)

    def head(self) -> str:
        """The mission branch's current commit."""
        status, out, err = _run(self._repo(), "rev-parse", "--verify", "-q", f"{self.mission_ref}^{{commit}}")
        if status != 0:
            raise MissionError(f"mission branch {self.mission_branch!r} does not exist in {self.repo_path}")
        return out.strip()

    def _expected_head(self) -> str:
        if self._known_head is None:
            self._known_head = self.head()
        return self._known_head

    def prepare(self, base_branch: str | None, *, new_run: bool = False) -> str:
        """Create the mission branch from ``base_branch`` (default: the checked-out branch),
        or keep it when it exists (resume; a ``new_run`` refuses an existing branch). Returns
        the base commit. Touches no checkout."""
        runner = self._repo()
        status, _, _ = _run(runner, "check-ref-format", self.mission_ref)
        if status != 0:
            raise MissionError(f"mission branch name {self.mission_branch!r} is not a valid git branch name")
        base_rev = base_branch or "HEAD"
        status, out, _ = _run(runner, "rev-parse", "--verify", "-q", f"{base_rev}^{{commit}}")
        if status != 0:
            if base_branch:
                raise MissionError(f"base branch {base_branch!r} does not exist in {self.repo_path}")
            raise MissionError(f"{self.repo_path}: repository has no commits yet; commit something first")
        base = out.strip()
        self._refuse_if_checked_out(runner)
        status, out, _ = _run(runner, "rev-parse", "--verify", "-q", f"{self.mission_ref}^{{commit}}")
        if status == 0 and new_run:
            # Not this run's (a new run has no commits yet): the user's `user-feature`, another
            # run's branch, or one at the base would get this run's commits on top.
            raise MissionError(
                f"mission branch {self.mission_branch!r} already exists; name another [mission] mission_branch "
                "in mission.toml (or delete the branch)"
            )
        if status == 0:  # resume: keep the branch as it is
            head = out.strip()
            status, fork, _ = _run(runner, "merge-base", base, head)
            base = fork.strip() if status == 0 else head
        else:
            # Empty old value: create only if it still does not exist.
            _ok(runner, "update-ref", "-m", f"hybrid-tui run {self.run_id}", self.mission_ref, base, "",
                what=f"cannot create mission branch {self.mission_branch!r}")
            self._created_branch = True
            head = base
        with self._lock:
            self._known_head = head
            self._integrated = None
            self.base_sha = base
        return base

    def delete_new_branch(self) -> None:
        """Take back the mission branch :meth:`prepare` created, if it still points where it
        was created (a refused start leaves nothing behind; a moved branch is not ours to delete)."""
        if self._created_branch and self.base_sha is not None:
            _run(self._repo(), "update-ref", "-d", self.mission_ref, self.base_sha)
            self._created_branch = False

    def _refuse_if_checked_out(self, runner: gitpython.Git) -> None:
        listing = _ok(runner, "worktree", "list", "--porcelain", what="git worktree list")
        path = None
        for line in listing.splitlines():
            if line.startswith("worktree "):
                path = line[len("worktree "):]
            elif line == f"branch {self.mission_ref}" and path is not None:
                if not Path(path).resolve().is_relative_to(self.worktrees_dir.resolve()):
                    raise MissionError(
                        f"mission branch {self.mission_branch!r} is checked out in {path}; "
                        "check out another branch there (hybrid-tui never moves a checkout)"
                    )

    def accept_head(self) -> str:
        """Adopt the mission branch's current head after an operator confirmed a move."""
        with self._lock:
            self._known_head = self.head()
            self._integrated = None
            return self._known_head

    # ------------------------------------------------------------ worktrees

    def _agent_branch(self, agent_id: str) -> str:
        return f"hybrid/{self.run_id}/{agent_id}"

    def worktree(self, agent_id: str) -> Path:
        """The worktree of ``agent_id`` under the run folder (created at the mission head): a
        private repository borrowing the user's objects, so nothing run in it reaches the
        user's refs or config."""
        if not agent_id or "/" in agent_id or agent_id.startswith("."):
            raise MissionError(f"agent id {agent_id!r} is not usable as a folder name")
        path = self.worktrees_dir / agent_id
        if (path / ".git").exists():
            return path
        with self._lock:
            if (path / ".git").exists():
                return path
            if path.exists():
                shutil.rmtree(path)  # half-created by a crash: start over
            self._setup_marker(agent_id).unlink(missing_ok=True)
            self.worktrees_dir.mkdir(parents=True, exist_ok=True)
            head = self._expected_head()
            objects = self._objects_dir()
            # Built in a side folder and renamed into place: a crash never leaves a half repository.
            building = self.worktrees_dir / f".{agent_id}.building"
            if building.exists():
                shutil.rmtree(building)
            building.mkdir()
            # --template=: no hooks or sample files copied in; a private HEAD, refs, index and config.
            object_format = _run(self._repo(), "rev-parse", "--show-object-format")[1].strip() or "sha1"
            _ok(_git(building), "init", "-q", "--template=", f"--object-format={object_format}",
                "-b", self._agent_branch(agent_id), str(building), what=f"cannot create worktree for {agent_id}")
            info = building / ".git" / "objects" / "info"
            info.mkdir(parents=True, exist_ok=True)
            (info / "alternates").write_text(f"{objects}\n")
            building.rename(path)
            _ok(_git(path), "reset", "-q", "--hard", head, what=f"cannot create worktree for {agent_id}")
            self._remember_base(agent_id, head)
            return path

    def _objects_dir(self) -> Path:
        """The user's object store (where the mission branch's commits live)."""
        if self._objects is None:
            out = _ok(self._repo(), "rev-parse", "--git-path", "objects", what="cannot find the object store")
            objects = Path(out.strip())
            self._objects = (objects if objects.is_absolute() else self.repo_path / objects).resolve()
        return self._objects

    def _object_settings(self) -> dict[str, str]:
        """The user's settings for writing objects (group-shared permissions, fsync,
        compression) as ``GIT_CONFIG_*`` variables: objects written into their store from a
        worktree are written as their own git would write them."""
        if self._object_env is None:
            status, out, _ = _run(self._repo(), "config", "--get-regexp", _OBJECT_WRITE_SETTINGS)
            pairs = [line.split(" ", 1) for line in out.splitlines() if line.strip()] if status == 0 else []
            env = {"GIT_CONFIG_COUNT": str(len(pairs))} if pairs else {}
            for number, pair in enumerate(pairs):
                env[f"GIT_CONFIG_KEY_{number}"] = pair[0]
                env[f"GIT_CONFIG_VALUE_{number}"] = pair[1] if len(pair) > 1 else "true"
            self._object_env = env
        return self._object_env

    def object_environment(self, path: Path) -> dict[str, str]:
        """Git variables under which objects written in worktree ``path`` land in the user's
        object store (integration's trees and commits, a worker's patch applied).

        The worktree's own store is deliberately not an alternate: git skips writing an
        object it finds in any alternate, so a blob an agent's or a validation command's
        `git add` had put there was never written to the user's store, and the task's commit
        named an object the user's repository lacked. What is read here (the base, the
        staged work) is all in the user's store."""
        return {"GIT_OBJECT_DIRECTORY": str(self._objects_dir()), **self._object_settings()}

    def _worktree_git(self, path: Path, index: Path | None = None) -> gitpython.Git:
        """Git in a worktree whose new objects go to the user's object store (integration's
        trees and commits must be readable there); ``index`` replaces the worktree's own."""
        runner = _git(path)
        env = self.object_environment(path)
        if index is not None:
            env["GIT_INDEX_FILE"] = str(index)
        runner.update_environment(**env)
        return runner

    # --------------------------------------------------------------- setup

    def _setup_marker(self, agent_id: str) -> Path:
        return self.worktrees_dir / f".{agent_id}.setup"

    def _setup_fingerprint(self) -> str:
        ws = self.workspace
        return hashlib.sha1(json.dumps([ws.setup, ws.path, ws.env], sort_keys=True).encode()).hexdigest()

    def setup_paths(self, agent_id: str) -> list[str]:
        """What the slot's setup created (untracked paths, folders collapsed): kept between tasks."""
        try:
            marker = json.loads(self._setup_marker(agent_id).read_text())
        except (OSError, ValueError):
            return []
        return list(marker.get("paths", [])) if isinstance(marker, dict) else []

    def _setup_done(self, agent_id: str) -> bool:
        try:
            marker = json.loads(self._setup_marker(agent_id).read_text())
        except (OSError, ValueError):
            return False
        return isinstance(marker, dict) and marker.get("fingerprint") == self._setup_fingerprint()

    def environment(self, agent_id: str) -> dict[str, str]:
        """The variables the slot's commands (agent CLI, validation) get over the user's environment."""
        ws = self.workspace
        return workspace_environment(self.worktrees_dir / agent_id, ws.path, ws.env)

    def _run_setup(self, agent_id: str, path: Path) -> None:
        log = self.worktrees_dir / f"{agent_id}.setup.log"
        run_setup(self.workspace, path, log, what=f"setup of {agent_id}")
        runner = _git(path)
        # Tracked files setup changed (`npm install` rewriting its lock file) are put back: a
        # task's work is judged against the mission branch's files, and every task of the
        # slot starts from them (a reset between tasks would undo them anyway).
        changed = [p for p in _ok(runner, "diff", "--name-only", "-z", "HEAD", what=f"setup of {agent_id}").split("\0")
                   if p]
        if changed:
            with open(log, "a", encoding="utf-8", errors="replace") as out:
                out.write(f"[tracked files changed by setup, put back as the mission branch has them: "
                          f"{', '.join(changed)}]\n")
            _ok(runner, "reset", "-q", "--hard", "HEAD", what=f"setup of {agent_id}")
        out = _ok(runner, "ls-files", "-z", "--others", "--directory", what=f"setup of {agent_id}")
        paths = sorted(p.rstrip("/") for p in out.split("\0") if p.strip())
        self._setup_marker(agent_id).write_text(json.dumps({"fingerprint": self._setup_fingerprint(), "paths": paths}))

    def reset(self, agent_id: str, *, setup: bool = True) -> Path:
        """Hard-reset and clean the worktree of ``agent_id`` to the mission head, keeping what
        its setup created; run the setup first if this slot has not had it (or it changed).
        :class:`SetupFailed` when a setup command fails. ``setup=False`` (crash recovery) only
        cleans: the slot's next attempt runs the setup, where a failure is its task's."""
        path = self.worktree(agent_id)
        remove_stale_index_lock(path)  # left by a crash; nothing else runs git in this worktree now
        head = self._expected_head()
        runner = _git(path)
        self._staged.pop(agent_id, None)
        _ok(runner, "reset", "-q", "--hard", head, what=f"cannot reset worktree of {agent_id}")
        setup_done = self._setup_done(agent_id)
        keep = self.setup_paths(agent_id) if setup_done else []
        excludes = [arg for kept in keep for arg in ("-e", "/" + _glob_escape(kept))]
        _ok(runner, "clean", "-q", "-ffdx", *excludes, what=f"cannot clean worktree of {agent_id}")
        self._remember_base(agent_id, head)
        if setup and not setup_done and (self.workspace.setup or self._setup_marker(agent_id).exists()):
            self._setup_marker(agent_id).unlink(missing_ok=True)
            self._run_setup(agent_id, path)
        self._save_base_index(agent_id, path)
        return path

    def _base_index(self, agent_id: str) -> Path:
        return self.worktrees_dir / f".{agent_id}.base-index"

    def _save_base_index(self, agent_id: str, path: Path) -> None:
        """Keep the worktree's index as it is now (its base, with stat data) for :meth:`stage_work`."""
        shutil.copyfile(path / ".git" / "index", self._base_index(agent_id))

    def stage_work(self, agent_id: str, files: list[str] | None = None) -> str:
        """Stage the agent's work into a tree on the worktree's base, before validation runs:
        what the task's commit will hold. ``files`` are the paths the agent changed; None
        means every change in the worktree but what its setup created. Returns the tree id.

        The staging uses a copy of the index :meth:`reset` saved (the base with its stat
        data: only the named files are hashed), never the worktree's index, which an agent
        CLI or a validation command may have filled with `git add` as it liked (a scratch
        file staged there landed)."""
        path = self.worktrees_dir / agent_id
        if not (path / ".git").exists():
            raise MissionError(f"agent {agent_id} has no worktree at {path}")
        index = self.worktrees_dir / f".{agent_id}.index"
        runner = self._worktree_git(path, index)
        what = f"cannot stage the work of {agent_id}"
        try:
            try:
                shutil.copyfile(self._base_index(agent_id), index)
            except OSError:  # not reset by this version: the base, read again
                index.unlink(missing_ok=True)
                _ok(runner, "read-tree", self._base_of(agent_id, _git(path)), what=what)
            if files is None:
                kept = [f":(exclude,literal){kept}" for kept in self.setup_paths(agent_id)]
                _ok(runner, "add", "-A", "--", ".", *kept, what=what)
            else:
                kept = self.setup_paths(agent_id)
                names = sorted({name for name in files
                                if name and not any(name == k or name.startswith(k + "/") for k in kept)})
                status = 0
                if names:
                    status = _run(runner, "add", "-A", "--", *(f":(literal){name}" for name in names))[0]
                if status != 0:
                    # A path the agent created and removed again matches nothing: stage
                    # file by file from the base instead (deletions, file<->folder swaps).
                    _ok(runner, "read-tree", self._base_of(agent_id, _git(path)), what=what)
                    _ok(runner, "update-index", "--add", "--remove", "--replace", "--", *names, what=what)
            tree = _ok(runner, "write-tree", what=what).strip()
        finally:
            index.unlink(missing_ok=True)
        self._staged[agent_id] = tree
        return tree

    def stage_tree(self, agent_id: str, files: list[str]) -> str:
        """:meth:`stage_work` of only ``files`` (one batch member's), kept by the caller, not
        as the agent's staged work: a batched attempt stages one tree per task."""
        tree = self.stage_work(agent_id, files)
        self._staged.pop(agent_id, None)
        return tree

    def show_tree(self, agent_id: str, tree: str) -> None:
        """Make the worktree of ``agent_id`` hold its base plus exactly ``tree``'s changes
        (one batch member's, to validate it alone): hard reset to the base it was reset to
        (not the mission head, which may have moved), clean all but setup's output, then
        check the tree out. The agent's own edits are gone afterwards: stage them first."""
        path = self.worktree(agent_id)
        runner = _git(path)
        base = self._base_of(agent_id, runner)
        what = f"cannot show a task's work in the worktree of {agent_id}"
        _ok(runner, "reset", "-q", "--hard", base, what=what)
        excludes = [arg for kept in self.setup_paths(agent_id) for arg in ("-e", "/" + _glob_escape(kept))]
        _ok(runner, "clean", "-q", "-ffdx", *excludes, what=what)
        _ok(runner, "read-tree", "--reset", "-u", tree, what=what)
        # Back to the base in the index (the files stay): stage_work copies the index as
        # the base's stat data.
        _ok(runner, "read-tree", base, what=what)
        self._save_base_index(agent_id, path)

    def _base_file(self, agent_id: str) -> Path:
        return self.worktrees_dir / f".{agent_id}.base"

    def _remember_base(self, agent_id: str, sha: str) -> None:
        self._reset_base[agent_id] = sha
        self._base_file(agent_id).write_text(sha)  # survives a crash of the coordinator

    def _base_of(self, agent_id: str, runner: gitpython.Git) -> str:
        if agent_id in self._reset_base:
            return self._reset_base[agent_id]
        try:
            sha = self._base_file(agent_id).read_text().strip()
        except OSError:
            sha = _ok(runner, "rev-parse", "HEAD", what=f"worktree of {agent_id}").strip()
        self._reset_base[agent_id] = sha
        return sha

    def remove_worktrees(self) -> None:
        """Remove this run's worktrees and agent branches."""
        runner = self._repo()
        if self.worktrees_dir.exists():
            for path in sorted(self.worktrees_dir.iterdir()):
                if path.is_dir():
                    if (path / ".git").is_file():  # a linked worktree of an older run
                        _run(runner, "worktree", "remove", "--force", "--force", str(path))
                    if path.exists():
                        shutil.rmtree(path, ignore_errors=True)
                elif path.name.endswith((".base", ".setup", ".base-index")):
                    path.unlink()
        _run(runner, "worktree", "prune")
        out = _ok(runner, "for-each-ref", "--format=%(refname)", f"refs/heads/hybrid/{self.run_id}/",
                  what="list agent branches")
        for ref in out.split():
            _run(runner, "update-ref", "-d", ref)
        self._reset_base.clear()
        self._staged.clear()

    # ----------------------------------------------------------- integration

    def _scan(self, runner: gitpython.Git, revision_range: str) -> list[tuple[str, str, str, str, list[str]]]:
        """(sha, task trailer, run trailer, rollback trailer, files) oldest first."""
        fmt = _FIELD.join([
            _RECORD + "%H",
            f"%(trailers:key={TASK_TRAILER},valueonly,separator=%x2C)",
            f"%(trailers:key={RUN_TRAILER},valueonly,separator=%x2C)",
            f"%(trailers:key={ROLLBACK_TRAILER},valueonly,separator=%x2C)",
        ]) + _FIELD
        out = _ok(runner, "log", "--reverse", "--name-only", "-z", f"--format={fmt}", revision_range,
                  what=f"cannot read history of {self.mission_branch!r}")
        commits = []
        for record in out.split(_RECORD)[1:]:
            sha, task, run, rollback, rest = record.split(_FIELD, 4)
            files = [name.strip("\n") for name in rest.split("\0") if name.strip("\n")]
            commits.append((sha, task.strip(), run.strip(), rollback.strip(), files))
        return commits

    def _apply_scan(self, integrated: dict[str, str], commits) -> None:
        for sha, task, run, rollback, _ in commits:
            if run != self.run_id:
                continue
            if task:
                integrated[task] = sha
            if rollback:
                integrated.pop(rollback, None)

    def find_integrated(self) -> dict[str, str]:
        """Task id -> commit for this run's tasks on the mission branch (rolled-back ones excluded)."""
        with self._lock:
            head = self.head()
            integrated: dict[str, str] = {}
            revision_range = f"{self.base_sha}..{head}" if self.base_sha else head
            self._apply_scan(integrated, self._scan(self._repo(), revision_range))
            if head == self._known_head:
                self._integrated = dict(integrated)
            return integrated

    def find_rolled_back(self) -> dict[str, str]:
        """Task id -> revert commit for this run's tasks whose last change on the mission
        branch is a rollback (what recovery needs after a crash between the revert and the
        store update)."""
        with self._lock:
            reverted: dict[str, str] = {}
            revision_range = f"{self.base_sha}..{self.head()}" if self.base_sha else self.head()
            for sha, task, run, rollback, _ in self._scan(self._repo(), revision_range):
                if run != self.run_id:
                    continue
                if task:
                    reverted.pop(task, None)  # integrated again after the rollback
                if rollback:
                    reverted[rollback] = sha
            return reverted

    def _integrated_map(self) -> dict[str, str]:
        if self._integrated is None:
            self._integrated = self.find_integrated()
        return self._integrated

    def integrate(self, agent_id: str, task_id: str, title: str, tree: str | None = None) -> IntegrationResult:
        """Turn the worktree's changes into ONE commit on the mission branch (at most once per task).
        ``tree``: the task's own staged tree (a batch member's, from :meth:`stage_tree`)."""
        with self._lock:
            expected = self._expected_head()
            integrated = self._integrated_map()
            if task_id in integrated:
                sha = integrated[task_id]
                return IntegrationResult(sha=sha, files=self.changed_files(sha), already=True)
            worktree = self.worktrees_dir / agent_id
            if not (worktree / ".git").exists():
                raise MissionError(f"{task_id}: agent {agent_id} has no worktree at {worktree}")
            base = self._base_of(agent_id, _git(worktree))
            # Only the agent's work: the tree staged before validation ran (or, for a caller
            # that staged nothing, every change but setup's output, staged now).
            if tree is None:
                tree = self._staged.pop(agent_id, None) or self.stage_work(agent_id)
                self._staged.pop(agent_id, None)
            runner = self._worktree_git(worktree)
            files = self._files_between(runner, base, tree, what=f"{task_id}: cannot diff the worktree")
            if not files:
                return IntegrationResult(sha=None, files=[], empty=True)
            message = f"{task_id}: {_one_line(title)}\n\n{TASK_TRAILER}: {task_id}\n{RUN_TRAILER}: {self.run_id}\n"
            if base != expected:
                # The mission branch moved (other tasks integrated) since this worktree was reset.
                side = self._commit_tree(runner, tree, base, message)
                status, out, err = _run(runner, "merge-tree", "--write-tree", "--name-only", expected, side)
                if status == 1:
                    return IntegrationResult(sha=None, files=files, conflict=_conflict_text(out))
                if status != 0:
                    raise MissionError(f"{task_id}: merge onto {self.mission_branch!r} failed: {err.strip()}")
                tree = out.split("\n", 1)[0].strip()
            sha = self._commit_tree(runner, tree, expected, message)
            self._publish(self._repo(), sha, expected, what=f"integrate {task_id}")
            integrated[task_id] = sha
            return IntegrationResult(sha=sha, files=files)

    def _commit_tree(self, runner: gitpython.Git, tree: str, parent: str, message: str) -> str:
        loose = self._loose_objects()
        if loose is not None and loose.writable:
            sha = loose.write_commit(tree, parent, message.rstrip("\n") + "\n")
            if sha is not None:
                return sha
        return _ok(runner, "commit-tree", "--no-gpg-sign", tree, "-p", parent, "-m", message.rstrip("\n"),
                   what="cannot create commit").strip()

    def _publish(self, runner: gitpython.Git, sha: str, expected: str, what: str) -> None:
        """Compare-and-swap the mission branch from ``expected`` to ``sha``."""
        status, _, err = _run(runner, "update-ref", "-m", f"hybrid-tui {what}", self.mission_ref, sha, expected)
        if status != 0:
            actual = _run(runner, "rev-parse", "--verify", "-q", self.mission_ref)[1].strip() or "(deleted)"
            self._integrated = None
            raise BranchMoved(
                f"mission branch {self.mission_branch!r} was moved by someone else "
                f"(expected {expected[:12]}, found {actual[:12]}); {what} stopped and nothing was "
                "overwritten - inspect the branch, then resume"
            )
        self._known_head = sha

    # ---------------------------------------------------------- inspection

    def changed_files(self, sha: str) -> list[str]:
        """The files a (non-merge) commit changed against its parent."""
        loose = self._loose_objects()
        if loose is not None:
            commit = loose.commit(sha)
            if commit is not None and len(commit[1]) <= 1:  # merges: git's own rules below
                tree, parents = commit
                base_tree = loose.tree_of(parents[0]) if parents else ""
                if base_tree is not None:
                    files = loose.changed_paths(base_tree, tree)
                    if files is not None:
                        return files
        out = _ok(self._repo(), "diff-tree", "--no-commit-id", "-r", "--name-only", "-z", "--root", sha,
                  what=f"cannot list files of {sha[:12]}")
        return [name for name in out.split("\0") if name]

    def _files_between(self, runner: gitpython.Git, base: str, tree: str, what: str) -> list[str]:
        """Files differing between commit ``base`` and ``tree`` (``git diff-tree -r --name-only``)."""
        loose = self._loose_objects()
        if loose is not None:
            base_tree = loose.tree_of(base)
            if base_tree is not None:
                files = loose.changed_paths(base_tree, tree)
                if files is not None:
                    return files
        out = _ok(runner, "diff-tree", "-r", "--name-only", "-z", "--no-renames", base, tree, what=what)
        return [name for name in out.split("\0") if name]

    def _loose_objects(self) -> _LooseObjects | None:
        """The object directory for in-process reads (and commit writes in a default setup)."""
        if self._loose is None:
            runner = self._repo()
            status, out, _ = _run(runner, "rev-parse", "--git-path", "objects")
            objects = (self.repo_path / out.strip()) if status == 0 and out.strip() else None
            if objects is None or not objects.is_dir():
                self._loose = False
            else:
                # Anything that changes how git itself writes a commit object leaves the
                # writing to `git commit-tree`; exit status 1 means none is configured.
                status, _, _ = _run(runner, "config", "--get-regexp", _NONDEFAULT_OBJECT_SETTINGS)
                self._loose = _LooseObjects(objects, writable=status == 1)
        return self._loose or None

    def diff(self, sha: str, max_bytes: int = 500_000) -> str:
        """The commit's message, stat and patch (capped at ``max_bytes``)."""
        out = _ok(self._repo(), "show", "--stat", "--patch", "--format=fuller", "--no-color", sha,
                  what=f"cannot show {sha[:12]}")
        if len(out) > max_bytes:
            out = out[:max_bytes] + f"\n[... {len(out) - max_bytes} characters truncated ...]\n"
        return out

    # ------------------------------------------------------------- rollback

    def rollback(self, task_id: str, sha: str, later: list[tuple[str, str]] = ()) -> RollbackResult:
        """Revert ``task_id``'s commit on the mission branch, unless a later integrated task
        touched the same files (``later`` plus what the branch history shows)."""
        with self._lock:
            runner = self._repo()
            expected = self._expected_head()
            if _run(runner, "merge-base", "--is-ancestor", sha, expected)[0] != 0:
                return RollbackResult(False, None, f"{task_id}: commit {sha[:12]} is not on {self.mission_branch!r}")
            mine = set(self.changed_files(sha))
            after: dict[str, str] = dict(later)
            live, reverted = self._live_and_reverted(runner, f"{sha}..{expected}")
            if task_id in reverted and task_id not in live:
                # Already done (e.g. a crash before the store heard of it): never revert twice.
                return RollbackResult(True, reverted[task_id], f"{task_id} was already rolled back")
            for task in reverted:
                after.pop(task, None)
            after.update(live)
            after.pop(task_id, None)
            clashes = []
            for other, other_sha in after.items():
                shared = sorted(mine & set(self.changed_files(other_sha)))
                if shared:
                    clashes.append(f"{other} ({', '.join(shared)})")
            if clashes:
                return RollbackResult(
                    False, None,
                    f"rollback of {task_id} refused: later task(s) touched the same files: "
                    f"{'; '.join(clashes)}; roll those back first",
                )
            new, reason = self._revert_onto(runner, expected, task_id, sha)
            if new is None:
                return RollbackResult(False, None, reason)
            self._publish(runner, new, expected, what=f"rollback {task_id}")
            if self._integrated is not None:
                self._integrated.pop(task_id, None)
            return RollbackResult(True, new, "")

    def rollback_cascade(self, scope: list[tuple[str, str]],
                         between_reverts: Callable[[str], None] | None = None) -> CascadeResult:
        """Revert every (task id, commit) of ``scope`` (oldest first, as landed), newest first,
        as one operation: the revert commits are built on top of each other off the branch and
        published by one compare-and-swap, so the branch shows all of them or none.

        Refused, with the branch untouched, when a commit is not on the branch, is already
        reverted, or a later commit outside the scope touched a file of one in it.
        ``between_reverts(task_id)`` runs after each revert commit is built (a crash point)."""
        with self._lock:
            runner = self._repo()
            expected = self._expected_head()
            for task_id, sha in scope:
                if _run(runner, "merge-base", "--is-ancestor", sha, expected)[0] != 0:
                    return CascadeResult(False, {}, f"{task_id}: commit {sha[:12]} is not on {self.mission_branch!r}")
            first_sha = scope[0][1]
            live, reverted = self._live_and_reverted(runner, f"{first_sha}^..{expected}")
            done_already = [task_id for task_id, _ in scope if task_id in reverted and task_id not in live]
            if done_already:
                return CascadeResult(False, {}, f"already rolled back: {', '.join(done_already)}")
            in_scope = {task_id for task_id, _ in scope}
            files_so_far: set[str] = set()
            clashes = []
            for task_id, sha in live.items():  # oldest first: a commit clashes with scope commits before it
                changed = set(self.changed_files(sha))
                if task_id in in_scope:
                    files_so_far |= changed
                elif files_so_far & changed:
                    clashes.append(f"{task_id} ({', '.join(sorted(files_so_far & changed))})")
            if clashes:
                return CascadeResult(False, {}, f"later task(s) outside the scope touched its files: {'; '.join(clashes)}")
            head = expected
            reverts: dict[str, str] = {}
            for task_id, sha in reversed(scope):
                new, reason = self._revert_onto(runner, head, task_id, sha)
                if new is None:
                    return CascadeResult(False, {}, reason)
                reverts[task_id] = head = new
                if between_reverts is not None:
                    between_reverts(task_id)
            self._publish(runner, head, expected, what=f"cascade rollback of {scope[0][0]} ({len(scope)} tasks)")
            if self._integrated is not None:
                for task_id in reverts:
                    self._integrated.pop(task_id, None)
            return CascadeResult(True, reverts, "")

    def _live_and_reverted(self, runner: gitpython.Git, revision_range: str) -> tuple[dict[str, str], dict[str, str]]:
        """This run's task commits in ``revision_range`` not reverted in it (task id -> sha,
        oldest first) and the reverts in it (task id -> revert sha)."""
        live: dict[str, str] = {}
        reverted: dict[str, str] = {}
        for csha, task, run, rollback, _ in self._scan(runner, revision_range):
            if run != self.run_id:
                continue
            if task:
                live[task] = csha
            if rollback:
                live.pop(rollback, None)
                reverted[rollback] = csha
        return live, reverted

    def _revert_onto(self, runner: gitpython.Git, head: str, task_id: str, sha: str) -> tuple[str | None, str]:
        """A commit on top of ``head`` that reverts ``sha`` (with the rollback trailer), built
        in a private index: no checkout and no branch is touched. (None, reason) when the
        revert does not apply."""
        subject = _ok(runner, "log", "-1", "--format=%s", sha, what=f"cannot read {sha[:12]}").strip()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        index = self.run_dir / f"rollback-{os.getpid()}.index"
        patch_file = self.run_dir / f"rollback-{os.getpid()}.patch"
        env = {"GIT_INDEX_FILE": str(index)}
        try:
            _ok(runner, "read-tree", head, env=env, what="read-tree")
            _ok(runner, "diff", "--binary", "--no-color", "--no-renames", f"--output={patch_file}",
                f"{sha}^", sha, what=f"cannot diff {sha[:12]}")
            status, _, err = _run(runner, "apply", "--cached", "-R", str(patch_file), env=env)
            if status != 0:
                return None, f"rollback of {task_id}: revert does not apply: {err.strip()}"
            tree = _ok(runner, "write-tree", env=env, what="write-tree").strip()
        finally:
            index.unlink(missing_ok=True)
            patch_file.unlink(missing_ok=True)
        message = (
            f'Revert "{subject}"\n\nThis reverts commit {sha}.\n\n'
            f"{ROLLBACK_TRAILER}: {task_id}\n{RUN_TRAILER}: {self.run_id}"
        )
        return self._commit_tree(runner, tree, head, message), ""


def _one_line(title: str) -> str:
    """A commit subject: one line, no control characters (terminal escapes stay out of git log)."""
    printable = "".join(ch if ch.isprintable() else " " for ch in title)
    return " ".join(printable.split()) or "(untitled)"


def _conflict_text(merge_output: str) -> str:
    """``"a.py, b.py: CONFLICT (content): ..."`` from ``merge-tree --write-tree --name-only``."""
    head, _, messages = merge_output.partition("\n\n")
    names = [line for line in head.splitlines()[1:] if line]
    reasons = [line.strip() for line in messages.splitlines() if line.startswith("CONFLICT")]
    files = ", ".join(dict.fromkeys(names)) or "(unknown files)"
    return f"{files}: {'; '.join(reasons) or 'merge conflict'}"


def _glob_escape(path: str) -> str:
    """``path`` as a literal gitignore pattern (``git clean -e``)."""
    return "".join("\\" + ch if ch in "*?[]\\!#" else ch for ch in path)


class _LooseObjects:
    """Loose SHA-1 objects of the repository through gitdb (GitPython's own object store),
    without a git process.

    Only what ``write-tree``, ``merge-tree`` and ``commit-tree`` have just written is wanted
    here; anything else (a packed or alternate object, SHA-256, a file gc removes while we
    read) returns None and the caller asks git instead, so an answer is git's or nothing.
    """

    def __init__(self, objects_dir: Path, writable: bool = False) -> None:
        self.objects_dir = objects_dir
        self._db = gitdb.LooseObjectDB(str(objects_dir))
        umask = _umask()
        # Kept by hand: gitdb chmods every new object to a fixed 0444 where git gives 0444
        # minus the umask (read once here); without a known umask git does the writing.
        self.writable = writable and umask is not None
        if umask is not None:
            self._db.new_objects_mode = 0o444 & ~umask

    def write_commit(self, tree: str, parent: str, message: str) -> str | None:
        """Store the commit ``git commit-tree --no-gpg-sign <tree> -p <parent>`` would make
        with our identity, byte for byte; None (caller runs git) when that cannot be sure."""
        if len(tree) != 40 or len(parent) != 40 or "GIT_AUTHOR_DATE" in os.environ or "GIT_COMMITTER_DATE" in os.environ:
            return None
        stamp = int(time.time())
        offset = time.localtime(stamp).tm_gmtoff // 60
        zone = f"{'-' if offset < 0 else '+'}{abs(offset) // 60:02}{abs(offset) % 60:02}"
        author = f"{_IDENTITY['GIT_AUTHOR_NAME']} <{_IDENTITY['GIT_AUTHOR_EMAIL']}> {stamp} {zone}"
        committer = f"{_IDENTITY['GIT_COMMITTER_NAME']} <{_IDENTITY['GIT_COMMITTER_EMAIL']}> {stamp} {zone}"
        try:
            body = f"tree {tree}\nparent {parent}\nauthor {author}\ncommitter {committer}\n\n{message}".encode()
        except UnicodeEncodeError:
            return None
        sha = hashlib.sha1(b"commit %d\0" % len(body) + body).hexdigest()
        # Kept by hand: like git, an existing object only gets a fresh mtime (which keeps a
        # pending prune off it); gitdb would rewrite it and leave the old mtime.
        try:
            os.utime(self.objects_dir / sha[:2] / sha[2:])
            return sha
        except FileNotFoundError:
            pass
        except OSError:
            return None
        # gitdb writes a temporary file and renames it into place (a reader never sees half
        # an object; a racing writer of the same object renames identical bytes over it).
        # Unlike git's tmp_obj_* files, one left by a crash mid-write (objects/obj*) is
        # ignored by git rather than pruned: a few hundred stray bytes at worst.
        try:
            stored = self._db.store(gitdb.IStream(b"commit", len(body), BytesIO(body)))
        except (OSError, gitdb.exc.ODBError):
            return None
        return stored.binsha.hex()

    def _read(self, sha: str, kind: bytes) -> bytes | None:
        try:
            stream = self._db.stream(bytes.fromhex(sha)) if len(sha) == 40 else None
            if stream is None or stream.type != kind:
                return None
            body = stream.read()
        except (OSError, ValueError, zlib.error, gitdb.exc.ODBError):
            return None
        return body if len(body) == stream.size else None  # a truncated file is not an object

    def commit(self, sha: str) -> tuple[str, list[str]] | None:
        """(tree, parents) of a commit."""
        body = self._read(sha, b"commit")
        if body is None:
            return None
        tree, parents = None, []
        for line in body.split(b"\n"):
            if line.startswith(b"tree "):
                tree = line[5:].decode("ascii", "replace")
            elif line.startswith(b"parent "):
                parents.append(line[7:].decode("ascii", "replace"))
            else:
                break  # the tree and parent headers come first; the rest is not needed
        if tree is None or any(len(sha) != 40 for sha in (tree, *parents)):
            return None
        return tree, parents

    def tree_of(self, commit_sha: str) -> str | None:
        commit = self.commit(commit_sha)
        return commit[0] if commit else None

    def _entries(self, sha: str) -> list[tuple[bytes, bytes, bytes]] | None:
        """(sort key, mode, binary sha) in git's tree order: a sub-tree sorts as ``name/``."""
        body = self._read(sha, b"tree")
        if body is None:
            return None
        entries = []
        position = 0
        while position < len(body):
            space = body.index(b" ", position)
            nul = body.index(b"\0", space)
            mode, name = body[position:space], body[space + 1:nul]
            entries.append((name + b"/" if mode == _TREE_MODE else name, mode, body[nul + 1:nul + 21]))
            position = nul + 21
        return entries

    def changed_paths(self, old_tree: str, new_tree: str) -> list[str] | None:
        """What ``git diff-tree -r --name-only --no-renames old new`` prints, in its order;
        an empty ``old_tree`` means the empty tree. None when an object is not loose here."""
        files: list[str] = []
        try:
            self._walk(old_tree or None, new_tree, b"", files)
        except (ValueError, LookupError, _NotLoose):  # malformed or not loose: ask git
            return None
        return files

    def _walk(self, old: str | None, new: str | None, prefix: bytes, files: list[str]) -> None:
        if old == new:
            return
        before = self._listing(old)
        after = self._listing(new)
        i = j = 0
        while i < len(before) or j < len(after):
            if j == len(after) or (i < len(before) and before[i][0] < after[j][0]):
                self._leaf_or_tree(before[i], None, prefix, files)
                i += 1
            elif i == len(before) or after[j][0] < before[i][0]:
                self._leaf_or_tree(None, after[j], prefix, files)
                j += 1
            else:
                if before[i][1:] != after[j][1:]:
                    self._leaf_or_tree(before[i], after[j], prefix, files)
                i += 1
                j += 1

    def _listing(self, sha: str | None) -> list[tuple[bytes, bytes, bytes]]:
        if sha is None:
            return []
        entries = self._entries(sha)
        if entries is None:
            raise _NotLoose(sha)
        return entries

    def _leaf_or_tree(self, old, new, prefix: bytes, files: list[str]) -> None:
        key = (old or new)[0]
        if key.endswith(b"/"):  # same key on both sides: both are trees
            self._walk(old[2].hex() if old else None, new[2].hex() if new else None, prefix + key, files)
        else:
            files.append((prefix + key).decode("utf-8", "surrogateescape"))


def _umask() -> int | None:
    """The process umask, read without changing it (``os.umask`` can only set it, which
    would race with other threads creating files); None where /proc does not say."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


class _NotLoose(Exception):
    """An object needed for an in-process diff is not a loose object of this repository."""
