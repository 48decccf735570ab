"""Fixtures of the distributed tests: a real ``redis-server`` (the Debian package) in a
temporary folder on a free loopback port, real ``hybrid-tui worker`` processes (Celery,
threads pool), the coordinator as a real subprocess, and the run's store on either backend
(``run_store``: the run folder's SQLite file, or a database of the session's temporary
PostgreSQL server, tests/pg_server.py). Helpers live in helpers.py."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
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


@dataclass
class RunStore:
    """Where the coordinator under test keeps its run: ``args`` go on its command line."""

    backend: str
    url: str | None = None  # the PostgreSQL database (None: the run folder's state.db)
    server: object | None = None  # the TemporaryPostgres holding it

    @property
    def args(self) -> list[str]:
        return ["--store", self.url] if self.url else []


@pytest.fixture(params=["sqlite", "postgresql"])
def run_store(request: pytest.FixtureRequest) -> RunStore:
    """The run's store, once per backend (independent of the session's HYBRID_TEST_STORE leg)."""
    if request.param == "sqlite":
        return RunStore("sqlite")
    server = request.getfixturevalue("postgres_server")
    url = server.new_database("dist")
    request.addfinalizer(lambda: server.drop_database(url))
    return RunStore("postgresql", url, server)
