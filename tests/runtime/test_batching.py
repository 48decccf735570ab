"""Task batching (``[policies.batch]``) on real runs of web-18 (``hybrid-tui run`` processes,
git on, the replay backend, every validation command run for real): its twelve ARIA tasks
use fewer implementer sessions than tasks, each task still lands as its own commit with its
own trailer holding only its own files, and the run costs less than the same mission
unbatched by exactly the shared context the batched tasks did not load again. ``estimate``
shows the saving too."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hybrid_tui.costs.pricing import PricingTable
from hybrid_tui.runtime.record import read_recordings
from hybrid_tui.spec.loader import load_mission
from hybrid_tui.spec.models import Usage
from hybrid_tui.store import models as m

from .helpers import git, only_run_dir, read_store

pytestmark = pytest.mark.slow

WEB_18 = Path(__file__).resolve().parents[2] / "sample_missions" / "web-18"
BATCH_POLICY = '\n[policies.batch]\nmax_tasks = 6\nmax_estimate_minutes = 5\ndomains = ["accessibility"]\n'
SHARED_CONTEXT = 5000  # the policy's default shared_context_tokens


def web_18(tmp_path: Path, name: str, *, batched: bool) -> Path:
    mission = tmp_path / name
    shutil.copytree(WEB_18, mission)
    if batched:
        with (mission / "mission.toml").open("a") as toml:
            toml.write(BATCH_POLICY)
    return mission


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hybrid_tui", *args], cwd=cwd, capture_output=True, text=True, check=False,
                          timeout=300)


def run_mission(mission: Path, runs: Path) -> dict:
    proc = cli("run", str(mission), "--headless", "--runs-dir", str(runs), cwd=mission.parent)
    # web-18's designed conflict leaves one task failed (exit 1), batched or not.
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = only_run_dir(runs)
    store, run = read_store(run_dir)
    try:
        attempts = list(m.Attempt.select().where((m.Attempt.run == run.id) & (m.Attempt.phase != "planning"))
                        .order_by(m.Attempt.id).dicts())
        tasks = {t.task_id: t for t in m.Task.select().where(m.Task.run == run.id)}
        repo, branch = Path(run.repo_path), run.mission_branch
    finally:
        store.close()
    fmt = "%H%x1f%(trailers:key=Hybrid-Task,valueonly)%x1f%(trailers:key=Hybrid-Run,valueonly)%x1e"
    commits = []
    for record in git(repo, "log", "--reverse", f"--format={fmt}", f"{branch}").split("\x1e"):
        if record.strip():
            sha, task_id, run_trailer = (part.strip() for part in record.split("\x1f"))
            if run_trailer == run_dir.name:
                files = git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", sha).split()
                commits.append({"sha": sha, "task": task_id, "files": files})
    return {"attempts": attempts, "tasks": tasks, "commits": commits, "run_dir": run_dir}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[dict, dict]:
    tmp = tmp_path_factory.mktemp("batching")
    batched = run_mission(web_18(tmp, "batched", batched=True), tmp / "runs-batched")
    plain = run_mission(web_18(tmp, "plain", batched=False), tmp / "runs-plain")
    return batched, plain


def sessions(attempts: list[dict], domain_tasks: set[str]) -> set[str]:
    """The implementer sessions the tasks' attempts were: a batch counts once."""
    return {a["batch"] or f"{a['task_id']}#{a['number']}" for a in attempts if a["task_id"] in domain_tasks}


def test_the_aria_tasks_use_fewer_sessions_than_tasks_and_each_lands_as_its_own_commit(runs):
    batched, _ = runs
    mission = load_mission(WEB_18)
    aria = {t.task_id for t in mission.tasks if t.domain == "accessibility"}
    assert len(aria) == 12
    used = sessions(batched["attempts"], aria)
    assert len(used) < 12, used
    batches = {a["batch"] for a in batched["attempts"] if a["batch"]}
    assert batches, "no batch was formed"
    for key in batches:
        members = [a for a in batched["attempts"] if a["batch"] == key]
        assert len(members) >= 2
        leader = key.split("#")[0]
        assert members[0]["task_id"] == leader
        assert len({a["agent_id"] for a in members}) == 1  # one agent, one session
        specs = {t.task_id: t for t in mission.tasks}
        declared = [set(specs[a["task_id"]].declared_files) for a in members]
        for k, files in enumerate(declared):  # disjoint by construction
            assert not any(files & other for other in declared[k + 1:])
    # One commit per done task, with its trailer, holding only that task's declared files.
    by_task: dict[str, list[dict]] = {}
    for commit in batched["commits"]:
        by_task.setdefault(commit["task"], []).append(commit)
    done = {tid for tid, t in batched["tasks"].items() if t.status == "done"}
    assert set(by_task) == done
    assert all(len(c) == 1 for c in by_task.values()), by_task
    assert len(done) == 17  # the designed conflict fails one task, as in an unbatched run
    specs = {t.task_id: t for t in mission.tasks}
    batched_tasks = {a["task_id"] for a in batched["attempts"] if a["batch"]}
    for tid in batched_tasks & done:
        (commit,) = by_task[tid]
        assert set(commit["files"]) <= set(specs[tid].declared_files), (tid, commit["files"])
        assert batched["tasks"][tid].commit_sha == commit["sha"]


def test_the_batched_run_costs_less_by_the_shared_context_loaded_once(runs):
    batched, plain = runs
    table = PricingTable.load()
    first = {(a["task_id"]): a for a in plain["attempts"] if a["number"] == 1}
    saved_usd = 0.0
    for a in batched["attempts"]:
        if not a["batch"] or a["batch"].split("#")[0] == a["task_id"] or a["number"] != 1:
            continue
        own = first[a["task_id"]]
        saved = min(SHARED_CONTEXT, own["input_tokens"])
        assert a["input_tokens"] == own["input_tokens"] - saved
        assert a["output_tokens"] == own["output_tokens"]
        saving = table.cost(own["model"], Usage(input_tokens=saved))
        assert a["cost_usd"] == pytest.approx(own["cost_usd"] - saving)
        saved_usd += saving
    assert saved_usd > 0
    # The recordings (export-replay) keep each task's own spend, as its unbatched attempt had
    # it: replaying them, batched or not, saves the shared context once, not twice.
    recorded = read_recordings(batched["run_dir"])
    plain_recorded = read_recordings(plain["run_dir"])
    for tid in {a["task_id"] for a in batched["attempts"] if a["batch"]}:
        mine, theirs = recorded[tid].attempts[0], plain_recorded[tid].attempts[0]
        assert mine.usage == theirs.usage and mine.cost_usd == pytest.approx(theirs.cost_usd), tid
    batched_total = sum(a["cost_usd"] for a in batched["attempts"])
    plain_total = sum(a["cost_usd"] for a in plain["attempts"])
    assert batched_total == pytest.approx(plain_total - saved_usd)
    assert batched_total < plain_total


def test_estimate_shows_the_saving_on_web_18(tmp_path: Path):
    batched, plain = web_18(tmp_path, "batched", batched=True), web_18(tmp_path, "plain", batched=False)
    with_batches = json.loads(cli("estimate", str(batched), "--json", cwd=tmp_path).stdout)
    without = json.loads(cli("estimate", str(plain), "--json", cwd=tmp_path).stdout)
    assert without["cost"]["batching"] == {"batches": 0, "tasks": 0, "saving_usd": 0.0}
    batching = with_batches["cost"]["batching"]
    assert batching["batches"] >= 1 and batching["tasks"] > batching["batches"]
    assert batching["saving_usd"] > 0
    assert with_batches["cost"]["total_usd"] == pytest.approx(without["cost"]["total_usd"] - batching["saving_usd"])
    assert with_batches["simulation"]["attempts"] < without["simulation"]["attempts"]
    text = cli("estimate", str(batched), cwd=tmp_path).stdout
    assert "batching (" in text
