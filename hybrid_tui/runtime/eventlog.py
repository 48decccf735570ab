"""Structured event log: ``events.jsonl`` in the run folder, one JSON object per line.

Room: runtime. Writes files in the run folder only; reads the store's Event rows to fill in
lines the file is missing (events written by other code paths such as ``create_run``, or
lines lost when the process died between a store commit and the file write), so the file
always ends up holding every event of the run in store order.

Each line: ``seq``, ``ts`` (epoch seconds), ``time`` (ISO 8601, UTC), ``run``, ``kind``,
``level``, ``message`` and, when set, ``task``, ``attempt``, ``agent``, ``fields``. The file
is rotated by size (``events.jsonl.1`` is the newest old file). Secrets are never written:
the values of the Anthropic credential variables and anything shaped like an Anthropic key
are replaced before a line reaches the disk.
"""

from __future__ import annotations

import itertools
import json
import os
from datetime import datetime, timezone
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any, BinaryIO, Iterable

from hybrid_tui.store import engine_reads, queries
from hybrid_tui.store.records import EventRecord
from hybrid_tui.store.db import EVENT_DATA_ENCODER
from hybrid_tui.vocabulary import Redactor, escaped_secrets, may_hold_secret_name, may_hold_secret_value

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 5
# The store's encoder of event fields (sorted keys, ``str`` for other objects): a line's
# "fields" text is the event's data_json as stored. Built once; dicts reuse one C encoder.
_ENCODER = EVENT_DATA_ENCODER

_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))


def iso_time(ts: float) -> str:
    """ISO 8601 UTC with milliseconds, exactly as ``datetime.fromtimestamp(ts, utc).isoformat(
    timespec="milliseconds")`` with ``Z``; the date part is cached per second (lines come in bursts)."""
    global _last_second
    # Split the way datetime.fromtimestamp does (ts - int(ts) is exact, as math.modf's part):
    # microseconds rounded half-even, carried over.
    second = int(ts)
    micro = round((ts - second) * 1e6)
    if micro >= 1_000_000:
        micro -= 1_000_000
        second += 1
    elif micro < 0:
        micro += 1_000_000
        second -= 1
    cached_second, prefix = _last_second
    if second != cached_second:
        prefix = datetime.fromtimestamp(second, tz=timezone.utc).replace(tzinfo=None).isoformat()
        _last_second = (second, prefix)
    return prefix + _MILLIS[micro // 1000]


def event_line(
    *, seq: int | None, ts: float, run: str, kind: str, level: str = "info", message: str = "",
    task: str | None = None, attempt: int | None = None, agent: str | None = None, fields: dict | None = None,
) -> dict[str, Any]:
    """The canonical line of one event (before redaction)."""
    line: dict[str, Any] = {"seq": seq, "ts": ts, "time": iso_time(ts), "run": run, "kind": kind, "level": level,
                            "message": message}
    for key, value in (("task", task), ("attempt", attempt), ("agent", agent)):
        if value is not None:
            line[key] = value
    if fields:
        line["fields"] = fields
    return line


def line_from_row(row: EventRecord) -> dict[str, Any]:
    """The line of a stored event."""
    try:
        fields = json.loads(row.data_json or "{}")
    except ValueError:
        fields = {"data_json": row.data_json}
    return event_line(seq=row.seq, ts=row.ts, run=row.run_id, kind=row.kind, level=row.level, message=row.message,
                      task=row.task_id, attempt=row.attempt, agent=row.agent_id, fields=fields or None)


def line_from_event(seq: int, row: tuple, data: dict[str, Any] | None) -> dict[str, Any]:
    """The line (before redaction) of a committed ``EventLog`` event: its ``seq``, its store
    row (``store.db._EVENT_COLUMNS`` order) and its field values."""
    run, ts, kind, level, task, attempt, agent, message, _ = row
    ts = float(ts or 0.0)
    line: dict[str, Any] = {"seq": seq, "ts": ts, "time": iso_time(ts), "run": str(run), "kind": str(kind),
                            "level": str(level), "message": str(message)}
    if task is not None:
        line["task"] = task
    if attempt is not None:
        line["attempt"] = attempt
    if agent is not None:
        line["agent"] = agent
    if data:
        line["fields"] = data
    return line


def event_text(seq: int, row: tuple) -> str | None:
    """The text of a committed ``EventLog`` event's line, newline included, before any secret
    check; None if a value has a type the general path must handle (``str()`` of it, NaN, ...).

    The very text ``_ENCODER.encode(line_from_event(seq, row, data))`` gives, built straight
    from the row: sorted keys are a fixed order here, and the "fields" text is the row's
    data_json (the same encoder made it from ``data``). It still has to be searched for
    traces of a secret (:meth:`EventJsonlWriter._write_queued`). This runs for every event.

    Why a hand-built line: writing every line the general way (encode the dict, search each
    line) cost 15 % more instructions per task of the whole runtime (callgrind, 1,000-task
    bench run), which the 0.40 ms/task overhead budget does not have room for. The fuzz test
    in tests/runtime/test_eventlog.py holds it to the general path byte for byte."""
    run, ts, kind, level, task, attempt, agent, message, data_json = row
    # A zero time (written as 0.0 even when -0.0), NaN, infinity: the general path.
    if (type(ts) is not float or not ts or ts - ts != 0.0 or type(seq) is not int or type(run) is not str
            or type(kind) is not str or type(level) is not str or type(message) is not str):
        return None
    head = ""
    if agent is not None:
        if type(agent) is not str:
            return None
        head = '"agent": ' + encode_basestring_ascii(agent) + ", "
    if attempt is not None:
        if type(attempt) is not int:
            return None
        head += f'"attempt": {attempt}, '
    if data_json != "{}":  # a non-empty dict never encodes to "{}"
        if type(data_json) is not str:
            return None
        head += '"fields": ' + data_json + ", "
    if task is None:
        task_text = ""
    elif type(task) is str:
        task_text = '"task": ' + encode_basestring_ascii(task) + ", "
    else:
        return None
    return (f'{{{head}"kind": {encode_basestring_ascii(kind)}, "level": {encode_basestring_ascii(level)}, '
            f'"message": {encode_basestring_ascii(message)}, "run": {encode_basestring_ascii(run)}, '
            f'"seq": {seq}, {task_text}"time": "{iso_time(ts)}", "ts": {float.__repr__(ts)}}}\n')


class EventJsonlWriter:
    """Appends event lines to ``path``, rotating by size; fills gaps from the store.

    ``write(lines)`` is called after the store transaction holding those events committed.
    A failed write (disk full) raises; the next write reopens the file, drops a torn last
    line and re-reads from the store whatever the file is missing.
    """

    def __init__(self, path: Path, run_id: str, *, max_bytes: int = DEFAULT_MAX_BYTES, backups: int = DEFAULT_BACKUPS,
                 backfill: bool = True, redactor: Redactor | None = None):
        self.path = Path(path)
        self.run_id = run_id
        self.max_bytes = max_bytes
        self.backups = backups
        self.backfill = backfill
        self.redactor = redactor or Redactor()
        self._file: BinaryIO | None = None
        self._size = 0
        self.last_seq = 0
        self._offsets: dict[int, int] = {}  # seq -> offset in the current file (recent lines only)
        self._batch_secrets: list[str] | None = None
        self._batch_escaped: tuple[str, ...] | None = None
        # Lines made by _write_line, written to the file together by _write_queued: their
        # seq, their text with its newline, and the event if that text has still to be
        # searched for secrets (else None); the "fields" texts of those events.
        self._queue_seqs: list[Any] = []
        self._queue_texts: list[str] = []
        self._queue_events: list[tuple | None] = []
        self._queue_fields: list[str] = []
        self._queue_all_seqs = True  # every queued line has an int seq

    # -- public -----------------------------------------------------------------------
    def write(self, lines: Iterable[tuple | dict[str, Any]]) -> None:
        """Write the lines of committed events: ``EventLog``'s (seq, store row, field values)
        tuples, or :func:`event_line` dicts."""
        lines = list(lines)
        # The secret values are read once per write, not per line: a key set later is hidden
        # from the next write on.
        self._batch_secrets = self.redactor.values()
        self._batch_escaped = escaped_secrets(self._batch_secrets)
        try:
            if self._file is None:
                self._open()
                if self.backfill:
                    self._catch_up()
                    lines = [line for line in lines if not isinstance(seq := _seq_of(line), int) or seq > self.last_seq]
            try:
                if self.backfill and not self._increasing(lines):
                    self._rewind(min(seq for line in lines if isinstance(seq := _seq_of(line), int)))
                    self._catch_up()  # the store's version of those events replaces the pending lines
                    lines = [line for line in lines if not isinstance(_seq_of(line), int)]
                write_line = self._write_line
                for line in lines:
                    write_line(line)
                self._write_queued()
                assert self._file is not None
                self._file.flush()
            except OSError:
                self._drop_file()
                raise
        finally:
            self._batch_secrets = None
            self._batch_escaped = None
            self._clear_queue()  # lines of a failed write: the store has them

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None

    # -- internals --------------------------------------------------------------------
    def _increasing(self, lines: list[tuple | dict[str, Any]]) -> bool:
        """Sequence numbers only grow. A number seen again means a transaction rolled back
        after its events were queued (SQLite reuses the row ids), so those lines are void."""
        last = self.last_seq
        for line in lines:
            seq = _seq_of(line)
            if isinstance(seq, int):
                if seq <= last:
                    return False
                last = seq
        return True

    def _rewind(self, seq: int) -> None:
        """Cut the current file back to before the line of ``seq`` (lines of a rolled-back
        transaction that were already written)."""
        assert self._file is not None
        cut = min((offset for s, offset in self._offsets.items() if s >= seq), default=None)
        if cut is not None:
            self._file.flush()
            self._file.truncate(cut)
            self._file.seek(cut)
            self._size = cut
            self._offsets = {s: o for s, o in self._offsets.items() if o < cut}
        self.last_seq = min(self.last_seq, seq - 1)

    def _drop_file(self) -> None:
        try:
            self.close()
        except OSError:
            self._file = None

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.last_seq = max(self.last_seq, self._repair_and_last_seq())
        self._file = open(self.path, "ab")
        self._size = self._file.tell()
        self._offsets = {}

    def _repair_and_last_seq(self) -> int:
        """Cut a torn last line (a write that failed half way) and lines of events the store
        does not have (queued by a transaction that rolled back just before the process
        ended); return the last seq on file."""
        for path in [self.path, *(self._backup(i) for i in range(1, self.backups + 1))]:
            if not path.exists():
                continue
            with open(path, "rb+") as handle:
                data = handle.read()
                keep = data.rfind(b"\n") + 1 if data and not data.endswith(b"\n") else len(data)
                stored = self._stored_kinds(data[:keep]) if self.backfill else None
                end = keep
                last_seq = 0
                while end > 0:
                    start = data.rfind(b"\n", 0, end - 1) + 1
                    try:
                        line = json.loads(data[start:end])
                        seq = line.get("seq")
                    except ValueError:
                        seq, line = None, {}
                    if isinstance(seq, int) and (stored is None or stored.get(seq) == line.get("kind")):
                        last_seq = seq
                        break
                    end = start
                if end != len(data):
                    handle.truncate(end)
            if last_seq:
                return last_seq
        return 0

    def _stored_kinds(self, data: bytes, tail: int = 200) -> dict[int, str] | None:
        """seq -> kind in the store for the last ``tail`` lines of ``data`` (None: no store)."""
        seqs = []
        for raw in data.splitlines()[-tail:]:
            try:
                seq = json.loads(raw).get("seq")
            except ValueError:
                continue
            if isinstance(seq, int):
                seqs.append(seq)
        if not seqs:
            return {}
        try:
            return engine_reads.event_kinds(self.run_id, seqs)
        except Exception:  # no store bound (a writer used on its own)
            return None

    def _catch_up(self) -> None:
        """Events of this run the file does not have yet (committed in the store)."""
        try:
            rows = queries.events_after(self.run_id, self.last_seq)
        except Exception:  # no store bound (a writer used on its own): nothing to catch up
            return
        for row in rows:
            self._write_line(line_from_row(row))
        self._write_queued()

    def _backup(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        self._file = None
        oldest = self._backup(self.backups)
        if oldest.exists():
            oldest.unlink()
        for index in range(self.backups - 1, 0, -1):
            if self._backup(index).exists():
                os.replace(self._backup(index), self._backup(index + 1))
        if self.backups > 0:
            os.replace(self.path, self._backup(1))
        else:
            self.path.unlink()
        self._file = open(self.path, "ab")
        self._size = 0
        self._offsets = {}

    def _write_line(self, line: tuple | dict[str, Any]) -> None:
        """Queue one line for the file: a committed ``EventLog`` event (seq, store row, field
        values) or an :func:`event_line` dict. :meth:`_write_queued` writes what is queued."""
        if type(line) is tuple:
            seq, row, _ = line
            text = event_text(seq, row)
            if text is not None:  # searched for secrets with the rest of the batch
                self._queue_seqs.append(seq)
                self._queue_texts.append(text)
                self._queue_events.append(line)
                if row[8] != "{}":
                    self._queue_fields.append(row[8])
                return
            line = line_from_event(*line)
        seq = line.get("seq")
        if type(seq) is not int:
            self._queue_all_seqs = False
        self._queue_seqs.append(seq)
        self._queue_texts.append(self.redactor.serialise(line, self._batch_secrets, encode=_ENCODER.encode) + "\n")
        self._queue_events.append(None)

    def _clear_queue(self) -> None:
        self._queue_seqs, self._queue_texts, self._queue_events, self._queue_fields = [], [], [], []
        self._queue_all_seqs = True

    def _write_queued(self) -> None:
        """Write the queued lines, each searched for secrets first.

        One search of the whole batch stands for the search of each line: no secret's
        escaped form, no ``sk-ant-`` and no key-like word holds a newline, so the joined text
        shows one only if a line does. Only on a hit is each line searched on its own, and a
        line with a trace goes the general way (:meth:`Redactor.serialise`)."""
        seqs, texts, events, fields = self._queue_seqs, self._queue_texts, self._queue_events, self._queue_fields
        if not texts:
            return
        all_seqs = self._queue_all_seqs
        self._clear_queue()
        joined = "".join(texts)
        escaped = self._batch_escaped
        secrets = self._batch_secrets
        if escaped is None or secrets is None:  # pragma: no cover - write() sets them
            secrets = self.redactor.values()
            escaped = escaped_secrets(secrets)
        if may_hold_secret_value(joined, escaped) or (
                fields and may_hold_secret_name("\n".join(fields))):
            for index, event in enumerate(events):
                if event is not None and (may_hold_secret_value(texts[index], escaped) or (
                        event[1][8] != "{}" and may_hold_secret_name(event[1][8]))):
                    texts[index] = self.redactor.serialise(line_from_event(*event), secrets, encode=_ENCODER.encode) + "\n"
            joined = "".join(texts)
        data = joined.encode("utf-8")
        assert self._file is not None
        size = self._size
        if size + len(data) > self.max_bytes or len(data) != len(joined) or not all_seqs:
            # A rotation may be due in this batch, non-ASCII text, or lines without a seq: one by one.
            for seq, text in zip(seqs, texts):
                self._write_text(seq, text.encode("utf-8"))
            return
        self._prune_offsets()
        self._offsets.update(zip(seqs, itertools.accumulate(map(len, texts), initial=size)))
        self._file.write(data)
        self._size = size + len(data)
        self.last_seq = max(self.last_seq, max(seqs))

    def _write_text(self, seq: Any, data: bytes) -> None:
        """Write one line (its text, newline included, encoded), rotating the file first when
        it would grow too big."""
        assert self._file is not None
        if self._size and self._size + len(data) > self.max_bytes:
            self._rotate()
        if isinstance(seq, int):
            self._prune_offsets()
            self._offsets[seq] = self._size
        self._file.write(data)
        self._size += len(data)
        if isinstance(seq, int):
            self.last_seq = max(self.last_seq, seq)

    def _prune_offsets(self) -> None:
        if len(self._offsets) >= 4096:  # only recent lines can belong to a rolled-back batch
            for old in sorted(self._offsets)[:2048]:
                del self._offsets[old]


def _seq_of(line: tuple | dict[str, Any]) -> Any:
    return line[0] if type(line) is tuple else line.get("seq")


def read_events_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of ``path`` and its rotated files, oldest first (for tests and tools)."""
    path = Path(path)
    files = sorted(path.parent.glob(path.name + ".*"), key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0,
                   reverse=True)
    out: list[dict[str, Any]] = []
    for file in [*files, path]:
        if file.exists():
            out.extend(json.loads(raw) for raw in file.read_text(encoding="utf-8").splitlines())
    return out
