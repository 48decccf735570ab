"""Recordings survive a coordinator killed in the middle of writing them."""

from __future__ import annotations

from pathlib import Path

from hybrid_tui.runtime.record import Recorder, read_ledger, read_recordings, record_dir
from hybrid_tui.spec.models import CreateOp, RecordedAttempt, Usage


def attempt(name: str) -> RecordedAttempt:
    return RecordedAttempt(
        file_operations=[CreateOp(op="create", path=f"{name}.txt", content=name)],
        usage=Usage(input_tokens=10, output_tokens=5),
        cost_usd=0.01,
        summary=name,
    )


def test_a_first_recording_torn_by_a_crash_is_skipped_and_the_next_attempt_starts_afresh(tmp_path: Path):
    folder = record_dir(tmp_path)
    folder.mkdir(parents=True)
    (folder / "t1.json").write_text('{"task_id": "t1", "attempts": [{"file_oper')  # killed mid-write

    assert read_recordings(tmp_path) == {}
    recorder = Recorder(tmp_path)
    assert recorder.add("t1", attempt("second")) == 0
    recorder.close()
    recorded = read_recordings(tmp_path)["t1"]
    assert [a.summary for a in recorded.attempts] == ["second"]


def test_retries_append_without_putting_earlier_attempts_at_risk(tmp_path: Path):
    recorder = Recorder(tmp_path)
    assert recorder.add("t1", attempt("first")) == 0
    assert recorder.add("t1", attempt("second")) == 1
    recorder.close()
    assert [a.summary for a in read_recordings(tmp_path)["t1"].attempts] == ["first", "second"]
    assert not list(record_dir(tmp_path).glob("*.tmp"))


def test_a_ledger_line_torn_by_a_crash_does_not_swallow_the_next_line(tmp_path: Path):
    recorder = Recorder(tmp_path)
    recorder.ledger({"task_id": "t1", "number": 1})
    recorder.close()
    with open(record_dir(tmp_path) / "attempts.jsonl", "a") as ledger:
        ledger.write('{"task_id": "t2", "numb')  # killed mid-line

    recorder = Recorder(tmp_path)
    recorder.ledger({"task_id": "t3", "number": 1})
    recorder.close()
    assert [line["task_id"] for line in read_ledger(tmp_path)] == ["t1", "t3"]
