"""Every dollar the API billed for a turn the client received is on an attempt, whatever ends
it (issue 18, item 4): a real run with the anthropic backend against the strict stand-in, where
each attempt's second turn never answers before ``agents.attempt_timeout_seconds``."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from fakes.messages_server import MessagesServer, Reply, message, tool_use
from runtime.helpers import drive, task, write_mission

from hybrid_tui.app.launch import start_run
from hybrid_tui.costs.pricing import PricingTable
from hybrid_tui.spec.models import Usage
from hybrid_tui.store import models as m
from hybrid_tui.vocabulary import EXIT_FAILED

MODEL = "claude-haiku-4-5"
FIRST_TURN = Usage(input_tokens=1200, output_tokens=80, cache_write_tokens=900)


def test_a_timed_out_attempt_records_the_turns_the_api_billed(tmp_path: Path, monkeypatch):
    billed: list[Usage] = []
    lock = threading.Lock()

    def respond(body: dict) -> dict | Reply:
        if len(body["messages"]) == 1:  # the first turn of an attempt: answered (and billed)
            with lock:
                billed.append(FIRST_TURN)
            return message(tool_use("list_files", {}), input_tokens=FIRST_TURN.input_tokens,
                           output_tokens=FIRST_TURN.output_tokens, cache_write=FIRST_TURN.cache_write_tokens)
        return Reply(body=message(tool_use("finish", {"summary": "late"})), delay=30)  # past the deadline

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
