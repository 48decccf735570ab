"""What an attempt message to a worker may carry: never a credential."""

from __future__ import annotations

from hybrid_tui.runtime.broker import AttemptMessage
from hybrid_tui.runtime.remote import carries_secret


def _message(**fields) -> AttemptMessage:
    base = dict(token="t", run_id="r", task_id="a", attempt=1, agent_id="agent-01", worker="w1",
                endpoint="file:///repo", base="0" * 40, task_json="{}", config_json="{}", backend="replay",
                model="m")
    return AttemptMessage(**(base | fields))


def test_a_message_holding_the_api_key_is_never_sent(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "not-key-shaped-but-secret-1234")
    assert not carries_secret(_message())
    assert carries_secret(_message(feedback="retry with not-key-shaped-but-secret-1234"))
    assert carries_secret(_message(config_json='{"agents": {"note": "sk-ant-api03-abcdef"}}'))
