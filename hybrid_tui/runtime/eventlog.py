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

import json
import math
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Iterable

from ..store import models as m

SECRET_ENV_NAMES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
REDACTED = "[redacted]"
_KEY_PATTERN = re.compile(r"sk-ant-[A-Za-z0-9_\-]{4,}")
_SECRET_FIELD = re.compile(r"(api[_-]?key|auth[_-]?token|authorization|password|secret)", re.IGNORECASE)
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 5
# Built once: json.dumps with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(default=str, sort_keys=True)

_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def iso_time(ts: float) -> str:
    """ISO 8601 UTC with milliseconds, exactly as ``datetime.fromtimestamp(ts, utc).isoformat(
    timespec="milliseconds")`` with ``Z``; the date part is cached per second (lines come in bursts)."""
    global _last_second
    # Split the way datetime.fromtimestamp does: microseconds rounded half-even, carried over.
    fraction, whole = math.modf(ts)
    micro = round(fraction * 1e6)
    if micro >= 1_000_000:
        micro -= 1_000_000
        whole += 1.0
    elif micro < 0:
        micro += 1_000_000
        whole -= 1.0
    second = int(whole)
    cached_second, prefix = _last_second
    if second != cached_second:
        prefix = datetime.fromtimestamp(second, tz=timezone.utc).replace(tzinfo=None).isoformat()
        _last_second = (second, prefix)
    return f"{prefix}.{micro // 1000:03d}Z"


class Redactor:
    """Replaces secret values in strings (and, recursively, in dicts and lists)."""

    def __init__(self, extra_values: Iterable[str] = ()):
        self.extra_values = [v for v in extra_values if v]
        self._escaped: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())  # values -> their JSON-escaped forms

    def serialise(self, value: Any, values: list[str] | None = None) -> str:
        """``value`` as one JSON text (sorted keys, ``str`` for other objects) with every secret
        replaced: the same text as encoding ``self.any(value)``, without walking ``value`` when
        its plain encoding shows no trace of a secret."""
        values = self._values() if values is None else values
        text = _ENCODER.encode(value)
        if not self._may_hold_secret(text, values):
            return text
        return json.dumps(self.any(value, values), sort_keys=True, default=lambda obj: self.text(str(obj), values))

    def _may_hold_secret(self, text: str, values: list[str]) -> bool:
        """False only if redacting the value behind ``text`` (its JSON encoding) changes nothing.

        JSON escapes strings one character at a time, so a string holding a secret encodes to
        text holding the secret's escaped form; ``sk-ant-`` and the key-like field names are
        plain ASCII and encode as themselves. ``\\u`` (any non-ASCII character) always counts
        as a hit: case-insensitive matching of field names also folds a few non-ASCII letters
        (the Kelvin sign matches ``k``), which the ASCII check below would miss."""
        if "\\u" in text or "sk-ant-" in text:
            return True
        key = tuple(values)
        cached_values, escaped = self._escaped
        if cached_values != key:
            escaped = tuple(json.dumps(v)[1:-1] for v in values)
            self._escaped = (key, escaped)
        for secret in escaped:
            if secret in text:
                return True
        # Every match of _SECRET_FIELD, lower-cased, holds one of these words.
        lowered = text.lower()
        return ("key" in lowered or "token" in lowered or "authoriz" in lowered or "password" in lowered
                or "secret" in lowered)

    def _values(self) -> list[str]:
        # Read the environment at each call: a key set after the run started is still hidden.
        found = [os.environ.get(name, "") for name in SECRET_ENV_NAMES]
        return sorted({v for v in [*found, *self.extra_values] if len(v) >= 8}, key=len, reverse=True)

    def text(self, value: str, values: list[str] | None = None) -> str:
        for secret in values if values is not None else self._values():
            if secret in value:
                value = value.replace(secret, REDACTED)
        return _KEY_PATTERN.sub("sk-ant-" + REDACTED, value)

    def any(self, value: Any, values: list[str] | None = None) -> Any:
        values = self._values() if values is None else values
        if isinstance(value, str):
            return self.text(value, values)
        if isinstance(value, dict):
            return {
                (self.text(k, values) if isinstance(k, str) else k):
                    (REDACTED if isinstance(k, str) and _SECRET_FIELD.search(k) and v else self.any(v, values))
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self.any(v, values) for v in value]
        return value


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


def line_from_row(row: m.Event) -> dict[str, Any]:
    try:
        fields = json.loads(row.data_json or "{}")
    except ValueError:
        fields = {"data_json": row.data_json}
    return event_line(seq=row.seq, ts=row.ts, run=row.run_id, kind=row.kind, level=row.level, message=row.message,
                      task=row.task_id, attempt=row.attempt, agent=row.agent_id, fields=fields or None)


def line_from_pending(pending: dict[str, Any]) -> dict[str, Any]:
    """A line as ``runtime.events.EventLog`` queues it (seq, ts, run, kind, ... fields).

    The same line as :func:`event_line` makes, built directly (this runs for every event)."""
    get = pending.get
    ts = float(get("ts") or 0.0)
    line: dict[str, Any] = {"seq": get("seq"), "ts": ts, "time": iso_time(ts), "run": str(get("run", "")),
                            "kind": str(get("kind", "")), "level": str(get("level", "info")),
                            "message": str(get("message", ""))}
    for key in ("task", "attempt", "agent"):
        value = get(key)
        if value is not None:
            line[key] = value
    fields = get("fields")
    if fields:
        line["fields"] = fields
    return line


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

    # -- public -----------------------------------------------------------------------
    def write(self, lines: Iterable[dict[str, Any]]) -> None:
        """Write pending lines (``EventLog`` dicts or :func:`event_line` dicts)."""
        lines = [line_from_pending(p) if "time" not in p else p for p in lines]
        # The secret values are read once per write, not per line: a key set later is hidden
        # from the next write on.
        self._batch_secrets = self.redactor._values()
        try:
            if self._file is None:
                self._open()
                if self.backfill:
                    self._catch_up()
                    lines = [line for line in lines
                             if not isinstance(line.get("seq"), int) or line["seq"] > self.last_seq]
            try:
                if self.backfill and not self._increasing(lines):
                    self._rewind(min(line["seq"] for line in lines if isinstance(line.get("seq"), int)))
                    self._catch_up()  # the store's version of those events replaces the pending lines
                    lines = [line for line in lines if not isinstance(line.get("seq"), int)]
                for line in lines:
                    self._write_line(line)
                assert self._file is not None
                self._file.flush()
            except OSError:
                self._drop_file()
                raise
        finally:
            self._batch_secrets = None

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None

    # -- internals --------------------------------------------------------------------
    def _increasing(self, lines: list[dict[str, Any]]) -> bool:
        """Sequence numbers only grow. A number seen again means a transaction rolled back
        after its events were queued (SQLite reuses the row ids), so those lines are void."""
        last = self.last_seq
        for line in lines:
            seq = line.get("seq")
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
            rows = m.Event.select(m.Event.seq, m.Event.kind).where(
                (m.Event.run == self.run_id) & (m.Event.seq.in_(seqs))
            ).tuples()
            return {seq: kind for seq, kind in rows}
        except Exception:  # no store bound (a writer used on its own)
            return None

    def _catch_up(self) -> None:
        """Events of this run the file does not have yet (committed in the store)."""
        query = (
            m.Event.select()
            .where((m.Event.run == self.run_id) & (m.Event.seq > self.last_seq))
            .order_by(m.Event.seq)
        )
        try:
            rows = list(query)
        except Exception:  # no store bound (a writer used on its own): nothing to catch up
            return
        for row in rows:
            self._write_line(line_from_row(row))

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

    def _write_line(self, line: dict[str, Any]) -> None:
        assert self._file is not None
        data = (self.redactor.serialise(line, self._batch_secrets) + "\n").encode("utf-8")
        if self._size and self._size + len(data) > self.max_bytes:
            self._rotate()
        seq = line.get("seq")
        if isinstance(seq, int):
            if len(self._offsets) >= 4096:  # only recent lines can belong to a rolled-back batch
                for old in sorted(self._offsets)[:2048]:
                    del self._offsets[old]
            self._offsets[seq] = self._size
        self._file.write(data)
        self._size += len(data)
        if isinstance(seq, int):
            self.last_seq = max(self.last_seq, seq)


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
