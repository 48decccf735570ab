"""The agent pool shown on the dashboard and served by /api/agents."""

from __future__ import annotations

import json
from pathlib import Path

DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "agents.json"
STATUSES = ("idle", "running", "failed")


def _read_file(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def load_agents(path: Path = DATA_FILE) -> list[dict]:
    """Agent records (name, domain, status), read from the data file on every call."""
    return json.loads(_read_file(path))["agents"]
