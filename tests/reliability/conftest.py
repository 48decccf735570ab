"""Fixtures of the reliability suite (crashes, faults, hostile input, store safety, secrets).
Helpers that are not fixtures live in helpers.py."""

from __future__ import annotations

import sys
from pathlib import Path

# tests/ on the path: the shared fakes (fakes.messages_server) and runtime helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
