"""run_checks: real subprocesses, timeouts and memory caps kill the whole process tree."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import psutil
import pytest

from hybrid_tui.spec.models import Validation
from hybrid_tui.workspace.validation import kill_orphaned_checks, run_checks

PY = shlex.quote(sys.executable)
SECRET = "sk-ant-TEST-recognisable-4242"


def run(validation: Validation, cwd: Path, **kwargs):
    return anyio.run(lambda: run_checks(validation, cwd, **kwargs))


def wait_gone(pid: int, within: float = 15.0) -> bool:
    """True once ``pid`` no longer runs (a zombie awaiting its reaper counts as gone)."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def forking_command(pid_file: Path) -> str:
    """A command whose grandchild sleeps for a long time and writes its pid."""
    return f"(sleep 600 & echo $! > {shlex.quote(str(pid_file))}; wait) ; echo NOT-REACHED-MARK | tr A-Z a-z"


def test_passing_commands(tmp_path: Path) -> None:
    result = run(Validation(commands=["echo one", f"{PY} -c 'print(40 + 2)'"]), tmp_path)
    assert result.ok and result.failure_type is None
    assert [c.exit_code for c in result.commands] == [0, 0]
    assert "one\n" in result.output and "42\n" in result.output


def test_failure_stops_at_first_failing_command_and_logs_everything(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "attempt.log"
    result = run(
        Validation(commands=["echo before", "echo boom >&2; exit 3", "touch ran-after"]), tmp_path, log_path=log
    )
    assert not result.ok and result.failure_type == "validation_failed"
    assert [c.exit_code for c in result.commands] == [0, 3]
    assert "boom" in result.output and "[exit code 3]" in result.output
    assert not (tmp_path / "ran-after").exists()
    assert "boom" in log.read_text() and "$ echo before" in log.read_text()


def test_security_checks_run_too(tmp_path: Path) -> None:
    result = run(Validation(commands=["true"], security_checks=["echo insecure; exit 1"]), tmp_path)
    assert result.failure_type == "validation_failed"
    assert [c.command for c in result.commands] == ["true", "echo insecure; exit 1"]


def test_timeout_kills_forked_grandchild(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    spawned: list[int] = []
    result = run(
        Validation(commands=[forking_command(pid_file), "touch not-reached"], timeout_seconds=1.5),
        tmp_path,
        on_spawn=spawned.append,
    )
    assert result.failure_type == "timeout" and not result.ok
    assert result.commands[0].timed_out and result.commands[0].exit_code is None
    assert "timed out" in result.output and "not-reached-mark" not in result.output
    assert not (tmp_path / "not-reached").exists()
    grandchild = int(pid_file.read_text())
    assert wait_gone(grandchild), "the grandchild survived the timeout"
    assert len(spawned) == 1 and wait_gone(spawned[0])


def test_background_process_left_by_a_passing_command_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "daemon.pid"
    result = run(Validation(commands=[f"sleep 600 & echo $! > {pid_file}; echo started"]), tmp_path)
    assert result.ok and "started" in result.output
    assert wait_gone(int(pid_file.read_text()))


def test_memory_cap_kills_the_tree(tmp_path: Path) -> None:
    hog = f"{PY} -c 'import time; x = bytearray(300 * 1024 * 1024); time.sleep(600)'"
    result = run(Validation(commands=[f"{hog} & wait"], timeout_seconds=120), tmp_path, memory_cap_mb=100)
    assert result.failure_type == "resource_exhausted"
    assert result.commands[0].killed_for_memory
    assert "memory above the cap of 100 MB" in result.output


def test_output_is_capped_in_result_but_complete_in_log(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    command = f"{PY} -c \"print('HEAD'); print('x' * 200000); print('TAIL')\""
    result = run(Validation(commands=[command]), tmp_path, log_path=log, output_cap_bytes=2000)
    assert result.ok
    assert len(result.output) < 2200
    assert "HEAD" in result.output and "TAIL" in result.output
    assert "bytes truncated ...]" in result.output
    assert log.read_text().count("x") >= 200000


def test_a_runaway_command_cannot_grow_its_log_past_the_cap(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    command = f"{PY} -c \"print('x' * 300000); print('TAIL')\""
    result = run(Validation(commands=[command]), tmp_path, log_path=log, log_cap_bytes=10_000)
    assert result.ok and "TAIL" in result.output  # the capped result still shows the end
    text = log.read_text()
    assert len(text) < 10_200 and text.rstrip().endswith("[log capped at 10000 bytes; further output dropped]")


def test_secrets_are_stripped_from_the_child_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", SECRET)
    # The keys the codex and other OpenAI-backed CLI presets sign in with are secrets too.
    monkeypatch.setenv("CODEX_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    log = tmp_path / "secret.log"
    result = run(
        Validation(commands=["env; echo key=[$ANTHROPIC_API_KEY] token=[$ANTHROPIC_AUTH_TOKEN]"
                             " codex=[$CODEX_API_KEY] openai=[$OPENAI_API_KEY] extra=$EXTRA"]),
        tmp_path,
        log_path=log,
        env={"EXTRA": "visible", "ANTHROPIC_API_KEY": SECRET},
    )
    assert result.ok
    assert "key=[] token=[] codex=[] openai=[] extra=visible" in result.output
    assert SECRET not in result.output and SECRET not in log.read_text()


def test_cancelling_the_caller_kills_the_tree(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    spawned: list[int] = []

    async def main() -> None:
        with anyio.move_on_after(1.0) as scope:
            await run_checks(
                Validation(commands=[forking_command(pid_file)], timeout_seconds=600), tmp_path, on_spawn=spawned.append
            )
        assert scope.cancelled_caught

    anyio.run(main)
    assert wait_gone(int(pid_file.read_text())), "the grandchild survived cancellation"
    assert wait_gone(spawned[0])


def test_no_commands_is_a_pass(tmp_path: Path) -> None:
    result = run(Validation(), tmp_path)
    assert result.ok and result.commands == [] and result.output == ""


def test_daemon_escaping_the_process_group_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "daemon.pid"
    # setsid puts the sleeper in a new session, out of reach of the process-group kill;
    # the tree watcher has seen it while bash was still alive.
    command = f"setsid sleep 600 & echo $! > {pid_file}; sleep 1; echo done"
    result = run(Validation(commands=[command], timeout_seconds=60), tmp_path)
    assert result.ok and "done" in result.output
    assert wait_gone(int(pid_file.read_text())), "the setsid daemon survived"


def test_checks_left_running_by_a_killed_coordinator_are_killed_at_restart(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    log = logs / "t.1.log"
    script = (
        "import anyio, pathlib\n"
        "from hybrid_tui.spec.models import Validation\n"
        "from hybrid_tui.workspace.validation import run_checks\n"
        f"anyio.run(lambda: run_checks(Validation(commands=['sleep 300 & sleep 300'], timeout_seconds=600), "
        f"pathlib.Path({str(tmp_path)!r}), log_path=pathlib.Path({str(log)!r})))\n"
    )
    coordinator = subprocess.Popen([sys.executable, "-c", script])
    group_file = logs / "t.1.log.pgid"
    end = time.monotonic() + 30
    while not group_file.exists() and time.monotonic() < end:
        time.sleep(0.05)
    pgid = int(group_file.read_text())
    coordinator.send_signal(signal.SIGKILL)
    coordinator.wait()
    members = [p for p in psutil.process_iter() if _pgid(p.pid) == pgid]
    assert members, "the validation group outlives its coordinator"

    assert kill_orphaned_checks(logs) == [pgid]
    assert all(wait_gone(p.pid) for p in members)
    assert not group_file.exists()


def test_a_group_file_older_than_its_process_is_a_reused_pid_and_left_alone(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        group_file = logs / "t.1.log.pgid"
        group_file.write_text(str(stranger.pid))
        old = time.time() - 3600  # written an hour before the process started
        os.utime(group_file, (old, old))
        assert kill_orphaned_checks(logs) == []
        assert stranger.poll() is None and not group_file.exists()
    finally:
        stranger.kill()
        stranger.wait()


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_commands_run_in_the_users_environment_with_the_workspace_path_first(tmp_path: Path, monkeypatch) -> None:
    """Issue 17: hybrid-tui's own interpreter is not put on PATH; [workspace] path and env are."""
    from hybrid_tui.workspace.validation import workspace_environment

    tools = tmp_path / ".venv" / "bin"
    tools.mkdir(parents=True)
    (tools / "project-tool").write_text("#!/bin/sh\necho project tool $PROJECT_MODE\n")
    (tools / "project-tool").chmod(0o755)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    result = run(Validation(commands=['echo "PATH=$PATH"', "project-tool"]), tmp_path,
                 env=workspace_environment(tmp_path, [".venv/bin"], {"PROJECT_MODE": "test"}))
    assert result.ok, result.output
    assert f"PATH={tools}:/usr/bin:/bin\n" in result.output  # nothing of hybrid-tui's venv
    assert "project tool test" in result.output


def test_a_missing_program_or_runner_module_is_an_environment_error(tmp_path: Path) -> None:
    missing = run(Validation(commands=["no-such-program-i17 --flag"]), tmp_path)
    assert missing.failure_type == "environment_error"
    assert "'no-such-program-i17 --flag' exited 127: its program was not found" in missing.output
    not_executable = tmp_path / "check.sh"
    not_executable.write_text("exit 0\n")
    assert run(Validation(commands=["./check.sh"]), tmp_path).failure_type == "environment_error"
    runner = run(Validation(commands=[f"{PY} -m no_such_runner_i17 -q"]), tmp_path)
    assert runner.failure_type == "environment_error" and "has no module 'no_such_runner_i17'" in runner.output
    # A failing test that imports a missing module is the code's problem, not the environment's.
    (tmp_path / "test_x.py").write_text("import no_such_dependency_i17\n")
    code = run(Validation(commands=[f"{PY} test_x.py"]), tmp_path)
    assert code.failure_type == "validation_failed"
