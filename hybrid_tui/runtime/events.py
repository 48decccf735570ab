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

from hybrid_tui.store.db import EVENT_DATA_ENCODER, Store
from hybrid_tui.runtime.eventlog import EventJsonlWriter

_encode_data = EVENT_DATA_ENCODER.encode


class EventLog:
    def __init__(self, store: Store, run_id: str, jsonl_path: Path, clock: Callable[[], float]):
        self.store = store
        self.run_id = run_id
        self.path = jsonl_path
        self.clock = clock
        # The open transaction's rows (``store.db._EVENT_COLUMNS`` order, not inserted yet)
        # and each one's field values (the jsonl line redacts from them when needed).
        self._staged_rows: list[tuple] = []
        self._staged_data: list[dict[str, Any]] = []
        # Committed events for the next flush: (seq, row, field values); the line is built
        # from the row, whose data_json is the line's "fields" text.
        self._pending: list[tuple[int, tuple, dict[str, Any]]] = []
        # Rotation by size, secrets redacted, lines the file lacks filled in from the store.
        self._writer = EventJsonlWriter(jsonl_path, run_id)
        self._transaction_depth = store.db.transaction_depth
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
        row = (self.run_id, ts, kind, level, task_id, attempt, agent_id, message,
               _encode_data(data) if data else "{}")
        if self._transaction_depth() == 0:
            stored = self.store.add_event(self.run_id, kind, message, level=level, task_id=task_id, attempt=attempt,
                                          agent_id=agent_id, ts=ts, **data)
            self._pending.append((stored.seq, row, data))
            return
        self._staged_rows.append(row)
        self._staged_data.append(data)

    # -- Stager: called by Store.write ---------------------------------------------------
    def flush_staged(self) -> None:
        if not self._staged_rows:
            return
        seqs = self.store.add_events(self._staged_rows)
        self._pending.extend(zip(seqs, self._staged_rows, self._staged_data))
        self._staged_rows, self._staged_data = [], []

    def drop_staged(self) -> None:
        self._staged_rows, self._staged_data = [], []

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
