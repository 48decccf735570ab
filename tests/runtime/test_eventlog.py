"""events.jsonl: a quickstart run's file parses line by line and holds every event of the store
(every task state transition among them); rotation by size; secrets never written; a torn
line or lines of a rolled-back transaction are cut and the store's events caught up."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybrid_tui.runtime.eventlog import (
    EventJsonlWriter,
    event_line,
    event_text,
    iso_time,
    line_from_event,
    read_events_jsonl,
)
from hybrid_tui.vocabulary import Redactor
from hybrid_tui.runtime.events import EventLog
from hybrid_tui.app.launch import start_run
from hybrid_tui.store import models as m
from hybrid_tui.store.db import EVENT_DATA_ENCODER

from .helpers import hybrid, only_run_dir, read_store, task, write_mission


def test_quickstart_events_jsonl_holds_every_store_event(quickstart_copy: Path, tmp_path: Path):
    runs = tmp_path / "runs"
    hybrid("run", str(quickstart_copy), "--headless", "--agents", "4", "--runs-dir", str(runs), cwd=tmp_path,
           check_exit=0)
    run_dir = only_run_dir(runs)
    raw = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    lines = [json.loads(text) for text in raw]  # one JSON object per line
    assert all(isinstance(line, dict) for line in lines)
    store, run = read_store(run_dir)
    try:
        events = list(m.Event.select().where(m.Event.run == run.id).order_by(m.Event.seq))
        assert [line["seq"] for line in lines] == [e.seq for e in events]
        for line, event in zip(lines, events):
            assert (line["kind"], line["level"], line["message"], line["run"]) == (event.kind, event.level, event.message, run.id)
            assert line["ts"] == event.ts and line["time"].endswith("Z") and line["time"][:4].isdigit()
            assert line.get("task") == event.task_id and line.get("attempt") == event.attempt
            assert line.get("fields", {}) == json.loads(event.data_json)
        # Every task state transition, and each task's path ends in its stored status.
        transitions = [(l["task"], l["fields"]["old"], l["fields"]["new"]) for l in lines if l["kind"] == "task.status"]
        stored = [(e.task_id, json.loads(e.data_json)["old"], json.loads(e.data_json)["new"])
                  for e in events if e.kind == "task.status"]
        assert transitions == stored and len(transitions) >= 8 * 4
        for t in m.Task.select().where(m.Task.run == run.id):
            assert [new for tid, _, new in transitions if tid == t.task_id][-1] == t.status == "done"
        assert {"run.created", "run.finished", "attempt.started", "attempt.succeeded", "attempt.failed"} <= {
            line["kind"] for line in lines}
    finally:
        store.close()


def test_secrets_are_redacted_and_the_store_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    secret = "s3cr3t-value-0123456789"
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "tok-ABCDEFGHIJ")
    root = write_mission(tmp_path / "mission", [task("a")])
    store, run_id, c = start_run(root, tmp_path / "runs")
    try:
        log = EventLog(store, run_id, tmp_path / "events.jsonl", clock=lambda: 1_700_000_000.0)
        with store.write(run_id):
            log.add("agent.note", f"called with key {secret} and sk-ant-api03-AbCdEf_123-xyz", task_id="a",
                    output=[f"Bearer tok-ABCDEFGHIJ", {"nested": secret}], api_key="whatever")
        log.close()
        text = (tmp_path / "events.jsonl").read_text()
        assert secret not in text and "tok-ABCDEFGHIJ" not in text and "AbCdEf_123" not in text and "whatever" not in text
        line = [json.loads(x) for x in text.splitlines() if json.loads(x)["kind"] == "agent.note"][0]
        assert line["message"] == "called with key [redacted] and sk-ant-[redacted]"
        assert line["fields"] == {"output": ["Bearer [redacted]", {"nested": "[redacted]"}], "api_key": "[redacted]"}
        assert line["time"] == "2023-11-14T22:13:20.000Z" and line["task"] == "a"
    finally:
        store.close()


def test_rotation_by_size_keeps_every_line(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    writer = EventJsonlWriter(path, "r1", max_bytes=2_000, backups=3, backfill=False)
    for seq in range(1, 41):
        writer.write([event_line(seq=seq, ts=1_700_000_000 + seq, run="r1", kind="tick", message="x" * 100)])
    writer.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["events.jsonl", "events.jsonl.1", "events.jsonl.2", "events.jsonl.3"]
    assert all(p.stat().st_size <= 2_000 for p in tmp_path.iterdir())
    seqs = [line["seq"] for line in read_events_jsonl(path)]
    assert seqs == list(range(seqs[0], 41)) and seqs[0] > 1  # oldest files beyond 3 backups dropped, order kept


def test_a_torn_line_and_rolled_back_lines_are_replaced_by_the_store(tmp_path: Path):
    root = write_mission(tmp_path / "mission", [task("a")])
    store, run_id, c = start_run(root, tmp_path / "runs")
    path = tmp_path / "events.jsonl"
    try:
        log = EventLog(store, run_id, path, clock=lambda: 1_700_000_000.0)
        with store.write(run_id):
            log.add("one", "first")
        log.flush()
        # A transaction that rolls back after its event was queued; its line gets written by a
        # later flush, then SQLite reuses the row id for the next real event.
        with pytest.raises(RuntimeError):
            with store.write(run_id):
                log.add("ghost", "rolled back")
                raise RuntimeError("boom")
        log.flush()
        with store.write(run_id):
            log.add("two", "second")
        log.flush()
        log.close()
        with open(path, "ab") as handle:
            handle.write(b'{"seq": 12345, "kind": "to')  # a write cut short by a full disk
        with store.write(run_id):
            store.add_event(run_id, "three", "written without the log")
        log2 = EventLog(store, run_id, path, clock=lambda: 1_700_000_001.0)
        with store.write(run_id):
            log2.add("four", "after restart")
        log2.close()
        lines = [json.loads(x) for x in path.read_text().splitlines()]
        stored = [(e.seq, e.kind) for e in m.Event.select().where(m.Event.run == run_id).order_by(m.Event.seq)]
        assert [(line["seq"], line["kind"]) for line in lines] == stored
        assert "ghost" not in {line["kind"] for line in lines}
        assert [k for _, k in stored][-4:] == ["one", "two", "three", "four"]
    finally:
        store.close()


def test_a_secret_anywhere_in_any_line_is_redacted_even_a_key_set_after_the_writer_started(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Lines are encoded once and searched for traces of a secret; only lines with a trace are
    walked field by field. Every kind of trace, however deep, still ends up redacted."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    path = tmp_path / "events.jsonl"
    writer = EventJsonlWriter(path, "r1", backfill=False)
    # Neither value holds a key-like word, so only the search for the value itself finds them.
    key, token = "L8r-0123456789-abcdef", 'pa"ss\\wd-ABCDEFG'  # the token needs JSON escaping
    writer.write([event_line(seq=1, ts=1_700_000_000.0, run="r1", kind="before", message=f"not secret yet: {key}")])
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", token)
    fields = [
        {"steps": [{"out": ["ok", {"deep": f"x{key}y"}]}]},  # nested value
        # Field names that look like credentials, one kind per line.
        {"headers": [{"AUTHORIZATION": "Bearer abc"}]},
        {"Api-Key": "v"},
        {"nested": {"auth_token": "t"}},
        {"db_password": "p"},
        {"SECRET": ["s"], "empty": {"client_secret": ""}},  # an empty value stays as it is
        {"api_\u212aey": "kelvin", "note": "na\u00efve"},  # the Kelvin sign folds to k: still a key name
        {"where": PurePosixPath(f"/tmp/{key}/x")},  # an object written through str()
        {"log": [f"with {token}"]},
        {"log": ["sk-ant-api03-AbCd_ef-99"]},
        {f"by-{key}": 1},  # the secret as a field name
        {"input_tokens": 12, "keyboard": "qwerty"},  # looks key-ish, is not a secret
    ]
    writer.write([event_line(seq=2 + i, ts=1_700_000_001.0 + i, run="r1", kind="k", fields=f) for i, f in enumerate(fields)])
    writer.close()
    text = path.read_text(encoding="utf-8")
    assert json.dumps(token)[1:-1] not in text and "wd-ABCDEFG" not in text
    lines = read_events_jsonl(path)
    assert [line["seq"] for line in lines] == list(range(1, 2 + len(fields)))
    assert lines[0]["message"] == f"not secret yet: {key}"  # written before the key existed
    assert key not in text.split("\n", 1)[1] and "AbCd_ef" not in text
    assert [line["fields"] for line in lines[1:]] == [
        {"steps": [{"out": ["ok", {"deep": "x[redacted]y"}]}]},
        {"headers": [{"AUTHORIZATION": "[redacted]"}]},
        {"Api-Key": "[redacted]"},
        {"nested": {"auth_token": "[redacted]"}},
        {"db_password": "[redacted]"},
        {"SECRET": "[redacted]", "empty": {"client_secret": ""}},
        {"api_\u212aey": "[redacted]", "note": "na\u00efve"},
        {"where": "/tmp/[redacted]/x"},
        {"log": ["with [redacted]"]},
        {"log": ["sk-ant-[redacted]"]},
        {"by-[redacted]": 1},
        {"input_tokens": 12, "keyboard": "qwerty"},
    ]


def test_event_times_match_the_standard_library_at_millisecond_and_second_edges():
    """The time text is built from a per-second cache; it must read exactly as datetime writes
    it, including microseconds that round up into the next second."""
    def reference(ts: float) -> str:
        return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    stamps = [1_700_000_000.0, 0.0, 951_782_400.5]  # 2000-02-29 included
    for base in (1_700_000_000, 1_704_067_199, 0, -1):  # -> 2023-12-31T23:59:59, the epoch, before it
        for fraction in (0.9999995, 0.9999994999, 0.0000005, 0.0015, 0.9995, 0.5, -0.0000004):
            stamps += [base + fraction, math.nextafter(base + fraction, -math.inf),
                       math.nextafter(base + fraction, math.inf)]
    assert [iso_time(ts) for ts in stamps] == [reference(ts) for ts in stamps]
    assert iso_time(1_704_067_199.9999996) == "2024-01-01T00:00:00.000Z"  # rounds into the new year


# -- lines of EventLog events: built from the stored row, written a batch at a time ------------
RUN = "r1"
SECRET = "L8r-0123456789-abcdef"  # no key-like word in it: only the search for the value finds it


def reference_lines(events: list[tuple], redactor: Redactor) -> list[str]:
    """Each event's line through the general path: walked, redacted, then encoded."""
    values = redactor.values()
    return [redactor.redacted_text(line_from_event(*event), values) for event in events]


def stored_events() -> list[tuple]:
    return list(m.Event.select(m.Event.seq, m.Event.run, m.Event.ts, m.Event.kind, m.Event.level, m.Event.task_id,
                               m.Event.attempt, m.Event.agent_id, m.Event.message, m.Event.data_json)
                .order_by(m.Event.seq).tuples())


def test_a_batch_with_secrets_non_ascii_and_odd_values_reads_as_the_general_path_writes_it(
        store_with_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """One transaction's events are written together; a secret (in the message, in a field
    value, as a field name, key-shaped), non-ASCII text and values of unexpected types in
    some lines change nothing for the clean lines around them."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    path = tmp_path / "events.jsonl"
    stamps = [1_700_000_000.0 + i * 0.0004 for i in range(100)]
    clock = iter(stamps)
    log = EventLog(store_with_run, RUN, path, clock=lambda: next(clock))
    with store_with_run.write(RUN):
        log.add("run.running", "running")
    log.flush()  # the file is open and caught up: the next lines are the log's own
    calls = [
        (("task.status", "ready -> running: dispatched"), dict(task_id="a", old="ready", new="running")),
        (("agent.note", f"called with {SECRET}"), dict(task_id="a", attempt=1, agent_id="agent-01")),
        (("agent.note", "plain"), dict(output=[f"x{SECRET}y", {"deep": SECRET}])),
        (("agent.note", "named"), dict(api_key="whatever", input_tokens=12)),
        (("agent.note", "shaped"), dict(log="sk-ant-api03-AbCd_ef-99")),
        (("agent.note", "na\u00efve \u2603 \"quoted\"\n"), dict(task_id="t\u00e9", note="caf\u00e9", where=Path("/x"))),
        (("agent.note", "odd"), dict(task_id=7, attempt=True, numbers={3: 1, 10: 2}, nan=float("nan"))),
        (("attempt.started", "attempt 1 on agent-02"), dict(task_id="b", attempt=1, agent_id="agent-02")),
    ]
    with store_with_run.write(RUN):
        for args, kwargs in calls:
            log.add(*args, **kwargs)
    log.close()
    text = path.read_text(encoding="utf-8")
    assert SECRET not in text and "whatever" not in text and "AbCd_ef" not in text
    events = stored_events()
    assert [e[3] for e in events] == ["run.running"] + [args[0] for args, _ in calls]
    items = []
    for seq, ts, (args, kwargs) in zip([e[0] for e in events[1:]], stamps[1:], calls):
        data = {k: v for k, v in kwargs.items() if k not in ("task_id", "attempt", "agent_id")}
        data_json = json.dumps(data, sort_keys=True, default=str)
        items.append((seq, (RUN, ts, *args[:1], "info", kwargs.get("task_id"), kwargs.get("attempt"),
                            kwargs.get("agent_id"), args[1], data_json), data))
    # The store holds each event's fields as the standard encoder writes them...
    assert [e[9] for e in events[1:]] == [row[8] for _, row, _ in items]
    # ... and each line reads exactly as the general path writes it.
    expected = reference_lines(items, Redactor())
    assert text.splitlines()[1:] == expected
    lines = [json.loads(x) for x in expected]
    assert lines[1]["message"] == "called with [redacted]" and lines[3]["fields"]["api_key"] == "[redacted]"
    assert lines[5]["message"] == "na\u00efve \u2603 \"quoted\"\n" and lines[5]["task"] == "t\u00e9"
    assert lines[6]["task"] == 7 and lines[6]["attempt"] is True
    assert list(lines[6]["fields"]["numbers"]) == ["3", "10"]  # as the store's text has them


def test_lines_of_a_rolled_back_batch_already_written_are_cut_and_replaced_by_the_store(store_with_run, tmp_path: Path):
    """A transaction whose events were inserted and queued, then rolled back: a flush writes
    their lines as one batch; the next transaction reuses their numbers, so the writer cuts
    the file back to before them and takes the store's events instead."""
    if not store_with_run.is_sqlite:
        pytest.skip("SQLite reuses a rolled-back transaction's row numbers; a PostgreSQL sequence never does")
    path = tmp_path / "events.jsonl"
    log = EventLog(store_with_run, RUN, path, clock=lambda: 1_700_000_000.25)
    with store_with_run.write(RUN):
        log.add("one", "first", n=1)
        log.add("two", "second")
    log.flush()
    with pytest.raises(RuntimeError):
        with store_with_run.write(RUN):
            for i in range(3):
                log.add("ghost", f"rolled back {i}", task_id="g")
            log.flush_staged()  # inserted and queued as committed: then the transaction fails
            raise RuntimeError("boom")
    log.flush()
    assert [line["kind"] for line in read_events_jsonl(path)] == ["one", "two", "ghost", "ghost", "ghost"]
    with store_with_run.write(RUN):
        log.add("three", "third", task_id="a", attempt=2, agent_id="agent-01", cost_usd=0.5)
        log.add("four", "fourth")
    log.close()
    events = stored_events()
    assert [e[3] for e in events] == ["one", "two", "three", "four"]
    assert [e[0] for e in events] == list(range(events[0][0], events[0][0] + 4))
    lines = read_events_jsonl(path)
    assert [(line["seq"], line["kind"]) for line in lines] == [(e[0], e[3]) for e in events]
    assert lines[2]["fields"] == {"cost_usd": 0.5} and lines[2]["agent"] == "agent-01"


def test_a_batch_crossing_the_size_limit_rotates_between_its_lines(store_with_run, tmp_path: Path):
    path = tmp_path / "events.jsonl"
    log = EventLog(store_with_run, RUN, path, clock=lambda: 1_700_000_000.0)
    log._writer.max_bytes = 1_500
    for batch in range(3):
        with store_with_run.write(RUN):
            for i in range(8):
                log.add("tick", "x" * 60, task_id=f"t{batch}-{i}")
        log.flush()
    log.close()
    files = [path, *(path.with_name(f"events.jsonl.{i}") for i in range(1, 6))]
    assert all(f.stat().st_size <= 1_500 for f in files if f.exists())
    assert [line["task"] for line in read_events_jsonl(path)][-5:] == [f"t2-{i}" for i in range(3, 8)]
    seqs = [line["seq"] for line in read_events_jsonl(path)]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["", "ok", SECRET, f"a{SECRET}", "sk-ant-abcd1234", "api_key", "Token", "caf\u00e9", "\u212a"])
_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3), max_leaves=8)
_event = st.tuples(
    st.sampled_from(["task.status", "agent.note", _text.example() if False else "k\u00e9"]) | _text,
    _text, st.sampled_from(["info", "warning"]) | _text,
    st.none() | _text | st.integers(), st.none() | st.integers() | st.booleans(), st.none() | _text,
    st.dictionaries(st.sampled_from(["old", "new", "api_key", "out", "n\u00e9", SECRET]) | _text, _value, max_size=3),
    st.floats(min_value=-1e10, max_value=4e9) | st.sampled_from([1_700_000_000.9999996, 0.0, float("inf")]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(_event, min_size=1, max_size=6), with_secret=st.booleans())
def test_fuzz_written_batches_equal_the_general_path(events, with_secret, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch):
    """Random events (any text, nested fields, odd types, secrets, key-like names) written as
    one batch by the fast path read byte for byte as the general path writes each line."""
    if with_secret:
        monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    else:
        monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    path = tmp_path / f"fuzz-{with_secret}.jsonl"
    path.unlink(missing_ok=True)
    items = []
    for seq, (kind, message, level, task, attempt, agent, data, ts) in enumerate(events, start=1):
        data_json = EVENT_DATA_ENCODER.encode(data) if data else "{}"
        assert data_json == json.dumps(data, sort_keys=True, default=str)
        items.append((seq, ("r1", ts, kind, level, task, attempt, agent, message, data_json), data))
    redactor = Redactor()
    try:
        expected = reference_lines(items, redactor)
    except (ValueError, OverflowError):  # a non-finite ts has no ISO time in either path
        return
    for (seq, row, data), line in zip(items, expected):
        text = event_text(seq, row)
        assert text is None or text == EVENT_DATA_ENCODER.encode(line_from_event(seq, row, data)) + "\n"
    writer = EventJsonlWriter(path, "r1", backfill=False, redactor=redactor)
    writer.write(items)
    writer.close()
    assert path.read_text(encoding="utf-8").splitlines() == expected
    if with_secret:
        assert SECRET not in path.read_text(encoding="utf-8")
