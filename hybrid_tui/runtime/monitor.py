"""Resource monitor: psutil samples to the store, and pauses when memory or disk run short.

Room: runtime. Reads the machine through psutil (or injected readings), writes
ResourceSample rows and events to the store, and pauses/resumes dispatching through the
pure scheduler (``scheduler.pause`` / ``scheduler.resume``, stored by ``task_state``). The threshold
decision itself (:class:`ResourceGuard`) is pure: values and time in, a decision out.

- :class:`ResourceSampler` reads system CPU and memory, disk usage of the volumes holding
  the run folder and the repository, the coordinator's RSS and open files, and CPU/RSS of
  each running validation process tree, attributed to its task (registered pids, else the
  coordinator's child processes whose working directory is the task's worktree).
- :class:`ResourceGuard` says *pause* when memory > ``policies.memory_pause_percent`` or
  disk > ``policies.disk_pause_percent``; it says *resume* only when the matching
  ``*_resume_percent`` is configured and every value that tripped has stayed below it for
  ``resume_after_seconds``. Otherwise only the operator resumes; after an operator resume
  the guard waits for the value to drop below the pause threshold before it can pause again
  (the operator has seen it).
- :class:`ResourceMonitor` is the loop's step: it samples, stores the sample and pauses or
  resumes dispatching in the loop's transaction. A full disk is recognised in
  ``runtime/disk.py``; a run stopped by one is left paused by ``recovery.pause_for_disk_full``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import anyio
import psutil

from hybrid_tui.store import writes
from hybrid_tui.runtime.context import RunContext
from hybrid_tui.runtime.disk import DISK_FULL_PREFIX, UNWRITABLE_PREFIX
from hybrid_tui.runtime.task_state import apply_changes

KEEP_ALL_SECONDS = 15 * 60  # every sample of the last 15 minutes is kept
DOWNSAMPLE_SECONDS = 60  # older ones: one per minute


# ---------------------------------------------------------------------------- readings
@dataclass
class Reading:
    """One look at the machine. Percentages are 0-100."""

    cpu_percent: float = 0.0
    memory_percent: float = 0.0
    disk_percent: float = 0.0  # volume of the run folder
    disk_free_bytes: int = 0
    repo_disk_percent: float = 0.0  # volume of the repository
    coordinator_rss_bytes: int = 0
    open_files: int = 0
    tasks: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> {cpu, rss, processes}


class PsutilReadings:
    """The real machine. Process objects are kept between calls so CPU percentages are deltas."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self._procs: dict[int, psutil.Process] = {}
        psutil.cpu_percent(interval=None)  # prime: the first call compares with boot

    def _proc(self, pid: int) -> psutil.Process | None:
        proc = self._procs.get(pid)
        if proc is None:
            try:
                proc = psutil.Process(pid)
                proc.cpu_percent(interval=None)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                return None
            self._procs[pid] = proc
        return proc

    def __call__(self, run_dir: Path, repo_path: Path, task_pids: dict[str, list[int]],
                 worktrees: dict[str, Path]) -> Reading:
        reading = Reading(cpu_percent=psutil.cpu_percent(interval=None),
                          memory_percent=psutil.virtual_memory().percent)
        disk = _disk_usage(run_dir)
        if disk is not None:
            reading.disk_percent, reading.disk_free_bytes = disk.percent, disk.free
        repo_disk = _disk_usage(repo_path)
        reading.repo_disk_percent = repo_disk.percent if repo_disk is not None else reading.disk_percent
        try:
            with self.me.oneshot():
                reading.coordinator_rss_bytes = self.me.memory_info().rss
                reading.open_files = len(self.me.open_files())
        except (psutil.Error, OSError):
            pass
        roots = {task: list(pids) for task, pids in task_pids.items()}
        if worktrees:
            self._attribute_children(roots, worktrees)
        alive: set[int] = set()
        for task_id, pids in roots.items():
            cpu = rss = 0.0
            count = 0
            for proc in self._trees(pids):
                try:
                    cpu += proc.cpu_percent(interval=None)
                    rss += proc.memory_info().rss
                    count += 1
                    alive.add(proc.pid)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            if count:
                reading.tasks[task_id] = {"cpu": round(cpu, 1), "rss": int(rss), "processes": count}
        for pid in set(self._procs) - alive:
            del self._procs[pid]
        return reading

    def _trees(self, pids: list[int]) -> list[psutil.Process]:
        out: dict[int, psutil.Process] = {}
        for pid in pids:
            root = self._proc(pid)
            if root is None:
                continue
            out[pid] = root
            try:
                for child in root.children(recursive=True):
                    proc = self._proc(child.pid)
                    if proc is not None:
                        out[child.pid] = proc
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return list(out.values())

    def _attribute_children(self, roots: dict[str, list[int]], worktrees: dict[str, Path]) -> None:
        """Direct children of the coordinator running in a task's worktree belong to that task."""
        known = {pid for pids in roots.values() for pid in pids}
        by_dir = {str(Path(path).resolve()): task for task, path in worktrees.items() if path}
        try:
            children = self.me.children(recursive=False)
        except psutil.Error:
            return
        for child in children:
            if child.pid in known:
                continue
            try:
                cwd = str(Path(child.cwd()).resolve())
            except (psutil.Error, OSError):
                continue
            for directory, task in by_dir.items():
                if cwd == directory or cwd.startswith(directory + os.sep):
                    roots.setdefault(task, []).append(child.pid)
                    break


def _disk_usage(path: Path) -> Any:
    path = Path(path)
    while not path.exists() and path.parent != path:
        path = path.parent
    try:
        return psutil.disk_usage(str(path))
    except OSError:
        return None


ReadingsSource = Callable[[Path, Path, dict[str, list[int]], dict[str, Path]], Reading]


class ResourceSampler:
    """Takes readings every ``interval`` seconds and writes them to the store, downsampled.

    ``readings(run_dir, repo_path, task_pids, worktrees) -> Reading`` is the source (psutil
    by default; tests inject one). Validation processes are registered per task with
    :meth:`register` (e.g. ``on_spawn=sampler.on_spawn_for(task_id)``) or found as children
    of the coordinator running in the task's worktree.
    """

    def __init__(self, run_dir: str | Path, repo_path: str | Path, *, readings: ReadingsSource | None = None,
                 interval: float = 2.0, keep_all_seconds: float = KEEP_ALL_SECONDS,
                 downsample_seconds: float = DOWNSAMPLE_SECONDS):
        self.run_dir = Path(run_dir)
        self.repo_path = Path(repo_path or run_dir)
        self.readings: ReadingsSource = readings or PsutilReadings()
        self.interval = interval
        self.keep_all_seconds = keep_all_seconds
        self.downsample_seconds = downsample_seconds
        self.task_pids: dict[str, list[int]] = {}
        self.last_sample_at: float | None = None
        self.last: Reading | None = None
        self.samples_taken = 0
        self._last_compaction = 0.0

    # -- process registry --------------------------------------------------------------
    def register(self, task_id: str, pid: int) -> None:
        self.task_pids.setdefault(task_id, []).append(pid)

    def unregister(self, task_id: str) -> None:
        self.task_pids.pop(task_id, None)

    def on_spawn_for(self, task_id: str) -> Callable[[int], None]:
        return lambda pid: self.register(task_id, pid)

    # -- sampling ------------------------------------------------------------------------
    def due(self, now: float) -> bool:
        return self.last_sample_at is None or now - self.last_sample_at >= self.interval

    def read(self, worktrees: dict[str, Path] | None = None) -> Reading:
        reading = self.readings(self.run_dir, self.repo_path, {k: list(v) for k, v in self.task_pids.items()},
                                dict(worktrees or {}))
        self.last = reading
        self.samples_taken += 1
        return reading

    def write(self, store: Any, run_id: str, reading: Reading, now: float) -> None:
        """Store one sample in a transaction of its own (a sampler used without a coordinator;
        the coordinator's monitor stores it in the loop's transaction: :meth:`store_sample`)."""
        with store.write(run_id):
            self.store_sample(run_id, reading, now)

    def store_sample(self, run_id: str, reading: Reading, now: float) -> None:
        """One ResourceSample row, in the open transaction (the console's gauges redraw: the
        run version is bumped); older samples downsampled once a minute."""
        self.last_sample_at = now
        writes.add_resource_sample(run_id, now, dict(
            cpu_percent=reading.cpu_percent, memory_percent=reading.memory_percent,
            disk_percent=reading.disk_percent, disk_free_bytes=int(reading.disk_free_bytes),
            repo_disk_percent=reading.repo_disk_percent, coordinator_rss_bytes=int(reading.coordinator_rss_bytes),
            open_files=int(reading.open_files), tasks_json=json.dumps(reading.tasks, sort_keys=True),
        ))
        if now - self._last_compaction >= self.downsample_seconds:
            self._last_compaction = now
            self.compact(run_id, now)

    def compact(self, run_id: str, now: float) -> int:
        """Keep every sample of the last ``keep_all_seconds``; before that, the first of each
        ``downsample_seconds`` bucket. Returns how many rows were deleted."""
        return writes.downsample_resource_samples(run_id, now - self.keep_all_seconds, self.downsample_seconds)


# ---------------------------------------------------------------------------- guard
@dataclass(frozen=True)
class GuardDecision:
    action: str | None  # "pause", "resume" or None
    reason: str = ""
    metric: str = ""
    value: float = 0.0
    threshold: float = 0.0


class ResourceGuard:
    """Pure threshold evaluator over memory and disk percentages (time passed in)."""

    def __init__(self, policies: Any):
        self.pause_at = {"memory": float(policies.memory_pause_percent), "disk": float(policies.disk_pause_percent)}
        self.resume_at = {"memory": policies.memory_resume_percent, "disk": policies.disk_resume_percent}
        self.resume_after = float(policies.resume_after_seconds)
        self.tripped: dict[str, float] = {}  # metric -> value when it tripped (while paused by the guard)
        self.reason = ""
        self.below_since: float | None = None
        self.disarmed: set[str] = set()  # over the threshold when the operator resumed

    @property
    def paused(self) -> bool:
        return bool(self.tripped)

    @property
    def auto_resume(self) -> bool:
        return bool(self.tripped) and all(self.resume_at[k] is not None for k in self.tripped)

    def evaluate(self, memory_percent: float, disk_percent: float, now: float) -> GuardDecision:
        values = {"memory": float(memory_percent), "disk": float(disk_percent)}
        for metric in list(self.disarmed):
            if values[metric] <= self.pause_at[metric]:
                self.disarmed.discard(metric)
        over = [k for k in ("memory", "disk") if values[k] > self.pause_at[k] and k not in self.disarmed]
        if over:
            self.below_since = None
            newly = [k for k in over if k not in self.tripped]
            if not newly:
                return GuardDecision(None)
            for k in newly:
                self.tripped[k] = values[k]
            metric = newly[0]
            self.reason = self._reason(values)
            return GuardDecision("pause", self.reason, metric, values[metric], self.pause_at[metric])
        if not self.tripped or not self.auto_resume:
            return GuardDecision(None)
        if all(values[k] < float(self.resume_at[k]) for k in self.tripped):
            if self.below_since is None:
                self.below_since = now
            if now - self.below_since >= self.resume_after:
                metric = next(iter(self.tripped))
                text = ", ".join(
                    f"{k} {values[k]:.1f}% < {float(self.resume_at[k]):g}% for {self.resume_after:g} s" for k in self.tripped
                )
                self.clear()
                return GuardDecision("resume", f"resources back to normal: {text}", metric, values[metric],
                                     float(self.resume_at[metric]))
        else:
            self.below_since = None
        return GuardDecision(None)

    def _reason(self, values: dict[str, float]) -> str:
        parts = [
            f"{k} {values[k]:.1f}% > {self.pause_at[k]:g}% (policies.{k}_pause_percent)" for k in self.tripped
        ]
        how = (
            "resumes by itself below " + ", ".join(f"{k} {float(self.resume_at[k]):g}%" for k in self.tripped)
            + f" for {self.resume_after:g} s"
            if self.auto_resume else "resume when resolved"
        )
        return "resources: " + "; ".join(parts) + f"; dispatching paused, running attempts finish; {how}"

    def clear(self) -> None:
        self.tripped.clear()
        self.reason = ""
        self.below_since = None

    def resumed_by_operator(self, memory_percent: float, disk_percent: float) -> None:
        """The operator resumed while the guard held the pause: do not pause again until the
        value has dropped below its threshold once."""
        values = {"memory": memory_percent, "disk": disk_percent}
        self.disarmed |= {k for k in ("memory", "disk") if values[k] > self.pause_at[k]}
        self.clear()


# ---------------------------------------------------------------------------- the coordinator's side
class ResourceMonitor:
    """What the coordinator calls: ``await tick(now)`` once per loop, ``close()`` at the end."""

    def __init__(self, ctx: RunContext, *, readings: ReadingsSource | None = None,
                 sampler: ResourceSampler | None = None):
        self.ctx = ctx
        policies = ctx.config.policies
        run = ctx.store.get_run(ctx.run_id)
        self.sampler = sampler or ResourceSampler(
            ctx.run_dir, run.repo_path, readings=readings, interval=float(policies.sample_interval_seconds)
        )
        self.guard = ResourceGuard(policies)
        self._startup_checked = False

    async def tick(self, now: float) -> None:
        ctx = self.ctx
        if ctx.scheduler is None:
            return
        if not self._startup_checked:
            self._startup_checked = True
            self._clear_disk_full_pause(now)
        if not self.sampler.due(now):
            return
        worktrees = {task: Path(ctx.agents.get(att.agent_id, "")) for task, att in ctx.running.items()
                     if ctx.agents.get(att.agent_id)}
        for task in list(self.sampler.task_pids):
            if task not in ctx.running:
                self.sampler.unregister(task)
        reading = await anyio.to_thread.run_sync(self.sampler.read, worktrees)
        with ctx.transaction():
            self.sampler.store_sample(ctx.run_id, reading, now)
        self.apply(reading, now)

    def apply(self, reading: Reading, now: float) -> GuardDecision:
        """Feed one reading to the guard and act on its decision."""
        ctx = self.ctx
        scheduler = ctx.scheduler
        disk = max(reading.disk_percent, reading.repo_disk_percent)
        if self.guard.paused and not getattr(scheduler, "paused", False):
            self.guard.resumed_by_operator(reading.memory_percent, disk)
        decision = self.guard.evaluate(reading.memory_percent, disk, now)
        if decision.action == "pause":
            with ctx.transaction() as txn:
                ctx.events.add("pause.resource", decision.reason, level="warning", metric=decision.metric,
                               value=round(decision.value, 1), threshold=decision.threshold)
                paused_at = ctx.clock()  # as any pause the runtime decides (not the sample's time)
                apply_changes(ctx, scheduler.pause(decision.reason, paused_at), paused_at)
                if self.guard.auto_resume:
                    # The run waits for the resource instead of ending (headless exits on a policy pause).
                    txn.effects.policy_paused = False
        elif decision.action == "resume":
            if getattr(scheduler, "paused", False) and getattr(scheduler, "pause_reason", "").startswith("resources:"):
                with ctx.transaction():
                    ctx.events.add("resume.resource", decision.reason, metric=decision.metric,
                                   value=round(decision.value, 1), threshold=decision.threshold)
                    apply_changes(ctx, scheduler.resume(now), now)
        return decision

    def _clear_disk_full_pause(self, now: float) -> None:
        """``resume`` of a run that stopped on a full disk: carry on once the run folder is
        writable again (the operator asked for it by resuming)."""
        ctx = self.ctx
        scheduler = ctx.scheduler
        reason = getattr(scheduler, "pause_reason", "") or ""
        if not (getattr(scheduler, "paused", False) and reason.startswith((DISK_FULL_PREFIX, UNWRITABLE_PREFIX))):
            return  # (a run folder made unwritable mid-run stops the same way, and resumes the same way)
        probe = ctx.run_dir / ".disk-probe"
        try:
            probe.write_bytes(b"\0" * 65536)
            probe.unlink()
        except OSError as exc:
            with ctx.transaction():
                ctx.events.add("pause.resource", f"{DISK_FULL_PREFIX}: still cannot write {ctx.run_dir}: {exc}",
                               level="error")
            return
        with ctx.transaction():
            ctx.events.add("resume.resource", "the run folder takes writes again; dispatching resumed")
            apply_changes(ctx, scheduler.resume(now), now)

    def close(self) -> None:
        self.sampler.task_pids.clear()
