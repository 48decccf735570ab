"""Plain records the store's queries return: named tuples, one per kind of row read.

Room: store. Callers outside ``store/`` (the console, the views, costs, the report, the
app) get these, never peewee rows or queries: their fields are the model's columns by the
model's attribute names (a foreign key to the run is ``run_id``), holding plain values.
Named tuples because a console tick may build 10,000 of them.
"""

from __future__ import annotations

import json
from typing import NamedTuple


class RunRecord(NamedTuple):
    id: str
    mission_name: str
    mission_path: str
    run_dir: str
    repo_path: str
    source_repo: str
    base_branch: str
    base_commit: str
    mission_branch: str
    backend: str
    status: str
    pause_reason: str
    config_json: str
    mission_budget_usd: float
    retry_budget_usd: float
    pool_min: int
    pool_max: int
    pool_target: int
    coordinator_pid: int | None
    coordinator_host: str
    heartbeat_at: float | None
    created_at: float
    updated_at: float
    finished_at: float | None
    version: int
    wait_kind: str
    wait_reason: str


class IssueRecord(NamedTuple):
    run_id: str
    issue_id: str
    title: str
    body: str
    sis_path: str


class TaskRecord(NamedTuple):
    """A task row whole (the detail screen, the report, the projection, the export)."""

    run_id: str
    task_id: str
    issue_id: str
    title: str
    description: str
    priority: str
    domain: str
    estimated_duration_minutes: float
    estimated_input_tokens: int
    estimated_output_tokens: int
    model_hint: str | None
    spec_json: str
    status: str
    score: float
    agent_id: str | None
    attempts: int
    cost_usd: float
    failure_type: str | None
    attention_reason: str
    retry_at: float | None
    commit_sha: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    version: int


class TaskRow(NamedTuple):
    """One task as the console shows it (no spec, empty strings for missing values)."""

    task_id: str
    title: str
    status: str
    score: float
    agent_id: str
    attempts: int
    cost_usd: float
    created_at: float
    started_at: float | None
    finished_at: float | None
    failure_type: str
    attention_reason: str
    commit_sha: str

    def age(self, now: float) -> float:
        """Time in the current phase: since start while running, else since creation."""
        if self.finished_at is not None:
            return (self.finished_at - (self.started_at or self.created_at))
        return now - (self.started_at or self.created_at)


class AttemptRecord(NamedTuple):
    run_id: str
    task_id: str
    number: int
    phase: str
    agent_id: str
    backend: str
    model: str
    started_at: float
    finished_at: float | None
    duration_seconds: float
    outcome: str
    failure_type: str | None
    failure_message: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    feedback: str
    summary: str
    log_path: str
    version: int


class AgentRecord(NamedTuple):
    agent_id: str
    role: str
    backend: str
    model: str
    state: str
    task_id: str | None
    tasks_done: int
    busy_seconds: float


class AgentRow(NamedTuple):
    """One agent as the console shows it (``task_id`` empty when idle)."""

    agent_id: str
    role: str
    backend: str
    model: str
    state: str
    task_id: str
    tasks_done: int
    worker: str = ""  # "name@host" of the worker running its attempts ("" in-process), "... lost" once gone


class LockRow(NamedTuple):
    path: str
    task_id: str
    acquired_at: float
    expires_at: float


class IntegrationCommitRecord(NamedTuple):
    id: int
    task_id: str
    sha: str
    files_json: str
    committed_at: float
    reverted_by: str | None

    @property
    def files(self) -> list[str]:
        """The repository paths the commit changed."""
        return json.loads(self.files_json or "[]")


class EventRecord(NamedTuple):
    seq: int
    run_id: str
    ts: float
    kind: str
    level: str
    task_id: str | None
    attempt: int | None
    agent_id: str | None
    message: str
    data_json: str


class ControlRecord(NamedTuple):
    id: int
    command: str
    args_json: str
    source: str
    status: str
    result: str


class ResourceSampleRecord(NamedTuple):
    ts: float
    cpu_percent: float
    memory_percent: float
    disk_percent: float
    disk_free_bytes: int
    repo_disk_percent: float
    coordinator_rss_bytes: int
    open_files: int
    tasks_json: str


class ForecastRecord(NamedTuple):
    """One refresh of the run's time forecast (``finish_at`` = ``ts`` + ``remaining_seconds``)."""

    ts: float
    kind: str
    remaining_seconds: float
    low_seconds: float
    high_seconds: float
    tasks_left: int
    speed: float
    spread: float
    samples: int

    @property
    def finish_at(self) -> float:
        return self.ts + self.remaining_seconds


class WaitRecord(NamedTuple):
    """Why a queued task is not running: ``kind`` (``backoff``, ``lock``, ``paused``,
    ``agent``, ...), a one-line ``message``, the ``holder`` of its file lock, the end of
    its backoff (``until``)."""

    task_id: str
    kind: str
    message: str
    holder: str | None = None
    until: float | None = None
