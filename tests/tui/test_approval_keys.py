"""The console's approval keys: ``A`` approves the selected task awaiting approval, ``X``
asks, then rejects it; a task awaiting approval shows that status and why it waits."""

from __future__ import annotations

import pytest

from hybrid_tui.store import models as m
from hybrid_tui.tui.screens import AttentionScreen, ConfirmScreen

from .conftest import RUN_ID, make_app, select_task
from .test_pilot import controls, screen_text

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def gated_store(demo_store):
    with demo_store.write(RUN_ID):
        m.Task.update(status="awaiting_approval", attention_reason="awaiting approval ([policies] approve)").where(
            (m.Task.run == RUN_ID) & (m.Task.task_id == "T7-cli")).execute()
    return demo_store


async def test_approve_and_reject_keys_send_their_controls(gated_store):
    app = make_app(gated_store)
    async with app.run_test(size=(160, 48), notifications=True) as pilot:
        await select_task(pilot, "T7-cli")
        assert "approval?" in screen_text(app)  # the status column's label for awaiting_approval
        await pilot.press("A")
        assert controls() == [("approve", {"task_id": "T7-cli"}, "tui")]
        await pilot.press("X")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        assert controls()[1] == ("reject", {"task_id": "T7-cli", "reason": "rejected in the console"}, "tui")


async def test_a_task_awaiting_approval_is_in_the_attention_view_with_its_reason(gated_store):
    app = make_app(gated_store)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        await pilot.press("a")
        assert isinstance(app.screen, AttentionScreen)
        await pilot.pause()
        text = screen_text(app)
        assert "T7-cli" in text and "awaiting approval" in text
