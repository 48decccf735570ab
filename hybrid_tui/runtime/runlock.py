"""The run lock: at most one coordinator drives a run.

Room: runtime. An exclusive ``fcntl`` lock on ``<run dir>/coordinator.lock`` held for the
life of the process; the kernel drops it when the process dies (even on SIGKILL), so a
crashed coordinator never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class RunLocked(Exception):
    """Another coordinator holds the run."""


class RunLock:
    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / "coordinator.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            try:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            except OSError:
                pass
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise RunLocked(f"run {self.path.parent.name} is already driven by another coordinator{who}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None
