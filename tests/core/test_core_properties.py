"""Property tests: random DAGs, agents, outcomes and operator commands; the scheduler's
invariants hold after every step and, with pauses lifted, every mission finishes."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybrid_tui.core import ACTIVE, DEAD, CancelRunning, CoreError, Scheduler, TaskInfo, TaskStatus
from hybrid_tui.core.scheduler import ENVIRONMENT_FAILURES
from hybrid_tui.spec.models import PoliciesSection

S = TaskStatus
CAP = 1.0  # the per-attempt dollar cap the shell enforces
FILES = [f"src/f{i}.py" for i in range(12)]
DOMAINS = ["api", "db", "ui"]
PRIORITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW"]
# environment_error pauses the run on purpose (the toolchain is broken): these shells never
# resume, so it has its own tests (tests/core/test_core_environment.py).
FAILURES = sorted(set(PoliciesSection().retries) - ENVIRONMENT_FAILURES)
PROPERTY_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def random_dag(n: int, rng: random.Random) -> list[TaskInfo]:
    tasks = []
    for i in range(n):
        deps = tuple(f"t{j}" for j in sorted(rng.sample(range(i), min(i, rng.choice([0, 0, 1, 1, 2, 3])))))
        files = tuple(rng.sample(FILES, rng.choice([0, 1, 1, 2, 3])))
        tasks.append(TaskInfo(f"t{i}", rng.choice(PRIORITIES), rng.choice(DOMAINS), deps, files,
                              rng.uniform(0, 60), rng.uniform(0, CAP / 2)))
    return tasks


class Shell:
    """A minimal shell: remembers what runs, settles cancelled attempts, keeps the clock."""

    def __init__(self, sched: Scheduler, rng: random.Random) -> None:
        self.s, self.rng = sched, rng
        self.now = 0.0
        self.running: dict[str, int] = {}
        self.unsettled: list[tuple[str, int]] = []
        self.agent_seq = 0
        self.tasks = {tid: sched.task(tid).info for tid in sched.task_ids()}

    def apply(self, changes) -> None:
        for c in changes:
            if isinstance(c, CancelRunning):
                assert self.running.pop(c.task_id) == c.attempt
                self.unsettled.append((c.task_id, c.attempt))

    def add_agent(self) -> None:
        self.agent_seq += 1
        self.apply(self.s.add_agent(f"a{self.agent_seq}", self.now, backend=self.rng.choice(["replay", "sim"])))

    def dispatch(self) -> None:
        dispatches, changes = self.s.dispatch(self.now, limit=self.rng.choice([None, 1, 6]))
        self.apply(changes)
        for d in dispatches:
            assert d.task_id not in self.running, "dispatched a task that is already running"
            self.running[d.task_id] = d.attempt

    def complete(self, success_rate: float) -> None:
        tid = self.rng.choice(sorted(self.running))
        cost = self.rng.uniform(0, CAP)
        if self.rng.random() < success_rate:
            if self.rng.random() < 0.3:
                self.apply(self.s.advance(tid, S.VALIDATING, self.now))
            del self.running[tid]
            self.apply(self.s.succeed(tid, self.now, cost))
        else:
            kind = self.rng.choice(FAILURES)
            retry_after = self.rng.choice([None, 3.0]) if kind == "rate_limited" else None
            del self.running[tid]
            self.apply(self.s.fail(tid, kind, self.now, cost, "boom", retry_after=retry_after))

    def settle(self) -> None:
        tid, attempt = self.unsettled.pop(0)
        self.apply(self.s.settle_cancelled(tid, attempt, self.rng.uniform(0, CAP), self.now))

    def tick(self, jump: float) -> None:
        self.now += jump
        self.apply(self.s.tick(self.now))

    def operator(self) -> None:
        s, rng, now = self.s, self.rng, self.now
        op = rng.choice(["pause", "resume", "retry", "cancel", "scale", "rollback", "lock", "agent+", "agent-"])
        ids = sorted(self.tasks)
        if op == "pause":
            self.apply(s.pause("operator", now))
        elif op == "resume":
            self.apply(s.resume(now))
        elif op == "retry":
            dead = [t for t in ids if s.status(t) in DEAD]
            if dead:
                try:
                    self.apply(s.retry(rng.choice(dead), now))
                except CoreError as e:
                    assert "retry" in str(e)
        elif op == "cancel":
            self.apply(s.cancel_dependents(rng.choice(ids), now))
        elif op == "scale":
            self.apply(s.scale(rng.choice([None, 1, s.pool_max]), now))
        elif op == "rollback":
            done = [t for t in ids if s.status(t) is S.DONE]
            if done:
                affected, changes = s.mark_rolled_back(rng.choice(done), now)
                self.apply(changes)
                assert all(s.status(t) is S.DONE for t in affected)
        elif op == "lock" and self.running:
            tid = rng.choice(sorted(self.running))
            granted, changes = s.request_lock(tid, rng.choice(FILES), now)
            self.apply(changes)
            if not granted:
                del self.running[tid]
                self.apply(s.fail(tid, "file_locked", now, 0.0, "undeclared file is locked"))
        elif op == "agent+":
            self.add_agent()
        elif op == "agent-" and s.agents():
            self.apply(s.remove_agent(rng.choice(s.agents()).agent_id, now))

    def check(self) -> None:
        s = self.s
        counts = s.counts()
        assert sum(counts.values()) == len(self.tasks)
        active = {st_: n for st_, n in counts.items() if st_ in ACTIVE}
        assert sum(active.values()) == len(self.running)
        locks = {lk.path: lk.task_id for lk in s.locks()}
        for tid in self.running:
            assert s.status(tid) in ACTIVE, f"{tid} runs twice or not at all"
            for dep in self.tasks[tid].dependencies:
                assert s.status(dep) is S.DONE, f"{tid} runs before its dependency {dep} is done"
            for path in self.tasks[tid].files:
                assert locks.get(path) == tid, f"{tid} runs without holding {path}"
        for path, holder in locks.items():
            assert holder in self.running, f"lock on {path} belongs to {holder}, which is not running"
        busy = [a.task_id for a in s.agents() if a.task_id is not None]
        assert sorted(busy) == sorted(self.running), "each running task has exactly one agent"
        spend = s.spend()
        assert spend.total_usd <= spend.mission_budget_usd + CAP + 1e-9

    def drain(self, success_rate: float) -> None:
        """Lift pauses, settle, and run until nothing is left: the mission must finish."""
        for _ in range(200_000):
            if self.s.is_finished() and not self.running:
                break
            if self.s.paused:
                self.apply(self.s.resume(self.now))
            if not self.s.agents():
                self.add_agent()
            while self.unsettled:
                self.settle()
            self.apply(self.s.tick(self.now))
            self.dispatch()
            self.check()
            if self.running:
                self.complete(success_rate)
            elif not self.s.is_finished():
                deadline = self.s.next_deadline()
                assert deadline is not None, f"stuck: {self.s.counts()} ready={self.s.ready_ids()[:5]}"
                self.tick(max(deadline - self.now, 0.0))
            self.check()
        assert self.s.is_finished(), self.s.counts()
        assert not self.running


def build(n, dag_seed, agents, budget, retry_budget, policies=None):
    rng = random.Random(dag_seed)
    sched = Scheduler(random_dag(n, rng), policies=policies or PoliciesSection(), mission_budget_usd=budget,
                      retry_budget_usd=retry_budget, pool_min=1, pool_max=8, rng=random.Random(dag_seed + 1),
                      attempt_cost_cap=CAP)
    shell = Shell(sched, random.Random(dag_seed + 2))
    for _ in range(agents):
        shell.add_agent()
    return shell


@PROPERTY_SETTINGS
@given(n=st.integers(1, 200), dag_seed=st.integers(0, 10**6), agents=st.integers(1, 8),
       budget=st.floats(1, 60), retry_budget=st.floats(0.1, 10), success_rate=st.floats(0.3, 1.0))
def test_invariants_hold_under_random_operations(n, dag_seed, agents, budget, retry_budget, success_rate):
    shell = build(n, dag_seed, agents, budget, retry_budget)
    rng = shell.rng
    shell.check()
    for _ in range(3 * n + 20):
        roll = rng.random()
        if roll < 0.3:
            shell.dispatch()
        elif roll < 0.65 and shell.running:
            shell.complete(success_rate)
        elif roll < 0.8:
            shell.tick(rng.choice([0.5, 5.0, 60.0, 400.0]))
        elif roll < 0.85 and shell.unsettled:
            shell.settle()
        elif roll < 0.95:
            shell.operator()
        shell.check()
    shell.drain(success_rate)


@PROPERTY_SETTINGS
@given(n=st.integers(1, 300), dag_seed=st.integers(0, 10**6), agents=st.integers(1, 8),
       budget=st.floats(1, 200), success_rate=st.floats(0.0, 1.0))
def test_without_pause_every_mission_reaches_all_terminal(n, dag_seed, agents, budget, success_rate):
    shell = build(n, dag_seed, agents, budget, 5.0, PoliciesSection(failure_rate_pause=1.0))
    shell.drain(success_rate)
    s = shell.s
    assert not s.paused
    for tid in s.task_ids():
        if s.status(tid) is S.BLOCKED:  # blocked only behind a dead dependency
            assert any(s.status(d) in DEAD for d in s.task(tid).info.dependencies)
