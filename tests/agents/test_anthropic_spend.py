"""Real runs with the anthropic backend against the strict stand-in (issue 18).

Every dollar the API billed for a turn the client received is on an attempt, whatever ends
it (item 4): the attempt's deadline, the operator's stop, a SIGKILLed coordinator. And a
planning step Claude refuses pauses the run, which ``resume`` plans again (item 2)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from fakes.messages_server import MessagesServer, Reply, message, tool_use
from fakes.messages_server import text as text_block
from runtime.helpers import drive, task, write_mission

from hybrid_tui.app.launch import start_run
from hybrid_tui.costs.pricing import PricingTable
from hybrid_tui.spec.models import Usage
from hybrid_tui.store import models as m
import anyio

from hybrid_tui.vocabulary import EXIT_FAILED, EXIT_OK, EXIT_STOPPED

MODEL = "claude-haiku-4-5"
FIRST_TURN = Usage(input_tokens=1200, output_tokens=80, cache_write_tokens=900)


def slow_second_turn(billed: list[Usage]):
    lock = threading.Lock()

    def respond(body: dict) -> dict | Reply:
        if len(body["messages"]) == 1:  # the first turn of an attempt: answered (and billed)
            with lock:
                billed.append(FIRST_TURN)
            return message(tool_use("list_files", {}), input_tokens=FIRST_TURN.input_tokens,
                           output_tokens=FIRST_TURN.output_tokens, cache_write=FIRST_TURN.cache_write_tokens)
        return Reply(body=message(tool_use("finish", {"summary": "late"})), delay=30)  # past the deadline

    return respond


def test_a_timed_out_attempt_records_the_turns_the_api_billed(tmp_path: Path, monkeypatch):
    billed: list[Usage] = []
    respond = slow_second_turn(billed)
    mission = write_mission(
        tmp_path / "m", [task("a")],
        mission=(f'\n[models]\nimplementer = "{MODEL}"\nstrong = "{MODEL}"\n'
                 '[policies.retries.timeout]\nmax_retries = 1\nbackoff = "immediate"\nbase_seconds = 0.01\n'),
    )
    toml = (mission / "mission.toml").read_text().replace("[agents]\n", "[agents]\nattempt_timeout_seconds = 2\n", 1)
    (mission / "mission.toml").write_text(toml)
    with MessagesServer(responder=respond) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
        monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        store, run_id, coordinator = start_run(mission, tmp_path / "runs", backend="anthropic")
        try:
            assert drive(coordinator) == EXIT_FAILED
            attempts = list(m.Attempt.select().where(m.Attempt.phase != "planning").order_by(m.Attempt.number))
            assert [(a.outcome, a.failure_type) for a in attempts] == [("failed", "timeout"), ("failed", "timeout")]
            pricing = PricingTable.load()
            for attempt in attempts:
                stored = Usage(input_tokens=attempt.input_tokens, output_tokens=attempt.output_tokens,
                               cache_read_tokens=attempt.cache_read_tokens, cache_write_tokens=attempt.cache_write_tokens)
                assert stored == FIRST_TURN
            recorded = sum(a.cost_usd for a in m.Attempt.select())
            expected = sum(pricing.cost(MODEL, usage) for usage in billed)
            assert len(billed) == 2 and recorded == pytest.approx(expected, abs=1e-6) and recorded > 0
            assert m.Task.get(m.Task.task_id == "a").cost_usd == pytest.approx(expected, abs=1e-6)
            assert server.rejected == []
        finally:
            store.close()


def test_an_attempt_interrupted_by_a_stop_records_the_turns_the_api_billed(tmp_path: Path, monkeypatch):
    billed: list[Usage] = []
    mission = write_mission(tmp_path / "m", [task("a")],
                            mission=f'\n[models]\nimplementer = "{MODEL}"\nstrong = "{MODEL}"\n')
    with MessagesServer(responder=slow_second_turn(billed)) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
        monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        store, run_id, coordinator = start_run(mission, tmp_path / "runs", backend="anthropic")

        async def stop_after_the_first_turn() -> None:
            while len(server.message_requests) < 2:  # turn 1 answered, turn 2 sent
                await anyio.sleep(0.05)
            coordinator.request_stop("test")

        try:
            assert drive(coordinator, stop_after_the_first_turn) == EXIT_STOPPED
            (attempt,) = m.Attempt.select().where(m.Attempt.phase != "planning")
            assert attempt.outcome == "interrupted"
            stored = Usage(input_tokens=attempt.input_tokens, output_tokens=attempt.output_tokens,
                           cache_read_tokens=attempt.cache_read_tokens, cache_write_tokens=attempt.cache_write_tokens)
            assert billed == [FIRST_TURN] and stored == FIRST_TURN
            expected = PricingTable.load().cost(MODEL, FIRST_TURN)
            assert attempt.cost_usd == pytest.approx(expected, abs=1e-6)
            assert m.Task.get(m.Task.task_id == "a").cost_usd == pytest.approx(expected, abs=1e-6)
            assert server.rejected == []
        finally:
            store.close()


def test_an_attempt_whose_coordinator_was_killed_keeps_the_turns_the_api_billed(tmp_path: Path):
    """SIGKILL of the coordinator while turn 2 is in flight; ``resume`` marks the attempt
    interrupted with turn 1's spend on it, runs the task again, and the run's recorded spend
    equals every answered turn x the pricing table."""
    import os
    import signal
    import subprocess

    billed: list[Usage] = []
    lock = threading.Lock()
    coordinator_process: list[subprocess.Popen] = []

    def respond(body: dict) -> dict | Reply:
        turn = sum(1 for msg in body["messages"] if msg["role"] == "assistant")
        if turn == 1 and len(billed) == 1:  # the first attempt's turn 2: kill the coordinator now
            os.kill(coordinator_process[0].pid, signal.SIGKILL)
            return Reply(drop=True)
        usage = FIRST_TURN if turn == 0 else Usage(input_tokens=2000, output_tokens=40, cache_read_tokens=900)
        with lock:
            billed.append(usage)
        call = tool_use("list_files", {}) if turn == 0 else tool_use("finish", {"summary": "done"})
        return message(call, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                       cache_read=usage.cache_read_tokens, cache_write=usage.cache_write_tokens)

    mission = write_mission(tmp_path / "m", [task("a", ops=[{"op": "intent", "path": "a.txt", "intent": "nothing"}])],
                            mission=f'\n[models]\nimplementer = "{MODEL}"\nstrong = "{MODEL}"\n')
    run_dir, _ = _killed_then_resumed(mission, tmp_path, respond, coordinator_process)

    from hybrid_tui.store.db import open_store

    store = open_store(run_dir / "state.db", create=False)
    try:
        attempts = list(m.Attempt.select().where(m.Attempt.phase != "planning").order_by(m.Attempt.id))
        assert [a.outcome for a in attempts] == ["interrupted", "succeeded"]
        pricing = PricingTable.load()
        first = attempts[0]
        assert (first.input_tokens, first.cache_write_tokens) == (FIRST_TURN.input_tokens, FIRST_TURN.cache_write_tokens)
        assert first.cost_usd == pytest.approx(pricing.cost(MODEL, FIRST_TURN), abs=1e-6)
        expected = sum(pricing.cost(MODEL, usage) for usage in billed)
        assert sum(a.cost_usd for a in m.Attempt.select()) == pytest.approx(expected, abs=1e-6)
        assert m.Task.get(m.Task.task_id == "a").cost_usd == pytest.approx(expected, abs=1e-6)
    finally:
        store.close()


def test_a_refused_planning_step_pauses_the_run_and_resume_plans_it_again(tmp_path: Path, monkeypatch):
    """Item 2 against the stand-in: Claude refuses to plan the issue without a reviewed SIS;
    the run pauses (exit 3) naming it and runs nothing; once Claude plans it, ``resume``
    plans it again and finishes both issues."""
    from hybrid_tui.app.launch import open_run

    refuse = [True]
    planned_sis = {"sis_version": "1.0", "issue": {"id": "002-more", "title": "More"},
                   "tasks": [task("b")]}

    def respond(body: dict) -> dict | Reply:
        if (body.get("tool_choice") or {}).get("name") == "submit_sis":
            if refuse[0]:
                return message(text_block("I won't plan this."), stop_reason="refusal", input_tokens=500, output_tokens=5)
            return message(tool_use("submit_sis", planned_sis), input_tokens=800, output_tokens=300)
        turn = sum(1 for msg in body["messages"] if msg["role"] == "assistant")
        task_id = "a" if '"task_id": "a"' in body["messages"][0]["content"][0]["text"] else "b"
        if turn == 0:
            return message(tool_use("write_file", {"path": f"{task_id}.txt", "content": f"{task_id}\n"}))
        return message(tool_use("finish", {"summary": f"wrote {task_id}.txt"}))

    mission = write_mission(tmp_path / "m", [task("a")], mission=f'\n[models]\nimplementer = "{MODEL}"\nstrong = "{MODEL}"\n')
    (mission / "issues" / "002-more.md").write_text("# More\n\nWrite b.txt.\n")
    with MessagesServer(responder=respond) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
        monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        store, run_id, coordinator = start_run(mission, tmp_path / "runs", backend="anthropic")
        try:
            assert drive(coordinator) == EXIT_STOPPED
            run = m.Run.get_by_id(run_id)
            assert run.status == "paused" and "002-more (agent_error: the model refused" in run.pause_reason
            assert m.Attempt.select().where(m.Attempt.phase != "planning").count() == 0
            (refused,) = m.Attempt.select().where(m.Attempt.phase == "planning")
            assert refused.cost_usd == pytest.approx(PricingTable.load().cost("claude-haiku-4-5", Usage(
                input_tokens=500, output_tokens=5)), abs=1e-6)
        finally:
            store.close()

        refuse[0] = False
        store, run_id, coordinator = open_run(run_id, tmp_path / "runs", backend="anthropic")
        try:
            assert drive(coordinator) == EXIT_OK
            assert {t.task_id: t.status for t in m.Task.select()} == {"a": "done", "b": "done"}
            outcomes = [(a.task_id, a.outcome) for a in m.Attempt.select().where(m.Attempt.phase == "planning")]
            assert outcomes == [("plan:002-more", "failed"), ("plan:002-more", "succeeded")]
        finally:
            store.close()
        assert server.rejected == []


def _stored(attempt) -> Usage:
    return Usage(input_tokens=attempt.input_tokens, output_tokens=attempt.output_tokens,
                 cache_read_tokens=attempt.cache_read_tokens, cache_write_tokens=attempt.cache_write_tokens)


def test_an_attempt_cancelled_by_the_operator_records_the_turns_the_api_billed(tmp_path: Path, monkeypatch):
    """The console's cancel (a ``cancel`` control) ends the attempt while turn 2 is in flight:
    the attempt is ``cancelled`` and carries turn 1's spend."""
    billed: list[Usage] = []
    mission = write_mission(tmp_path / "m", [task("a")],
                            mission=f'\n[models]\nimplementer = "{MODEL}"\nstrong = "{MODEL}"\n')
    with MessagesServer(responder=slow_second_turn(billed)) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
        monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        store, run_id, coordinator = start_run(mission, tmp_path / "runs", backend="anthropic")

        async def cancel_after_the_first_turn() -> None:
            while len(server.message_requests) < 2:  # turn 1 answered, turn 2 sent
                await anyio.sleep(0.05)
            store.enqueue_control(run_id, "cancel", source="test", task_id="a")

        try:
            assert drive(coordinator, cancel_after_the_first_turn) == EXIT_FAILED
            (attempt,) = m.Attempt.select().where(m.Attempt.phase != "planning")
            assert attempt.outcome == "cancelled"
            assert billed == [FIRST_TURN] and _stored(attempt) == FIRST_TURN
            expected = PricingTable.load().cost(MODEL, FIRST_TURN)
            assert attempt.cost_usd == pytest.approx(expected, abs=1e-6)
            assert m.Task.get(m.Task.task_id == "a").cost_usd == pytest.approx(expected, abs=1e-6)
            assert server.rejected == []
        finally:
            store.close()


def test_failed_and_succeeded_attempts_record_what_the_api_billed(tmp_path: Path, monkeypatch):
    """Three attempts of one task: Claude refuses (agent_error), then its change fails the
    checks (validation_failed), then it succeeds; each attempt holds exactly its turns'
    usage x the pricing table, and so do the task and the run."""
    billed: dict[int, list[Usage]] = {}
    lock = threading.Lock()
    check = "import pathlib, sys; sys.exit(0 if pathlib.Path('a.txt').read_text() == 'good\\n' else 1)"
    turn_usage = [Usage(input_tokens=1500, output_tokens=90, cache_write_tokens=700),
                  Usage(input_tokens=300, output_tokens=45, cache_read_tokens=2200)]

    def respond(body: dict) -> dict | Reply:
        turn = sum(1 for msg in body["messages"] if msg["role"] == "assistant")
        usage = turn_usage[turn]
        with lock:  # one task: its attempts come one after another, each starting at turn 0
            attempt = len(billed) + (turn == 0)
            billed.setdefault(attempt, []).append(usage)
        kwargs = dict(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                      cache_read=usage.cache_read_tokens, cache_write=usage.cache_write_tokens)
        if attempt == 1:
            return message(text_block("I can't do that."), stop_reason="refusal", **kwargs)
        if turn == 0:
            content = "bad\n" if attempt == 2 else "good\n"
            return message(tool_use("write_file", {"path": "a.txt", "content": content}), **kwargs)
        return message(tool_use("finish", {"summary": "wrote a.txt"}), **kwargs)

    import sys
    import shlex

    mission = write_mission(
        tmp_path / "m",
        [task("a", ops=[{"op": "intent", "path": "a.txt", "intent": "write good"}],
              checks=[f"{shlex.quote(sys.executable)} -c {shlex.quote(check)}"])],
        mission=(f'\n[models]\nimplementer = "{MODEL}"\nstrong = "{MODEL}"\n'
                 '[policies.retries.agent_error]\nmax_retries = 3\nbackoff = "immediate"\nbase_seconds = 0.01\n'
                 '[policies.retries.validation_failed]\nmax_retries = 2\nbackoff = "immediate"\nbase_seconds = 0.01\n'),
    )
    with MessagesServer(responder=respond) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
        monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        store, run_id, coordinator = start_run(mission, tmp_path / "runs", backend="anthropic")
        coordinator.planner = None  # the mission's SIS is the plan
        try:
            assert drive(coordinator) == EXIT_OK
            attempts = list(m.Attempt.select().where(m.Attempt.phase != "planning").order_by(m.Attempt.number))
            assert [(a.outcome, a.failure_type) for a in attempts] == [
                ("failed", "agent_error"), ("failed", "validation_failed"), ("succeeded", None)]
            pricing = PricingTable.load()
            total = 0.0
            for attempt in attempts:
                usages = billed[attempt.number]
                expected_usage = Usage(**{f: sum(getattr(u, f) for u in usages) for f in Usage.model_fields})
                assert _stored(attempt) == expected_usage, attempt.number
                expected = sum(pricing.cost(MODEL, u) for u in usages)
                assert attempt.cost_usd == pytest.approx(expected, abs=1e-6), attempt.number
                total += expected
            assert m.Task.get(m.Task.task_id == "a").cost_usd == pytest.approx(total, abs=1e-6)
            assert sum(a.cost_usd for a in m.Attempt.select()) == pytest.approx(total, abs=1e-6)
            assert server.rejected == []
        finally:
            store.close()


def test_a_planning_step_whose_coordinator_was_killed_keeps_the_answer_the_api_billed(tmp_path: Path):
    """SIGKILL while the planner's repair turn is in flight: the first (invalid) answer was
    billed, so the interrupted planning attempt carries it; ``resume`` plans the issue again
    and the run's recorded spend equals every answered turn x the pricing table."""
    import json
    import os
    import signal
    import subprocess

    from hybrid_tui.store.db import open_store

    billed: list[Usage] = []
    lock = threading.Lock()
    coordinator_process: list[subprocess.Popen] = []
    first_answer = Usage(input_tokens=2500, output_tokens=400, cache_write_tokens=1800)
    good_answer = Usage(input_tokens=2600, output_tokens=380, cache_read_tokens=1800)
    planned = {"sis_version": "1.0", "issue": {"id": "002-more", "title": "More"}, "tasks": [task("b")]}

    def respond(body: dict) -> dict | Reply:
        if (body.get("tool_choice") or {}).get("name") == "submit_sis":
            repair = len(body["messages"]) > 1
            if repair and len(billed) == 1:  # the first run's repair turn: kill the coordinator now
                os.kill(coordinator_process[0].pid, signal.SIGKILL)
                return Reply(drop=True)
            usage = first_answer if not billed else good_answer
            with lock:
                billed.append(usage)
            sis = {"tasks": "not a list"} if len(billed) == 1 else planned
            return message(tool_use("submit_sis", sis), input_tokens=usage.input_tokens,
                           output_tokens=usage.output_tokens, cache_read=usage.cache_read_tokens,
                           cache_write=usage.cache_write_tokens)
        turn = sum(1 for msg in body["messages"] if msg["role"] == "assistant")
        task_id = "a" if '"task_id": "a"' in body["messages"][0]["content"][0]["text"] else "b"
        usage = Usage(input_tokens=900, output_tokens=30)
        with lock:
            billed.append(usage)
        call = (tool_use("write_file", {"path": f"{task_id}.txt", "content": f"{task_id}\n"}) if turn == 0
                else tool_use("finish", {"summary": "done"}))
        return message(call, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)

    mission = write_mission(tmp_path / "m", [task("a")],
                            mission=f'\n[models]\nplanner = "{MODEL}"\nimplementer = "{MODEL}"\nstrong = "{MODEL}"\n')
    (mission / "issues" / "002-more.md").write_text("# More\n\nWrite b.txt.\n")
    run_dir, resumed = _killed_then_resumed(mission, tmp_path, respond, coordinator_process)
    assert json.loads(resumed.stdout.splitlines()[-1])["tasks"]["done"] == 2

    store = open_store(run_dir / "state.db", create=False)
    try:
        planning = list(m.Attempt.select().where(m.Attempt.phase == "planning").order_by(m.Attempt.id))
        assert [a.outcome for a in planning] == ["interrupted", "succeeded"]
        pricing = PricingTable.load()
        assert _stored(planning[0]) == first_answer
        assert planning[0].cost_usd == pytest.approx(pricing.cost(MODEL, first_answer), abs=1e-6)
        expected = sum(pricing.cost(MODEL, usage) for usage in billed)
        assert sum(a.cost_usd for a in m.Attempt.select()) == pytest.approx(expected, abs=1e-6)
    finally:
        store.close()


def _killed_then_resumed(mission: Path, tmp_path: Path, respond, coordinator_process: list):
    """Run ``mission`` headless against the stand-in in a subprocess (appended to
    ``coordinator_process`` so ``respond`` can SIGKILL it), then ``resume`` it to the end:
    (run folder, the resume's completed process). The API saw no request it would refuse."""
    import os
    import signal
    import subprocess
    import sys

    runs = tmp_path / "runs"
    with MessagesServer(responder=respond) as server:
        env = {**os.environ, "ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": server.base_url}
        env.pop("ANTHROPIC_AUTH_TOKEN", None)
        command = [sys.executable, "-m", "hybrid_tui", "run", str(mission), "--headless", "--json",
                   "--backend", "anthropic", "--runs-dir", str(runs)]
        coordinator_process.append(subprocess.Popen(command, cwd=tmp_path, env=env,
                                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        assert coordinator_process[0].wait(timeout=240) == -signal.SIGKILL
        (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
        resumed = subprocess.run([sys.executable, "-m", "hybrid_tui", "resume", str(run_dir), "--headless", "--json",
                                  "--backend", "anthropic"], cwd=tmp_path, env=env, capture_output=True, text=True,
                                 timeout=240)
        assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
        assert server.rejected == []
    return run_dir, resumed
