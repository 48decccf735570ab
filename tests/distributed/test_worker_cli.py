"""Bad input to the worker side of the CLI: one line naming the option, exit 2, nothing created."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.helpers import hybrid


@pytest.mark.parametrize("args, needle", [
    (["--name", "w1", "--slots", "0"], "--slots"),
    (["--name", "../evil"], "--name"),
    (["--name", "w1", "--backends", "replay,magic"], "--backends"),
])
def test_worker_refuses_bad_options(tmp_path: Path, args, needle):
    proc = hybrid("worker", "--broker", "redis://127.0.0.1:1/0", *args, cwd=tmp_path, check_exit=2)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_worker_refuses_a_broker_that_is_not_redis(tmp_path: Path):
    proc = hybrid("worker", "--broker", "amqp://localhost//", "--name", "w1", cwd=tmp_path, check_exit=2)
    assert "--broker" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_run_with_a_broker_and_no_worker_creates_nothing(redis_server, quickstart_copy: Path, tmp_path: Path):
    runs = tmp_path / "runs"
    proc = hybrid("run", str(quickstart_copy), "--headless", "--runs-dir", str(runs), "--broker", redis_server.url,
                  "--wait-workers", "0.5", cwd=tmp_path, check_exit=2)
    assert "no worker advertised itself" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not runs.exists()


def test_run_with_an_unreachable_broker_creates_nothing(quickstart_copy: Path, tmp_path: Path):
    runs = tmp_path / "runs"
    proc = hybrid("run", str(quickstart_copy), "--headless", "--runs-dir", str(runs), "--broker",
                  "redis://127.0.0.1:1/0", "--wait-workers", "0.5", cwd=tmp_path, check_exit=2)
    assert "cannot reach Redis" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not runs.exists()
