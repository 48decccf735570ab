"""Events: the store's append-only Event rows, mirrored to ``events.jsonl`` in the run folder.

Room: runtime. ``add`` must be called inside a store write transaction; the JSON lines are
written by ``flush`` after that transaction committed, so the file never shows something
the store does not have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..store.db import Store


class EventLog:
    def __init__(self, store: Store, run_id: str, jsonl_path: Path, clock: Callable[[], float]):
        self.store = store
        self.run_id = run_id
        self.path = jsonl_path
        self.clock = clock
        self._pending: list[dict[str, Any]] = []
        from .eventlog import EventJsonlWriter

        # Rotation by size, secrets redacted, lines the file lacks filled in from the store.
        self._writer = EventJsonlWriter(jsonl_path, run_id)

    def add(
        self,
        kind: str,
        message: str = "",
        *,
        level: str = "info",
        task_id: str | None = None,
        attempt: int | None = None,
        agent_id: str | None = None,
        **data: Any,
    ) -> None:
        ts = self.clock()
        row = self.store.add_event(
            self.run_id, kind, message, level=level, task_id=task_id, attempt=attempt, agent_id=agent_id, ts=ts, **data
        )
        line = {
            "seq": row.seq,
            "ts": ts,
            "run": self.run_id,
            "kind": kind,
            "level": level,
            "message": message,
        }
        for key, value in (("task", task_id), ("attempt", attempt), ("agent", agent_id)):
            if value is not None:
                line[key] = value
        if data:
            line["fields"] = data
        self._pending.append(line)

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        self._writer.write(pending)

    def discard(self) -> None:
        """Drop lines of a transaction that rolled back."""
        self._pending.clear()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._writer.close()
