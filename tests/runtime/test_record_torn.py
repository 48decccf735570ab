"""Recordings survive a coordinator killed (or a disk filling up) in the middle of writing them,
and run folders written in the older layout (one ``record/<task_id>.json`` per task) still read."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from hybrid_tui.runtime.record import LEDGER, Recorder, read_ledger, read_recordings, record_dir
from hybrid_tui.spec.models import CreateOp, PatchOp, RecordedAttempt, RecordedTask, Usage


def attempt(name: str) -> RecordedAttempt:
    return RecordedAttempt(
        file_operations=[CreateOp(op="create", path=f"{name}.txt", content=f"{name} \u00e9\u2713\n")],
        usage=Usage(input_tokens=10, output_tokens=5),
        cost_usd=0.01,
        summary=name,
    )


def entry(task_id: str, number: int, **more) -> dict:
    return {"task_id": task_id, "number": number, "outcome": "succeeded", **more}


def summaries(run_dir: Path) -> dict[str, list[str]]:
    return {task_id: [a.summary for a in rec.attempts] for task_id, rec in read_recordings(run_dir).items()}


def test_every_attempt_is_one_appended_line_and_earlier_lines_are_never_rewritten(tmp_path: Path):
    recorder = Recorder(tmp_path)
    recorder.record(entry("t1", 1), attempt("first"))
    ledger = record_dir(tmp_path) / LEDGER
    before = ledger.read_bytes()
    recorder.record(entry("t2", 1), attempt("other"))
    recorder.record(entry("t1", 2), attempt("second"))
    recorder.close()

    after = ledger.read_bytes()
    assert after.startswith(before) and after.count(b"\n") == 3
    assert [p.name for p in record_dir(tmp_path).iterdir()] == [LEDGER]  # no file per task
    assert summaries(tmp_path) == {"t1": ["first", "second"], "t2": ["other"]}
    assert read_recordings(tmp_path)["t1"].attempts[0] == attempt("first")  # round-trips exactly (unicode too)
    lines = read_ledger(tmp_path)
    assert [(line["task_id"], line["number"], line["index"]) for line in lines] == [("t1", 1, 0), ("t2", 1, 0), ("t1", 2, 1)]
    assert all("recorded" not in line for line in lines)


def test_a_line_torn_by_a_crash_is_skipped_and_does_not_swallow_the_next_one(tmp_path: Path):
    recorder = Recorder(tmp_path)
    recorder.record(entry("t1", 1), attempt("first"))
    recorder.close()
    with open(record_dir(tmp_path) / LEDGER, "a") as ledger:
        ledger.write('{"task_id": "t1", "number": 2, "recorded": {"file_oper')  # killed mid-line

    recorder = Recorder(tmp_path)  # the next coordinator on this run
    recorder.record(entry("t1", 3), attempt("third"))
    recorder.ledger({"task_id": "t3", "number": 1})
    recorder.close()
    assert summaries(tmp_path) == {"t1": ["first", "third"]}
    assert [(line["task_id"], line["number"], line.get("index")) for line in read_ledger(tmp_path)] == [
        ("t1", 1, 0), ("t1", 3, 1), ("t3", 1, None)]


DISK_FULL = textwrap.dedent('''
    """Record an attempt bigger than the room left (RLIMIT_FSIZE), then one more with room again."""
    import resource, signal, sys
    from hybrid_tui.runtime.record import LEDGER, Recorder, record_dir
    from hybrid_tui.spec.models import PatchOp, RecordedAttempt
    run_dir = sys.argv[1]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing us
    recorder = Recorder(run_dir)
    recorder.record({"task_id": "t1", "number": 1}, RecordedAttempt(summary="first"))
    size = (record_dir(run_dir) / LEDGER).stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 1000, hard))
    big = RecordedAttempt(file_operations=[PatchOp(op="patch", path="big.bin", diff="x" * 100_000)], summary="big")
    try:
        recorder.record({"task_id": "t1", "number": 2}, big)
    except OSError as exc:
        print("write failed:", exc.errno)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    recorder.record({"task_id": "t1", "number": 3}, RecordedAttempt(summary="third"))
    recorder.close()
''')


def test_a_write_cut_short_by_a_full_disk_leaves_a_skipped_line_and_recording_goes_on(tmp_path: Path):
    script = tmp_path / "disk_full.py"
    script.write_text(DISK_FULL)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "run")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("write failed: 27")  # EFBIG: part of the line reached the file
    raw = (record_dir(tmp_path / "run") / LEDGER).read_bytes()
    assert len(raw.splitlines()) == 3 and raw.endswith(b"\n")
    assert summaries(tmp_path / "run") == {"t1": ["first", "third"]}
    assert [line["number"] for line in read_ledger(tmp_path / "run")] == [1, 3]


def write_old_layout(run_dir: Path, recordings: dict[str, list[RecordedAttempt]], torn: dict[str, str]) -> None:
    """A run folder as the previous version left it: ``<task_id>.json`` per task, ledger lines
    with the attempt's ``index`` in that file."""
    folder = record_dir(run_dir)
    folder.mkdir(parents=True)
    lines = []
    for task_id, attempts in recordings.items():
        (folder / f"{task_id}.json").write_text(
            RecordedTask(task_id=task_id, attempts=attempts).model_dump_json(indent=2, exclude_none=True))
        lines += [json.dumps(entry(task_id, index + 1, index=index)) + "\n" for index in range(len(attempts))]
    for task_id, text in torn.items():
        (folder / f"{task_id}.json").write_text(text)
    (folder / LEDGER).write_text("".join(lines))


def test_a_run_folder_in_the_older_layout_reads_and_a_resumed_run_continues_it(tmp_path: Path):
    write_old_layout(tmp_path, {"t1": [attempt("old-1"), attempt("old-2")], "t2": [attempt("old-only")]},
                     torn={"t3": '{"task_id": "t3", "attempts": [{"file_oper'})  # killed mid-write
    assert summaries(tmp_path) == {"t1": ["old-1", "old-2"], "t2": ["old-only"]}

    recorder = Recorder(tmp_path)  # the run resumed by this version
    recorder.record(entry("t1", 3), attempt("new-3"))
    recorder.record(entry("t3", 1), attempt("new-t3"))
    recorder.close()
    recordings = read_recordings(tmp_path)
    assert summaries(tmp_path) == {"t1": ["old-1", "old-2", "new-3"], "t2": ["old-only"], "t3": ["new-t3"]}
    # Each ledger line's index still points at its own attempt, old lines and new ones alike.
    for line in read_ledger(tmp_path):
        assert recordings[line["task_id"]].attempts[line["index"]].summary.endswith(
            {("t1", 1): "old-1", ("t1", 2): "old-2", ("t1", 3): "new-3", ("t2", 1): "old-only", ("t3", 1): "new-t3"}[
                (line["task_id"], line["number"])])


def test_the_line_of_a_big_recording_holds_its_diff_whole(tmp_path: Path):
    """A worktree diff can be far bigger than any buffer: still one line, read back whole."""
    diff = "".join(f"+line {i} \u00e9\n" for i in range(20_000))
    recorder = Recorder(tmp_path)
    recorder.record(entry("t1", 1), RecordedAttempt(file_operations=[PatchOp(op="patch", path="a.txt", diff=diff)]))
    recorder.close()
    assert read_recordings(tmp_path)["t1"].attempts[0].file_operations[0].diff == diff
    assert (record_dir(tmp_path) / LEDGER).read_bytes().count(b"\n") == 1
