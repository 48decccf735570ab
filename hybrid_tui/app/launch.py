"""Starting and reopening runs: mission -> run folder -> repository -> store -> coordinator.

Room: app. ``start_run`` validates first and creates nothing when the mission is
invalid; the user's checkout is never touched (work happens on the mission branch and in
worktrees under the run folder).
"""

from __future__ import annotations

import array
import fcntl
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hybrid_tui.app.runs_commands import STORE_ENV
from hybrid_tui.costs.pricing import mission_pricing_problems
from hybrid_tui.runtime.coordinator import BackendUnavailable, Coordinator
from hybrid_tui.runtime.runlock import shared_store_broken
from hybrid_tui.runtime.secrecy import hide_secrets_from_children
from hybrid_tui.spec.loader import Issue, Mission, MissionInvalid, load_mission
from hybrid_tui.spec.models import MissionFile, Sis, SisIssue, SisTask
from hybrid_tui.store import queries
from hybrid_tui.store.db import Store, StoreError, open_store, redact_url
from hybrid_tui.store.runs import (
    create_run,
    default_runs_dir,
    init_run_dir,
    new_run_id,
    record_store_url,
    run_dir_for,
    run_store_location,
    state_db_path,
)
from hybrid_tui.vocabulary import ANTHROPIC_CREDENTIAL_NAMES, declare_secret_env
from hybrid_tui.workspace.git import MissionError, MissionRepo, prepare_repository


class LaunchError(Exception):
    """Bad input for a run (invalid mission, unknown run): one line per problem."""


def _current_branch(repo: Path) -> str:
    out = subprocess.run(
        ["git", "symbolic-ref", "--short", "-q", "HEAD"], cwd=repo, capture_output=True, text=True
    )
    branch = out.stdout.strip()
    if not branch:
        raise LaunchError(f"{repo}: HEAD is detached; set [mission] base_branch in mission.toml")
    return branch


def load_valid_mission(mission_path: str | Path, backend: str | None = None):
    try:
        mission = load_mission(Path(mission_path))
        if pricing_problems := mission_pricing_problems(mission, backend=backend):
            raise MissionInvalid(pricing_problems)
        _keep_secrets(mission.config)
        return mission
    except MissionInvalid as exc:
        raise LaunchError("\n".join(str(p) for p in exc.problems) or str(exc)) from None
    except FileNotFoundError as exc:
        raise LaunchError(f"{mission_path}: {exc.strerror or exc}") from None


def _keep_secrets(config: MissionFile) -> None:
    """The mission's own secret variables join the built-in ones before anything runs."""
    if config.policies.secret_env:
        declare_secret_env(config.policies.secret_env)
        hide_secrets_from_children()


def start_run(
    mission_path: str | Path,
    runs_dir: str | Path | None = None,
    backend: str | None = None,
    *,
    agents: int | None = None,
    pace: float = 0.0,
    git: bool = True,
    run_id: str | None = None,
    preflight: bool = False,
    store_url: str | None = None,
    **coordinator_options: Any,
) -> tuple[Store, str, Coordinator]:
    """Create a run of the mission and its coordinator (not yet running). Refused before
    anything is created when the backend needs a credential that is not set, or (with
    ``preflight``) when the project's environment cannot run the mission's commands.
    ``store_url``: the store to create it in (default: ``$HYBRID_TUI_STORE``, else
    ``state.db`` in the new run folder)."""
    store_url = store_url or os.environ.get(STORE_ENV) or None
    mission = load_valid_mission(mission_path, backend)
    backend = backend or mission.config.agents.backend
    if not git and backend != "sim":  # its agents would fail every attempt, and retry it
        raise LaunchError(f"--no-git: the {backend} backend edits files in a git worktree; "
                          "--no-git is for load tests with --backend sim")
    _refuse_missing_credential(backend)
    if preflight and git:
        from hybrid_tui.workspace.preflight import preflight as check_environment

        if problems := check_environment(mission):
            raise LaunchError("\n".join(str(p) for p in problems)
                              + f"\npreflight: {len(problems)} environment problem(s); nothing was started "
                                "(hybrid-tui validate MISSION --preflight checks again)")
    if agents is not None:
        if agents < 1:
            raise LaunchError(f"--agents must be at least 1 (got {agents})")
        planned = {sis.issue.id for _, sis in mission.sis}
        if mission.tasks and all(issue.id in planned for issue in mission.issues):
            # Every task is known: more agents than tasks would only be idle worktrees.
            agents = min(agents, len(mission.tasks))
        # --agents N pins the L3 pool at N (the run row keeps it for a resume).
        mission.config.agents.min_implementers = agents
        mission.config.agents.max_implementers = agents
    run_id = run_id or new_run_id()
    runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    run_dir = run_dir_for(runs_dir, run_id).absolute()
    made = _first_missing(run_dir)  # the run folder, or the runs folder above it when new
    try:
        init_run_dir(run_dir)
    except StoreError as exc:
        raise LaunchError(str(exc)) from None
    except OSError as exc:  # --runs-dir is a file, read-only, under /proc...
        raise LaunchError(f"--runs-dir {runs_dir}: cannot create the run folder: {exc.strerror or exc}") from None
    # A start refused past this point takes back what it made: the run folder, the branch.
    new_branch: MissionRepo | None = None
    try:
        base_branch = mission.config.mission.base_branch
        mission_branch = mission.config.mission.mission_branch or f"hybrid/{_slug(mission.name)}-{run_id}"
        if not git:
            mission_branch = ""  # marks a --no-git run for resume
        repo_path: Path = mission.repo_path
        base_commit = ""
        if git:
            try:
                repo_path = Path(prepare_repository(mission.repo_path, run_dir))
                base_branch = base_branch or _current_branch(repo_path)
                mission_repo = MissionRepo(repo_path, mission_branch, run_dir, run_id)
                base_commit = mission_repo.prepare(base_branch, new_run=True)
                new_branch = mission_repo
            except MissionError as exc:
                raise LaunchError(str(exc)) from None
        try:
            store = open_store(store_url or state_db_path(run_dir))
        except StoreError as exc:
            raise LaunchError(str(exc)) from None
        if store_url:
            record_store_url(run_dir, store_url)
        try:
            create_run(
                store, mission, run_id=run_id, run_dir=run_dir, repo_path=repo_path, mission_branch=mission_branch,
                base_branch=base_branch or "", base_commit=base_commit, backend=backend,
            )
            coordinator = _coordinator(store, run_id, mission, backend=backend, pace=pace, git=git, agents=agents,
                                       **coordinator_options)
        except BaseException:
            store.close()
            raise
    except BaseException:
        if new_branch is not None:
            new_branch.delete_new_branch()
        shutil.rmtree(made, ignore_errors=True)
        raise
    return store, run_id, coordinator


def _check_writable(run_dir: Path) -> None:
    """Refuse, before anything is opened, a run folder whose files the coordinator must write
    but cannot (read-only mount, no permission, immutable): a one-line error, not a traceback
    half way in. Only looks: nothing is written to find out."""
    for path in (run_dir, run_dir / "logs", run_dir / "record", run_dir / "state.db", run_dir / "events.jsonl",
                 run_dir / "coordinator.lock"):
        if path.exists() and not _writable(path):
            raise LaunchError(f"{path}: the run folder cannot be written (read-only or immutable)")


_FS_IOC_GETFLAGS = 0x80086601  # linux/fs.h, 64-bit
_FS_IMMUTABLE_FL = 0x10


def _writable(path: Path) -> bool:
    if not os.access(path, os.W_OK) or os.statvfs(path).f_flag & os.ST_RDONLY:
        return False
    try:  # chattr +i refuses writes even to root, whom os.access lets by
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return True
    try:
        flags = array.array("l", [0])
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags, True)
        return not flags[0] & _FS_IMMUTABLE_FL
    except OSError:  # a file system without these flags
        return True
    finally:
        os.close(fd)


def _first_missing(path: Path) -> Path:
    while not path.parent.exists() and path.parent != path:
        path = path.parent
    return path


def _coordinator(store: Store, run_id: str, mission: Any, *, backend: str, **options: Any) -> Coordinator:
    try:
        return Coordinator(store, run_id, mission, backend=backend, **options)
    except BackendUnavailable as exc:  # e.g. the cli backend without a command template
        raise LaunchError(f"--backend {backend}: {exc}") from None


def _refuse_missing_credential(backend: str) -> None:
    """Refuse a backend that needs a credential the environment does not hold, before
    anything is created or spent (``plan`` refuses the same way)."""
    if backend == "anthropic" and not any(os.environ.get(name) for name in ANTHROPIC_CREDENTIAL_NAMES):
        raise LaunchError("the anthropic backend needs ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN for a gateway); "
                          "nothing was started")


def _slug(name: str) -> str:
    out = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in name.strip())
    return out.strip("-.") or "mission"


def find_run_dir(run: str | Path, runs_dir: str | Path | None = None) -> Path:
    """A run given as its folder or its id (under ``runs_dir``)."""
    candidate = Path(run)
    if run_store_location(candidate) is not None:
        return candidate.absolute()
    base = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    by_id = base / str(run)
    if run_store_location(by_id) is not None:
        return by_id.absolute()
    raise LaunchError(f"{run}: no run folder with a state.db or store.url (looked in {candidate} and {by_id})")


def open_run(
    run: str | Path,
    runs_dir: str | Path | None = None,
    *,
    backend: str | None = None,
    pace: float = 0.0,
    agents: int | None = None,
    git: bool | None = None,
    store_url: str | None = None,
    **coordinator_options: Any,
) -> tuple[Store, str, Coordinator]:
    """Reopen an existing run (``resume``); recovery runs when the coordinator starts."""
    if not store_url:  # with a store URL the run folder need not be on this machine
        _check_writable(find_run_dir(run, runs_dir))
    store, run_id = open_run_store(run, runs_dir, store_url)
    row = queries.run_record(run_id)
    try:
        mission_path = Path(row.mission_path)
        if (mission_path / "mission.toml").is_file() or (mission_path.is_file() and mission_path.suffix == ".toml"):
            mission = load_valid_mission(row.mission_path)
        else:  # moved or deleted since: the store holds the run's issues, specs and configuration
            mission = stored_mission(row)
    except BaseException:
        store.close()
        raise
    # The run keeps the configuration it was created with (mission.toml may have changed since).
    mission.config = MissionFile.model_validate_json(row.config_json)
    _keep_secrets(mission.config)
    if git is None:
        git = bool(row.mission_branch)
    try:
        _refuse_missing_credential(backend or row.backend)
        if (backend or row.backend) != row.backend and (problems := mission_pricing_problems(mission, backend=backend)):
            # A run made for another backend, resumed with this one: what its API would refuse.
            raise LaunchError("\n".join(f"{p} (--backend {backend}: nothing was resumed)" for p in problems))
        coordinator = _coordinator(store, run_id, mission, backend=backend or row.backend, pace=pace, git=git,
                                   agents=agents, **coordinator_options)
    except BaseException:
        store.close()
        raise
    return store, run_id, coordinator


def stored_sis(run_id: str) -> list[Sis]:
    """The SIS of each issue of the run that has tasks, as the store holds them (issue order)."""
    tasks_of: dict[str, list[SisTask]] = {}
    for task in queries.task_records(run_id):
        tasks_of.setdefault(task.issue_id, []).append(SisTask.model_validate_json(task.spec_json))
    return [Sis(issue=SisIssue(id=issue.issue_id, title=issue.title, body=issue.body), tasks=tasks_of[issue.issue_id])
            for issue in queries.issue_records(run_id) if tasks_of.get(issue.issue_id)]


def stored_mission(row: Any) -> Mission:
    """The run's mission rebuilt from its store (``row``: its run record), for a ``resume``
    whose mission folder is gone. Recorded attempts of a replay mission were in that folder:
    the tasks left replay their specs' file operations."""
    root = Path(row.mission_path)
    issues = [Issue(id=i.issue_id, title=i.title, body=i.body, path=root / "issues" / f"{i.issue_id}.md")
              for i in queries.issue_records(row.id)]
    sis = [(root / "sis" / f"{doc.issue.id}.json", doc) for doc in stored_sis(row.id)]
    return Mission(root=root, mission_file=root / "mission.toml", config=MissionFile.model_validate_json(row.config_json),
                   repo_path=Path(row.repo_path), issues=issues, sis=sis,
                   tasks=[t for _, doc in sis for t in doc.tasks])


def open_run_store(run: str | Path, runs_dir: str | Path | None = None,
                   store_url: str | None = None) -> tuple[Store, str]:
    """(open store, run id) of a run given as its folder or its id. With ``store_url`` the
    run is looked up in that store by id (the run folder, if any, need not be on this
    machine: ``attach`` and the control commands from another one)."""
    if store_url:
        run_id = Path(str(run)).name
        store = _open_existing(store_url)
        if queries.find_run(run_id) is None:
            store.close()
            raise LaunchError(f"{run}: no run {run_id!r} in the store {redact_url(store_url)}")
        return store, run_id
    run_dir = find_run_dir(run, runs_dir)
    location = run_store_location(run_dir)
    if location == str(state_db_path(run_dir)) and shared_store_broken(run_dir):
        # A live coordinator's WAL index was deleted: a second process would build its own and
        # the two would no longer see each other's writes (a control "queued" and then lost).
        raise LaunchError(f"{run_dir}: state.db-shm was deleted or replaced while the coordinator runs; "
                          "the store cannot be shared safely: stop the coordinator (or wait for it), then resume")
    store = _open_existing(location)
    if location != str(state_db_path(run_dir)):  # a store.url: the store may hold many runs
        if queries.find_run(run_dir.name) is None:
            store.close()
            raise LaunchError(f"{run_dir}: its store {location} has no run {run_dir.name!r}")
        return store, run_dir.name
    run_id = queries.first_run_id()
    if run_id is None:
        raise LaunchError(f"{run_dir}: the store holds no run")
    return store, run_id


def _open_existing(location: str | Path) -> Store:
    try:
        return open_store(location, create=False)
    except StoreError as exc:
        raise LaunchError(str(exc)) from None
