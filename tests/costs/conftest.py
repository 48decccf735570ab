"""Fixtures of the cost tests: a real run folder with a SQLite store (see costs_run_fixture)."""

from __future__ import annotations

from pathlib import Path

import pytest

from costs_run_fixture import RUN_ID, populate
from hybrid_tui.store import open_store


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    runs = tmp_path / "runs"
    folder = runs / RUN_ID
    folder.mkdir(parents=True)
    populate(folder / "state.db")
    return runs


@pytest.fixture
def open_run(runs_dir):
    store = open_store(runs_dir / RUN_ID / "state.db", create=False)
    yield store
    store.close()


@pytest.fixture(autouse=True)
def _no_user_pricing(tmp_path, monkeypatch):
    # The user's own ~/.config/hybrid-tui/pricing.toml must not change the figures.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
