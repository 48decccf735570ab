"""What the console shows of a run, read incrementally through ``store.queries`` (room: tui).

Read-only: the queries are the store's (``hybrid_tui.store.queries`` and ``cost_queries``,
plain records back); here is what the console keeps between ticks (the last versions seen,
where each task stands) and the formatting helpers the panes share, plus reading logs /
``git show`` for the detail screen. The only write a view may cause is a control command,
and that goes through ``Store.enqueue_control`` in ``app.py``, never from here.

Change tracking: :class:`StoreView.poll` returns only rows whose ``version`` is above the
last one it saw (and events above the last ``seq``), so one tick with 10,000 tasks costs
a couple of indexed queries when little changed.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hybrid_tui.costs.accounting import cost_totals
from hybrid_tui.store import cost_queries, queries
from hybrid_tui.store.db import Store
from hybrid_tui.store.records import (
    ForecastRecord,
    WaitRecord,
    AgentRow,
    AttemptRecord,
    EventRecord,
    IntegrationCommitRecord,
    LockRow,
    ResourceSampleRecord,
    TaskRecord,
    TaskRow,
)
from hybrid_tui.vocabulary import (  # noqa: F401  (the panes import inert from here)
    FINISHED_STATUSES,
    LIVE_RUN_STATUSES,
    TERMINAL_STATUSES,
    inert,
)

BUDGET_LADDER = (0.5, 0.75, 0.9, 1.0)
NO_VALUE = "—"  # a figure not known (yet): shown instead of a guess
LOG_TAIL_BYTES = 4096
DIFF_MAX_CHARS = 60_000


# ------------------------------------------------------------------ formatting


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    if seconds < 86400:
        return f"{seconds // 3600:.0f}h{(seconds % 3600) // 60:02.0f}m"
    return f"{seconds // 86400:.0f}d{(seconds % 86400) // 3600:02.0f}h"


def coarse_age(seconds: float | None) -> str:
    """An age that only changes every minute past the first (cheap to refresh)."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m"
    if seconds < 86400:
        return f"{seconds // 3600:.0f}h{(seconds % 3600) // 60:02.0f}m"
    return f"{seconds // 86400:.0f}d"


def human_bytes(n: float | None) -> str:
    if not n:
        return "0 B"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def money(v: float | None) -> str:
    return f"${(v or 0):.2f}" if (v or 0) >= 0.01 or not v else f"${v:.4f}"


# ------------------------------------------------------------------ rows the views use


def cost_stand(status: str, failure_type: str) -> tuple[str, bool]:
    """What of a task's state the cost summary depends on (projection class, counts)."""
    if status in ("done", "rolled_back"):
        return ("finished", False)
    if status in TERMINAL_STATUSES:
        return (status, status == "failed" and failure_type == "budget_exhausted")
    return ("open", False)


@dataclass
class RunInfo:
    run_id: str
    mission_name: str
    status: str
    pause_reason: str
    backend: str
    mission_budget_usd: float
    retry_budget_usd: float
    pool_min: int
    pool_max: int
    pool_target: int
    repo_path: str
    run_dir: str
    mission_branch: str
    version: int
    heartbeat_at: float | None
    coordinator_pid: int | None
    forecast: ForecastRecord | None = None  # the latest time forecast (the header's ETA)
    created_at: float = 0.0
    finished_at: float | None = None
    coordinator_host: str = ""

    @property
    def active(self) -> bool:
        return self.status in LIVE_RUN_STATUSES


@dataclass
class CostSummary:
    spent_usd: float = 0.0
    retry_spent_usd: float = 0.0
    mission_budget_usd: float = 0.0
    retry_budget_usd: float = 0.0
    by_model: dict[str, float] = field(default_factory=dict)
    burn: list[float] = field(default_factory=list)  # spend per time bucket, oldest first
    bucket_seconds: float = 60.0
    projected_usd: float = 0.0
    tasks_total: int = 0
    tasks_done: int = 0
    budget_stopped: int = 0  # tasks failed because a budget or an attempt's cap ran out

    @property
    def fraction(self) -> float:
        return self.spent_usd / self.mission_budget_usd if self.mission_budget_usd else 0.0

    @property
    def retry_fraction(self) -> float:
        return self.retry_spent_usd / self.retry_budget_usd if self.retry_budget_usd else 0.0

    @staticmethod
    def alert_level(fraction: float) -> float | None:
        """The highest rung of the 50/75/90/100 % ladder reached, or None."""
        reached = [rung for rung in BUDGET_LADDER if fraction >= rung]
        return reached[-1] if reached else None


@dataclass
class ControlOutcome:
    control_id: int
    command: str
    args: dict[str, Any]
    status: str
    result: str


@dataclass
class Delta:
    """What changed since the previous poll."""

    run: RunInfo
    run_changed: bool
    tasks: list[TaskRow]
    agents: list[AgentRow]
    events: list[EventRecord]
    locks: list[LockRow] | None  # None: unchanged
    samples: list[ResourceSampleRecord] | None
    costs: CostSummary | None
    utilisation: dict[str, list[float]] | None  # agent id -> busy fraction per bucket
    pool_utilisation: list[float] | None
    attention_count: int | None
    status_counts: dict[str, int] | None


# ------------------------------------------------------------------ the polling view


class StoreView:
    """Incremental reads of one run for the console."""

    UTIL_BUCKETS = 20
    UTIL_BUCKET_SECONDS = 15.0
    BURN_BUCKETS = 30
    COST_REFRESH_SECONDS = 5.0  # the burn chart's axis follows the clock at least this often

    def __init__(self, store: Store, run_id: str, clock: Callable[[], float] = time.time):
        self.store = store
        self.run_id = run_id
        self.now = clock
        self.last_run_version = -1
        self.last_task_version = -1
        self.last_agent_version = -1
        self.last_attempt_version = -1
        self.last_event_seq = 0
        self.initial_events = 200
        self._stands: dict[str, tuple[str, bool]] = {}  # task id -> cost_stand when last seen
        # Status counts and the attention count, kept from the changed rows every poll reads
        # (each task's latest row is seen exactly as the task table sees it) instead of two
        # aggregate queries over every task per tick.
        self._seen: dict[str, tuple[str, bool]] = {}  # task id -> (status, needs attention)
        self._status_totals: dict[str, int] = defaultdict(int)
        self._attention_total = 0
        self._costs_at = float("-inf")
        # The last cost_summary: what a tick reuses while no attempt and no task's cost stand
        # changed (the burn chart excepted, which follows the clock).
        self._spend: CostSummary | None = None
        # Tasks each agent finished, kept from the same changed rows (Agent.tasks_done is
        # never written by the runtime, so the agents' "done" column read 0 forever).
        self.done_by_agent: dict[str, int] = defaultdict(int)
        self._done_agent: dict[str, str] = {}  # task id -> the agent credited with it

    def _note_stands(self, tasks: list[TaskRow]) -> bool:
        """Record each changed task's cost stand, status and attention; True when any cost
        stand differs from before."""
        changed = False
        stands, seen, totals = self._stands, self._seen, self._status_totals
        attention = self._attention_total
        attention_statuses = queries.ATTENTION_STATUSES
        done_by_agent, done_agent = self.done_by_agent, self._done_agent
        for row in tasks:
            task_id, status = row.task_id, row.status
            credited = row.agent_id if status in FINISHED_STATUSES and row.agent_id else None
            before_agent = done_agent.get(task_id)
            if credited != before_agent:
                if before_agent is not None:
                    done_by_agent[before_agent] -= 1
                    del done_agent[task_id]
                if credited is not None:
                    done_by_agent[credited] += 1
                    done_agent[task_id] = credited
            stand = cost_stand(status, row.failure_type)
            if stands.get(task_id) != stand:
                stands[task_id] = stand
                changed = True
            state = (status, bool(row.attention_reason) or status in attention_statuses)
            before = seen.get(task_id)
            if before != state:
                if before is not None:
                    totals[before[0]] -= 1
                    attention -= before[1]
                totals[status] += 1
                attention += state[1]
                seen[task_id] = state
        self._attention_total = attention
        return changed

    def _counted_statuses(self) -> dict[str, int]:
        """What :meth:`status_counts` returns (statuses in order), from the rows seen."""
        return {status: n for status, n in sorted(self._status_totals.items()) if n}

    # -- the tick ---------------------------------------------------------------------
    def poll(self, now: float) -> Delta:
        with self.store.read():
            run = self.run_info()
            run_changed = run.version != self.last_run_version
            tasks: list[TaskRow] = []
            agents: list[AgentRow] = []
            costs = locks = samples = util = pool_util = None
            attention = status_counts = None
            if run_changed:
                tasks = queries.changed_task_rows(self.run_id, self.last_task_version)
                agents = queries.changed_agent_rows(self.run_id, self.last_agent_version)
                attempts_changed = queries.attempts_changed_since(self.run_id, self.last_attempt_version)
                # Costs depend on attempts and on where tasks stand (finished / settled / open),
                # not on every status step; the burn chart's time axis moves on its own clock.
                stands_changed = self._note_stands(tasks)
                if attempts_changed or self.last_attempt_version < 0 or stands_changed or self._spend is None:
                    costs = self.cost_summary(now, run)
                    self._costs_at = now
                elif now - self._costs_at >= self.COST_REFRESH_SECONDS:
                    # Only the clock moved: the spend, the projection and the counts are those
                    # of the last summary (their queries scan every task: most of a 10,000-task
                    # tick); the burn chart's buckets follow the clock.
                    costs = self._with_burn(replace(self._spend, by_model=dict(self._spend.by_model)), run, now)
                    self._costs_at = now
                elif (self._spend.mission_budget_usd, self._spend.retry_budget_usd) != (
                        run.mission_budget_usd, run.retry_budget_usd):
                    # A budget raised (``$`` or ``hybrid-tui budget``) shows at once, not with
                    # the next attempt: after a budget stop no attempt runs to bring it.
                    costs = self._spend = replace(self._spend, by_model=dict(self._spend.by_model),
                                                  mission_budget_usd=run.mission_budget_usd,
                                                  retry_budget_usd=run.retry_budget_usd)
                samples = self.samples()
                attention = self._attention_total
                status_counts = self._counted_statuses()
            # Time-based views move even when nothing was written.
            locks = self.locks()
            util, pool_util = self.utilisation(now)
            events = self.new_events()
        if run_changed:
            # Rows written after our Run read carry a higher version and come next time
            # (reads are idempotent diffs, so seeing a row twice is harmless).
            self.last_run_version = self.last_task_version = run.version
            self.last_agent_version = self.last_attempt_version = run.version
        return Delta(
            run=run,
            run_changed=run_changed,
            tasks=tasks,
            agents=agents,
            events=events,
            locks=locks,
            samples=samples,
            costs=costs,
            utilisation=util,
            pool_utilisation=pool_util,
            attention_count=attention,
            status_counts=status_counts,
        )

    # -- single queries ---------------------------------------------------------------
    def run_info(self) -> RunInfo:
        r = queries.run_record(self.run_id)
        return RunInfo(
            run_id=r.id,
            mission_name=r.mission_name,
            status=r.status,
            pause_reason=r.pause_reason or "",
            backend=r.backend,
            mission_budget_usd=r.mission_budget_usd,
            retry_budget_usd=r.retry_budget_usd,
            pool_min=r.pool_min,
            pool_max=r.pool_max,
            pool_target=r.pool_target,
            repo_path=r.repo_path,
            run_dir=r.run_dir,
            mission_branch=r.mission_branch,
            version=r.version,
            heartbeat_at=r.heartbeat_at,
            coordinator_pid=r.coordinator_pid,
            coordinator_host=r.coordinator_host,
            forecast=queries.latest_forecast(self.run_id),
            created_at=r.created_at,
            finished_at=r.finished_at,
        )

    def new_events(self) -> list[EventRecord]:
        if self.last_event_seq == 0:
            rows = queries.latest_events(self.run_id, self.initial_events)  # first look: only the tail
        else:
            rows = queries.events_after(self.run_id, self.last_event_seq, 2000)
        if rows:
            self.last_event_seq = rows[-1].seq
        return rows

    def locks(self) -> list[LockRow]:
        return queries.file_locks(self.run_id)

    def samples(self, limit: int = 60) -> list[ResourceSampleRecord]:
        return queries.resource_samples(self.run_id, limit)

    def attention_count(self) -> int:
        return queries.attention_count(self.run_id)

    def status_counts(self) -> dict[str, int]:
        return queries.task_status_counts(self.run_id)

    def attention_tasks(self) -> list[TaskRow]:
        return queries.attention_task_rows(self.run_id)

    def cost_summary(self, now: float, run: RunInfo | None = None) -> CostSummary:
        """Spend, retry spend, spend by model, burn per bucket and a projected total.

        Uses ``hybrid_tui.costs.accounting.cost_totals`` (the figures of its spend_summary
        and projection, summed in the database) when available; otherwise computed from
        Attempt rows directly: retry spend is the cost of every attempt after a task's
        first, and the projection extrapolates the mean cost of finished tasks to the tasks
        not finished yet. The burn chart is always ours. Everything is aggregate SQL: no
        row object per task or attempt, so it stays cheap at 10,000 tasks.
        """
        run = run or self.run_info()
        summary = self._with_burn(CostSummary(), run, now)
        counts = self.status_counts()
        summary.budget_stopped = cost_queries.budget_stopped_count(self.run_id)
        summary.tasks_total = sum(n for s, n in counts.items() if s != "cancelled")
        summary.tasks_done = counts.get("done", 0) + counts.get("rolled_back", 0)
        if self._from_accounting(summary):
            self._spend = summary
            return summary
        by_model: dict[str, float] = {}
        for model, cost, retry_cost in cost_queries.spend_by_model(self.run_id):
            summary.spent_usd += cost
            summary.retry_spent_usd += retry_cost
            by_model[model or "?"] = by_model.get(model or "?", 0.0) + cost
        summary.by_model = dict(sorted(by_model.items(), key=lambda kv: -kv[1]))
        finished = sum(n for s, n in counts.items() if s in TERMINAL_STATUSES)
        remaining = max(summary.tasks_total - finished, 0)
        if finished:
            summary.projected_usd = summary.spent_usd + summary.spent_usd / finished * remaining
        else:
            summary.projected_usd = summary.spent_usd
        self._spend = summary
        return summary

    def _with_burn(self, summary: CostSummary, run: RunInfo, now: float) -> CostSummary:
        """``summary`` with the run's budgets and the burn chart as of ``now``: spend per
        bucket over the run so far, at most BURN_BUCKETS buckets (attempt rows only)."""
        summary.mission_budget_usd, summary.retry_budget_usd = run.mission_budget_usd, run.retry_budget_usd
        summary.burn, summary.bucket_seconds = [], CostSummary.bucket_seconds
        # An attempt's dollars are booked when it finished (a running one's when it started).
        start = cost_queries.first_booked_at(self.run_id)
        if start is not None:
            span = max(now - start, 1.0)
            bucket = max(span / self.BURN_BUCKETS, 1.0)
            burn = [0.0] * self.BURN_BUCKETS
            for index, cost in cost_queries.spend_by_bucket(self.run_id, start, bucket):
                burn[max(min(index, self.BURN_BUCKETS - 1), 0)] += cost
            summary.burn, summary.bucket_seconds = burn, bucket
        return summary

    def _from_accounting(self, summary: CostSummary) -> bool:
        """Spend, retry spend, by-model and projection from the costs layer (its pricing and
        its SIS-estimate projection); False when it is unavailable, so the simple numbers stand."""
        try:
            totals = cost_totals(self.run_id)
        except Exception:  # an older or broken costs layer must not take the console down
            return False
        summary.spent_usd = totals.spent
        summary.retry_spent_usd = totals.retry_spent
        summary.by_model = dict(totals.by_model)
        summary.projected_usd = totals.projection.projected_total
        return True

    def utilisation(self, now: float) -> tuple[dict[str, list[float]], list[float]]:
        """Busy fraction of each agent per time bucket over the last few minutes."""
        n, width = self.UTIL_BUCKETS, self.UTIL_BUCKET_SECONDS
        window_start = now - n * width
        rows = queries.agent_busy_spans(self.run_id, window_start, now)
        per_agent: dict[str, list[float]] = defaultdict(lambda: [0.0] * n)
        for agent_id, started, finished in rows:
            end = now if finished is None else min(finished, now)
            begin = max(started, window_start)
            if end <= begin:
                continue
            first, last = int((begin - window_start) // width), int((end - window_start) // width)
            buckets = per_agent[agent_id]
            for i in range(max(first, 0), min(last, n - 1) + 1):
                lo, hi = window_start + i * width, window_start + (i + 1) * width
                buckets[i] += max(0.0, min(end, hi) - max(begin, lo)) / width
        result = {a: [min(v, 1.0) for v in b] for a, b in per_agent.items()}
        slots = max(queries.live_implementer_count(self.run_id), 1)
        pool = [min(sum(b[i] for b in result.values()) / slots, 1.0) for i in range(n)]
        return result, pool

    # -- for the screens --------------------------------------------------------------
    def task(self, task_id: str) -> TaskRecord | None:
        return queries.task_record(self.run_id, task_id)

    def dependencies(self, task_id: str) -> list[tuple[str, str]]:
        return self._with_status(queries.dependencies_of(self.run_id, task_id))

    def dependents(self, task_id: str, *, transitive: bool = False) -> list[tuple[str, str]]:
        """Tasks depending on ``task_id`` (directly, or all downstream), with their status."""
        return self.dependents_of([task_id], transitive=transitive)

    def dependents_of(self, task_ids: Iterable[str], *, transitive: bool = False) -> list[tuple[str, str]]:
        """Tasks depending on any of ``task_ids`` (directly, or all downstream), not those
        tasks themselves, each once, with its status."""
        roots = list(task_ids)
        found: list[str] = []
        seen = set(roots)
        frontier = deque(roots)
        while frontier:
            current = frontier.popleft()
            for dependent in queries.direct_dependents(self.run_id, current):
                if dependent not in seen:
                    seen.add(dependent)
                    found.append(dependent)
                    if transitive:
                        frontier.append(dependent)
        return self._with_status(found)

    def _with_status(self, ids: Iterable[str]) -> list[tuple[str, str]]:
        ids = list(ids)
        status = queries.task_statuses(self.run_id, ids)
        return [(i, status.get(i, "?")) for i in ids]

    def wait_reason(self, task_id: str) -> WaitRecord | None:
        """Why the task, ready or in backoff, is not running (None when it is not waiting)."""
        return queries.wait_reasons(self.run_id, [task_id]).get(task_id)

    def attempts(self, task_id: str) -> list[AttemptRecord]:
        return queries.task_attempts(self.run_id, task_id)

    def integration_commit(self, task_id: str) -> IntegrationCommitRecord | None:
        return queries.integration_commit(self.run_id, task_id)

    def rollback_conflicts(self, task_id: str) -> list[tuple[str, list[str]]]:
        """Later integrated (not reverted) tasks that touched the same files as ``task_id``."""
        mine = self.integration_commit(task_id)
        if mine is None:
            return []
        my_files = set(mine.files)
        conflicts = []
        for c in queries.live_commits_since(self.run_id, mine):
            shared = sorted(my_files & set(c.files))
            if shared:
                conflicts.append((c.task_id, shared))
        return conflicts

    def rollback_scope(self, task_id: str) -> list[IntegrationCommitRecord]:
        """What a cascading rollback of ``task_id`` would revert, oldest first."""
        return queries.rollback_scope(self.run_id, task_id)

    def conflicting_tasks(self, task_id: str) -> list[tuple[str, list[str]]]:
        """Integrated tasks whose live commits touched files ``task_id`` declares, with the
        shared paths: what a git_conflict of ``task_id`` most likely met."""
        mine = {path for _, path in queries.file_operation_paths(self.run_id, [task_id])}
        found = []
        for commit in queries.live_commits(self.run_id):
            shared = sorted(mine & set(commit.files))
            if commit.task_id != task_id and shared:
                found.append((commit.task_id, shared))
        return found

    def last_control_result(self, task_id: str, command: str) -> str:
        """The result text of the latest rejected ``command`` about ``task_id``, if any."""
        for c in queries.rejected_controls(self.run_id, command, limit=50):
            if json.loads(c.args_json or "{}").get("task_id") == task_id:
                return c.result
        return ""

    def control_outcomes(self, control_ids: Iterable[int]) -> list[ControlOutcome]:
        return [
            ControlOutcome(c.id, c.command, json.loads(c.args_json or "{}"), c.status, c.result)
            for c in queries.settled_controls(control_ids)
        ]

    @staticmethod
    def log_path(attempt: AttemptRecord, run: RunInfo) -> Path:
        path = Path(attempt.log_path)
        return path if path.is_absolute() else Path(run.run_dir) / path

    def log_tail(self, attempt: AttemptRecord, run: RunInfo, limit: int = LOG_TAIL_BYTES) -> str:
        if not attempt.log_path:
            return ""
        path = self.log_path(attempt, run)
        try:
            with open(path, "rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                fh.seek(max(0, size - limit))
                data = fh.read(limit)
        except OSError as exc:
            return f"(log unavailable: {exc.strerror or exc})"
        text = data.decode("utf-8", errors="replace")
        if size > limit:
            text = "…" + text.split("\n", 1)[-1]
        return text


def commit_diff(repo_path: str, sha: str, limit: int = DIFF_MAX_CHARS) -> str:
    """``git show`` of one commit (stat + patch), read-only, capped at ``limit`` characters."""
    import git  # GitPython; imported late so the dashboard does not pay for it

    try:
        repo = git.Repo(repo_path)
        text = repo.git.show(sha, "--stat", "--patch", "--no-color", "--format=commit %H%nAuthor: %an%nDate:   %ad%n%n    %s%n%n%b")
    except Exception as exc:  # a missing repo or commit is shown, not raised
        return f"(diff unavailable: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})"
    if len(text) > limit:
        text = text[:limit] + f"\n… (truncated, {len(text) - limit} more characters)"
    return text

