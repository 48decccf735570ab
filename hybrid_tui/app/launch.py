"""Starting and reopening runs: mission -> run folder -> repository -> store -> coordinator.

Room: app. ``start_run`` validates first and creates nothing when the mission is
invalid; the user's checkout is never touched (work happens on the mission branch and in
worktrees under the run folder).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from hybrid_tui.app.runs_commands import STORE_ENV
from hybrid_tui.costs.pricing import mission_pricing_problems
from hybrid_tui.runtime.coordinator import Coordinator
from hybrid_tui.spec.loader import MissionInvalid, load_mission
from hybrid_tui.spec.models import MissionFile
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
from hybrid_tui.vocabulary import SECRET_ENV_NAMES
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
        return mission
    except MissionInvalid as exc:
        raise LaunchError("\n".join(str(p) for p in exc.problems) or str(exc)) from None
    except FileNotFoundError as exc:
        raise LaunchError(f"{mission_path}: {exc.strerror or exc}") from None


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
        # --agents N pins the L3 pool at N (the run row keeps it for a resume).
        mission.config.agents.min_implementers = agents
        mission.config.agents.max_implementers = agents
    run_id = run_id or new_run_id()
    runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    run_dir = run_dir_for(runs_dir, run_id).absolute()
    try:
        init_run_dir(run_dir)
    except StoreError as exc:
        raise LaunchError(str(exc)) from None
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
            base_commit = MissionRepo(repo_path, mission_branch, run_dir, run_id).prepare(base_branch)
        except MissionError as exc:
            raise LaunchError(str(exc)) from None
    try:
        store = open_store(store_url or state_db_path(run_dir))
    except StoreError as exc:
        raise LaunchError(str(exc)) from None
    if store_url:
        record_store_url(run_dir, store_url)
    create_run(
        store, mission, run_id=run_id, run_dir=run_dir, repo_path=repo_path, mission_branch=mission_branch,
        base_branch=base_branch or "", base_commit=base_commit, backend=backend,
    )
    coordinator = Coordinator(store, run_id, mission, backend=backend, pace=pace, git=git, agents=agents, **coordinator_options)
    return store, run_id, coordinator


def _refuse_missing_credential(backend: str) -> None:
    """Refuse a backend that needs a credential the environment does not hold, before
    anything is created or spent (``plan`` refuses the same way)."""
    if backend == "anthropic" and not any(os.environ.get(name) for name in SECRET_ENV_NAMES):
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
    store, run_id = open_run_store(run, runs_dir, store_url)
    row = queries.run_record(run_id)
    mission = load_valid_mission(row.mission_path)
    # The run keeps the configuration it was created with (mission.toml may have changed since).
    mission.config = MissionFile.model_validate_json(row.config_json)
    if git is None:
        git = bool(row.mission_branch)
    try:
        _refuse_missing_credential(backend or row.backend)
    except LaunchError:
        store.close()
        raise
    coordinator = Coordinator(
        store, run_id, mission, backend=backend or row.backend, pace=pace, git=git, agents=agents, **coordinator_options
    )
    return store, run_id, coordinator


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
