"""Fixtures of the distributed tests: a real ``redis-server`` (the Debian package) in a
temporary folder on a free loopback port, real ``hybrid-tui worker`` processes (Celery,
threads pool) and the coordinator as a real subprocess. Helpers live in helpers.py."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

# tests/ on the path: the runtime and reliability helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distributed.helpers import RedisServer, Workers  # noqa: E402
from runtime.helpers import copy_quickstart  # noqa: E402


@pytest.fixture
def redis_server(tmp_path: Path):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: ./dev installs it (Debian package redis-server)")
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def workers(redis_server: RedisServer, tmp_path: Path):
    pool = Workers(redis_server.url, tmp_path / "workers")
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture
def quickstart_copy(tmp_path: Path) -> Path:
    return copy_quickstart(tmp_path / "quickstart")
