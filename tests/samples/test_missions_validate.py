"""Every shipped sample mission passes `hybrid-tui validate` (exit 0, one summary line)."""

from __future__ import annotations

import pytest

from hybrid_tui.app.main import main

from .mission_kit import SAMPLES


@pytest.mark.parametrize("name, tasks", [("quickstart", 8), ("web-18", 18), ("scale-200", 200)])
def test_sample_mission_validates(name, tasks, capsys):
    assert main(["validate", str(SAMPLES / name)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and f"{tasks} tasks" in out
