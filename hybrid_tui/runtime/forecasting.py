"""The run's time forecast and why its ready tasks wait, kept in the store for every view.

Room: runtime. Called by the coordinator loop:

- :meth:`RunForecaster.note_wait` after each dispatch round, in that turn's transaction:
  stores the scheduler's dispatch blocker (no free agent, paused, budget, open circuit) on
  the run row when it changed. O(1): the per-task reasons (a file held by task X, a
  backoff deadline) are derived by ``store.queries.wait_reasons`` from rows the store
  already has.
- :meth:`RunForecaster.maybe_refresh` once per loop turn: when tasks ended since the last
  forecast (or none was made yet), it snapshots the scheduler (loop thread) and runs the
  ``estimate`` simulator from that state (:mod:`hybrid_tui.costs.forecast`) in a worker
  thread, then stores the forecast (the run's first is ``kind = start``, which ``report``
  compares with the actual duration) and a ``run.forecast`` event. Forecasting is held to
  :data:`TIME_SHARE` of the coordinator's time: a refresh starts only when the time spent
  forecasting so far plus what this one should cost (the tasks left times the simulated
  runs times the last measured cost of one simulated task) fits in that share of the time
  since the coordinator started. A mission of real agents gets its first forecast within
  its first seconds; a benchmark of instant agents finishes before a forecast would pay.
"""

from __future__ import annotations

import time
from typing import Any

import anyio

from hybrid_tui.core import TERMINAL, WaitReason
from hybrid_tui.costs.forecast import RunSnapshot, TimeForecast, forecast_time, sample_count, snapshot
from hybrid_tui.store import queries, writes
from hybrid_tui.runtime.context import RunContext

MIN_INTERVAL_SECONDS = 2.0  # at most one refresh this often
TIME_SHARE = 0.05  # forecasting may take this fraction of the coordinator's wall time
FIRST_GUESS_SECONDS_PER_TASK = 1e-4  # one task through one simulated run, until measured
QUIET_EVENT_KINDS = frozenset({"", "agent", "paused"})  # the normal state, or told by run.paused already


class RunForecaster:
    """``clock`` measures what forecasting costs (``time.perf_counter``); ``threaded=False``
    computes each forecast on the loop, at once (the demo capture: a virtual clock and
    repeatable screens)."""

    def __init__(self, ctx: RunContext, clock: Any = time.perf_counter, *, threaded: bool = True) -> None:
        self.ctx = ctx
        self._perf = clock
        self._threaded = threaded
        self._wait: tuple[str, str] | None = None
        self._ended_seen = -1
        self._next_at = 0.0
        self._began: float | None = None
        self._spent = 0.0  # seconds spent forecasting
        self._per_task = FIRST_GUESS_SECONDS_PER_TASK
        self._running = False
        self._has_start = queries.start_forecast(ctx.run_id) is not None
        self.refreshes = 0

    # ------------------------------------------------------------------ wait reason
    def note_wait(self, now: float) -> None:
        """Store the scheduler's dispatch blocker when it changed (inside the open transaction)."""
        blocker: WaitReason | None = self.ctx.scheduler.dispatch_blocker()
        key = (blocker.kind, blocker.message) if blocker is not None else ("", "")
        if key == self._wait:
            return
        self._wait = key
        with self.ctx.transaction():
            writes.set_run_wait_reason(self.ctx.run_id, *key)
            if key[0] not in QUIET_EVENT_KINDS:
                self.ctx.events.add("run.waiting", key[1], wait=key[0])

    # ------------------------------------------------------------------ forecast
    def maybe_refresh(self, now: float, task_group: Any, agents: int) -> None:
        """Start a refresh in ``task_group`` when one is due (see the module docstring)."""
        scheduler = self.ctx.scheduler
        if self._running or scheduler is None:
            return
        counts = scheduler.counts()  # a copy of a dozen counters: cheap on every turn
        total = sum(counts.values())
        if not total:
            return
        ended = sum(counts[s] for s in TERMINAL)
        if ended == total or (ended == self._ended_seen and self._has_start):
            return  # finished, or nothing ended since the last forecast
        perf = self._perf()
        if self._began is None:
            self._began = perf
        left = total - ended
        expected = left * (1 + sample_count(left)) * self._per_task
        if perf < self._next_at or self._spent + expected > TIME_SHARE * (perf - self._began):
            return
        self._ended_seen = ended
        self._running = True
        snap = snapshot(scheduler, now, agents=agents, backend=self.ctx.backend_name)
        if self._threaded:
            task_group.start_soon(self._refresh, snap)
        else:
            self._refresh_now(snap)

    async def _refresh(self, snap: RunSnapshot) -> None:
        started, result = self._perf(), None
        try:
            result = await anyio.to_thread.run_sync(forecast_time, snap)
            self.store(result)
        finally:
            self._account(started, result)

    def _refresh_now(self, snap: RunSnapshot) -> None:
        started, result = self._perf(), None
        try:
            result = forecast_time(snap)
            self.store(result)
        finally:
            self._account(started, result)

    def _account(self, started: float, result: TimeForecast | None) -> None:
        cost = self._perf() - started
        if result is not None:
            self._per_task = cost / max(result.tasks_left * (1 + result.samples), 1)
        self._spent += cost
        self._next_at = self._perf() + MIN_INTERVAL_SECONDS
        self._running = False

    def store(self, result: TimeForecast) -> None:
        kind = "update" if self._has_start else "start"
        with self.ctx.transaction():
            writes.add_forecast(self.ctx.run_id, kind, {
                "ts": result.made_at, "remaining_seconds": result.remaining_seconds,
                "low_seconds": result.low_seconds, "high_seconds": result.high_seconds,
                "tasks_left": result.tasks_left, "speed": result.speed, "spread": result.spread,
                "samples": result.samples,
            })
            self.ctx.events.add(
                "run.forecast",
                f"{kind}: {result.tasks_left} tasks left, about {_duration(result.remaining_seconds)} "
                f"({_duration(result.low_seconds)} to {_duration(result.high_seconds)})",
                forecast=kind, remaining_seconds=round(result.remaining_seconds, 3),
                finish_at=round(result.finish_at, 3), low_seconds=round(result.low_seconds, 3),
                high_seconds=round(result.high_seconds, 3), tasks_left=result.tasks_left)
        self._has_start = True
        self.refreshes += 1


def _duration(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
