"""peewee models of the run state. The store is the single source of truth.

Room: store. Tables and columns only; no scheduling decisions. Every table carries the
run id so several runs can share one database (PostgreSQL), though each run folder has
its own SQLite file by default.

Change tracking: rows the console shows carry ``version``, set from ``Run.version`` (a
counter bumped by every write transaction, see ``Store.write``), so a view asks only for
rows with ``version > last_seen``.

Indexes: only those a query uses. The runtime writes about ten rows per task, and each
index on a hot table costs every one of those writes (bench/: a third of the pages each
commit writes). Run-scoped lookups use the unique ``(run, ...)`` indexes, so the task,
agent, attempt and lock tables' ``run`` foreign keys get no index of their own; events keep
theirs (the console and the events.jsonl catch-up read a run's events by ``seq``).
"""

from __future__ import annotations

import peewee as pw

# 2: run.wait_kind/wait_reason, the forecast table; 3: agent.worker, attempt.worker (and
# attempt.session_id, added to 1 without a bump; attempt.batch, added to 3 without a bump:
# a store of 3 without it gets it at open). Older stores are upgraded at open.
SCHEMA_VERSION = 3

database_proxy = pw.DatabaseProxy()


class BaseModel(pw.Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False


class SchemaVersion(BaseModel):
    version = pw.IntegerField()
    created_at = pw.DoubleField()


class Run(BaseModel):
    id = pw.CharField(primary_key=True, max_length=64)
    mission_name = pw.CharField()
    mission_path = pw.TextField()  # the mission folder
    run_dir = pw.TextField()
    repo_path = pw.TextField()  # the repository the mission branch lives in
    source_repo = pw.TextField()  # what mission.toml named (may equal repo_path)
    base_branch = pw.CharField()
    base_commit = pw.CharField(default="")
    mission_branch = pw.CharField()
    backend = pw.CharField(default="replay")
    status = pw.CharField(default="created")  # created, planning, running, paused, stopped, finished
    pause_reason = pw.TextField(default="")
    config_json = pw.TextField()  # the MissionFile as JSON, as loaded
    mission_budget_usd = pw.DoubleField()
    retry_budget_usd = pw.DoubleField()
    pool_min = pw.IntegerField()
    pool_max = pw.IntegerField()
    pool_target = pw.IntegerField()
    coordinator_pid = pw.IntegerField(null=True)
    coordinator_host = pw.CharField(default="")
    heartbeat_at = pw.DoubleField(null=True)
    created_at = pw.DoubleField()
    updated_at = pw.DoubleField()
    finished_at = pw.DoubleField(null=True)
    version = pw.BigIntegerField(default=0)
    # Why ready tasks that hold no locked file are not running (no free agent, paused,
    # budget, breaker), as the scheduler last said; "" when nothing holds them back.
    wait_kind = pw.CharField(default="")  # agent, paused, budget, breaker ("" with no reason)
    wait_reason = pw.TextField(default="")


class Issue(BaseModel):
    run = pw.ForeignKeyField(Run, backref="issues", on_delete="CASCADE")
    issue_id = pw.CharField()
    title = pw.TextField()
    body = pw.TextField(default="")
    sis_path = pw.TextField(default="")

    class Meta:
        indexes = ((("run", "issue_id"), True),)


class Task(BaseModel):
    run = pw.ForeignKeyField(Run, backref="tasks", on_delete="CASCADE", index=False)
    task_id = pw.CharField()
    issue_id = pw.CharField()
    title = pw.TextField()
    description = pw.TextField(default="")
    priority = pw.CharField()  # CRITICAL/HIGH/MEDIUM/LOW
    domain = pw.CharField(default="general")
    estimated_duration_minutes = pw.DoubleField(default=10)
    estimated_input_tokens = pw.IntegerField(default=0)
    estimated_output_tokens = pw.IntegerField(default=0)
    model_hint = pw.CharField(null=True)
    spec_json = pw.TextField()  # the SisTask as JSON (file operations, validation)
    status = pw.CharField(default="pending")
    score = pw.DoubleField(default=0)
    agent_id = pw.CharField(null=True)
    attempts = pw.IntegerField(default=0)
    cost_usd = pw.DoubleField(default=0)
    failure_type = pw.CharField(null=True)
    attention_reason = pw.TextField(default="")  # why a human is needed, empty otherwise
    retry_at = pw.DoubleField(null=True)
    commit_sha = pw.CharField(null=True)
    created_at = pw.DoubleField()
    updated_at = pw.DoubleField()
    started_at = pw.DoubleField(null=True)
    finished_at = pw.DoubleField(null=True)
    version = pw.BigIntegerField(default=0, index=True)

    class Meta:
        indexes = ((("run", "task_id"), True),)


class Dependency(BaseModel):
    run = pw.ForeignKeyField(Run, on_delete="CASCADE")
    task_id = pw.CharField()
    depends_on = pw.CharField()

    class Meta:
        indexes = ((("run", "task_id", "depends_on"), True), (("run", "depends_on"), False))


class FileOperation(BaseModel):
    run = pw.ForeignKeyField(Run, on_delete="CASCADE")
    task_id = pw.CharField()
    seq = pw.IntegerField()
    op = pw.CharField()  # create/edit/delete/patch/intent
    path = pw.TextField()

    class Meta:
        indexes = ((("run", "task_id", "seq"), True), (("run", "path"), False))


class Agent(BaseModel):
    run = pw.ForeignKeyField(Run, on_delete="CASCADE", index=False)
    agent_id = pw.CharField()
    role = pw.CharField(default="implementer")  # planner / implementer
    backend = pw.CharField()
    model = pw.CharField(default="")
    state = pw.CharField(default="idle")  # idle, busy, draining, retired
    task_id = pw.CharField(null=True)
    tasks_done = pw.IntegerField(default=0)
    busy_seconds = pw.DoubleField(default=0)
    worktree = pw.TextField(default="")
    worker = pw.CharField(default="")  # "name@host" of its worker with --broker, "name@host lost" once gone
    created_at = pw.DoubleField()
    updated_at = pw.DoubleField()
    version = pw.BigIntegerField(default=0)

    class Meta:
        indexes = ((("run", "agent_id"), True),)


class Attempt(BaseModel):
    run = pw.ForeignKeyField(Run, on_delete="CASCADE", index=False)
    task_id = pw.CharField()
    number = pw.IntegerField()  # 1-based per task
    phase = pw.CharField(default="implementing")  # planning / implementing / retry
    agent_id = pw.CharField(default="")
    backend = pw.CharField(default="")
    model = pw.CharField(default="")
    started_at = pw.DoubleField()
    finished_at = pw.DoubleField(null=True)
    duration_seconds = pw.DoubleField(default=0)
    outcome = pw.CharField(default="running")  # running, succeeded, failed, interrupted, cancelled
    failure_type = pw.CharField(null=True)
    failure_message = pw.TextField(default="")
    input_tokens = pw.IntegerField(default=0)
    output_tokens = pw.IntegerField(default=0)
    cache_read_tokens = pw.IntegerField(default=0)
    cache_write_tokens = pw.IntegerField(default=0)
    cost_usd = pw.DoubleField(default=0)
    feedback = pw.TextField(default="")  # what the attempt was told about the previous failure
    summary = pw.TextField(default="")
    log_path = pw.TextField(default="")
    version = pw.BigIntegerField(default=0, index=True)
    session_id = pw.CharField(default="")  # an agent CLI's own session/thread id (cli backend)
    worker = pw.CharField(default="")  # the worker process that ran it ("" in-process)
    # [policies.batch]: "LEADER#N" (the leader task and its attempt number) for every task of a
    # batched attempt (one implementer session), "" for an attempt of its own.
    batch = pw.CharField(default="")

    class Meta:
        indexes = ((("run", "task_id", "number"), True),)


class FileLock(BaseModel):
    run = pw.ForeignKeyField(Run, on_delete="CASCADE", index=False)
    path = pw.TextField()
    task_id = pw.CharField()
    acquired_at = pw.DoubleField()
    expires_at = pw.DoubleField()

    class Meta:
        indexes = ((("run", "path"), True),)


class IntegrationCommit(BaseModel):
    run = pw.ForeignKeyField(Run, on_delete="CASCADE")
    task_id = pw.CharField()
    sha = pw.CharField()
    files_json = pw.TextField(default="[]")
    committed_at = pw.DoubleField()
    reverted_by = pw.CharField(null=True)  # sha of the revert commit

    class Meta:
        indexes = ((("run", "task_id"), True),)


class Event(BaseModel):
    """Append-only log of everything that happened, in order."""

    seq = pw.AutoField()
    run = pw.ForeignKeyField(Run, on_delete="CASCADE")
    ts = pw.DoubleField()
    kind = pw.CharField()  # e.g. task.status, attempt.finished, budget.alert, pause
    level = pw.CharField(default="info")  # info, warning, error
    task_id = pw.CharField(null=True)
    attempt = pw.IntegerField(null=True)
    agent_id = pw.CharField(null=True)
    message = pw.TextField(default="")
    data_json = pw.TextField(default="{}")


class Control(BaseModel):
    """Operator commands; the coordinator polls pending rows and marks them applied/rejected."""

    id = pw.AutoField()
    run = pw.ForeignKeyField(Run, on_delete="CASCADE")
    ts = pw.DoubleField()
    command = pw.CharField()  # pause, resume, retry, cancel_dependents, rollback, scale, stop
    args_json = pw.TextField(default="{}")
    source = pw.CharField(default="")  # tui, cli, attach
    status = pw.CharField(default="pending", index=True)  # pending, applied, rejected
    result = pw.TextField(default="")
    applied_at = pw.DoubleField(null=True)


class ResourceSample(BaseModel):
    run = pw.ForeignKeyField(Run, on_delete="CASCADE")
    ts = pw.DoubleField(index=True)
    cpu_percent = pw.DoubleField()
    memory_percent = pw.DoubleField()
    disk_percent = pw.DoubleField()
    disk_free_bytes = pw.BigIntegerField(default=0)
    repo_disk_percent = pw.DoubleField(default=0)
    coordinator_rss_bytes = pw.BigIntegerField(default=0)
    open_files = pw.IntegerField(default=0)
    tasks_json = pw.TextField(default="{}")  # task id -> {cpu, rss} of its validation process tree


class Forecast(BaseModel):
    """The run's time forecast (the ``estimate`` simulator from the run's state), one row
    per refresh; ``kind`` is ``start`` for the first one of a run, else ``update``."""

    run = pw.ForeignKeyField(Run, on_delete="CASCADE")
    ts = pw.DoubleField()
    kind = pw.CharField(default="update")
    remaining_seconds = pw.DoubleField()
    low_seconds = pw.DoubleField()
    high_seconds = pw.DoubleField()
    tasks_left = pw.IntegerField()
    speed = pw.DoubleField(default=1.0)  # observed seconds per estimated second
    spread = pw.DoubleField(default=0.0)  # lognormal sigma of actual / estimate used for the range
    samples = pw.IntegerField(default=0)


ALL_MODELS = [
    SchemaVersion,
    Run,
    Issue,
    Task,
    Dependency,
    FileOperation,
    Agent,
    Attempt,
    FileLock,
    IntegrationCommit,
    Event,
    Control,
    ResourceSample,
    Forecast,
]
