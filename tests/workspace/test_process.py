"""workspace.process: no process an attempt's command starts survives the command, whatever
it does (``nohup ... &``, ``setsid``, holding the output pipe), and output of any size or a
prompt of any size does not break it. Used by validation (tested here through run_checks) and
by the cli agent backend (tests/agents/test_cli_agent.py)."""

from __future__ import annotations

import os
import shlex
import sys
import time
import uuid
from pathlib import Path

import anyio
import psutil

from hybrid_tui.spec.models import Validation
from hybrid_tui.workspace.process import HeadTailLog, run_process
from hybrid_tui.workspace.validation import run_checks

PY = shlex.quote(sys.executable)


def sleeper_marker() -> str:
    """A ``sleep`` argument no other process on the machine uses (GNU sleep takes decimals)."""
    return f"600.{uuid.uuid4().int % 10**9:09d}"


def sleepers(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if marker in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def gone(marker: str, within: float = 10.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if not sleepers(marker):
            return True
        time.sleep(0.05)
    return False


def checks(*commands: str, timeout: float = 60) -> Validation:
    return Validation(commands=list(commands), timeout_seconds=timeout)


def test_a_nohup_child_left_behind_by_a_successful_command_is_killed(tmp_path: Path):
    marker = sleeper_marker()
    result = anyio.run(lambda: run_checks(checks(f"nohup sleep {marker} >/dev/null 2>&1 & echo started"), tmp_path))
    assert result.ok and "started" in result.output
    assert gone(marker), "the nohup'd sleep outlived its validation command"


def test_a_setsid_daemon_that_left_the_session_is_killed(tmp_path: Path):
    marker = sleeper_marker()
    # setsid in the background, the command exits at once: the daemon is reparented to init
    # before any poll could see it as a descendant; its environment tag still names it.
    command = f"setsid sleep {marker} </dev/null >/dev/null 2>&1 & exit 0"
    result = anyio.run(lambda: run_checks(checks(command), tmp_path))
    assert result.ok
    assert gone(marker), "the setsid daemon outlived its validation command"


def test_a_child_holding_stdout_does_not_turn_success_into_a_timeout(tmp_path: Path):
    marker = sleeper_marker()
    command = f"sleep {marker} & echo finished; exit 0"  # the sleep keeps the output pipe open
    result = anyio.run(lambda: run_checks(checks(command, timeout=30), tmp_path))
    assert (result.ok, result.failure_type) == (True, None), result.output
    assert result.commands[0].exit_code == 0 and not result.commands[0].timed_out
    assert "finished" in result.output
    assert gone(marker)


def test_fifty_megabytes_of_output_are_capped_in_memory_and_in_the_log(tmp_path: Path):
    log = tmp_path / "check.log"
    command = f"{PY} -c \"import sys; sys.stdout.write('x' * 50_000_000); print('THE-END')\""
    result = anyio.run(lambda: run_checks(checks(command), tmp_path, log_path=log, log_cap_bytes=1_000_000))
    assert result.ok
    assert len(result.output) < 100_000 and result.output.rstrip().endswith("THE-END")
    assert "bytes truncated" in result.output
    assert log.stat().st_size < 1_100_000


def test_a_200_kib_prompt_goes_through_stdin_with_no_argument_limit(tmp_path: Path):
    prompt = ("p" * 1023 + "\n").encode() * 200  # 200 KiB, over the 128 KiB one argument may hold
    out = bytearray()
    outcome = anyio.run(lambda: run_process(
        [sys.executable, "-c", "import sys; print(len(sys.stdin.buffer.read()))"],
        cwd=tmp_path, env=dict(os.environ), timeout=60, on_stdout=out.extend, stdin_data=prompt,
    ))
    assert outcome.exit_code == 0 and out.decode().strip() == str(200 * 1024)


def test_a_command_that_ignores_its_stdin_is_not_blocked_by_a_big_prompt(tmp_path: Path):
    out = bytearray()
    outcome = anyio.run(lambda: run_process(
        ["bash", "-c", "echo ignored"], cwd=tmp_path, env=dict(os.environ), timeout=30,
        on_stdout=out.extend, stdin_data=b"x" * 5_000_000,
    ))
    assert (outcome.exit_code, outcome.timed_out) == (0, False) and out == b"ignored\n"


def test_a_stop_asked_by_the_caller_kills_the_tree_at_once(tmp_path: Path):
    marker = sleeper_marker()
    out = bytearray()
    command = f"sleep {marker} & echo COST-OVER; sleep {marker}"
    outcome = anyio.run(lambda: run_process(
        ["bash", "-c", command], cwd=tmp_path, env=dict(os.environ), timeout=60, on_stdout=out.extend,
        should_stop=lambda: "over the cap" if b"COST-OVER" in out else None,
    ))
    assert (outcome.stopped, outcome.exit_code, outcome.timed_out) == ("over the cap", None, False)
    assert gone(marker)


def test_the_head_tail_log_keeps_both_ends_and_says_what_it_dropped(tmp_path: Path):
    path = tmp_path / "a.log"
    log = HeadTailLog(path, cap=1000)
    log.write(b"HEAD" + b"m" * 10_000)
    log.write(b"z" * 496 + b"TAIL")
    log.close()
    text = path.read_text()
    assert text.startswith("HEAD") and text.endswith("TAIL")
    assert "9504 bytes of output dropped" in text  # 10504 written, 1000 kept
    assert len(text) < 1200
