"""Snapshot tests of the console on an injected store state with a frozen clock.

Update with ``pytest tests/tui --snapshot-update`` after checking the SVGs by eye.
"""

from __future__ import annotations

import pytest

from .conftest import make_app, select_task


def test_dashboard_80x24(demo_store, snap_compare):
    assert snap_compare(make_app(demo_store), terminal_size=(80, 24))


def test_dashboard_160x48(demo_store, snap_compare):
    assert snap_compare(make_app(demo_store), terminal_size=(160, 48))


def test_dashboard_compact_side_panes(demo_store, snap_compare):
    assert snap_compare(make_app(demo_store), terminal_size=(80, 24), press=["w"])


def test_task_detail_with_diff(demo_store, snap_compare):
    async def open_detail(pilot):
        await select_task(pilot, "T3-api")
        await pilot.press("enter")

    assert snap_compare(make_app(demo_store), terminal_size=(110, 60), run_before=open_detail)


def test_attention_view(demo_store, snap_compare):
    assert snap_compare(make_app(demo_store), terminal_size=(100, 24), press=["a"])


def test_help_screen(demo_store, snap_compare):
    assert snap_compare(make_app(demo_store), terminal_size=(80, 24), press=["question_mark"])


def test_confirm_cancel_dependents(demo_store, snap_compare):
    async def ask(pilot):
        await select_task(pilot, "T2-model")
        await pilot.press("c")

    assert snap_compare(make_app(demo_store), terminal_size=(80, 24), run_before=ask)


def test_confirm_rollback_with_conflict(demo_store, snap_compare):
    async def ask(pilot):
        await select_task(pilot, "T1-setup")
        await pilot.press("b")

    assert snap_compare(make_app(demo_store), terminal_size=(80, 24), run_before=ask)


@pytest.mark.parametrize("theme", ["dark", "light", "high-contrast"])
def test_theme(demo_store, snap_compare, theme):
    assert snap_compare(make_app(demo_store, theme=theme), terminal_size=(120, 32))
