"""``attach RUN --store postgresql://...`` from a second process: a real console subprocess on
a pseudo-terminal, attached to a live headless coordinator (another subprocess) that keeps
its run on a temporary PostgreSQL server. The console shows the run's tasks; its pause and
resume keys travel through the store and the coordinator applies them; ``runs`` and
``report --json`` from a third process read the same live run by its URL alone."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import psycopg
import pytest

from tests.runtime.helpers import py, task, write_mission

REPO_ROOT = Path(__file__).resolve().parents[2]
# CSI and OSC sequences, and any other two-byte escape: what is left is the text a terminal shows.
ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[P^_X][^\x1b]*\x1b\\|\x1b.")


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TERM": "xterm-256color"}
    env.pop("HYBRID_TUI_STORE", None)  # every command here names its store
    return env


def _wait(check, what: str, timeout: float = 90):
    """Poll ``check`` until truthy (a safety-net timeout, not a measure)."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return found


class TerminalConsole:
    """``hybrid-tui ARGS`` on a pseudo-terminal of ``columns`` x ``rows``: keys go in through
    the terminal, everything the program draws is collected (escape sequences stripped)."""

    def __init__(self, args: list[str], cwd: Path, columns: int = 180, rows: int = 50) -> None:
        self.master, child = pty.openpty()
        fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.proc = subprocess.Popen([sys.executable, "-m", "hybrid_tui", *args], cwd=cwd, env=_env(),
                                     stdin=child, stdout=child, stderr=child, start_new_session=True)
        os.close(child)
        self.raw = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the program closed its terminal
                return
            if not data:
                return
            self.raw += data

    def text(self, since: int = 0) -> str:
        return ESCAPES.sub("", bytes(self.raw[since:]).decode("utf-8", errors="replace"))

    def press(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> int | None:
        if self.proc.poll() is None:
            self.press(b"\x11")  # ctrl+q: quit the console, leave the run alone
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        os.close(self.master)
        return self.proc.returncode


def _rows(url: str, sql: str, args: tuple = ()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            return conn.execute(sql, args).fetchall()
        except psycopg.errors.UndefinedTable:  # the coordinator has not created its tables yet
            return []


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hybrid_tui", *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_console_in_a_second_process_sees_the_run_and_its_pause_is_applied(postgres_server, tmp_path: Path):
    url = postgres_server.new_database("attach")
    gate = tmp_path / "gate"
    wait_gate = py(f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.05)")
    mission = write_mission(tmp_path / "m", [task("gatekeeper", checks=[wait_gate], timeout=200),
                                             task("follower", deps=["gatekeeper"])])
    runs, elsewhere = tmp_path / "runs", tmp_path / "elsewhere"  # the console's folder knows nothing of the run
    elsewhere.mkdir()
    coordinator = subprocess.Popen([sys.executable, "-m", "hybrid_tui", "run", str(mission), "--headless",
                                    "--runs-dir", str(runs), "--store", url], cwd=tmp_path, env=_env(),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    console = None
    try:
        (run_id,) = _wait(lambda: _rows(url, "SELECT t.run_id FROM task t WHERE t.task_id = 'gatekeeper' "
                                             "AND t.status = 'validating'"), "the gatekeeper task to validate")[0]
        console = TerminalConsole(["attach", run_id, "--store", url], cwd=elsewhere)
        _wait(lambda: "gatekeeper" in console.text() and "follower" in console.text(), "the console to show the tasks")

        before_pause = len(console.raw)
        console.press(b"p")  # pause, from the console's key
        _wait(lambda: _rows(url, "SELECT 1 FROM run WHERE id = %s AND status = 'paused'", (run_id,)),
              "the coordinator to apply the console's pause")
        assert _rows(url, "SELECT command, source, status FROM control WHERE run_id = %s", (run_id,)) == [
            ("pause", "tui", "applied")]

        # A third process, with only the URL: the live run, paused, and its report.
        listed = _cli("runs", "--store", url, "--json", cwd=elsewhere)
        assert listed.returncode == 0, listed.stderr
        (summary,) = [json.loads(line) for line in listed.stdout.splitlines()]
        assert (summary["run_id"], summary["status"], summary["tasks_total"]) == (run_id, "paused", 2)
        report = _cli("report", run_id, "--store", url, "--json", cwd=elsewhere)
        assert report.returncode == 0, report.stderr
        assert run_id in report.stdout and "gatekeeper" in report.stdout
        json.loads(report.stdout)

        # Paused: the gatekeeper finishes, its follower is not dispatched.
        gate.write_text("open")
        _wait(lambda: _rows(url, "SELECT 1 FROM task WHERE run_id = %s AND task_id = 'gatekeeper' AND status = 'done'",
                            (run_id,)), "the gatekeeper to finish")
        assert _rows(url, "SELECT count(*) FROM attempt WHERE run_id = %s AND task_id = 'follower'", (run_id,)) == [(0,)]
        assert coordinator.poll() is None

        _wait(lambda: "paused" in console.text(before_pause), "the console to show the run paused")
        shown = len(console.raw)
        console.press(b"p")  # resume: the follower runs and the mission finishes
        assert coordinator.wait(120) == 0, coordinator.stdout.read()
        assert _rows(url, "SELECT command, source, status FROM control WHERE run_id = %s ORDER BY id", (run_id,)) == [
            ("pause", "tui", "applied"), ("resume", "tui", "applied")]
        assert _rows(url, "SELECT task_id, status FROM task WHERE run_id = %s ORDER BY task_id", (run_id,)) == [
            ("follower", "done"), ("gatekeeper", "done")]
        _wait(lambda: "finished" in console.text(shown), "the console to show the run finished")
        assert console.close() == 0
        console = None
        finished = _cli("report", run_id, "--store", url, "--json", cwd=elsewhere)
        assert finished.returncode == 0 and run_id in finished.stdout, finished.stderr
    finally:
        gate.write_text("open")  # a failed test leaves no validation waiting for ever
        if console is not None:
            console.close()
        if coordinator.poll() is None:
            coordinator.send_signal(signal.SIGKILL)
            coordinator.wait()
        postgres_server.drop_database(url)
