"""What the API billed an attempt that ran on a worker is recorded on its row, whatever ends
it: the attempt's timeout or the operator's stop end it on the coordinator while its second
turn hangs, so the worker sends no result back; the first turn's spend still reaches the
store (through the attempt's spend key in Redis). Real Redis, real worker processes, the
real anthropic SDK against the local API stand-in (tests/fakes/messages_server.py)."""

from __future__ import annotations

import signal
import threading
import uuid
from pathlib import Path

import pytest

from distributed.helpers import coordinator_log, finish, query, start_coordinator, wait_until
from fakes.messages_server import MessagesServer, Reply, message, tool_use
from runtime.helpers import git, task, write_mission

from hybrid_tui.costs.pricing import PricingTable
from hybrid_tui.runtime.broker import AttemptMessage, AttemptSpend, cancel_key, lease_key, results_key, spend_key
from hybrid_tui.runtime.worker import Worker
from hybrid_tui.spec.loader import load_mission
from hybrid_tui.spec.models import Usage
from hybrid_tui.vocabulary import EXIT_FAILED, EXIT_STOPPED

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

MODEL = "claude-haiku-4-5"
FIRST_TURN = Usage(input_tokens=1200, output_tokens=80, cache_write_tokens=900)


def answer_once_then_hang(billed: list[Usage]):
    """Turn 1 of the attempt answered (and billed); turn 2 hangs past every deadline."""
    lock = threading.Lock()

    def respond(body: dict) -> dict | Reply:
        if len(body["messages"]) == 1:
            with lock:
                billed.append(FIRST_TURN)
            return message(tool_use("list_files", {}), input_tokens=FIRST_TURN.input_tokens,
                           output_tokens=FIRST_TURN.output_tokens, cache_write=FIRST_TURN.cache_write_tokens)
        return Reply(body=message(tool_use("finish", {"summary": "late"})), delay=90)

    return respond


def _mission(root: Path, agents: str = "") -> Path:
    mission = write_mission(root, [task("a")], mission=(
        f'\n[models]\nimplementer = "{MODEL}"\nstrong = "{MODEL}"\n'
        '[policies.retries.timeout]\nmax_retries = 0\nbackoff = "immediate"\n'))
    toml = (mission / "mission.toml").read_text().replace("[agents]\n", f"[agents]\n{agents}", 1)
    (mission / "mission.toml").write_text(toml)
    return mission


def _stand_in(monkeypatch, server: MessagesServer) -> None:
    """Workers read their own environment (helpers._env copies this one and sets the key)."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)


def _stored(runs: Path) -> list[tuple]:
    return query(runs, "SELECT outcome, failure_type, worker, cost_usd, input_tokens, output_tokens, "
                       "cache_read_tokens, cache_write_tokens FROM attempt WHERE phase != 'planning' ORDER BY number")


def _assert_first_turn_recorded(runs: Path, billed: list[Usage], outcome: str, failure_type: str) -> None:
    ((got_outcome, got_failure, worker, cost, *tokens),) = _stored(runs)
    assert (got_outcome, got_failure, worker) == (outcome, failure_type, "w1")
    assert billed == [FIRST_TURN]
    assert Usage(input_tokens=tokens[0], output_tokens=tokens[1], cache_read_tokens=tokens[2],
                 cache_write_tokens=tokens[3]) == FIRST_TURN
    expected = PricingTable.load().cost(MODEL, FIRST_TURN)
    assert expected > 0 and cost == pytest.approx(expected, abs=1e-6)
    ((task_cost,),) = query(runs, "SELECT cost_usd FROM task WHERE task_id = 'a'")
    assert task_cost == pytest.approx(expected, abs=1e-6)


def test_attempt_timed_out_on_a_worker_records_the_turn_the_api_billed(redis_server, workers, tmp_path, monkeypatch):
    """A long lease (the coordinator checks the worker every 10 s) and an 8 s attempt
    timeout: the spend can only come from the read the coordinator makes when it gives up."""
    billed: list[Usage] = []
    mission = _mission(tmp_path / "m", agents="attempt_timeout_seconds = 8\n")
    runs, coord = tmp_path / "runs", tmp_path / "coord"
    with MessagesServer(responder=answer_once_then_hang(billed)) as server:
        _stand_in(monkeypatch, server)
        workers.start_many(["w1"], slots=1)
        proc = start_coordinator("run", str(mission), "--headless", "--runs-dir", str(runs), "--backend", "anthropic",
                                 "--broker", redis_server.url, "--lease-seconds", "30", cwd=coord)
        assert finish(proc, coord) == EXIT_FAILED, coordinator_log(coord)[-4000:]
        assert len(server.message_requests) == 2 and server.rejected == []
    _assert_first_turn_recorded(runs, billed, "failed", "timeout")


def test_attempt_stopped_on_a_worker_records_the_turn_the_api_billed(redis_server, workers, tmp_path, monkeypatch):
    """Turn 1's spend reaches the running attempt's row while turn 2 hangs on the worker (the
    coordinator reads it as it waits); the operator stops the run (SIGTERM) and the attempt
    ends interrupted with it."""
    billed: list[Usage] = []
    mission = _mission(tmp_path / "m")
    runs, coord = tmp_path / "runs", tmp_path / "coord"
    with MessagesServer(responder=answer_once_then_hang(billed)) as server:
        _stand_in(monkeypatch, server)
        workers.start_many(["w1"], slots=1)
        proc = start_coordinator("run", str(mission), "--headless", "--runs-dir", str(runs), "--backend", "anthropic",
                                 "--broker", redis_server.url, "--lease-seconds", "2", cwd=coord)
        wait_until(lambda: len(server.message_requests) >= 2, 120, "turn 2 to be sent")
        # Read while the coordinator waits (every third of the lease): on the running row, as
        # on one machine, for the console and the budgets.
        wait_until(lambda: query(runs, "SELECT 1 FROM attempt WHERE outcome = 'running' AND cost_usd > 0"), 30,
                   "turn 1's spend on the running attempt")
        proc.send_signal(signal.SIGTERM)
        assert finish(proc, coord) == EXIT_STOPPED, coordinator_log(coord)[-4000:]
        assert server.rejected == []
    _assert_first_turn_recorded(runs, billed, "interrupted", "interrupted")


def test_worker_leaves_the_billed_spend_on_the_spend_key_after_a_cancel(redis_server, tmp_path, monkeypatch):
    """The worker alone: turn 1 billed, turn 2 hanging, the cancel flag set. Nothing is sent
    back, and the attempt's spend key holds turn 1's usage and dollars."""
    billed: list[Usage] = []
    mission_dir = _mission(tmp_path / "m")
    mission = load_mission(mission_dir)
    spec = mission.tasks[0]
    repo = mission_dir / "repo"
    msg = AttemptMessage(
        token=uuid.uuid4().hex, run_id="run-s", task_id=spec.task_id, attempt=1, agent_id="agent-01", worker="w1",
        endpoint=repo.absolute().as_uri(), base=git(repo, "rev-parse", "HEAD").strip(),
        task_json=spec.model_dump_json(), config_json=mission.config.model_dump_json(), backend="anthropic",
        model=MODEL, lease_seconds=1.0)
    client = redis_server.client()
    with MessagesServer(responder=answer_once_then_hang(billed)) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
        _stand_in(monkeypatch, server)
        worker = Worker(redis_server.url, "w1", 1, tmp_path / "w1")
        client.set(lease_key(msg.token), msg.token, px=5000)
        runner = threading.Thread(target=worker.run_message, args=(msg,))
        runner.start()
        wait_until(lambda: len(server.message_requests) >= 2, 60, "turn 2 to be sent")
        client.set(cancel_key(msg.token), "1")
        runner.join(60)
        assert not runner.is_alive()
    assert client.llen(results_key("run-s")) == 0  # cancelled: no result
    spend = AttemptSpend.model_validate_json(client.get(spend_key(msg.token)))
    assert Usage(**spend.usage) == FIRST_TURN
    assert spend.cost_usd == pytest.approx(PricingTable.load().cost(MODEL, FIRST_TURN), abs=1e-6)
    assert 0 < client.ttl(spend_key(msg.token)) <= 60  # Redis forgets it by itself
