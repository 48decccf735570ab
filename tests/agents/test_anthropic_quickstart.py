"""The quickstart mission end to end, headless, with ``--backend anthropic`` against the local
Messages API server: Claude (scripted) plans the issues that have no reviewed SIS (the one that
has one is used as it is, not planned again) and implements every task through the tool loop;
every task is integrated once and every response's usage lands in the store, priced."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fakes.messages_server import MessagesServer, message, tool_use

from hybrid_tui.costs.pricing import PricingTable
from hybrid_tui.spec.loader import load_mission
from hybrid_tui.spec.models import CreateOp, EditOp, Usage
from hybrid_tui.store import models as m
from hybrid_tui.store.db import open_store

from .conftest import SECRET_KEY, git

QUICKSTART = Path(__file__).resolve().parents[2] / "sample_missions" / "quickstart"
PLAN_USAGE = Usage(input_tokens=2000, output_tokens=400)


def turn_usage(turn: int) -> Usage:
    return Usage(input_tokens=1000 + 10 * turn, output_tokens=100, cache_read_tokens=500 * turn,
                 cache_write_tokens=300 if turn == 0 else 0)


def scripted_claude(mission_root: Path):
    """Answers like a model that plans the recorded SIS and carries out its file operations."""
    mission = load_mission(mission_root)
    sis_texts = {sis.issue.id: path.read_text() for path, sis in mission.sis}
    tasks = {t.task_id: t for t in mission.tasks}

    def respond(body: dict) -> dict:
        if (body.get("tool_choice") or {}).get("name") == "submit_sis":
            issue_id = re.search(r"^# Issue (\S+):", body["messages"][0]["content"], re.M).group(1)
            return message(tool_use("submit_sis", json.loads(sis_texts[issue_id])),
                           **_usage_kwargs(PLAN_USAGE))
        task_id = re.search(r'"task_id": "([^"]+)"', body["messages"][0]["content"][0]["text"]).group(1)
        ops = tasks[task_id].file_operations
        turn = sum(1 for msg in body["messages"] if msg["role"] == "assistant")
        if turn < len(ops):
            op = ops[turn]
            if isinstance(op, EditOp):
                call = tool_use("edit_file", {"path": op.path, "old_string": op.old_string, "new_string": op.new_string})
            else:
                assert isinstance(op, CreateOp)
                call = tool_use("write_file", {"path": op.path, "content": op.content})
        elif turn == len(ops):
            call = tool_use("run_checks", {})
        else:
            call = tool_use("finish", {"summary": f"done {task_id}"})
        return message(call, **_usage_kwargs(turn_usage(turn)))

    return respond, mission


def _usage_kwargs(usage: Usage) -> dict:
    return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "cache_read": usage.cache_read_tokens, "cache_write": usage.cache_write_tokens}


@pytest.mark.slow
def test_quickstart_headless_with_the_anthropic_backend(tmp_path: Path):
    mission_root = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, mission_root, ignore=shutil.ignore_patterns(".pytest_cache", "__pycache__"))
    shutil.rmtree(mission_root / "replay")  # nothing recorded: Claude does the work
    repo = mission_root / "repo"
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=u", "-c", "user.email=u@e", "commit", "-q", "-m", "initial")
    # Generous limits for the test account so the shared limiter never waits.
    with (mission_root / "mission.toml").open("a") as handle:
        handle.write('\n[models.limits."claude-haiku-4-5"]\nrequests_per_minute = 10000\n'
                     "input_tokens_per_minute = 10000000\noutput_tokens_per_minute = 1000000\n"
                     '\n[models.limits."claude-sonnet-4-5"]\nrequests_per_minute = 10000\n'
                     "input_tokens_per_minute = 10000000\noutput_tokens_per_minute = 1000000\n")
    respond, mission = scripted_claude(mission_root)
    # The last issue (nothing depends on it) has no reviewed SIS: Claude plans it, and only it.
    unplanned = mission.issues[-1].id
    for path, sis in mission.sis:
        if sis.issue.id == unplanned:
            path.rename(tmp_path / path.name)
    runs = tmp_path / "runs"
    with MessagesServer(responder=respond) as server:
        env = {**os.environ, "ANTHROPIC_API_KEY": SECRET_KEY, "ANTHROPIC_BASE_URL": server.base_url}
        env.pop("ANTHROPIC_AUTH_TOKEN", None)
        proc = subprocess.run(
            [sys.executable, "-m", "hybrid_tui", "run", str(mission_root), "--headless", "--json",
             "--backend", "anthropic", "--agents", "4", "--runs-dir", str(runs)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
        )
    assert server.rejected == [], server.rejected  # no request the API would refuse
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["tasks"]["done"] == len(mission.tasks)
    assert SECRET_KEY not in proc.stdout + proc.stderr

    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    store = open_store(run_dir / "state.db")
    try:
        assert {t.status for t in m.Task.select()} == {"done"}
        assert m.IntegrationCommit.select().count() == len(mission.tasks)
        pricing = PricingTable.load(mission.config.pricing)
        attempts = list(m.Attempt.select())
        planning = [a for a in attempts if a.phase == "planning"]
        assert [a.task_id for a in planning] == [f"plan:{unplanned}"]
        skipped = m.Event.get(m.Event.kind == "planning.skipped")
        assert mission.issues[0].id in skipped.message and "used as it is" in skipped.message
        assert m.Task.select().count() == len(mission.tasks)  # no second, differently named copy
        implementing = [a for a in attempts if a.phase != "planning"]
        assert len(implementing) == len(mission.tasks)  # every task first time
        for attempt in planning + implementing:
            if attempt.phase == "planning":
                expected = PLAN_USAGE
            else:
                turns = len(mission.task(attempt.task_id).file_operations) + 2  # the ops, run_checks, finish
                usages = [turn_usage(t) for t in range(turns)]
                expected = Usage(**{f: sum(getattr(u, f) for u in usages) for f in Usage.model_fields})
            stored = Usage(input_tokens=attempt.input_tokens, output_tokens=attempt.output_tokens,
                           cache_read_tokens=attempt.cache_read_tokens, cache_write_tokens=attempt.cache_write_tokens)
            assert stored == expected, attempt.task_id
            assert attempt.cost_usd == pytest.approx(pricing.cost(attempt.model, expected)), attempt.task_id
            if attempt.log_path and Path(attempt.log_path).is_file():
                assert SECRET_KEY not in Path(attempt.log_path).read_text()
    finally:
        store.close()
    assert not any(SECRET_KEY in p.read_text(errors="replace") for p in run_dir.rglob("*.log"))
