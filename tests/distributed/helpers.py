"""Helpers of the distributed tests: Redis, worker processes, the coordinator as a subprocess,
and reads of a run's store while it goes (its SQLite file read-only, or the PostgreSQL
database its ``store.url`` names: the coordinator is the only writer)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import psycopg
import redis

from hybrid_tui.store.runs import run_store_location

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-ant-test-DISTRIBUTED-7373"  # the API key every process here holds in its environment


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], object], timeout: float, what: str, every: float = 0.1):
    """Poll ``check`` until it returns something truthy (a safety-net timeout, not a measure)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "ANTHROPIC_API_KEY": SECRET, **extra}
    env.pop("HYBRID_TUI_CRASH_AT", None)
    # The test names each run's store itself (--store, or the run folder's state.db), whatever
    # the session's backend leg put in the environment.
    env.pop("HYBRID_TUI_STORE", None)
    return env


class RedisServer:
    """``redis-server`` on a free loopback port, its files in ``folder`` (no snapshots: a
    restart loses every key, the harder case for leases and queued messages)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
            stdout=open(self.folder / "redis.log", "ab"), stderr=subprocess.STDOUT)
        wait_until(self._answers, 20, "redis-server to answer")

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.exceptions.ConnectionError:
            return False

    def client(self, timeout: float | None = 5) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def all_data(self) -> bytes:
        """Every key and every value Redis holds now, whatever its type."""
        client = self.client()
        out: list[bytes] = []
        for key in client.scan_iter(count=1000):
            out.append(key)
            kind = client.type(key)
            if kind == b"string":
                out.append(client.get(key) or b"")
            elif kind == b"list":
                out.extend(client.lrange(key, 0, -1))
            elif kind == b"hash":
                for k, v in client.hgetall(key).items():
                    out += [k, v]
            elif kind == b"set":
                out.extend(client.smembers(key))
            elif kind == b"zset":
                out.extend(member for member, _ in client.zrange(key, 0, -1, withscores=True))
        return b"\n".join(out)


class Monitor:
    """Every command Redis receives, recorded by ``MONITOR`` (to prove what never crossed it)."""

    def __init__(self, server: RedisServer) -> None:
        self.lines: list[str] = []
        self._conn = redis.Redis.from_url(server.url)
        self._monitor = self._conn.monitor().__enter__()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for item in self._monitor.listen():
                self.lines.append(item.get("command", ""))
        except Exception:  # the connection closed (Redis stopped or the test ended)
            pass

    def text(self) -> str:
        return "\n".join(self.lines)


class Workers:
    """``hybrid-tui worker`` processes, by name."""

    def __init__(self, broker_url: str, folder: Path) -> None:
        self.broker_url = broker_url
        self.folder = folder
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, slots: int = 2) -> subprocess.Popen:
        work = self.folder / name
        work.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "hybrid_tui", "worker", "--broker", self.broker_url, "--name", name,
             "--slots", str(slots), "--work-dir", str(work)],
            cwd=work, env=_env(), stdout=open(work / "worker.log", "ab"), stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def start_many(self, names: list[str], slots: int = 2) -> None:
        for name in names:
            self.start(name, slots)
        client = redis.Redis.from_url(self.broker_url)
        wait_until(lambda: all(client.exists(f"hybrid-tui:worker:{n}") for n in names), 60, "workers to advertise")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        self.procs[name].send_signal(sig)
        if sig == signal.SIGKILL:
            self.procs[name].wait(10)

    def log(self, name: str) -> str:
        return (self.folder / name / "worker.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)  # a test may have stopped it
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_coordinator(*args: str, cwd: Path) -> subprocess.Popen:
    """``hybrid-tui ARGS`` as a subprocess (its output in cwd/coordinator-N.log)."""
    cwd.mkdir(parents=True, exist_ok=True)
    n = len(list(cwd.glob("coordinator-*.log")))
    log = open(cwd / f"coordinator-{n}.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "hybrid_tui", *args], cwd=cwd, env=_env(),
                            stdout=log, stderr=subprocess.STDOUT)


def coordinator_log(cwd: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(cwd.glob("coordinator-*.log")))


def finish(proc: subprocess.Popen, cwd: Path, timeout: float = 240) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"coordinator did not finish:\n{coordinator_log(cwd)[-4000:]}") from None


def query(runs_dir: Path, sql: str, args: tuple = ()) -> list[tuple]:
    """Rows from the (only) run's store, read-only, with ``?`` placeholders on either backend:
    its state.db, or the PostgreSQL database its store.url names (one run a database here);
    [] before the run and its tables exist."""
    folders = [p for p in runs_dir.glob("*") if p.is_dir()] if runs_dir.is_dir() else []
    location = run_store_location(folders[0]) if len(folders) == 1 else None
    if location is None:
        return []
    if location.startswith("postgresql://"):
        try:
            with psycopg.connect(location, autocommit=True, connect_timeout=10) as conn:
                return conn.execute(sql.replace("?", "%s"), args).fetchall()
        except psycopg.errors.UndefinedTable:  # schema not there yet
            return []
    conn = sqlite3.connect(f"file:{location}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # schema not there yet
        return []
    finally:
        conn.close()
