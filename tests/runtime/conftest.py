"""Fixtures of the runtime tests (helpers live in helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import copy_quickstart


@pytest.fixture
def quickstart_copy(tmp_path: Path) -> Path:
    return copy_quickstart(tmp_path / "quickstart")
