"""Room: core. The coordinator's decisions as pure code: DAG, ready queue, assignment, file
locks, retries, breakers, budgets, autoscaling and operator operations.

Pure: no I/O, no clock, no logging, no threads. Time is the ``now`` argument (seconds, any
epoch: wall clock in the runtime, virtual in the simulator); randomness (backoff jitter)
comes from the injected ``random.Random``. Every mutating call returns the list of
:mod:`~hybrid_tui.core.changes` records the shell persists in order.

Driving loop of a shell, roughly::

    sched = Scheduler(tasks, policies=..., mission_budget_usd=..., retry_budget_usd=...,
                      pool_min=4, pool_max=12, rng=random.Random(seed))
    for agent in pool: persist(sched.add_agent(agent, now))
    while not sched.is_finished():
        persist(sched.tick(now))                    # deadlines, lock expiry, breakers, scaling
        dispatches, changes = sched.dispatch(now); persist(changes)
        ... start each dispatch; as results arrive:
        persist(sched.advance(tid, TaskStatus.VALIDATING, now))   # optional phases
        persist(sched.succeed(tid, now, cost_usd)) or persist(sched.fail(tid, kind, now, cost_usd, msg))
        ... on CancelRunning: stop the attempt, then sched.settle_cancelled(tid, attempt, cost, now)
        sleep until min(next result, sched.next_deadline())
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from hybrid_tui.core.changes import (
    AgentChanged,
    Alert,
    BreakerChanged,
    CancelRunning,
    Change,
    LockAcquired,
    LockReleased,
    PauseChanged,
    PoolTarget,
    TaskTransition,
    TaskWaiting,
)
from hybrid_tui.core.batching import BatchRule, choose_batch
from hybrid_tui.core.policies import (
    alert_level,
    critical_path_score,
    needs_approval,
    priority_score,
    priority_weight,
    retry_delay,
    scaling_target,
)
from hybrid_tui.core.states import (
    ACTIVE,
    DEAD,
    QUEUED,
    TERMINAL,
    TRANSITIONS,
    CoreError,
    IllegalTransition,
    TaskStatus,
)
from hybrid_tui.core.tasks import AgentView, Dispatch, LockView, SavedTask, Spend, TaskInfo, TaskView, WaitReason
from hybrid_tui.spec.models import PoliciesSection

S = TaskStatus  # short name for the many status literals below

#: Failure types that say something about the backend (they count for its circuit breaker).
BACKEND_FAILURES = frozenset({"network_error", "rate_limited", "agent_error", "timeout", "auth_error"})
#: Failure types that are not the attempt's fault (not counted in the failure rate).
NEUTRAL_FAILURES = frozenset({"interrupted", "environment_error"})
#: Failure types of the project's toolchain: the run pauses until the operator fixes it.
ENVIRONMENT_FAILURES = frozenset({"environment_error"})
#: How many recent tasks an agent remembers for file/domain affinity.
RECENT_TASKS = 3
#: Review 4.4: "30+ queued -> warn: queue backup" once the pool is at its maximum.
QUEUE_BACKUP_DEPTH = 30


class DagError(CoreError, ValueError):
    """The task graph is invalid (unknown dependency, cycle, duplicate id)."""


class UnknownTask(CoreError, KeyError):
    def __str__(self) -> str:
        return f"unknown task {self.args[0]!r}"


class _Task:
    """Mutable scheduling state of one task (internal).

    ``version`` numbers its live heap entry (older entries are stale). ``parked``: its live
    ready-heap entry carries the locked-file penalty (see :meth:`Scheduler.dispatch`).
    ``estimate``: its duration in estimate minutes (the SIS figure, raised when an attempt
    ran longer); ``path``: its remaining critical path in those minutes (``estimate`` plus
    the longest ``path`` among its dependents), kept up to date incrementally.
    """

    __slots__ = (
        "info", "tid", "status", "attempts", "agent_id", "retry_at", "failures", "last_failure",
        "last_message", "last_agent", "next_action", "reason", "version", "static_score", "parked",
        "unmet", "dependents", "topo", "held", "files", "estimate", "path", "started_at", "actual_seconds",
    )

    def __init__(self, info: TaskInfo, topo: int) -> None:
        self.info = info
        self.tid = info.task_id
        self.files = info.files
        self.status = S.PENDING
        self.attempts = 0
        self.agent_id: str | None = None
        self.retry_at: float | None = None
        self.failures: dict[str, int] = {}
        self.last_failure: str | None = None
        self.last_message = ""
        self.last_agent: str | None = None
        self.next_action: str | None = None
        self.reason = ""
        self.version = 0
        self.static_score = 0.0
        self.parked = False
        self.unmet = 0
        self.dependents: list[_Task] = []
        self.topo = topo
        self.held: list[str] = []
        self.estimate = float(info.estimated_duration_minutes)
        self.path = self.estimate
        self.started_at: float | None = None  # the running attempt's start
        self.actual_seconds = 0.0  # summed over its finished attempts


class _Agent:
    """``recent``: (files, domain) of its last RECENT_TASKS tasks, oldest first. ``batch``:
    the tasks of its batched attempt not ended yet (it stays busy until the last ends)."""

    __slots__ = ("agent_id", "backend", "state", "task_id", "load", "recent", "batch")

    def __init__(self, agent_id: str, backend: str) -> None:
        self.agent_id = agent_id
        self.backend = backend
        self.state = "idle"
        self.task_id: str | None = None
        self.load = 0
        self.recent: deque[tuple[tuple[str, ...], str]] = deque()
        self.batch: set[str] | None = None


class _Breaker:
    __slots__ = ("state", "consecutive", "opened_at", "trial")

    def __init__(self) -> None:
        self.state = "closed"
        self.consecutive = 0
        self.opened_at = 0.0
        self.trial = False


class Scheduler:
    """All scheduling state of one run, driven by a shell through ``now``-stamped calls.

    ``tasks``: the DAG (validated: unknown dependency, duplicate id or cycle raise
    :class:`DagError` naming the tasks). Tasks without dependencies start ``ready``, the
    rest ``pending``. ``policies``: the mission's ``[policies]`` (every weight and number).
    ``attempt_cost_cap``: the per-attempt dollar cap the shell enforces
    (``[agents] max_cost_per_attempt``); when given, each attempt in flight reserves that
    much of the mission budget, so total spend never exceeds the mission budget by more
    than one attempt's cap. Without it an attempt reserves its task's expected cost.
    """

    def __init__(
        self,
        tasks: Iterable[TaskInfo],
        *,
        policies: PoliciesSection | None = None,
        mission_budget_usd: float = 25.0,
        retry_budget_usd: float = 2.0,
        pool_min: int = 4,
        pool_max: int = 12,
        rng: random.Random | None = None,
        attempt_cost_cap: float | None = None,
        queue_backup_depth: int = QUEUE_BACKUP_DEPTH,
    ) -> None:
        if pool_min < 0 or pool_max < max(pool_min, 1):
            raise ValueError(f"pool bounds invalid: min {pool_min}, max {pool_max}")
        self.policies = policies or PoliciesSection()
        self._weights = self.policies.priority
        self._review_mode = self._weights.mode == "review"
        # The locked-file penalty is a term of the review's formula; the critical-path order
        # simply skips a locked task (its place among the others stays its path).
        self._lock_penalty = self._weights.locked_file_penalty if self._review_mode else 0.0
        # backend -> [actual seconds, estimated seconds] over its succeeded attempts.
        self._speed: dict[str, list[float]] = {}
        # log(actual / estimate) of succeeded attempts: count, sum, sum of squares (spread).
        self._log_ratios = [0, 0.0, 0.0]
        self._budget_held = 0  # ready tasks the last dispatch held back for the budget
        self._approval_gate = frozenset(self.policies.approve)
        self._batch_rule = BatchRule.from_policy(self.policies.batch)  # None: no batching (no cost)
        self.mission_budget_usd = float(mission_budget_usd)
        self.retry_budget_usd = float(retry_budget_usd)
        self.pool_min, self.pool_max = pool_min, pool_max
        self.rng = rng or random.Random(0)
        self.attempt_cost_cap = attempt_cost_cap
        self.queue_backup_depth = queue_backup_depth

        self._tasks: dict[str, _Task] = {}
        self._counts: dict[TaskStatus, int] = dict.fromkeys(TaskStatus, 0)
        # (-score, task id, version): the live entry of a ready task is keyed by its score
        # without the locked-file penalty until dispatch pops it while locked ("parks" it).
        self._ready_heap: list[tuple[float, str, int]] = []
        self._parked_by_path: dict[str, set[str]] = {}  # path -> parked ready tasks declaring it
        self._retry_heap: list[tuple[float, str, int]] = []
        self._locks: dict[str, tuple[str, float, float]] = {}  # path -> (task, acquired, expires)
        self._lock_heap: list[tuple[float, str, str]] = []
        self._agents: dict[str, _Agent] = {}
        self._idle: dict[str, _Agent] = {}
        # Affinity indexes: path (domain) -> {agent id: how many of its recent tasks had it}.
        self._file_agents: dict[str, dict[str, int]] = {}
        self._domain_agents: dict[str, dict[str, int]] = {}
        self._breakers: dict[str, _Breaker] = {}
        self._reservations: dict[tuple[str, int], tuple[float, bool]] = {}
        self._reserved = 0.0
        self._retry_reserved = 0.0
        self._spent = 0.0
        self._retry_spent = 0.0
        self._alerted: set[tuple[str, float]] = set()
        self._finished_attempts = 0
        self._failed_attempts = 0
        self.paused = False
        self.pause_reason = ""
        self._pool_target: int | None = None
        self._manual_target: int | None = None
        self._queue_backup = False
        self.add_tasks(tasks)

    # ------------------------------------------------------------------ construction

    def add_tasks(self, tasks: Iterable[TaskInfo], now: float = 0.0) -> list[Change]:
        """Add tasks to the DAG (all at once; nothing is added if any is invalid).

        New tasks may depend on existing or new tasks. They start ``ready`` (every
        dependency done), ``blocked`` (a dependency failed) or ``pending``; read
        :meth:`status` for their first row (no transition is emitted for a creation).
        Existing tasks gaining dependents are rescored.
        """
        existing = self._tasks
        ids: dict[str, TaskInfo] = {}
        for info in tasks:
            if info.task_id in existing or info.task_id in ids:
                raise DagError(f"duplicate task id {info.task_id!r}")
            priority_weight(self._weights, info.priority)  # raises for an unknown priority
            ids[info.task_id] = info
        order = _topological_order(ids, existing)  # also raises for an unknown dependency
        # Everything is valid from here on: the tasks go in.
        touched: dict[_Task, None] = {}  # existing tasks gaining dependents, in first-seen order
        added: list[_Task] = []
        for tid in order:
            info = ids[tid]
            t = _Task(info, topo=len(existing))
            existing[tid] = t
            added.append(t)
            for dep in dict.fromkeys(info.dependencies):  # a dependency listed twice counts once
                d = existing[dep]
                d.dependents.append(t)
                if d.status is not S.DONE:
                    t.unmet += 1
                if dep not in ids:
                    touched[d] = None
        self._counts[S.PENDING] += len(added)
        for t in reversed(added):  # dependents first: every dependent of a new task is new
            t.path = t.estimate + max((d.path for d in t.dependents), default=0.0)
        for d in self._update_paths(touched):  # existing tasks whose dependents (or paths) changed
            self._rescore_static(d)
            if d.status is S.READY:
                self._push_ready(d)
        for t in added:  # in topological order: a dependency is blocked before its dependents look
            self._rescore_static(t)
            if t.unmet == 0:  # every dependency done, so none is dead
                self._set_status(t, self._ready_status(t))
            elif any(existing[dep].status in DEAD for dep in t.info.dependencies):
                self._set_status(t, S.BLOCKED)
                t.reason = "a dependency failed"
        return []

    @classmethod
    def restore(
        cls,
        tasks: Iterable[TaskInfo],
        saved: Mapping[str, SavedTask],
        *,
        now: float,
        spent_usd: float = 0.0,
        retry_spent_usd: float = 0.0,
        paused_reason: str | None = None,
        **kwargs: Any,
    ) -> tuple[Scheduler, list[Change]]:
        """Rebuild after a crash from the statuses the store kept.

        ``done`` stays done; ``running``/``validating``/``integrating`` were interrupted and
        follow the ``interrupted`` retry rule (to ``retry_wait``/``ready`` or ``failed``);
        ``retry_wait`` keeps its deadline; ``pending``/``ready`` are recomputed from their
        dependencies. The core holds no file locks and no agents afterwards: the shell
        clears its lock table and re-adds agents. Budget alerts already passed are not
        repeated. ``kwargs`` are the constructor's keyword arguments.
        """
        sched = cls(tasks, **kwargs)
        sched._spent, sched._retry_spent = float(spent_usd), float(retry_spent_usd)
        for kind, spent, budget in (("budget", sched._spent, sched.mission_budget_usd),
                                    ("retry_budget", sched._retry_spent, sched.retry_budget_usd)):
            for thr in sched.policies.budget_alerts:
                if budget and spent >= thr * budget:
                    sched._alerted.add((kind, thr))
        if paused_reason is not None:
            sched.paused, sched.pause_reason = True, paused_reason
        for tid, st in saved.items():
            t = sched._task(tid)
            status = TaskStatus(st.status)
            t.attempts, t.failures = st.attempts, dict(st.failures)
            t.last_agent, t.last_failure, t.last_message = st.last_agent, st.last_failure, st.last_message
            sched._set_status(t, S.RUNNING if status in ACTIVE else status)
            if status is S.RETRY_WAIT:
                t.retry_at = st.retry_at if st.retry_at is not None else now
        for t in sched._tasks.values():
            t.unmet = sum(1 for dep in dict.fromkeys(t.info.dependencies) if sched._tasks[dep].status is not S.DONE)
        changes: list[Change] = []
        for t in sorted(sched._tasks.values(), key=lambda x: x.topo):
            if t.status is S.RUNNING:
                sched._fail_active(t, "interrupted", now, 0.0, "the coordinator restarted", None, changes)
            elif t.status is S.RETRY_WAIT:
                sched._push_retry(t)
            elif t.status in (S.PENDING, S.READY, S.AWAITING_APPROVAL):
                if any(sched._tasks[d].status in DEAD for d in t.info.dependencies):
                    sched._transition(t, S.BLOCKED, "a dependency failed", changes)
                elif t.unmet == 0 and t.status is S.PENDING:
                    sched._become_ready(t, "dependencies done", changes)
                elif t.unmet and t.status is not S.PENDING:
                    sched._transition(t, S.PENDING, "dependencies not done", changes)
        return sched, changes

    # ------------------------------------------------------------------ agents

    def add_agent(self, agent_id: str, now: float, backend: str = "replay") -> list[Change]:
        """Add an idle L3 agent slot using ``backend`` (its circuit breaker applies)."""
        if agent_id in self._agents:
            raise ValueError(f"agent {agent_id!r} already exists")
        agent = _Agent(agent_id, backend)
        self._agents[agent_id] = agent
        self._idle[agent_id] = agent
        self._breakers.setdefault(backend, _Breaker())
        return [AgentChanged(agent_id, "idle", None)]

    def remove_agent(self, agent_id: str, now: float) -> list[Change]:
        """Remove an agent: at once when idle, else it drains (removed when its task ends)."""
        agent = self._agents.get(agent_id)
        if agent is None:
            raise ValueError(f"unknown agent {agent_id!r}")
        if agent.state == "idle":
            self._drop_agent(agent)
            return [AgentChanged(agent_id, "removed", None)]
        agent.state = "draining"
        return [AgentChanged(agent_id, "draining", agent.task_id)]

    # ------------------------------------------------------------------ dispatch

    def dispatch(self, now: float, limit: int | None = None) -> tuple[list[Dispatch], list[Change]]:
        """Assign ready tasks to idle agents, best score first (ties by task id).

        A task is skipped (stays ready) when one of its declared files is locked, when no
        eligible agent is idle (breaker open for every idle agent's backend), or when the
        attempts in flight hold the budget it needs. A task whose expected cost exceeds
        what is left of the mission budget fails with ``budget_exhausted`` (with an alert).
        Nothing is dispatched while paused. ``limit`` caps the dispatches of this call
        (e.g. ``policies.dispatch_batch``).
        """
        dispatches: list[Dispatch] = []
        changes: list[Change] = []
        idle = self._idle
        if self.paused or not idle:
            return dispatches, changes
        heap = self._ready_heap
        tasks = self._tasks
        locks = self._locks
        skipped: list[tuple[float, str, int]] = []
        exhausted: list[str] = []
        self._budget_held = 0
        remaining = limit if limit is not None else -1
        # The order is the score with the locked-file penalty. A ready task's entry carries
        # the penalty only once it is parked; an unparked entry of a locked task sorts too
        # early, so popping it just re-keys it (parks it) and it comes back at its place.
        while heap and idle and remaining != 0:
            entry = heapq.heappop(heap)
            t = tasks[entry[1]]
            if t.status is not S.READY or t.version != entry[2]:
                continue  # stale entry (rescored or no longer ready)
            files = t.files
            locked = files and not locks.keys().isdisjoint(files)
            if locked and not t.parked:
                self._park(t)
                holder_path = next(p for p in files if p in locks)
                changes.append(TaskWaiting(t.tid, "lock", f"{holder_path} held by task {locks[holder_path][0]}",
                                           locks[holder_path][0]))
                continue
            expected = t.info.expected_cost_usd
            if self._spent + expected > self.mission_budget_usd:
                exhausted.append(t.tid)
                self._transition(t, S.FAILED, f"budget_exhausted: needs ${expected:.2f}, "
                                 f"${max(self.mission_budget_usd - self._spent, 0):.2f} left", changes)
                t.last_failure = "budget_exhausted"
                self._propagate(t, f"dependency {t.tid} failed", changes)
                continue
            if self._spent + self._reserved + expected > self.mission_budget_usd:
                skipped.append(entry)
                self._budget_held += 1
                continue
            if locked:
                skipped.append(entry)
                continue
            agent = self._choose_agent(t)
            if agent is None:
                skipped.append(entry)
                continue
            rule = self._batch_rule
            if rule is not None and rule.admits(t.info.domain, t.estimate, t.attempts):
                dispatches.extend(self._start_batch(rule, t, agent, now, changes))
            else:
                dispatches.append(self._start(t, agent, now, changes))
            remaining -= 1
        for entry in skipped:
            heapq.heappush(heap, entry)
        if exhausted:
            changes.append(Alert("budget_exhausted", "critical",
                                 f"mission budget cannot cover {len(exhausted)} task(s): {', '.join(exhausted[:5])}",
                                 {"tasks": exhausted, "spent_usd": self._spent,
                                  "budget_usd": self.mission_budget_usd}))
        return dispatches, changes

    def _start_batch(self, rule: BatchRule, leader: _Task, agent: _Agent, now: float,
                     changes: list[Change]) -> list[Dispatch]:
        """Dispatch ``leader`` with the ready tasks :func:`~hybrid_tui.core.batching.choose_batch`
        adds to it, all on ``agent`` (one attempt for the shell to run). Off the hot path:
        only with ``[policies.batch]``, and it looks through the ready heap once per batch."""
        domain = leader.info.domain
        budget_left = self.mission_budget_usd - self._spent - self._reserved - leader.info.expected_cost_usd
        candidates: list[tuple[tuple[float, str], _Task]] = []
        for score, tid, version in self._ready_heap:
            c = self._tasks[tid]
            if (c is not leader and c.status is S.READY and c.version == version and c.info.domain == domain
                    and rule.admits(domain, c.estimate, c.attempts)):
                candidates.append(((score, tid), c))
        candidates.sort(key=lambda pair: pair[0])
        chosen = choose_batch(rule, leader.tid, leader.files, ((c.tid, c.files) for _, c in candidates), self._locks)
        for k, tid in enumerate(chosen[1:], start=1):  # the budget holds back what it cannot cover
            budget_left -= self._tasks[tid].info.expected_cost_usd
            if budget_left < 0:
                del chosen[k:]
                break
        if len(chosen) == 1:
            return [self._start(leader, agent, now, changes)]
        batch = tuple(chosen)
        out = [self._start(leader, agent, now, changes, batch)]
        for tid in batch[1:]:
            out.append(self._start(self._tasks[tid], agent, now, changes, batch))
        agent.batch = set(batch)
        return out

    def _start(self, t: _Task, agent: _Agent, now: float, changes: list[Change],
               batch: tuple[str, ...] = ()) -> Dispatch:
        tid, agent_id = t.tid, agent.agent_id
        if t.attempts == 0:
            reason = "dispatched"
        elif t.last_failure is None:  # the last attempt was interrupted (resume) or cancelled, not failed
            reason = f"dispatched again (attempt {t.attempts + 1})"
        else:
            reason = f"retry after {t.last_failure}"
        if batch:
            reason = f"dispatched in a batch of {len(batch)} led by {batch[0]}"
        self._transition(t, S.RUNNING, reason, changes)
        t.attempts = attempt = t.attempts + 1
        t.agent_id = agent_id
        t.started_at = now
        agent.load += 1
        self._remember(agent, t)
        if agent.state != "busy":  # a batch member after its leader: the agent is taken already
            agent.state = "busy"
            agent.task_id = tid
            del self._idle[agent_id]
            changes.append(AgentChanged(agent_id, "busy", tid))
        expires = now + self.policies.lock_ttl_seconds
        for path in t.files:
            self._acquire(t, path, now, expires, changes)
        is_retry = attempt > 1
        amount = self.attempt_cost_cap if self.attempt_cost_cap is not None else t.info.expected_cost_usd
        self._reservations[(tid, attempt)] = (amount, is_retry)
        self._reserved += amount
        if is_retry:
            self._retry_reserved += amount
        breaker = self._breakers[agent.backend]
        if breaker.state == "half_open":
            breaker.trial = True
        return Dispatch(tid, agent_id, attempt, agent.backend,
                        previous_failure=t.last_failure if is_retry else None,
                        feedback=t.last_message if t.next_action == "with_feedback" else None,
                        batch=batch)

    def _choose_agent(self, t: _Task) -> _Agent | None:
        """Review 4.3 hybrid assignment among idle agents whose breaker admits work:
        most recent-file overlap, else same recent domain, else least loaded; ties by
        (load, agent id). ``different_agent`` retries avoid the previous agent when another
        is idle; ``same_agent`` retries prefer it."""
        idle = self._idle
        action = t.next_action
        if action == "same_agent" and t.last_agent in idle:
            agent = idle[t.last_agent]
            if self._admits(agent):
                return agent
        avoid = t.last_agent if action == "different_agent" else None
        # Most of the task's files among an agent's recent tasks.
        overlap: dict[str, int] = {}
        for path in t.files:
            for aid in self._file_agents.get(path, ()):
                if aid in idle and aid != avoid:
                    overlap[aid] = overlap.get(aid, 0) + 1
        best: _Agent | None = None
        best_key: tuple[int, int, str] | None = None
        for aid, n in overlap.items():
            agent = idle[aid]
            key = (-n, agent.load, aid)
            if (best_key is None or key < best_key) and self._admits(agent):
                best, best_key = agent, key
        if best is not None:
            return best
        # Else the task's domain among an agent's recent tasks, else anyone.
        domain_agents = self._domain_agents.get(t.info.domain)
        if domain_agents:
            best = self._least_loaded(domain_agents.keys() & idle.keys(), avoid)
            if best is not None:
                return best
        best = self._least_loaded(idle, avoid)
        if best is None and avoid is not None and avoid in idle and self._admits(idle[avoid]):
            return idle[avoid]  # nobody else is idle: the same agent beats waiting forever
        return best

    def _least_loaded(self, agent_ids: Iterable[str], avoid: str | None) -> _Agent | None:
        """The idle agent of ``agent_ids`` (all idle) with the least (load, agent id) whose
        breaker admits work, other than ``avoid``."""
        best: _Agent | None = None
        for aid in agent_ids:
            if aid == avoid:
                continue
            agent = self._idle[aid]
            if best is not None and (agent.load > best.load or (agent.load == best.load and aid > best.agent_id)):
                continue  # not better than the best so far: skip the breaker check
            if self._admits(agent):
                best = agent
        return best

    def _admits(self, agent: _Agent) -> bool:
        """The agent's backend breaker lets an attempt through: closed, or half-open with
        its one trial attempt not started yet."""
        breaker = self._breakers[agent.backend]
        return breaker.state == "closed" or (breaker.state == "half_open" and not breaker.trial)

    def _remember(self, agent: _Agent, t: _Task) -> None:
        """Keep the agent's last RECENT_TASKS tasks' files and domains (affinity indexes)."""
        agent_id = agent.agent_id
        agent.recent.append((t.files, t.info.domain))
        for path in t.files:
            _count_in(self._file_agents, path, agent_id)
        _count_in(self._domain_agents, t.info.domain, agent_id)
        if len(agent.recent) > RECENT_TASKS:
            old_files, old_domain = agent.recent.popleft()
            for path in old_files:
                _count_out(self._file_agents, path, agent_id)
            _count_out(self._domain_agents, old_domain, agent_id)

    # ------------------------------------------------------------------ results

    def advance(self, task_id: str, to_status: TaskStatus, now: float) -> list[Change]:
        """Move a task between active phases: running -> validating -> integrating."""
        t = self._task(task_id)
        to_status = TaskStatus(to_status)  # raises ValueError for a value that is no status
        if to_status not in (S.VALIDATING, S.INTEGRATING) or t.status not in ACTIVE:
            raise IllegalTransition(task_id, t.status, to_status, "advance moves only between active phases")
        changes: list[Change] = []
        self._transition(t, to_status, "", changes)
        return changes

    def succeed(self, task_id: str, now: float, cost_usd: float = 0.0) -> list[Change]:
        """The current attempt finished and the task is integrated: ``done``.

        Releases its locks and agent, records spend (budget alerts), closes a half-open
        breaker, and makes dependents whose dependencies are now all done ``ready``.
        """
        t = self._task(task_id)
        if t.status not in ACTIVE:
            raise IllegalTransition(task_id, t.status, S.DONE, "no attempt is running")
        changes: list[Change] = []
        released: list[Change] = []
        backend = self._end_attempt(t, cost_usd, now, released, succeeded=True)
        self._finished_attempts += 1
        breaker = self._breakers.get(backend) if backend else None
        if breaker is not None:
            breaker.consecutive = 0
            breaker.trial = False
            if breaker.state != "closed":
                breaker.state = "closed"
                changes.append(BreakerChanged(backend, "closed", f"{task_id} succeeded"))
        self._transition(t, S.DONE, "succeeded", changes)
        changes.extend(released)
        for d in t.dependents:
            d.unmet -= 1
            if d.unmet == 0 and d.status is S.PENDING:
                self._become_ready(d, f"dependencies done ({task_id} last)", changes)
        self._check_failure_rate(changes)
        return changes

    def fail(
        self,
        task_id: str,
        failure_type: str,
        now: float,
        cost_usd: float = 0.0,
        message: str = "",
        retry_after: float | None = None,
        *,
        backend_fault: bool = True,
    ) -> list[Change]:
        """The current attempt failed with ``failure_type`` (a key of ``policies.retries``).
        ``backend_fault`` False: the backend did its part and the task's own work failed (its
        validation timed out, say), which says nothing of the backend's health.

        Applies the type's rule: within ``max_retries`` (counted per type) the task goes to
        ``retry_wait`` until ``now + backoff`` (``immediate``: straight back to ready),
        provided the retry budget covers another attempt; otherwise ``failed`` with the
        reason, an ``attention`` alert, its queued transitive dependents ``blocked`` and
        its running ones cancelled (``CancelRunning``). Also feeds the backend's circuit
        breaker and the failure-rate auto-pause.
        """
        if failure_type not in self.policies.retries:
            raise ValueError(f"task {task_id}: unknown failure type {failure_type!r} "
                             f"(known: {', '.join(sorted(self.policies.retries))})")
        t = self._task(task_id)
        if t.status not in ACTIVE:
            raise IllegalTransition(task_id, t.status, S.RETRY_WAIT, "no attempt is running")
        changes: list[Change] = []
        self._fail_active(t, failure_type, now, cost_usd, message, retry_after, changes, backend_fault=backend_fault)
        return changes

    def _fail_active(self, t: _Task, failure_type: str, now: float, cost_usd: float, message: str,
                     retry_after: float | None, changes: list[Change], *, backend_fault: bool = True) -> None:
        released: list[Change] = []
        backend = self._end_attempt(t, cost_usd, now, released)
        start = len(changes)
        if failure_type not in NEUTRAL_FAILURES:
            self._finished_attempts += 1
            self._failed_attempts += 1
        if backend is not None:
            self._breaker_failure(backend, failure_type if backend_fault else None, now, changes)
        rule = self.policies.retries[failure_type]
        count = t.failures.get(failure_type, 0) + 1
        t.failures[failure_type] = count
        t.last_failure, t.last_message = failure_type, message
        detail = f"{failure_type}: {message}" if message else failure_type
        if rule.action == "attention" or count > rule.max_retries:
            why = "needs attention" if rule.action == "attention" else f"{rule.max_retries} retries spent"
            self._fail_terminal(t, f"{detail} ({why})", changes)
        elif self._retry_spent + self._retry_reserved + t.info.expected_cost_usd > self.retry_budget_usd:
            changes.append(Alert("retry_budget_exhausted", "critical",
                                 f"retry budget cannot cover a retry of {t.tid}",
                                 {"task_id": t.tid, "retry_spent_usd": self._retry_spent,
                                  "retry_budget_usd": self.retry_budget_usd}))
            self._fail_terminal(t, f"{detail} (retry budget exhausted: ${self._retry_spent:.2f} "
                                   f"of ${self.retry_budget_usd:.2f})", changes)
        else:
            delay = retry_delay(rule, count - 1, self.policies, self.rng, retry_after)
            t.next_action = rule.action
            t.retry_at = now + delay
            self._transition(t, S.RETRY_WAIT, f"{detail} (retry {count} of {rule.max_retries})", changes,
                             retry_at=t.retry_at)
            if delay <= 0:
                self._wake(t, changes)
            else:
                self._push_retry(t)
        # Show the task's own transition first, then what its attempt released.
        at = next(i for i in range(start, len(changes))
                  if isinstance(changes[i], TaskTransition) and changes[i].task_id == t.tid)
        changes[at + 1:at + 1] = released
        if failure_type in ENVIRONMENT_FAILURES:
            # Every other task would hit the same broken toolchain: stop spending until it is fixed.
            first = (message.strip().splitlines() or [""])[0][:300]
            changes.extend(self.pause(f"{failure_type} in task {t.tid}: {first}", now))
        self._check_failure_rate(changes)

    def _fail_terminal(self, t: _Task, reason: str, changes: list[Change]) -> None:
        self._transition(t, S.FAILED, reason, changes)
        changes.append(Alert("attention", "warning", f"task {t.tid} failed: {reason}",
                             {"task_id": t.tid, "failure_type": t.last_failure}))
        self._propagate(t, f"dependency {t.tid} failed", changes)

    def _end_attempt(self, t: _Task, cost_usd: float, now: float, changes: list[Change],
                     succeeded: bool = False) -> str | None:
        """Release what the running attempt held; return its agent's backend. Learn from its
        duration: a success tells its backend's speed, a failure that ran longer than the
        task's estimate raises the estimate (and so its remaining path) for the retry."""
        held = self._reservations.pop((t.tid, t.attempts), None)
        if held is None:
            amount, is_retry = 0.0, t.attempts > 1
        else:
            amount, is_retry = held
        self._reserved -= amount
        if is_retry:
            self._retry_reserved -= amount
        self._add_spend(cost_usd, is_retry, changes)
        if t.held:
            self._release_all(t, "task ended", changes)
        backend = None
        agent_id = t.agent_id
        if agent_id is not None:
            agent = self._agents.get(agent_id)
            t.last_agent = agent_id
            t.agent_id = None
            if agent is not None:
                backend = agent.backend
                if agent.batch is not None:
                    # A batched attempt's members end one by one (validated and integrated in
                    # turn, in the agent's worktree): the agent is free after the last. Their
                    # durations are the batch's, not theirs: nothing to learn from them.
                    t.started_at = None
                    agent.batch.discard(t.tid)
                    if agent.batch:
                        if agent.task_id == t.tid:
                            agent.task_id = min(agent.batch)
                        return backend
                    agent.batch = None
                else:
                    self._learn_duration(t, backend, now, succeeded)
                agent.task_id = None
                if agent.state == "draining":
                    self._drop_agent(agent)
                    changes.append(AgentChanged(agent_id, "removed", None))
                else:
                    agent.state = "idle"
                    self._idle[agent_id] = agent
                    changes.append(AgentChanged(agent_id, "idle", None))
        return backend

    def settle_cancelled(self, task_id: str, attempt: int, cost_usd: float, now: float) -> list[Change]:
        """Record the cost of an attempt the core cancelled (see :class:`CancelRunning`) and
        free the budget it held."""
        self._task(task_id)
        amount, is_retry = self._reservations.pop((task_id, attempt), (0.0, attempt > 1))
        self._reserved -= amount
        if is_retry:
            self._retry_reserved -= amount
        changes: list[Change] = []
        self._add_spend(cost_usd, is_retry, changes)
        return changes

    def _cancel_active(self, t: _Task, reason: str, changes: list[Change]) -> None:
        """Stop a running attempt: the shell kills it; its reservation stays until settled."""
        agent_id = t.agent_id
        key = (t.tid, t.attempts)
        held = self._reservations.get(key)
        changes.append(CancelRunning(t.tid, agent_id, t.attempts, reason))
        self._transition(t, S.CANCELLED, reason, changes)
        backend_breaker = None
        if agent_id is not None and agent_id in self._agents:
            backend_breaker = self._breakers.get(self._agents[agent_id].backend)
        if held is not None:
            self._reservations.pop(key)
        self._end_attempt(t, 0.0, 0.0, changes)
        if held is not None:
            self._reservations[key] = held  # still held: the stopped attempt owes its cost
        if backend_breaker is not None:
            backend_breaker.trial = False

    # ------------------------------------------------------------------ locks

    def request_lock(self, task_id: str, path: str, now: float) -> tuple[bool, list[Change]]:
        """A running task wants an undeclared file: lock it (True) or report it is held by
        another task (False: the shell fails the attempt with ``file_locked``)."""
        t = self._task(task_id)
        if t.status not in ACTIVE:
            raise CoreError(f"task {task_id} is {t.status.value}: only a running task can lock files")
        holder = self._locks.get(path)
        changes: list[Change] = []
        if holder is not None:
            return holder[0] == task_id, changes
        self._acquire(t, path, now, now + self.policies.lock_ttl_seconds, changes)
        return True, changes

    def _acquire(self, t: _Task, path: str, now: float, expires: float, changes: list[Change]) -> None:
        # Ready tasks declaring ``path`` keep their heap entries: dispatch parks them when popped.
        tid = t.tid
        self._locks[path] = (tid, now, expires)
        t.held.append(path)
        heapq.heappush(self._lock_heap, (expires, path, tid))
        changes.append(LockAcquired(path, tid, now, expires))

    def _release_all(self, t: _Task, reason: str, changes: list[Change]) -> None:
        if not t.held:
            return
        locks = self._locks
        tid = t.tid
        for path in t.held:
            lock = locks.get(path)
            if lock is not None and lock[0] == tid:
                del locks[path]
                changes.append(LockReleased(path, tid, reason))
                if path in self._parked_by_path:
                    self._unpark_freed(path)
        t.held = []

    def _unpark_freed(self, path: str) -> None:
        """``path`` was unlocked: parked tasks declaring it with no file locked any more get
        their unpenalised heap entry back."""
        locks = self._locks
        tasks = self._tasks
        for tid in list(self._parked_by_path.get(path, ())):
            w = tasks[tid]
            if locks.keys().isdisjoint(w.files):
                self._unpark(w)
                self._push_ready(w)

    # ------------------------------------------------------------------ time

    def tick(self, now: float) -> list[Change]:
        """Apply everything due at ``now``: retry deadlines (``retry_wait`` -> ``ready``),
        lock leases (renewed while their attempt runs: an attempt is bounded by its own
        timeout, not by ``lock_ttl_seconds``), breakers half-open after ``breaker_reset_seconds``, the pool
        target by queue depth (``policies.scaling``) and the queue-backup warning."""
        changes: list[Change] = []
        heap = self._retry_heap
        while heap and heap[0][0] <= now:
            _, tid, version = heapq.heappop(heap)
            t = self._tasks[tid]
            if t.status is S.RETRY_WAIT and t.version == version:
                self._wake(t, changes)
        lheap = self._lock_heap
        while lheap and lheap[0][0] <= now:
            expires, path, tid = heapq.heappop(lheap)
            lock = self._locks.get(path)
            if lock is None or lock[0] != tid or lock[2] != expires:
                continue
            t = self._tasks[tid]
            if t.status in ACTIVE:
                # A lease: its attempt is alive (the shell settles every attempt that ends,
                # and recovery releases a crashed run's locks), so it is renewed, never taken.
                renewed = now + self.policies.lock_ttl_seconds
                self._locks[path] = (tid, lock[1], renewed)
                heapq.heappush(lheap, (renewed, path, tid))
                changes.append(LockAcquired(path, tid, lock[1], renewed))
            else:  # cannot happen (locks are released with the attempt); keep the table honest
                del self._locks[path]
                changes.append(LockReleased(path, tid, "expired"))
                if path in self._parked_by_path:
                    self._unpark_freed(path)
        for backend, breaker in self._breakers.items():
            if breaker.state == "open" and now >= breaker.opened_at + self.policies.breaker_reset_seconds:
                breaker.state = "half_open"
                breaker.trial = False
                changes.append(BreakerChanged(backend, "half_open", "reset timeout elapsed: one trial attempt"))
        depth = self._counts[S.READY]
        target = self._manual_target
        if target is None:
            target = scaling_target(self.policies.scaling, depth, self.pool_min, self.pool_max)
        if target != self._pool_target:
            self._pool_target = target
            why = "operator" if self._manual_target is not None else f"queue depth {depth}"
            changes.append(PoolTarget(target, why))
        backed_up = depth > self.queue_backup_depth
        if backed_up and not self._queue_backup:
            changes.append(Alert("queue_backup", "warning",
                                 f"queue backup: {depth} ready tasks, pool target {target} (max {self.pool_max})",
                                 {"depth": depth, "pool_target": target}))
        self._queue_backup = backed_up
        return changes

    def next_deadline(self) -> float | None:
        """Earliest future time at which :meth:`tick` has something to do (retry deadline,
        lock expiry, breaker reset), for shells that sleep (or jump a virtual clock)."""
        times = []
        for heap in (self._retry_heap, self._lock_heap):
            while heap and not self._live(heap, heap[0]):
                heapq.heappop(heap)
            if heap:
                times.append(heap[0][0])
        for breaker in self._breakers.values():
            if breaker.state == "open":
                times.append(breaker.opened_at + self.policies.breaker_reset_seconds)
        return min(times) if times else None

    def _live(self, heap: list, entry: tuple) -> bool:
        if heap is self._retry_heap:
            t = self._tasks[entry[1]]
            return t.status is S.RETRY_WAIT and t.version == entry[2]
        lock = self._locks.get(entry[1])
        return lock is not None and lock[0] == entry[2] and lock[2] == entry[0]

    def _wake(self, t: _Task, changes: list[Change]) -> None:
        t.retry_at = None
        if t.unmet:
            self._transition(t, S.PENDING, "backoff elapsed; dependencies not done", changes)
        else:
            self._transition(t, S.READY, "backoff elapsed", changes)

    # ------------------------------------------------------------------ operator

    def pause(self, reason: str, now: float) -> list[Change]:
        """Stop dispatching (running attempts finish). Idempotent; the reason is updated."""
        self.paused, self.pause_reason = True, reason
        return [PauseChanged(True, reason)]

    def resume(self, now: float) -> list[Change]:
        """Dispatch again. The failure-rate window restarts: the operator has seen it."""
        if not self.paused:
            return []
        self.paused, self.pause_reason = False, ""
        self._finished_attempts = self._failed_attempts = 0
        return [PauseChanged(False, "resumed")]

    def retry(self, task_id: str, now: float) -> list[Change]:
        """Operator retry of a failed, blocked, cancelled or rolled-back task: back to
        ``ready`` (or ``pending``) with fresh retry counts; its blocked dependents that no
        other failed dependency holds go back to ``pending``."""
        t = self._task(task_id)
        if t.status not in DEAD:
            raise CoreError(f"task {task_id} is {t.status.value}: only failed, blocked, cancelled "
                            "or rolled-back tasks can be retried")
        dead = [d for d in t.info.dependencies if self._tasks[d].status in DEAD]
        if dead:
            raise CoreError(f"task {task_id} cannot be retried while its dependency {dead[0]} is "
                            f"{self._tasks[dead[0]].status.value}; retry {dead[0]} first")
        changes: list[Change] = []
        t.failures = {}
        t.next_action = None
        self._transition(t, S.PENDING if t.unmet else S.READY, "operator retry", changes)
        for d in self._transitive(t):
            if d.status is S.BLOCKED and not any(self._tasks[x].status in DEAD for x in d.info.dependencies):
                if d.unmet:
                    self._transition(d, S.PENDING, f"{task_id} retried", changes)
                else:
                    self._become_ready(d, f"{task_id} retried", changes)
        return changes

    def approve(self, task_id: str, now: float) -> list[Change]:
        """Operator approval of a task ``[policies] approve`` holds: ``awaiting_approval`` ->
        ``ready``. Empty when the task is not awaiting approval."""
        t = self._task(task_id)
        if t.status is not S.AWAITING_APPROVAL:
            return []
        changes: list[Change] = []
        self._transition(t, S.READY, "approved by operator", changes)
        return changes

    def reject(self, task_id: str, reason: str, now: float) -> list[Change]:
        """Operator rejection of a task awaiting approval: ``failed`` (failure type
        ``rejected``, the reason shown in the attention view); its dependents are blocked.
        Empty when the task is not awaiting approval."""
        t = self._task(task_id)
        if t.status is not S.AWAITING_APPROVAL:
            return []
        changes: list[Change] = []
        t.last_failure, t.last_message = "rejected", reason
        self._transition(t, S.FAILED, f"rejected by operator: {reason}" if reason else "rejected by operator", changes)
        self._propagate(t, f"dependency {task_id} was rejected", changes)
        return changes

    def needs_approval(self, task_id: str) -> bool:
        """``[policies] approve`` names the task's priority class, its id or its domain."""
        info = self._task(task_id).info
        return needs_approval(self._approval_gate, info.priority, info.task_id, info.domain)

    def cancel_dependents(self, task_id: str, now: float) -> list[Change]:
        """Cancel every queued or blocked transitive dependent of ``task_id``; running ones
        are reported with ``CancelRunning`` and cancelled."""
        t = self._task(task_id)
        changes: list[Change] = []
        for d in self._transitive(t):
            if d.status in ACTIVE:
                self._cancel_active(d, f"operator cancelled dependents of {task_id}", changes)
            elif d.status in QUEUED or d.status is S.BLOCKED:
                self._transition(d, S.CANCELLED, f"operator cancelled dependents of {task_id}", changes)
        return changes

    def cancel(self, task_id: str, now: float) -> list[Change]:
        """Operator cancel of one task (the console's bulk cancel of marked tasks): a queued or
        blocked task becomes ``cancelled``; a running or validating one too, its attempt
        stopped (``CancelRunning``). Its queued dependents are blocked and running ones
        cancelled, as for a failure, so a retry of the task brings them back. Empty when the
        task is done, failed, cancelled, rolled back, or integrating (its commit is being
        made: roll it back once done)."""
        t = self._task(task_id)
        changes: list[Change] = []
        reason = "cancelled by operator"
        if t.status in ACTIVE and t.status is not S.INTEGRATING:
            self._cancel_active(t, reason, changes)
        elif t.status in QUEUED or t.status is S.BLOCKED:
            self._transition(t, S.CANCELLED, reason, changes)
        else:
            return []
        self._propagate(t, f"dependency {task_id} was cancelled", changes)
        return changes

    def scale(self, n: int | None, now: float) -> list[Change]:
        """Operator pool size (``1..pool_max``); ``None`` returns to autoscaling."""
        if n is not None and not 1 <= n <= self.pool_max:
            raise ValueError(f"pool size {n} out of range 1..{self.pool_max}")
        self._manual_target = n
        if n is None:
            self._pool_target = None  # the next tick emits the autoscaled target
            return []
        self._pool_target = n
        return [PoolTarget(n, "operator")]

    def set_budget(self, now: float, mission_usd: float | None = None, retry_usd: float | None = None) -> list[Change]:
        """Operator raises (or lowers) the budgets; alerts above the new spend re-arm."""
        if mission_usd is not None:
            self.mission_budget_usd = float(mission_usd)
        if retry_usd is not None:
            self.retry_budget_usd = float(retry_usd)
        self._alerted = {(k, thr) for k, thr in self._alerted
                         if (self._spent if k == "budget" else self._retry_spent)
                         >= thr * (self.mission_budget_usd if k == "budget" else self.retry_budget_usd)}
        return []

    def mark_rolled_back(self, task_id: str, now: float) -> tuple[list[str], list[Change]]:
        """Bookkeeping of an operator rollback (the revert itself is the workspace's job):
        ``done`` -> ``rolled_back``. Queued dependents are blocked and running ones
        cancelled, as for a failure. Returns the ``done`` transitive dependents, which were
        built on the reverted change and may be affected (for the operator to judge)."""
        t = self._task(task_id)
        changes: list[Change] = []
        self._transition(t, S.ROLLED_BACK, "operator rollback", changes)
        for d in t.dependents:
            d.unmet += 1
        affected = [d.tid for d in self._transitive(t) if d.status is S.DONE]
        self._propagate(t, f"dependency {task_id} rolled back", changes)
        return affected, changes

    # ------------------------------------------------------------------ queries

    def status(self, task_id: str) -> TaskStatus:
        return self._task(task_id).status

    def score(self, task_id: str) -> float:
        """Current priority score (the locked-file penalty as of now)."""
        t = self._task(task_id)
        if self._locks.keys().isdisjoint(t.files):
            return t.static_score
        return t.static_score - self._lock_penalty

    def shown_score(self, task_id: str) -> float:
        """The score an operator reads: the review's score in ``review`` mode; in the default
        mode the task's remaining critical path in minutes (its class is shown beside it, and
        orders first: :meth:`score` is the ordering key that combines both)."""
        if self._review_mode:
            return self.score(task_id)
        return self._task(task_id).path

    def ready_ids(self) -> list[str]:
        """Ready tasks in dispatch order: score descending, then task id."""
        ready = [tid for tid, t in self._tasks.items() if t.status is S.READY]
        return sorted(ready, key=lambda tid: (-self.score(tid), tid))

    def dependents(self, task_id: str) -> list[str]:
        return [d.tid for d in self._task(task_id).dependents]

    def transitive_dependents(self, task_id: str) -> list[str]:
        """Every task that depends on ``task_id`` directly or not, in topological order."""
        return [d.tid for d in self._transitive(self._task(task_id))]

    def is_finished(self) -> bool:
        """Every task terminal (done, failed, blocked, cancelled, rolled back)."""
        counts = self._counts
        return sum([counts[s] for s in TERMINAL]) == len(self._tasks)

    def counts(self) -> dict[TaskStatus, int]:
        return dict(self._counts)  # every status, in TaskStatus order

    def spend(self) -> Spend:
        return Spend(self._spent, self._retry_spent, self.mission_budget_usd, self.retry_budget_usd,
                          self._reserved)

    def budget_for_attempt(self, task_id: str) -> float:
        """What the mission budget has left for the attempt of ``task_id`` in flight: what no
        attempt holds, plus its own reservation (the task's expected cost). Never negative."""
        own = self._task(task_id).info.expected_cost_usd
        return max(self.mission_budget_usd - self._spent - self._reserved + own, 0.0)

    def task(self, task_id: str) -> TaskView:
        t = self._task(task_id)
        return TaskView(t.info, t.status, t.attempts, t.agent_id, t.retry_at, dict(t.failures),
                        t.last_failure, t.reason, estimate_minutes=t.estimate, path_minutes=t.path,
                        started_at=t.started_at, actual_seconds=t.actual_seconds)

    def critical_path_minutes(self, task_id: str) -> float:
        """The task's remaining critical path: its estimate plus the longest chain of
        dependents after it (estimate minutes, as raised by longer attempts)."""
        return self._task(task_id).path

    def speed(self, backend: str | None = None) -> float:
        """Observed seconds per estimated second of ``backend``'s succeeded attempts (all
        backends pooled when None); 1.0 until one succeeded."""
        rows = [self._speed[backend]] if backend in self._speed else (
            list(self._speed.values()) if backend is None else [])
        actual = sum(r[0] for r in rows)
        estimated = sum(r[1] for r in rows)
        return actual / estimated if estimated > 0 and actual > 0 else 1.0

    def duration_spread(self) -> float | None:
        """Standard deviation of log(actual / estimate) over succeeded attempts (how far
        durations stray from their estimates, as a lognormal sigma); None before three."""
        n, total, squares = self._log_ratios
        if n < 3:
            return None
        mean = total / n
        return math.sqrt(max(squares / n - mean * mean, 0.0))

    def estimate_seconds(self, task_id: str, backend: str | None = None) -> float:
        """What one attempt of the task is expected to take: its estimate scaled by the
        backend's observed speed."""
        return self._task(task_id).estimate * 60.0 * self.speed(backend)

    def dispatch_blocker(self) -> WaitReason | None:
        """Why ready tasks that hold no locked file are not dispatched, as of the last
        :meth:`dispatch`: paused, the budget held by attempts in flight, every idle agent's
        circuit open, or no idle agent. None when nothing holds them back."""
        if self.paused:
            return WaitReason("paused", f"paused: {self.pause_reason}" if self.pause_reason else "paused")
        if not self._counts[S.READY]:
            return None
        if self._budget_held:
            left = max(self.mission_budget_usd - self._spent, 0.0)
            return WaitReason("budget", f"budget: attempts in flight hold ${self._reserved:.2f} "
                                        f"of the ${left:.2f} left")
        if not self._idle:
            busy = len(self._agents)
            return WaitReason("agent", f"waiting for an agent ({busy} of {busy} busy)" if busy
                              else "waiting for an agent (none in the pool)")
        if not any(self._admits(a) for a in self._idle.values()):
            open_ = sorted({a.backend for a in self._idle.values()})
            return WaitReason("breaker", f"circuit open for backend {', '.join(open_)}")
        return None

    def wait_reason(self, task_id: str) -> WaitReason | None:
        """Why a queued task is not running (None for a task that is not waiting to run):
        its dependencies, its backoff deadline, a declared file held by another task, the
        budget, a pause or no free agent."""
        t = self._task(task_id)
        if t.status is S.PENDING:
            waiting = [d for d in t.info.dependencies if self._tasks[d].status is not S.DONE]
            return WaitReason("dependencies", f"waiting for {', '.join(waiting[:3])}"
                                              + (f" and {len(waiting) - 3} more" if len(waiting) > 3 else ""))
        if t.status is S.RETRY_WAIT:
            return WaitReason("backoff", f"backoff after {t.last_failure}", until=t.retry_at)
        if t.status is S.AWAITING_APPROVAL:
            return WaitReason("approval", "awaiting an operator's approval")
        if t.status is not S.READY:
            return None
        if self.paused:
            return self.dispatch_blocker()
        for path in t.files:
            lock = self._locks.get(path)
            if lock is not None:
                return WaitReason("lock", f"{path} held by task {lock[0]}", holder=lock[0])
        if self._spent + self._reserved + t.info.expected_cost_usd > self.mission_budget_usd:
            left = max(self.mission_budget_usd - self._spent, 0.0)
            return WaitReason("budget", f"budget: needs ${t.info.expected_cost_usd:.2f}, attempts in flight "
                                        f"hold ${self._reserved:.2f} of the ${left:.2f} left")
        return self.dispatch_blocker() or WaitReason("agent", "next in line for an agent")

    def task_ids(self) -> list[str]:
        """Every task id, in topological order."""
        return list(self._tasks)

    def agents(self) -> list[AgentView]:
        return [
            AgentView(a.agent_id, a.backend, a.state, a.task_id, a.load,
                      recent_files=frozenset(path for files, _ in a.recent for path in files),
                      recent_domains=tuple(domain for _, domain in a.recent))
            for a in sorted(self._agents.values(), key=lambda a: a.agent_id)
        ]

    def idle_agents(self) -> list[str]:
        return sorted(self._idle)

    def locks(self) -> list[LockView]:
        return [LockView(p, *v) for p, v in sorted(self._locks.items())]

    def breaker_state(self, backend: str) -> str:
        breaker = self._breakers.get(backend)
        return breaker.state if breaker else "closed"

    @property
    def pool_target(self) -> int | None:
        return self._pool_target

    # ------------------------------------------------------------------ internals

    def _task(self, task_id: str) -> _Task:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise UnknownTask(task_id) from None

    def _rescore_static(self, t: _Task) -> None:
        """Its priority score without the locked-file penalty (that one changes with the locks)."""
        info = t.info
        if not self._review_mode:
            t.static_score = critical_path_score(self._weights, priority=info.priority, remaining_path_minutes=t.path)
            return
        t.static_score = priority_score(
            self._weights,
            priority=info.priority,
            has_dependencies=bool(info.dependencies),
            dependents=len(t.dependents),
            duration_minutes=info.estimated_duration_minutes,
            file_locked=False,
        )

    def _update_paths(self, starts: Iterable[_Task]) -> list[_Task]:
        """Recompute the remaining path of ``starts`` and, while it changes, of the tasks
        they depend on (highest topological index first, so each is recomputed once after
        all its dependents). Incremental: only the ancestors whose path moved are visited.
        Returns ``starts`` and every task whose path changed, each once."""
        tasks = self._tasks
        out: dict[_Task, None] = dict.fromkeys(starts)
        heap = [(-t.topo, t.tid) for t in out]
        heapq.heapify(heap)
        queued = {t.tid for t in out}
        while heap:
            _, tid = heapq.heappop(heap)
            queued.discard(tid)
            t = tasks[tid]
            path = t.estimate + max((d.path for d in t.dependents), default=0.0)
            if path == t.path:
                continue
            t.path = path
            out[t] = None
            for dep in t.info.dependencies:
                if dep not in queued:
                    queued.add(dep)
                    heapq.heappush(heap, (-tasks[dep].topo, dep))
        return list(out)

    def learn_attempt(self, task_id: str, backend: str, seconds: float, succeeded: bool) -> None:
        """Learn from an attempt that ended before this scheduler existed (a resumed run):
        the same as :meth:`succeed` / :meth:`fail` learn from the attempts they end."""
        self._learn(self._task(task_id), backend, max(float(seconds), 0.0), succeeded)

    def _learn_duration(self, t: _Task, backend: str, now: float, succeeded: bool) -> None:
        started = t.started_at
        t.started_at = None
        if started is not None:
            self._learn(t, backend, max(now - started, 0.0), succeeded)

    def _learn(self, t: _Task, backend: str, actual: float, succeeded: bool) -> None:
        t.actual_seconds += actual
        if succeeded:
            if t.estimate > 0:
                observed = self._speed.setdefault(backend, [0.0, 0.0])
                observed[0] += actual
                observed[1] += t.estimate * 60.0
                if actual > 0:
                    log_ratio = math.log(actual / (t.estimate * 60.0))
                    stats = self._log_ratios
                    stats[0] += 1
                    stats[1] += log_ratio
                    stats[2] += log_ratio * log_ratio
            return
        ran_minutes = actual / 60.0 / self.speed(backend)
        if ran_minutes > t.estimate:
            t.estimate = ran_minutes
            for changed in self._update_paths([t]):
                self._rescore_static(changed)
                if changed.status is S.READY:
                    self._push_ready(changed)

    def _push_ready(self, t: _Task) -> None:
        """Give a ready task a new live heap entry (penalised while it is parked)."""
        t.version += 1
        score = t.static_score - (self._lock_penalty if t.parked else 0.0)
        heapq.heappush(self._ready_heap, (-score, t.tid, t.version))

    def _push_retry(self, t: _Task) -> None:
        """Give a task in ``retry_wait`` its live entry in the deadline heap (older ones are stale)."""
        t.version += 1
        heapq.heappush(self._retry_heap, (t.retry_at, t.tid, t.version))

    def _park(self, t: _Task) -> None:
        """Dispatch popped ``t`` by its unpenalised score while one of its files is locked:
        re-key it with the penalty, and index it so the release of its last lock re-keys it back."""
        t.parked = True
        for path in t.files:
            self._parked_by_path.setdefault(path, set()).add(t.tid)
        self._push_ready(t)

    def _unpark(self, t: _Task) -> None:
        t.parked = False
        parked = self._parked_by_path
        for path in t.files:
            waiting = parked.get(path)
            if waiting is not None:
                waiting.discard(t.tid)
                if not waiting:
                    del parked[path]

    def _ready_status(self, t: _Task) -> TaskStatus:
        """Where a task whose dependencies are all done goes: ``ready``, or
        ``awaiting_approval`` when the approval policy holds it."""
        info = t.info
        gated = needs_approval(self._approval_gate, info.priority, info.task_id, info.domain)
        return S.AWAITING_APPROVAL if gated else S.READY

    def _become_ready(self, t: _Task, reason: str, changes: list[Change]) -> None:
        status = self._ready_status(t)
        self._transition(t, status, reason if status is S.READY else f"{reason}; awaiting approval", changes)

    def _transition(self, t: _Task, new: TaskStatus, reason: str, changes: list[Change],
                    retry_at: float | None = None) -> None:
        """Move ``t`` along the edge ``t.status -> new`` and record it: the one place a task's
        status changes during a run. Raises :class:`IllegalTransition` for an edge that is
        not in :data:`~hybrid_tui.core.states.TRANSITIONS`."""
        old = t.status
        if new not in TRANSITIONS[old]:
            raise IllegalTransition(t.tid, old, new)
        self._set_status(t, new)
        t.reason = reason
        changes.append(TaskTransition(t.tid, old, new, reason, retry_at))

    def _set_status(self, t: _Task, new: TaskStatus) -> None:
        """Write ``t.status`` and keep the ready heap, parked index and counts in step.

        During a run only :meth:`_transition` calls it. :meth:`add_tasks` and :meth:`restore`
        also use it to place a task in its first status: a creation, not a change, so no
        record and no edge check.
        """
        old = t.status
        if old is S.READY and t.parked:
            self._unpark(t)
        t.status = new
        self._counts[old] -= 1
        self._counts[new] += 1
        if new is S.READY:
            self._push_ready(t)  # not parked: leaving ready unparks

    def _transitive(self, t: _Task) -> list[_Task]:
        seen: set[str] = set()
        out: list[_Task] = []
        stack = list(t.dependents)
        while stack:
            d = stack.pop()
            if d.tid in seen:
                continue
            seen.add(d.tid)
            out.append(d)
            stack.extend(d.dependents)
        out.sort(key=lambda x: x.topo)
        return out

    def _propagate(self, t: _Task, reason: str, changes: list[Change]) -> None:
        """A task can no longer become done: block queued dependents, cancel running ones."""
        for d in self._transitive(t):
            if d.status in QUEUED:
                self._transition(d, S.BLOCKED, reason, changes)
            elif d.status in ACTIVE:
                self._cancel_active(d, reason, changes)

    def _add_spend(self, cost: float, is_retry: bool, changes: list[Change]) -> None:
        if cost < 0:
            raise ValueError(f"negative cost {cost}")
        if not cost:
            return
        self._spent += cost
        self._budget_alerts("budget", self._spent, self.mission_budget_usd, changes)
        if is_retry:
            self._retry_spent += cost
            self._budget_alerts("retry_budget", self._retry_spent, self.retry_budget_usd, changes)

    def _budget_alerts(self, kind: str, spent: float, budget: float, changes: list[Change]) -> None:
        for thr in self.policies.budget_alerts:
            if spent >= thr * budget and (kind, thr) not in self._alerted:
                self._alerted.add((kind, thr))
                name = "mission budget" if kind == "budget" else "retry budget"
                changes.append(Alert(kind, alert_level(thr), f"{name}: ${spent:.2f} of ${budget:.2f} "
                                     f"({thr:.0%} reached)", {"threshold": thr, "spent_usd": spent,
                                                             "budget_usd": budget}))

    def _breaker_failure(self, backend: str, failure_type: str | None, now: float, changes: list[Change]) -> None:
        """``failure_type`` None: the task's own failure (the backend answered)."""
        breaker = self._breakers[backend]
        breaker.trial = False
        if failure_type not in BACKEND_FAILURES:
            return
        breaker.consecutive += 1
        if breaker.state == "half_open" or (
            breaker.state == "closed" and breaker.consecutive >= self.policies.breaker_threshold
        ):
            breaker.state = "open"
            breaker.opened_at = now
            why = f"{breaker.consecutive} consecutive backend failures (last: {failure_type})"
            changes.append(BreakerChanged(backend, "open", why))
            changes.append(Alert("breaker_open", "critical", f"backend {backend}: circuit open, {why}",
                                 {"backend": backend, "retry_at": now + self.policies.breaker_reset_seconds}))

    def _check_failure_rate(self, changes: list[Change]) -> None:
        finished = self._finished_attempts
        if self.paused or finished < self.policies.failure_rate_min_attempts:
            return
        rate = self._failed_attempts / finished
        if rate > self.policies.failure_rate_pause:
            reason = (f"failure rate {rate:.0%} over {finished} attempts exceeds "
                      f"{self.policies.failure_rate_pause:.0%}")
            changes.append(Alert("failure_rate", "critical", reason,
                                 {"rate": rate, "attempts": finished, "failed": self._failed_attempts}))
            changes.extend(self.pause(reason, 0.0))

    def _drop_agent(self, agent: _Agent) -> None:
        self._idle.pop(agent.agent_id, None)
        del self._agents[agent.agent_id]
        for files, domain in agent.recent:
            for path in files:
                self._file_agents[path].pop(agent.agent_id, None)
            self._domain_agents[domain].pop(agent.agent_id, None)


def _count_in(index: dict[str, dict[str, int]], key: str, agent_id: str) -> None:
    """One more of ``agent_id``'s recent tasks has ``key`` (a path or a domain)."""
    holders = index.setdefault(key, {})
    holders[agent_id] = holders.get(agent_id, 0) + 1


def _count_out(index: dict[str, dict[str, int]], key: str, agent_id: str) -> None:
    """One fewer of ``agent_id``'s recent tasks has ``key``; at zero the agent is no holder."""
    holders = index[key]
    if holders[agent_id] == 1:
        del holders[agent_id]
    else:
        holders[agent_id] -= 1


def _topological_order(infos: Mapping[str, TaskInfo], existing: Mapping[str, Any]) -> list[str]:
    """Kahn's algorithm over the new tasks ``infos`` (their other dependencies are in
    ``existing``). Raises :class:`DagError` naming the first unknown dependency (in input
    order) or one cycle."""
    indegree = dict.fromkeys(infos, 0)
    children: dict[str, list[str]] = {}  # new task -> new tasks depending on it
    for tid, info in infos.items():
        for dep in dict.fromkeys(info.dependencies):  # a dependency listed twice counts once
            if dep in infos:  # an edge among the new tasks (existing ones are placed already)
                indegree[tid] += 1
                children.setdefault(dep, []).append(tid)
            elif dep not in existing:
                raise DagError(f"task {tid!r} depends on unknown task {dep!r}")
    queue = deque(tid for tid, n in indegree.items() if n == 0)
    order: list[str] = []
    while queue:
        tid = queue.popleft()
        order.append(tid)
        for child in children.get(tid, ()):
            indegree[child] -= 1
            if indegree[child] == 0:
                queue.append(child)
    if len(order) < len(infos):
        cycle = " -> ".join(_find_cycle(infos, indegree))
        raise DagError(f"dependency cycle: {cycle} (each task depends on the next)")
    return order


def _find_cycle(infos: Mapping[str, TaskInfo], indegree: Mapping[str, int]) -> list[str]:
    # Every task left with indegree > 0 has a dependency also left: walk dependencies
    # until one repeats.
    left = {tid for tid, n in indegree.items() if n > 0}
    node = min(left)
    path: list[str] = []
    index: dict[str, int] = {}
    while node not in index:
        index[node] = len(path)
        path.append(node)
        node = next(d for d in infos[node].dependencies if d in left)
    return path[index[node]:] + [node]
