"""A worker process: ``hybrid-tui worker --broker URL --name NAME [--slots N]``.

Room: runtime (it runs agents and git like the coordinator's in-process attempts, and never
touches the store: the coordinator is the one store writer).

It consumes its own Celery queue (``broker.worker_queue(name)``) with ``slots`` threads and
advertises itself (name, host, slots, backends) on a Redis key it renews. For each message:
the lease must still be the coordinator's (else the message is stale: dropped); the pinned
base is fetched from the endpoint the coordinator named into this worker's cache and checked
out in a worktree of its own; the backend implements the task there while the lease is
renewed and the cancel flag watched, and what the API billed so far goes to the attempt's
spend key after every turn (read by the coordinator even when no result comes back: a
cancel, the timeout); the change goes back as a binary patch with its base and tree ids on
the run's results list. Secrets come from this process's environment only.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import anyio

from hybrid_tui.agents.base import AttemptLimits, ImplementRequest, ImplementResult
from hybrid_tui.costs.pricing import PricingTable
from hybrid_tui.spec.models import MissionFile, RecordedAttempt, SisTask, Usage
from hybrid_tui.workspace.patches import FetchError, checkout_base, make_patch, remove_worktree
from hybrid_tui.workspace.sandbox import Sandbox
from hybrid_tui.runtime.backends import make_backend
from hybrid_tui.runtime.broker import (
    TASK_NAME, WORKER_ADVERT_SECONDS, AttemptMessage, AttemptOutcome, AttemptSpend, WorkerAdvert, cancel_key,
    flag_seconds, lease_key, make_celery, redis_client, results_key, spend_key, worker_key, worker_queue,
)

ALL_BACKENDS = ("replay", "sim", "anthropic", "cli")
MAX_LOG_CHARS = 200_000
RESULT_PUSH_SECONDS = 300.0  # how long a finished attempt waits for Redis to come back
SPEND_FLUSH_SECONDS = 10.0  # how long an ended attempt waits for its last spend to be written
log = logging.getLogger("hybrid_tui.worker")


class SpendPublisher:
    """One attempt's spend so far on its Redis key (``broker.spend_key``): the request's
    ``report_spend``. The implementer calls it on its own thread or loop after every billed
    turn; it only hands the value to a writer thread (started at the first report), so a slow
    or unreachable Redis never stalls the agent, and a failed write is logged, never the
    attempt's failure. :meth:`close` writes the last value before the attempt's end is sent."""

    def __init__(self, client: Any, msg: AttemptMessage) -> None:
        self._client = client
        self._key = spend_key(msg.token)
        self._seconds = flag_seconds(msg.lease_seconds)
        self._task = msg.task_id
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: str | None = None
        self._closed = False
        self._thread: threading.Thread | None = None

    def __call__(self, usage: Usage, cost_usd: float, model: str | None = None, /) -> None:
        body = AttemptSpend(usage=usage.model_dump(), cost_usd=cost_usd, model=model or "").model_dump_json()
        with self._lock:
            self._pending = body
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._write, daemon=True, name=f"hybrid-spend-{self._task}")
                self._thread.start()
        self._wake.set()

    def _write(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                body, self._pending, closed = self._pending, None, self._closed
            if body is not None:  # the latest only: each report is cumulative
                try:
                    self._client.set(self._key, body, ex=self._seconds)
                except Exception as exc:  # Redis away: the next turn's report (or close) writes it again
                    with self._lock:
                        self._pending = self._pending or body
                    log.warning("worker: spend of %s not written: %s", self._task, exc)
            if closed:
                return

    def close(self, timeout: float = SPEND_FLUSH_SECONDS) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout)


class Worker:
    """One worker process: its name, slots, folders, and the attempts it runs."""

    def __init__(self, broker_url: str, name: str, slots: int, work_dir: Path,
                 backends: tuple[str, ...] = ALL_BACKENDS) -> None:
        self.broker_url = broker_url
        self.name = name
        self.host = socket.gethostname()
        self.slots = slots
        self.work_dir = work_dir
        self.cache = work_dir / "cache.git"
        self.backends = backends
        self.redis = redis_client(broker_url)
        self._stop = threading.Event()

    # ------------------------------------------------------------------ process
    def serve(self) -> int:
        """Advertise, then consume the queue until the process is told to stop."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        app = make_celery(self.broker_url)

        @app.task(name=TASK_NAME, acks_late=False, max_retries=0, ignore_result=True)
        def run_attempt_task(payload: dict[str, Any]) -> None:
            self.run_message(AttemptMessage.model_validate(payload))

        advert = threading.Thread(target=self._advertise, name="hybrid-advert", daemon=True)
        advert.start()
        try:
            app.worker_main(argv=[
                "worker", "--pool", "threads", "--concurrency", str(self.slots), "--queues", worker_queue(self.name),
                "--hostname", f"{self.name}@{self.host}", "--without-gossip", "--without-mingle",
                "--without-heartbeat", "--loglevel", "WARNING", "--prefetch-multiplier", "1",
            ])
        finally:
            self._stop.set()
            try:
                self.redis.delete(worker_key(self.name))
            except Exception:  # Redis gone: the advertisement lapses by itself
                pass
        return 0

    def _advertise(self) -> None:
        advert = WorkerAdvert(name=self.name, host=self.host, pid=os.getpid(), slots=self.slots,
                              backends=list(self.backends), started_at=time.time()).model_dump_json()
        while not self._stop.is_set():
            try:
                self.redis.set(worker_key(self.name), advert, ex=int(WORKER_ADVERT_SECONDS))
            except Exception as exc:  # Redis restarting: advertise again once it is back
                log.warning("worker %s: cannot advertise: %s", self.name, exc)
            self._stop.wait(WORKER_ADVERT_SECONDS / 4)

    # ------------------------------------------------------------------ one attempt
    def run_message(self, msg: AttemptMessage) -> None:
        try:
            current = self.redis.get(lease_key(msg.token))
        except Exception as exc:
            log.warning("worker %s: cannot read the lease of %s: %s", self.name, msg.task_id, exc)
            return  # the coordinator sees the lease lapse and dispatches it again
        if current is None or current.decode() != msg.token:
            log.warning("worker %s: %s attempt %d: lease gone, stale message dropped", self.name, msg.task_id, msg.attempt)
            return
        cancelled = threading.Event()
        done = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(msg, cancelled, done), daemon=True,
                                   name=f"hybrid-lease-{msg.task_id}")
        renewer.start()
        worktree = self.work_dir / "worktrees" / msg.token
        started = time.time()
        spend = SpendPublisher(self.redis, msg)
        try:
            outcome = anyio.run(self._execute, msg, worktree, cancelled, spend)
        except Exception as exc:  # a bug here is the attempt's agent_error, not a dead worker thread
            outcome = self._outcome(msg, ok=False, failure_type="agent_error", message=f"worker {self.name}: {exc}")
        finally:
            spend.close()
            done.set()
            renewer.join()
            remove_worktree(self.cache, worktree)
        if outcome is None:  # cancelled by the coordinator: nobody waits for a result
            return
        outcome.started_at = started
        self._push(msg, outcome)

    def _outcome(self, msg: AttemptMessage, **fields: Any) -> AttemptOutcome:
        return AttemptOutcome(token=msg.token, run_id=msg.run_id, task_id=msg.task_id, attempt=msg.attempt,
                              worker=self.name, host=self.host, **fields)

    def _renew(self, msg: AttemptMessage, cancelled: threading.Event, done: threading.Event) -> None:
        """Renew the lease every third of its life; raise the cancel flag when the coordinator set it."""
        interval = max(0.2, msg.lease_seconds / 3)
        while not done.is_set():
            try:
                self.redis.set(lease_key(msg.token), msg.token, px=int(msg.lease_seconds * 1000))
                if self.redis.exists(cancel_key(msg.token)):
                    cancelled.set()
            except Exception as exc:  # Redis restarting: keep trying; the coordinator allows for the outage
                log.warning("worker %s: lease renewal of %s failed: %s", self.name, msg.task_id, exc)
            done.wait(interval)

    async def _execute(self, msg: AttemptMessage, worktree: Path, cancelled: threading.Event,
                       report_spend: SpendPublisher | None = None) -> AttemptOutcome | None:
        try:
            await anyio.to_thread.run_sync(checkout_base, self.cache, msg.endpoint, msg.base, worktree)
        except FetchError as exc:
            return self._outcome(msg, ok=False, failure_type="network_error", message=str(exc), model=msg.model)
        config = MissionFile.model_validate_json(msg.config_json)
        _, implementer = make_backend(msg.backend, pace=msg.pace, seed=msg.seed, git=True, config=config)
        pricing = PricingTable.load(config.pricing or None)
        spec = SisTask.model_validate_json(msg.task_json)
        log_path = self.work_dir / "logs" / f"{msg.task_id}.{msg.attempt}.{msg.token[:8]}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        request = ImplementRequest(
            run_id=msg.run_id, task=spec, attempt=msg.attempt, agent_id=msg.agent_id, model=msg.model,
            # Undeclared writes are allowed here: the coordinator takes their locks (or refuses
            # the patch) when the result comes back, as it checks every path.
            sandbox=Sandbox(worktree, declared=spec.declared_files),
            log_path=log_path, cost_of=pricing.cost, limits=AttemptLimits(**msg.limits), feedback=msg.feedback,
            recorded=RecordedAttempt.model_validate_json(msg.recorded_json) if msg.recorded_json else None,
            memory_cap_mb=msg.memory_cap_mb, report_spend=report_spend,
        )
        result: ImplementResult | None = None
        async with anyio.create_task_group() as tg:
            async def watch_cancel() -> None:
                while not cancelled.is_set():
                    await anyio.sleep(0.2)
                tg.cancel_scope.cancel()

            async def implement() -> None:
                nonlocal result
                try:
                    result = await implementer.implement(request)
                except anyio.get_cancelled_exc_class():
                    raise
                except Exception as exc:  # reported, as in-process: an agent_error
                    result = ImplementResult(ok=False, model=msg.model, failure_type="agent_error",
                                             message=f"{type(exc).__name__}: {exc}")
                tg.cancel_scope.cancel()

            tg.start_soon(watch_cancel)
            tg.start_soon(implement)
        if result is None:
            return None
        log_text = log_path.read_text(errors="replace")[-MAX_LOG_CHARS:] if log_path.is_file() else ""
        fields: dict[str, Any] = dict(
            ok=result.ok, model=result.model, usage=result.usage.model_dump(), cost_usd=result.cost_usd,
            failure_type=result.failure_type, message=result.message, summary=result.summary,
            retry_after=result.retry_after, log_text=log_text, base=msg.base,
        )
        if result.ok:
            patch, tree = await anyio.to_thread.run_sync(make_patch, worktree, msg.base)
            fields.update(tree=tree, patch_b64=base64.b64encode(patch).decode())
        return self._outcome(msg, **fields)

    def _push(self, msg: AttemptMessage, outcome: AttemptOutcome) -> None:
        deadline = time.monotonic() + RESULT_PUSH_SECONDS
        body = outcome.model_dump_json()
        while True:
            try:
                self.redis.rpush(results_key(msg.run_id), body)
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    log.error("worker %s: result of %s lost (Redis unreachable): %s", self.name, msg.task_id, exc)
                    return
                time.sleep(1.0)
