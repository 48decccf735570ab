"""Which mission the demo runs: the web-18 sample, or a mission folder given instead.

Room: app. Shared by the ``demo`` walkthrough (:mod:`hybrid_tui.app.demo`) and the
screenshot capture (:mod:`hybrid_tui.app.demo_capture`); it imports neither.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_MISSIONS = REPO_ROOT / "sample_missions"
DEMO_MISSION = "web-18"


class DemoError(Exception):
    """The demo cannot start (mission missing or invalid): one line."""


def demo_mission_path(mission: str | Path | None = None) -> Path:
    path = Path(mission) if mission is not None else SAMPLE_MISSIONS / DEMO_MISSION
    if not (path / "mission.toml").is_file():
        raise DemoError(f"{path}: no mission.toml (the demo needs the sample_missions folder of a source checkout)")
    return path
