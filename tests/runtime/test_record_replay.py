"""Record a run, export it as a replay mission, replay it: same tree, outcomes and costs."""

from __future__ import annotations

import json
import math
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hybrid_tui.runtime.record import read_ledger, read_recordings, recording_json
from hybrid_tui.spec.loader import load_mission
from hybrid_tui.spec.models import (
    CreateOp, DeleteOp, EditOp, IntentOp, PatchOp, RecordedAttempt, RecordedTask, Usage,
)

from .helpers import copy_quickstart, git, hybrid, only_run_dir, py, task, write_mission


def run_facts(run_dir: Path) -> dict:
    """What a run produced, read straight from its store (state.db, or the store its
    store.url names)."""
    from hybrid_tui.store import models as m, open_store
    from hybrid_tui.store.runs import run_store_location

    store = open_store(run_store_location(run_dir), create=False)
    try:
        run = m.Run.get_by_id(run_dir.name) if m.Run.get_or_none(m.Run.id == run_dir.name) else m.Run.select().first()
        repo, branch = run.repo_path, run.mission_branch
        attempts = [tuple(row) for row in m.Attempt.select(
            m.Attempt.task_id, m.Attempt.number, m.Attempt.outcome, m.Attempt.failure_type, m.Attempt.cost_usd,
            m.Attempt.input_tokens, m.Attempt.output_tokens, m.Attempt.model,
        ).where((m.Attempt.run == run.id) & (m.Attempt.phase != "planning"))
            .order_by(m.Attempt.task_id, m.Attempt.number).tuples()]
        tasks = {task_id: f"{status}/{attempts_}" for task_id, status, attempts_ in
                 m.Task.select(m.Task.task_id, m.Task.status, m.Task.attempts).where(m.Task.run == run.id).tuples()}
    finally:
        store.close()
    tree = git(Path(repo), "rev-parse", f"{branch}^{{tree}}").strip()
    return {"tree": tree, "attempts": attempts, "tasks": tasks}


@pytest.mark.slow
def test_quickstart_recorded_exported_and_replayed_gives_the_same_run(tmp_path: Path):
    mission = copy_quickstart(tmp_path / "quickstart")
    runs, replay_runs = tmp_path / "runs", tmp_path / "replay-runs"
    hybrid("run", str(mission), "--headless", "--agents", "3", "--runs-dir", str(runs), cwd=tmp_path, check_exit=0)
    original_dir = only_run_dir(runs)
    original = run_facts(original_dir)

    # Every real attempt left a recording in the run folder, with its validation outcome.
    ledger = [json.loads(line) for line in (original_dir / "record" / "attempts.jsonl").read_text().splitlines()]
    assert sorted((e["task_id"], e["number"], e["outcome"]) for e in ledger) == sorted(
        (a[0], a[1], a[2]) for a in original["attempts"])
    failed = [e for e in ledger if e["outcome"] == "failed"]
    assert failed and failed[0]["validation"] == "failed" and "assert" in failed[0]["output"]

    dest = tmp_path / "exported"
    out = hybrid("export-replay", original_dir.name, str(dest), "--runs-dir", str(runs), cwd=tmp_path, check_exit=0)
    assert "9 recorded attempt(s)" in out.stdout

    exported = load_mission(dest)  # a valid mission folder
    assert exported.config.agents.backend == "replay"
    assert not (dest / "repo" / ".git").exists()
    base = git(mission / "repo", "rev-parse", "main^{tree}").strip()
    assert sorted(p.relative_to(dest / "repo").as_posix() for p in (dest / "repo").rglob("*") if p.is_file()) == sorted(
        git(mission / "repo", "ls-tree", "-r", "--name-only", base).split())
    assert [len(r.attempts) for r in exported.recorded.values()].count(2) == 1

    hybrid("run", str(dest), "--headless", "--agents", "3", "--runs-dir", str(replay_runs), cwd=tmp_path, check_exit=0)
    replayed = run_facts(only_run_dir(replay_runs))

    assert replayed["tree"] == original["tree"]
    assert replayed["tasks"] == original["tasks"]
    assert replayed["attempts"] == original["attempts"]  # outcomes, failure types, exact costs, tokens, models


def test_export_refuses_a_non_empty_destination_and_an_unknown_run(tmp_path: Path):
    mission = write_mission(tmp_path / "m", [task("a")])
    runs = tmp_path / "runs"
    hybrid("run", str(mission), "--headless", "--runs-dir", str(runs), cwd=tmp_path, check_exit=0)
    run_dir = only_run_dir(runs)

    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine\n")
    proc = hybrid("export-replay", str(run_dir), str(dest), cwd=tmp_path, check_exit=2)
    assert proc.stderr.count("\n") == 1 and "not an empty folder" in proc.stderr
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]

    proc = hybrid("export-replay", "no-such-run", str(tmp_path / "new"), "--runs-dir", str(runs), cwd=tmp_path, check_exit=2)
    assert proc.stderr.count("\n") == 1 and "no-such-run" in proc.stderr
    assert not (tmp_path / "new").exists()

    # An empty destination folder is fine; --pace scales the recorded durations.
    empty = tmp_path / "empty"
    empty.mkdir()
    hybrid("export-replay", str(run_dir), str(empty), "--pace", "0.5", cwd=tmp_path, check_exit=0)
    recorded = read_recordings(run_dir)["a"].attempts[0]
    exported = json.loads((empty / "replay" / "a.json").read_text())["attempts"][0]
    assert exported["duration_seconds"] == pytest.approx(recorded.duration_seconds * 0.5)

    # A recording whose attempt the store does not count (written just before a crash, the
    # attempt later marked interrupted) is matched by attempt number and left out; so is a
    # line torn by the crash.
    ledger = run_dir / "record" / "attempts.jsonl"
    text = ledger.read_text()
    line = json.loads(text.splitlines()[0])
    orphan = {**line, "number": 7, "recorded": {**line["recorded"], "summary": "interrupted by a crash",
                                                 "failure_type": "network_error"}}
    ledger.write_text(json.dumps(orphan) + "\n" + text + '{"task_id": "a", "number": 8, "recorded": {"torn')
    again = tmp_path / "again"
    hybrid("export-replay", str(run_dir), str(again), cwd=tmp_path, check_exit=0)
    attempts = json.loads((again / "replay" / "a.json").read_text())["attempts"]
    assert len(attempts) == 1 and "failure_type" not in attempts[0] and attempts[0]["summary"] != "interrupted by a crash"


def to_old_layout(run_dir: Path) -> None:
    """Rewrite a run folder's recordings the way the previous version wrote them: one
    ``record/<task_id>.json`` per task, ledger lines holding the attempt's index in that file."""
    folder = run_dir / "record"
    lines = read_ledger(run_dir)
    for task_id, recorded in read_recordings(run_dir).items():
        (folder / f"{task_id}.json").write_text(recorded.model_dump_json(indent=2, exclude_none=True))
    (folder / "attempts.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_a_run_recorded_by_the_previous_version_exports_the_same_mission(tmp_path: Path):
    mission = write_mission(tmp_path / "m", [task("a", checks=[py("import sys; sys.exit(0)")]), task("b", deps=["a"])])
    runs = tmp_path / "runs"
    hybrid("run", str(mission), "--headless", "--runs-dir", str(runs), cwd=tmp_path, check_exit=0)
    run_dir = only_run_dir(runs)
    new = tmp_path / "new"
    hybrid("export-replay", str(run_dir), str(new), cwd=tmp_path, check_exit=0)

    to_old_layout(run_dir)
    assert sorted(p.name for p in (run_dir / "record").iterdir()) == ["a.json", "attempts.jsonl", "b.json"]
    assert all("recorded" not in json.loads(raw) for raw in (run_dir / "record" / "attempts.jsonl").read_text().splitlines())
    old = tmp_path / "old"
    hybrid("export-replay", str(run_dir), str(old), cwd=tmp_path, check_exit=0)
    replays = sorted(p.relative_to(new).as_posix() for p in new.rglob("*") if p.is_file())
    assert "replay/a.json" in replays and "replay/b.json" in replays
    assert replays == sorted(p.relative_to(old).as_posix() for p in old.rglob("*") if p.is_file())
    for name in replays:
        assert (old / name).read_bytes() == (new / name).read_bytes(), name
    assert RecordedTask.model_validate_json((old / "replay" / "a.json").read_text()).attempts


AGENT_SCRIPT = textwrap.dedent('''
    """A stand-in coding agent: edits the worktree (cwd) per task; its first try at 'b' is wrong."""
    import pathlib, sys
    task = sys.argv[1]
    tries = pathlib.Path(sys.argv[2]) / f"{task}.tries"
    tries.write_text(str(int(tries.read_text()) + 1 if tries.exists() else 1))
    here = pathlib.Path(".")
    if task == "a":
        (here / "notes.md").write_text("# Notes\\n\\nwritten by a\\n")
        readme = here / "README.md"
        readme.write_text(readme.read_text().replace("demo", "demo, improved"))
        (here / "old.txt").unlink()
        (here / "logo.bin").write_bytes(bytes(range(256)))
    elif task == "b":
        value = "41" if tries.read_text() == "1" else "42"
        (here / "answer.py").write_text(f"ANSWER = {value}\\n")
    elif task == "c":  # depends on a: edits the file a created
        notes = here / "notes.md"
        notes.write_text(notes.read_text() + "and extended by c\\n")
''')


@pytest.mark.slow
def test_a_cli_agent_run_is_recorded_from_the_worktree_diff_and_replays_identically(tmp_path: Path):
    """Another backend's changes are read from the worktree (create, patch, delete, binary)."""
    state = tmp_path / "agent-state"
    state.mkdir()
    (tmp_path / "agent.py").write_text(AGENT_SCRIPT)
    template = f"{sys.executable} {tmp_path / 'agent.py'} {{task_id}} {state}"
    intent = lambda path: [{"op": "intent", "path": path, "intent": "see the issue"}]  # noqa: E731
    mission = write_mission(
        tmp_path / "m",
        [
            task("a", ops=intent("notes.md") + intent("README.md") + intent("old.txt") + intent("logo.bin")),
            task("b", ops=intent("answer.py"), checks=[py("import answer; assert answer.ANSWER == 42")]),
            task("c", deps=["a"], ops=intent("notes.md")),
        ],
        files={"README.md": "demo\n", "old.txt": "obsolete\n"},
        mission=f'backend = "cli"\ncli = {json.dumps(template)}\n\n[policies]\nfailure_rate_pause = 0.9\n',
    )
    runs, replay_runs = tmp_path / "runs", tmp_path / "replay-runs"
    hybrid("run", str(mission), "--headless", "--runs-dir", str(runs), cwd=tmp_path, check_exit=0)
    original_dir = only_run_dir(runs)
    original = run_facts(original_dir)
    assert [a[2] for a in original["attempts"] if a[0] == "b"] == ["failed", "succeeded"]

    recordings = read_recordings(original_dir)
    ops = {
        task_id: [(o.op, o.path) for a in recordings[task_id].attempts for o in a.file_operations]
        for task_id in "abc"
    }
    assert sorted(ops["a"]) == [("create", "notes.md"), ("delete", "old.txt"), ("patch", "README.md"), ("patch", "logo.bin")]
    assert ops["b"] == [("create", "answer.py"), ("create", "answer.py")]
    assert ops["c"] == [("patch", "notes.md")]

    dest = tmp_path / "exported"
    hybrid("export-replay", str(original_dir), str(dest), cwd=tmp_path, check_exit=0)
    hybrid("run", str(dest), "--headless", "--runs-dir", str(replay_runs), cwd=tmp_path, check_exit=0)
    replayed = run_facts(only_run_dir(replay_runs))
    assert replayed["tree"] == original["tree"]
    assert replayed["tasks"] == original["tasks"]
    assert [a[:5] for a in replayed["attempts"]] == [a[:5] for a in original["attempts"]]
    # The agent ran only in the original run: replay applied the recording.
    assert (state / "a.tries").read_text() == "1" and (state / "b.tries").read_text() == "2"


@pytest.mark.slow
def test_demo_runs_web18_headless_to_the_designed_end(tmp_path: Path):
    runs = tmp_path / "runs"
    proc = hybrid("demo", "--headless", "--pace", "0", "--runs-dir", str(runs), cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]  # the designed conflict waits for the operator
    assert "web-18 (18 tasks)" in proc.stderr
    facts = run_facts(only_run_dir(runs))
    assert sorted(facts["tasks"].values()).count("failed/1") == 1
    assert sum(1 for v in facts["tasks"].values() if v.startswith("done/")) == 17
    # The demo run is recorded like any other run.
    assert (only_run_dir(runs) / "record" / "attempts.jsonl").is_file()


def test_demo_refuses_a_folder_without_a_mission(tmp_path: Path):
    proc = hybrid("demo", "--headless", "--mission", str(tmp_path), "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path,
                  check_exit=2)
    assert proc.stderr.count("\n") == 1 and "no mission.toml" in proc.stderr
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------ the ledger's bytes

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30) | st.sampled_from(["", "é€😀", '"\\\n\t\x00\x7f'])
finite = st.floats(min_value=0.0, allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, -0.0, 3.2e-05, 1e16, 5e-324])
any_float = finite | st.floats() | st.sampled_from([-1.0, math.inf, math.nan])
operations = st.lists(st.one_of(
    st.builds(CreateOp, op=st.just("create"), path=text.filter(bool), content=text),
    st.builds(EditOp, op=st.just("edit"), path=text.filter(bool), old_string=text.filter(bool), new_string=text),
    st.builds(DeleteOp, op=st.just("delete"), path=text.filter(bool)),
    st.builds(PatchOp, op=st.just("patch"), path=text.filter(bool), diff=text.filter(bool)),
    st.builds(IntentOp, op=st.just("intent"), path=text.filter(bool), intent=text.filter(bool)),
), max_size=3)
usages = st.builds(Usage, input_tokens=st.integers(0, 10**12), output_tokens=st.integers(0, 10**12),
                   cache_read_tokens=st.integers(0, 10**6), cache_write_tokens=st.integers(0, 10**6))


@settings(max_examples=400, deadline=None)
@given(ops=operations, model=st.none() | text, usage=usages | st.just({"input_tokens": 5}), cost=any_float,
       duration=any_float, summary=text | st.just(7), failure_type=st.none() | text, batch_share=st.booleans())
def test_a_recording_is_written_as_the_recorded_attempt_model_writes_it(ops, model, usage, cost, duration, summary,
                                                                        failure_type, batch_share):
    """What the ledger holds under ``recorded`` is RecordedAttempt's own JSON (exclude_none),
    byte for byte, and what that model refuses is refused the same way."""
    fields = dict(file_operations=ops, model=model, usage=usage, cost_usd=cost, duration_seconds=duration,
                  summary=summary, failure_type=failure_type, batch_share=True if batch_share else None)
    try:
        expected = RecordedAttempt(**fields).model_dump_json(exclude_none=True)
    except ValidationError as exc:
        with pytest.raises(ValidationError) as raised:
            recording_json(ops, model, usage, cost, duration, summary, failure_type, batch_share)
        assert raised.value.errors() == exc.errors()
        return
    assert recording_json(ops, model, usage, cost, duration, summary, failure_type, batch_share) == expected
