"""Attempt time limits, counted in time the coordinator could run.

Room: runtime. Reads the monotonic clock; cancels the scope of an attempt past its limit (the
attempt then ends as ``timeout``, see ``attempt.py``). Touches no store.

A deadline on the wall (or monotonic) clock counts a suspension as work time: a coordinator
stopped with SIGSTOP for 30 s, or a laptop asleep, found every attempt past a 20 s limit when
it woke, though none of them had run. So one ticker watches the clock: a tick that arrives
more than :data:`SUSPENDED_AFTER_SECONDS` late means the process did not run, and that time
is left out of every attempt's age.
"""

from __future__ import annotations

import time
from typing import Callable

import anyio

from hybrid_tui.runtime.context import RunningAttempt

__all__ = ["AttemptClock", "SUSPENDED_AFTER_SECONDS"]

SUSPENDED_AFTER_SECONDS = 1.0  # a tick this late: the process was stopped (or starved)
MAX_TICK_SECONDS = 0.25


class AttemptClock:
    """Ages the running attempts in time the coordinator ran, and cancels those past ``limit``."""

    def __init__(self, limit_seconds: Callable[[], float], running: dict[str, RunningAttempt],
                 on_suspended: Callable[[float], None] = lambda seconds: None):
        self.limit = limit_seconds  # read at each tick: the mission's setting, changeable while running
        self.running = running
        self.on_suspended = on_suspended
        self.lost = 0.0  # seconds the process was found not running

    def now(self) -> float:
        return time.monotonic() - self.lost

    def start(self, attempt: RunningAttempt) -> None:
        attempt.active_started = self.now()

    def notice(self, late_by: float) -> None:
        """A tick came ``late_by`` seconds after it was due."""
        if late_by >= SUSPENDED_AFTER_SECONDS:
            self.lost += late_by
            self.on_suspended(late_by)

    def expire(self) -> None:
        """Cancel the attempts past the limit (checked after :meth:`notice`, so a wake-up from a
        suspension never times out what could not run)."""
        now, limit = self.now(), self.limit()
        for attempt in self.running.values():
            if not attempt.finishing and now - attempt.active_started >= limit:
                attempt.scope.cancel()

    async def run(self) -> None:
        while True:
            tick = min(MAX_TICK_SECONDS, self.limit() / 5)
            due = time.monotonic() + tick
            await anyio.sleep(tick)
            self.notice(time.monotonic() - due)
            self.expire()
