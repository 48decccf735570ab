"""Events: the store's append-only Event rows, mirrored to ``events.jsonl`` in the run folder.

Room: runtime. ``add`` inside a store write transaction stages the row: the event rows of
a transaction are inserted together just before it commits (the EventLog is a
``store.db.Stager``) and dropped if it rolls back. The JSON lines are written by ``flush``
after that transaction committed, so the file never shows something the store does not
have. Outside a transaction ``add`` inserts the row at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..store.db import EVENT_DATA_ENCODER, Store


class EventLog:
    def __init__(self, store: Store, run_id: str, jsonl_path: Path, clock: Callable[[], float]):
        self.store = store
        self.run_id = run_id
        self.path = jsonl_path
        self.clock = clock
        self._staged_rows: list[tuple] = []  # rows of the open transaction, not inserted yet
        self._staged_lines: list[dict[str, Any]] = []  # their lines (seq given at the insert)
        self._pending: list[dict[str, Any]] = []  # lines of committed rows, for the next flush
        from .eventlog import EventJsonlWriter

        # Rotation by size, secrets redacted, lines the file lacks filled in from the store.
        self._writer = EventJsonlWriter(jsonl_path, run_id)
        store.add_stager(self)

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
        line: dict[str, Any] = {"seq": None, "ts": ts, "run": self.run_id, "kind": kind, "level": level, "message": message}
        if task_id is not None:
            line["task"] = task_id
        if attempt is not None:
            line["attempt"] = attempt
        if agent_id is not None:
            line["agent"] = agent_id
        if data:
            line["fields"] = data
        if self.store.db.transaction_depth() == 0:
            row = self.store.add_event(self.run_id, kind, message, level=level, task_id=task_id, attempt=attempt,
                                       agent_id=agent_id, ts=ts, **data)
            line["seq"] = row.seq
            self._pending.append(line)
            return
        self._staged_rows.append((self.run_id, ts, kind, level, task_id, attempt, agent_id, message,
                                  EVENT_DATA_ENCODER.encode(data)))
        self._staged_lines.append(line)

    # -- Stager: called by Store.write ---------------------------------------------------
    def flush_staged(self) -> None:
        if not self._staged_rows:
            return
        seqs = self.store.add_events(self._staged_rows)
        for line, seq in zip(self._staged_lines, seqs):
            line["seq"] = seq
        self._pending.extend(self._staged_lines)
        self._staged_rows, self._staged_lines = [], []

    def drop_staged(self) -> None:
        self._staged_rows, self._staged_lines = [], []

    # -- the events.jsonl mirror ----------------------------------------------------------
    def flush(self) -> None:
        """Write the lines of committed events to events.jsonl."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        self._writer.write(pending)

    def discard(self) -> None:
        """Drop the lines not written yet (a transaction rolled back; a full disk)."""
        self._pending.clear()
        self.drop_staged()

    def close(self) -> None:
        self.store.remove_stager(self)
        try:
            self.flush()
        finally:
            self._writer.close()
