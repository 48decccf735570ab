"""Attempts through the broker next to in-process (room: bench; drives app.launch and workers).

One mission (full size: ``sample_missions/scale-200``; ``--quick``: a generated 12-task one;
sim backend, instant agents, real git worktrees, validation and integration) runs twice
with the same pool: in-process, then through a real
``redis-server`` (temporary folder, loopback port) and two ``hybrid-tui worker``
processes. Measured:

- dispatch -> start: from the attempt's stored start (the dispatch transaction's time) to
  the moment the agent begins (in-process: the implementer is called; on a worker: the
  worker took the message, checked its lease and starts fetching the base);
- per-task overhead: the run's wall time and the coordinator's CPU per task (the workers'
  own CPU is theirs, as it would be on other machines).

The broker's figures are shown next to the in-process ones; there is no budget for them
(DESIGN.md asks for them to be reported).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

from .common import Figure, Timer, median, percentile

REPO_ROOT = Path(__file__).resolve().parents[1]
POOL = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _generate(dest: Path, tasks: int, seed: int) -> Path:
    from hybrid_tui.app.main import main as hybrid

    code = hybrid(["generate", "--tasks", str(tasks), "--seed", str(seed), "--name", "bench-dist", str(dest)])
    if code not in (0, None):
        raise RuntimeError(f"generate failed ({code})")
    return dest


class _Timed:
    """The in-process implementer, noting when each attempt's agent begins."""

    def __init__(self, inner, coordinator, latencies: list[float]) -> None:
        self.inner = inner
        self.name = inner.name
        self.coordinator = coordinator
        self.latencies = latencies

    async def implement(self, request):
        attempt = self.coordinator.running.get(request.task.task_id)
        if attempt is not None:
            self.latencies.append(time.time() - attempt.started)
        return await self.inner.implement(request)


def _one_run(mission: Path, runs: Path, broker: str | None) -> tuple[Timer, list[float], int]:
    from hybrid_tui.app.launch import start_run

    store, run_id, coordinator = start_run(mission, runs, "sim", agents=POOL, pace=0.0, seed=1,
                                           **({"broker": broker, "lease_seconds": 10.0} if broker else {}))
    latencies: list[float] = []
    if broker:
        coordinator.workers.start_latencies = latencies
    else:
        coordinator.implementer = _Timed(coordinator.implementer, coordinator, latencies)
    coordinator.monitor.tick = _no_monitor  # resource samples are not what is measured
    with Timer() as timer:
        code = anyio.run(coordinator.run)
    from hybrid_tui.store import engine_reads

    done = engine_reads.count_tasks_in(run_id, ("done",))
    store.close()
    if code != 0:
        raise RuntimeError(f"run through {'the broker' if broker else 'the coordinator'} ended with {code}")
    return timer, latencies, done


async def _no_monitor(now: float) -> None:
    return None


def run(quick: bool = False, *, seed: int = 1) -> tuple[list[Figure], dict]:
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed (Debian package redis-server)")
    tasks = 12 if quick else 200
    with tempfile.TemporaryDirectory(prefix="hybrid-bench-dist-") as tmp:
        root = Path(tmp)
        if quick:
            mission = _generate(root / "mission", tasks, seed)
        else:
            mission = Path(shutil.copytree(REPO_ROOT / "sample_missions" / "scale-200", root / "mission"))
        port = _free_port()
        url = f"redis://127.0.0.1:{port}/0"
        procs = [subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root),
                                   "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)]
        try:
            env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
            for name in ("bench-w1", "bench-w2"):
                (root / name).mkdir()
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "hybrid_tui", "worker", "--broker", url, "--name", name,
                     "--slots", str(POOL // 2), "--work-dir", str(root / name)],
                    cwd=root / name, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            local_timer, local_lat, local_done = _one_run(mission, root / "runs-local", None)
            from hybrid_tui.runtime.remote import probe_workers

            deadline = time.monotonic() + 60
            while len(probe_workers(url, 60)) < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            remote_timer, remote_lat, remote_done = _one_run(mission, root / "runs-broker", url)
        finally:
            for proc in reversed(procs):
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
    ms = 1000.0
    figures = [
        Figure("distributed", "dispatch->start p50, broker", median(remote_lat) * ms, "ms",
               baseline=median(local_lat) * ms, baseline_name="in-process p50"),
        Figure("distributed", "dispatch->start p95, broker", percentile(remote_lat, 95) * ms, "ms",
               baseline=percentile(local_lat, 95) * ms, baseline_name="in-process p95"),
        Figure("distributed", f"wall per task, broker ({tasks} tasks, pool {POOL})", remote_timer.wall / tasks * ms, "ms",
               baseline=local_timer.wall / tasks * ms, baseline_name="in-process"),
        Figure("distributed", "coordinator CPU per task, broker", remote_timer.cpu / tasks * ms, "ms",
               baseline=local_timer.cpu / tasks * ms, baseline_name="in-process",
               note="the workers' CPU is not the coordinator's"),
    ]
    details = {
        "tasks": tasks, "pool": POOL, "workers": 2,
        "done": {"in_process": local_done, "broker": remote_done},
        "wall_s": {"in_process": round(local_timer.wall, 2), "broker": round(remote_timer.wall, 2)},
        "cpu_s": {"in_process": round(local_timer.cpu, 2), "broker": round(remote_timer.cpu, 2)},
        "attempts_timed": {"in_process": len(local_lat), "broker": len(remote_lat)},
    }
    return figures, details
