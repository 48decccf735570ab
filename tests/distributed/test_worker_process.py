"""The worker's side of one attempt, on a real Redis and a real repository (no coordinator):
a stale message is dropped, a cancel flag stops the agent and nothing is sent back, and a
finished attempt sends its patch with the base and tree ids while renewing its lease."""

from __future__ import annotations

import base64
import threading
import uuid
from pathlib import Path

from distributed.helpers import wait_until
from runtime.helpers import git

from hybrid_tui.runtime.broker import AttemptMessage, AttemptOutcome, cancel_key, lease_key, results_key
from hybrid_tui.runtime.worker import Worker
from hybrid_tui.spec.loader import load_mission


def _message(mission_dir: Path, *, pace: float) -> AttemptMessage:
    mission = load_mission(mission_dir)
    spec = next(t for t in mission.tasks if not t.dependencies)
    recorded = mission.recorded.get(spec.task_id)
    repo = mission_dir / "repo"
    return AttemptMessage(
        token=uuid.uuid4().hex, run_id="run-w", task_id=spec.task_id, attempt=1, agent_id="agent-01", worker="w1",
        endpoint=repo.absolute().as_uri(), base=git(repo, "rev-parse", "HEAD").strip(),
        task_json=spec.model_dump_json(), recorded_json=recorded.attempts[-1].model_dump_json() if recorded else "",
        config_json=mission.config.model_dump_json(), backend="replay", model="claude-haiku-4-5", pace=pace,
        lease_seconds=1.0)


def test_finished_attempt_sends_its_patch(redis_server, quickstart_copy, tmp_path):
    client = redis_server.client()
    worker = Worker(redis_server.url, "w1", 1, tmp_path / "w1")
    msg = _message(quickstart_copy, pace=0.0)
    client.set(lease_key(msg.token), msg.token, px=5000)
    worker.run_message(msg)
    body = client.lpop(results_key("run-w"))
    outcome = AttemptOutcome.model_validate_json(body)
    assert outcome.ok and outcome.token == msg.token and outcome.base == msg.base and len(outcome.tree) == 40
    assert b"diff --git" in base64.b64decode(outcome.patch_b64)
    assert outcome.worker == "w1" and outcome.host


def test_stale_message_is_dropped(redis_server, quickstart_copy, tmp_path):
    client = redis_server.client()
    worker = Worker(redis_server.url, "w1", 1, tmp_path / "w1")
    worker.run_message(_message(quickstart_copy, pace=0.0))  # no lease: the coordinator gave up on it
    assert client.llen(results_key("run-w")) == 0
    assert not (tmp_path / "w1" / "cache.git").exists()  # nothing fetched


def test_cancel_flag_stops_the_agent_and_nothing_is_sent(redis_server, quickstart_copy, tmp_path):
    client = redis_server.client()
    worker = Worker(redis_server.url, "w1", 1, tmp_path / "w1")
    msg = _message(quickstart_copy, pace=100.0)  # the recorded attempt would take minutes
    client.set(lease_key(msg.token), msg.token, px=5000)
    runner = threading.Thread(target=worker.run_message, args=(msg,))
    runner.start()
    wait_until(lambda: (tmp_path / "w1" / "worktrees" / msg.token).is_dir(), 60, "the attempt to start")
    client.set(cancel_key(msg.token), "1")
    runner.join(60)
    assert not runner.is_alive()
    assert client.llen(results_key("run-w")) == 0
    assert not (tmp_path / "w1" / "worktrees" / msg.token).exists()  # its worktree removed


def test_spend_publisher_never_fails_the_attempt_when_redis_is_away(quickstart_copy, caplog):
    """The implementer's ``report_spend`` on a worker returns at once whatever Redis does; a
    write that fails is logged, and the last value is written again when the attempt ends."""
    from hybrid_tui.runtime.broker import AttemptSpend, spend_key
    from hybrid_tui.runtime.worker import SpendPublisher
    from hybrid_tui.spec.models import Usage

    class Flaky:
        def __init__(self) -> None:
            self.fail = True
            self.written: dict[str, tuple[str, int]] = {}

        def set(self, key: str, value: str, ex: int) -> None:
            if self.fail:
                raise ConnectionError("Redis is restarting")
            self.written[key] = (value, ex)

    client = Flaky()
    msg = _message(quickstart_copy, pace=0.0)
    publish = SpendPublisher(client, msg)
    publish(Usage(input_tokens=10, output_tokens=2), 0.25)
    wait_until(lambda: "not written" in caplog.text, 10, "the failed write to be logged")
    client.fail = False
    publish.close()
    value, ex = client.written[spend_key(msg.token)]
    spend = AttemptSpend.model_validate_json(value)
    assert spend.usage["input_tokens"] == 10 and spend.cost_usd == 0.25 and spend.model == "" and ex >= 60
