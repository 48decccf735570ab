"""The run lock: at most one coordinator drives a run.

Room: runtime. On a SQLite store, an exclusive ``fcntl`` lock on
``<run dir>/coordinator.lock``; on a PostgreSQL store (which coordinators on several
machines may share), a PostgreSQL advisory lock held by a session the coordinator opens
(``Store.run_lock``). Either is held for the life of the process and dropped by the kernel
or the server when it dies (even on SIGKILL), so a crashed coordinator never leaves a
stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from hybrid_tui.store.db import Store


class RunLocked(Exception):
    """Another coordinator holds the run."""


class RunLock:
    def __init__(self, run_dir: str | Path, store: Store | None = None, run_id: str | None = None):
        self.path = Path(run_dir) / "coordinator.lock"
        self._fd: int | None = None
        self._advisory = store.run_lock(run_id or self.path.parent.name) if store is not None and not store.is_sqlite else None

    def acquire(self) -> None:
        if self._advisory is not None:
            if not self._advisory.try_acquire():
                holder = self._advisory.holder_pid()
                who = f" (its PostgreSQL session is server pid {holder})" if holder else ""
                raise RunLocked(f"run {self._advisory.run_id} is already driven by another coordinator{who}")
            return
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
        if self._advisory is not None:
            self._advisory.release()
            return
        if self._fd is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        if self._advisory is not None:
            return self._advisory.held
        return self._fd is not None
