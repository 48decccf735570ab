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


def test_a_validation_failure_is_one_short_headless_line_with_its_first_and_last_lines():
    """A failed validation's event carries its output (up to 64 KB): headless printed it as
    one line of thousands of characters. Now the first line, the last lines that fit, and how
    many were left out."""
    from hybrid_tui.views.headless import HEADLINE_CHARS, headline

    output = "validation_failed: $ pytest -q\n" + "".join(f"tests/test_x.py:{n}: AssertionError\n" for n in range(500)) \
        + "\x1b[31m1 failed, 3 passed in 0.21s\x1b[0m\n"
    line = headline(output)
    assert "\n" not in line and "\x1b" not in line and len(line) <= HEADLINE_CHARS
    assert line.startswith("validation_failed: $ pytest -q / [49")
    assert line.endswith("tests/test_x.py:499: AssertionError / ␛[31m1 failed, 3 passed in 0.21s␛[0m")
    assert headline("$ lint\nsrc/a.py:1: E501\n[exit code 1]") == "$ lint / src/a.py:1: E501 / [exit code 1]"
    assert headline("one line") == "one line"
    assert len(headline("x" * 5000)) <= HEADLINE_CHARS
