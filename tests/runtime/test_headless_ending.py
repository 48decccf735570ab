"""Headless mode's last line names what the run is when the coordinator returns: a run a
policy paused (exit 3) read "run … finished (exit 3)", which sent users to `report` for a
run `resume` would carry on."""
import io

import pytest

from hybrid_tui.store import writes
from hybrid_tui.views.headless import run_headless


class EndsAs:
    """A coordinator stand-in: stores the run's end as the real one does, returns its code."""

    def __init__(self, store, status: str, reason: str, code: int):
        self.store, self.status, self.reason, self.code = store, status, reason, code

    async def run(self) -> int:
        with self.store.write():
            writes.set_run_status("r1", self.status, self.reason, finished_at=1.0)
        return self.code

    def request_stop(self, reason: str) -> None:
        pass


@pytest.mark.parametrize(("status", "reason", "code", "expected"), [
    ("paused", "planning failed: 002-more", 3, "run r1 paused (planning failed: 002-more) (exit 3)"),
    ("stopped", "operator", 3, "run r1 stopped (exit 3)"),
    ("finished", "", 0, "run r1 finished (exit 0)"),
])
def test_the_last_headless_line_says_whether_the_run_finished_paused_or_stopped(
        store_with_run, status, reason, code, expected):
    out = io.StringIO()
    assert run_headless(store_with_run, "r1", EndsAs(store_with_run, status, reason, code), out=out) == code
    assert out.getvalue().splitlines()[-1].startswith(expected + ":")
