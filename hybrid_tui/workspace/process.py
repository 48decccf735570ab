"""Run one command of an attempt (an agent CLI or a validation command) so that nothing it
starts outlives it.

Room: workspace. Spawns real subprocesses and kills them; knows nothing of tasks or agents.
Used by :mod:`hybrid_tui.workspace.validation` and by the ``cli`` agent backend, so both get
the same containment:

- the command runs in its own session (its own process group);
- every process it starts carries :data:`PROCESS_TAG_ENV` in its environment, and its
  descendants are polled while it runs, so a child that left the group (``setsid``,
  ``nohup ... &``, a double fork) is still found;
- when the command ends, for any reason (exit, timeout, memory cap, a stop asked by the
  caller, the caller's scope cancelled), its group, every descendant ever seen and every
  process carrying its tag are SIGKILLed;
- output is read until the command itself has exited, then for a short drain: a leftover
  child holding the pipe cannot turn a finished command into a timeout;
- ``stdin_data`` (a prompt of any size) is written to the command's stdin, never put on its
  command line.

What it cannot catch: a process that both leaves the session and scrubs its environment
before the first poll (every 0.1 s) sees it. A cgroup would; this machine-independent
runner does not require one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import anyio
import psutil

__all__ = ["PROCESS_TAG_ENV", "HeadTailBuffer", "HeadTailLog", "ProcessOutcome", "ProcessTree", "run_process"]

PROCESS_TAG_ENV = "HYBRID_TUI_PROCESS_TAG"
_POLL_SECONDS = 0.1
_READ_CHUNK = 65536
_SWEEP_PASSES = 5
_SWEEP_PAUSE_SECONDS = 0.02
DRAIN_SECONDS = 2.0  # output still buffered in the pipe when the command exits


@dataclass
class ProcessOutcome:
    exit_code: int | None  # None when killed before it exited on its own
    duration_s: float
    timed_out: bool = False
    killed_for_memory: bool = False
    stopped: str | None = None  # the reason the caller's ``should_stop`` gave


class ProcessTree:
    """The processes spawned by one command, remembered so none escapes the kill."""

    def __init__(self, pid: int, tag: str | None = None) -> None:
        self.pid = pid
        self.tag = tag
        self.started = time.time()
        self.seen: dict[int, psutil.Process] = {}
        try:
            self.root: psutil.Process | None = psutil.Process(pid)
            self.seen[pid] = self.root
        except psutil.NoSuchProcess:
            self.root = None

    def refresh(self) -> list[psutil.Process]:
        if self.root is None:
            return []
        try:
            members = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            members = []
        for proc in members:
            self.seen.setdefault(proc.pid, proc)
        return members

    def rss_bytes(self) -> int:
        total = 0
        for proc in self.refresh():
            try:
                total += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return total

    def tagged(self) -> tuple[list[psutil.Process], int]:
        """Processes started since this command began that carry its tag (orphans included),
        and how many young processes could not be read (one caught mid-``exec``: look again)."""
        if self.tag is None:
            return [], 0
        found = []
        unreadable = 0
        me = os.getpid()
        for proc in psutil.process_iter():
            if proc.pid == me:
                continue
            try:
                # Only processes younger than the command can be its descendants; reading
                # their environment is the costly part, so the age check comes first.
                if proc.create_time() < self.started - 1:
                    continue
                if proc.environ().get(PROCESS_TAG_ENV) == self.tag:
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
            except (psutil.AccessDenied, OSError):
                try:  # another user's process cannot be one of ours
                    if proc.uids().real == os.getuid():
                        unreadable += 1
                except (psutil.Error, OSError):
                    pass
        return found, unreadable

    def kill(self) -> None:
        """SIGKILL the session's process group, every descendant ever seen and every tagged process."""
        self.refresh()
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for proc in self.seen.values():
            try:
                proc.kill()  # psutil refuses a pid that was reused by another process
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        # A daemon that just left the session may be between fork and exec, its environment
        # unreadable for an instant: sweep again until a pass finds nothing of the command.
        for _ in range(_SWEEP_PASSES):
            found, unreadable = self.tagged()
            for proc in found:
                try:
                    proc.kill()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            if not found and not unreadable:
                return
            time.sleep(_SWEEP_PAUSE_SECONDS)


class HeadTailBuffer:
    """Keeps the head and the tail of a stream within ``cap`` bytes, counting what it drops."""

    def __init__(self, cap: int) -> None:
        self.head_cap = cap // 2
        self.tail_cap = cap - self.head_cap
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if not data:
            return
        self.tail += data
        excess = len(self.tail) - self.tail_cap
        if excess > 0:
            del self.tail[:excess]
            self.dropped += excess

    def text(self) -> str:
        middle = f"\n[... {self.dropped} bytes truncated ...]\n".encode() if self.dropped else b""
        return (bytes(self.head) + middle + bytes(self.tail)).decode("utf-8", errors="replace")


class HeadTailLog:
    """A log file that keeps the first ``cap/2`` bytes written and the last ``cap/2``, with a
    line saying how many bytes were dropped between them (written at :meth:`close`)."""

    def __init__(self, path: Path, cap: int) -> None:
        self.file = open(path, "ab")
        self.head_room = cap // 2
        self.tail_cap = cap - cap // 2
        self.tail = bytearray()
        self.dropped = 0

    def write(self, data: bytes) -> None:
        if self.head_room > 0:
            part = data[: self.head_room]
            self.file.write(part)
            self.head_room -= len(part)
            data = data[len(part):]
        if data:
            self.tail += data
            excess = len(self.tail) - self.tail_cap
            if excess > 0:
                del self.tail[:excess]
                self.dropped += excess

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        if self.dropped:
            self.file.write(f"\n[... {self.dropped} bytes of output dropped here: the log keeps its head and tail ...]\n".encode())
        self.file.write(bytes(self.tail))
        self.file.close()


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    on_stdout: Callable[[bytes], None],
    on_stderr: Callable[[bytes], None] | None = None,
    stdin_data: bytes | None = None,
    memory_cap_bytes: int | None = None,
    on_spawn: Callable[[int], None] | None = None,
    should_stop: Callable[[], str | None] | None = None,
    drain_seconds: float = DRAIN_SECONDS,
) -> ProcessOutcome:
    """Run ``argv`` in ``cwd`` and kill everything it started when it ends (see the module doc).

    ``on_stderr=None`` merges stderr into stdout. ``should_stop()`` is asked after every
    chunk of output; a reason it returns stops the command (``ProcessOutcome.stopped``).
    Raises ``OSError`` (``FileNotFoundError`` …) when the command cannot start.
    """
    started = time.monotonic()
    if timeout <= 0:
        return ProcessOutcome(None, 0.0, timed_out=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex}"
    child_env = {**env, PROCESS_TAG_ENV: tag}
    process = await anyio.open_process(
        list(argv),
        cwd=cwd,
        env=child_env,
        stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if on_stderr is None else subprocess.PIPE,
        start_new_session=True,
    )
    tree = ProcessTree(process.pid, tag)
    if on_spawn is not None:
        on_spawn(process.pid)
    killed_for_memory = False
    stopped: str | None = None
    exit_code: int | None = None
    done = anyio.Event()  # the command asked to stop or was stopped: readers end

    def check_stop() -> None:
        nonlocal stopped
        if should_stop is not None and stopped is None:
            reason = should_stop()
            if reason:
                stopped = reason
                tree.kill()
                done.set()

    async def pump(stream, sink: Callable[[bytes], None]) -> None:
        try:
            while True:
                sink(await stream.receive(_READ_CHUNK))
                check_stop()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    async def feed_stdin() -> None:
        assert process.stdin is not None
        try:
            await process.stdin.send(stdin_data or b"")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, BrokenPipeError):
            pass  # the command does not read its stdin: its business
        finally:
            try:
                await process.stdin.aclose()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, BrokenPipeError, OSError):
                pass

    async def watch_tree() -> None:
        # Polls the tree even without a memory cap: a descendant seen once is killed at the
        # end even if it escaped the process group (setsid) and its parent already exited.
        nonlocal killed_for_memory
        while True:
            if memory_cap_bytes is None:
                await anyio.to_thread.run_sync(tree.refresh)
            elif await anyio.to_thread.run_sync(tree.rss_bytes) > memory_cap_bytes:
                killed_for_memory = True
                tree.kill()
                done.set()
                return
            await anyio.sleep(_POLL_SECONDS)

    swept = False  # the tree was killed once the command was done: nothing of it can be left
    try:
        with anyio.move_on_after(timeout) as timer:
            async with anyio.create_task_group() as group:
                group.start_soon(watch_tree)
                if stdin_data is not None:
                    group.start_soon(feed_stdin)
                readers_done = anyio.Event()

                async def read_all() -> None:
                    async with anyio.create_task_group() as readers:
                        assert process.stdout is not None
                        readers.start_soon(pump, process.stdout, on_stdout)
                        if on_stderr is not None:
                            assert process.stderr is not None
                            readers.start_soon(pump, process.stderr, on_stderr)
                    readers_done.set()

                group.start_soon(read_all)

                async def wait_exit() -> None:
                    nonlocal exit_code
                    exit_code = await process.wait()
                    done.set()

                group.start_soon(wait_exit)
                await done.wait()
                # The command is done (or stopped): anything it left running in the background
                # goes with it, which also closes the pipes those leftovers held.
                await anyio.to_thread.run_sync(tree.kill)
                swept = True
                with anyio.move_on_after(drain_seconds):
                    await readers_done.wait()
                group.cancel_scope.cancel()
    finally:
        # Timeout, memory kill, or the caller's scope cancelled: no process may outlive us.
        with anyio.CancelScope(shield=True):
            if not swept:
                await anyio.to_thread.run_sync(tree.kill)
            await process.aclose()
    duration = time.monotonic() - started
    if stopped is not None:
        return ProcessOutcome(None, duration, stopped=stopped)
    if killed_for_memory:
        return ProcessOutcome(None, duration, killed_for_memory=True)
    if timer.cancelled_caught and exit_code is None:
        return ProcessOutcome(None, duration, timed_out=True)
    return ProcessOutcome(process.returncode if exit_code is None else exit_code, duration)
