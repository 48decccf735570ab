"""Fixtures shared by every test area. Keep this small: area fixtures go in tests/<area>/conftest.py."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import pytest

from tests.pg_server import PostgresUnavailable, TemporaryPostgres

# The store backend of the fixtures below: ``sqlite`` (default) or ``postgresql``
# (``--store-backend postgresql`` or ``HYBRID_TEST_STORE=postgresql``). With postgresql a
# temporary server is started once for the session (tests/pg_server.py) and every test gets
# a database of its own; HYBRID_TUI_STORE points runs created without ``--store`` at it.
STORE_BACKENDS = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--store-backend", choices=STORE_BACKENDS, default=os.environ.get("HYBRID_TEST_STORE") or "sqlite",
                     help="the store backend of the run-level tests (default: $HYBRID_TEST_STORE or sqlite)")


@pytest.fixture(scope="session")
def postgres_server():
    """A temporary PostgreSQL server for the whole session (Debian's binaries)."""
    try:
        server = TemporaryPostgres.start()
    except PostgresUnavailable as exc:
        pytest.fail(f"{exc}")  # CI must not silently skip the PostgreSQL leg
    yield server
    server.stop()


def _new_store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        return str(tmp_path / "state.db")
    server: TemporaryPostgres = request.getfixturevalue("postgres_server")
    url = server.new_database("test")
    request.addfinalizer(lambda: server.drop_database(url))
    return url


@pytest.fixture
def store_backend(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--store-backend")


@pytest.fixture
def store_url(store_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new empty store of the session's backend: a SQLite file path or a PostgreSQL URL."""
    return _new_store_url(store_backend, request, tmp_path)


@pytest.fixture(params=STORE_BACKENDS)
def any_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new empty store, once on SQLite and once on PostgreSQL (store-level tests)."""
    return _new_store_url(request.param, request, tmp_path)


@pytest.fixture(autouse=True)
def _runs_use_the_session_store_backend(store_backend: str, request: pytest.FixtureRequest, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """On the PostgreSQL leg, runs created without ``--store`` go to a fresh database."""
    if store_backend == "postgresql":
        monkeypatch.setenv("HYBRID_TUI_STORE", _new_store_url("postgresql", request, tmp_path))

TINY_CALC = "def add(a, b):\n    return a + b\n"


def _check(expr: str) -> str:
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(expr)}"


def tiny_sis() -> dict:
    """The SIS of the tiny mission: ``sub`` edits calc.py, ``sub-test`` (after it) adds a test file."""
    return {
        "sis_version": "1.0",
        "issue": {"id": "001-sub", "title": "Add subtraction", "body": "calc needs sub()."},
        "tasks": [
            {
                "task_id": "sub",
                "title": "Add sub() to calc.py",
                "priority": "HIGH",
                "domain": "backend",
                "estimated_duration_minutes": 5,
                "file_operations": [
                    {
                        "op": "edit",
                        "path": "calc.py",
                        "old_string": "    return a + b\n",
                        "new_string": "    return a + b\n\n\ndef sub(a, b):\n    return a - b\n",
                    }
                ],
                "validation": {"commands": [_check("import calc; assert calc.sub(5, 3) == 2")]},
            },
            {
                "task_id": "sub-test",
                "title": "Test sub()",
                "priority": "MEDIUM",
                "domain": "tests",
                "dependencies": ["sub"],
                "file_operations": [
                    {
                        "op": "create",
                        "path": "tests/check_sub.py",
                        "content": "import calc\nassert calc.sub(1, 1) == 0\n",
                    }
                ],
                "validation": {"commands": [_check("import runpy; runpy.run_path('tests/check_sub.py')")]},
            },
        ],
    }


@pytest.fixture(name="tiny_sis")
def tiny_sis_fixture() -> dict:
    """A fresh copy of the tiny mission's SIS document (a dict)."""
    return tiny_sis()


@pytest.fixture
def tiny_mission(tmp_path: Path) -> Path:
    """A small valid mission folder (plain-folder repo, one issue, one SIS with two tasks
    where ``sub-test`` depends on ``sub``, one recorded attempt for ``sub``). Returns its path."""
    root = tmp_path / "mission"
    (root / "repo").mkdir(parents=True)
    (root / "repo" / "calc.py").write_text(TINY_CALC)
    (root / "issues").mkdir()
    (root / "issues" / "001-sub.md").write_text("# Add subtraction\n\ncalc needs sub().\n")
    (root / "sis").mkdir()
    (root / "sis" / "001-sub.json").write_text(json.dumps(tiny_sis(), indent=2))
    (root / "replay").mkdir()
    sis_task = tiny_sis()["tasks"][0]
    (root / "replay" / "sub.json").write_text(
        json.dumps({"task_id": "sub", "attempts": [{"file_operations": sis_task["file_operations"]}]}, indent=2)
    )
    (root / "mission.toml").write_text(
        '[mission]\nname = "tiny"\nrepo = "repo"\n\n'
        "[agents]\nmin_implementers = 1\nmax_implementers = 2\n\n"
        "[budget]\nmission_usd = 5.0\nretry_usd = 1.0\n"
    )
    return root


@pytest.fixture()
def store_with_run(any_store_url: str, tmp_path: Path):
    """A real store (once SQLite in ``tmp_path``, once PostgreSQL) holding one bare run,
    ``r1`` (no issues, no tasks)."""
    from hybrid_tui.store import models as m
    from hybrid_tui.store.db import open_store

    store = open_store(any_store_url)
    with store.write():
        m.Run.create(id="r1", mission_name="demo", mission_path=str(tmp_path), run_dir=str(tmp_path),
                     repo_path=str(tmp_path), source_repo=str(tmp_path), base_branch="main", mission_branch="m",
                     config_json="{}", mission_budget_usd=10, retry_budget_usd=2, pool_min=1, pool_max=2,
                     pool_target=1, created_at=0, updated_at=0)
    yield store
    store.close()
