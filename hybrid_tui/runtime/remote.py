"""The coordinator's side of the workers: which worker runs an agent slot's attempt, the
attempt sent and awaited under a lease, and the worker's patch checked before it lands.

Room: runtime. :class:`WorkerPool` is the coordinator's link to the broker (``run --broker
URL``): it knows the live workers from their advertisements, maps each agent slot to one
(sticky, so the scheduler's file and domain affinity holds across machines; queues are per
worker), counts their busy slots, reads the run's results list and rejects any result
whose lease it is not waiting for (late, duplicate, or from before a restart).
:class:`RemoteImplementer` is the implementer the attempt sees: it sends the attempt, waits
for its result while the lease lives, and turns the worker's patch into the slot's
worktree through ``workspace.patches.check_and_apply``; validation and the exactly-once
integration then run as for an in-process attempt.

What the API bills an attempt's turns reaches the attempt's ``report_spend`` as on one
machine: the worker writes it to the attempt's spend key after every turn, and the
coordinator reads that key while it waits (every third of the lease) and once more when it
gives up on the attempt (a cancel, the timeout, the run stopping, a lapsed lease), when no
result comes back to carry it.

A lease that lapses (a dead or cut-off worker, a message lost with Redis) ends the attempt
``interrupted`` (its own retry rule, not counted against the others) and the task is
dispatched again. While Redis is unreachable, or just after it restarted (its run id
changed), leases are not judged for one lease period: the workers renew them on reconnect.
"""

from __future__ import annotations

import base64
import dataclasses
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import anyio

from hybrid_tui.agents.base import ImplementRequest, ImplementResult, SpendReport
from hybrid_tui.spec.models import Usage
from hybrid_tui.store import writes
from hybrid_tui.workspace.patches import PatchRejected, check_and_apply, head_of
from hybrid_tui.runtime.broker import (
    TASK_NAME, AttemptMessage, AttemptOutcome, AttemptSpend, WorkerAdvert, WORKER_KEY_PATTERN, cancel_key,
    flag_seconds, lease_key, make_celery, redis_client, results_key, spend_key, worker_queue,
)
from hybrid_tui.runtime.context import RunContext
from hybrid_tui.vocabulary import escaped_secrets, may_hold_secret_value, secret_values

REFRESH_SECONDS = 1.0


def carries_secret(msg: AttemptMessage) -> bool:
    """Whether the message's text holds a credential (this process's API key, or any
    key-shaped string): such a message is never sent (each worker reads its own)."""
    return may_hold_secret_value(msg.model_dump_json(), escaped_secrets(secret_values()))
START_LEASES = 3  # a message not yet picked up holds its lease this many lease periods
SEND_PATIENCE_SECONDS = 60.0  # Redis away (restarting): keep trying to send this long


class SpendWatch:
    """An attempt's spend key, passed on to its ``report_spend`` each time it changed (the
    worker writes the cumulative spend after every billed turn)."""

    def __init__(self, pool: "WorkerPool", token: str, report: SpendReport | None) -> None:
        self.pool = pool
        self.token = token
        self.report = report
        self._last = b""

    async def check(self) -> None:
        if self.report is None:
            return
        body = await anyio.to_thread.run_sync(self.pool.read_spend, self.token)
        if not body or body == self._last:
            return
        self._last = body
        try:
            spend = AttemptSpend.model_validate_json(body)
            usage = Usage(**spend.usage)
        except ValueError:  # not what a worker writes: nothing to record
            return
        self.report(usage, spend.cost_usd, spend.model or None)


class NoWorkers(Exception):
    """No worker advertised itself on the broker in time."""


def probe_workers(broker_url: str, timeout: float) -> list[WorkerAdvert]:
    """The workers advertised on the broker, waiting up to ``timeout`` for one; raises
    :class:`NoWorkers` (one line) when Redis is unreachable or no worker came."""
    client = redis_client(broker_url)
    deadline = time.monotonic() + timeout
    while True:
        try:
            names = list(client.scan_iter(match=WORKER_KEY_PATTERN, count=500))
            adverts = [WorkerAdvert.model_validate_json(b) for b in (client.mget(names) if names else []) if b]
        except Exception as exc:
            raise NoWorkers(f"--broker {broker_url}: cannot reach Redis ({exc})") from None
        if adverts:
            return adverts
        if time.monotonic() > deadline:
            raise NoWorkers(f"--broker {broker_url}: no worker advertised itself within {timeout:g}s "
                            "(start one: hybrid-tui worker --broker URL --name NAME)")
        time.sleep(0.2)


class WorkerPool:
    """The live workers, their slots, and the attempts sent to them (one per coordinator)."""

    def __init__(self, broker_url: str, *, endpoint: str, backend: str, lease_seconds: float,
                 pace: float = 0.0, seed: int = 0) -> None:
        self.broker_url = broker_url
        self.endpoint = endpoint
        self.backend = backend
        self.lease_seconds = lease_seconds
        self.pace = pace
        self.seed = seed
        self.redis = redis_client(broker_url)
        self.celery = make_celery(broker_url)
        self.live: dict[str, WorkerAdvert] = {}
        self.lost: set[str] = set()
        self.busy: dict[str, int] = {}
        self._sticky: dict[str, str] = {}  # agent id -> worker
        self._waiting: dict[str, anyio.Event] = {}
        self._outcomes: dict[str, AttemptOutcome] = {}
        self._send_lock = threading.Lock()
        self._redis_run_id = ""
        self.grace_until = 0.0  # leases are not judged before this (monotonic): Redis was away
        self.start_latencies: list[float] | None = None  # dispatch -> start on the worker, when a bench asks

    # ------------------------------------------------------------------ workers
    def refresh(self) -> tuple[list[WorkerAdvert], list[str]]:
        """Read the advertisements (thread). Returns (joined, lost)."""
        try:
            info = self.redis.info("server")
            names = list(self.redis.scan_iter(match=WORKER_KEY_PATTERN, count=500))
            raw = self.redis.mget(names) if names else []
        except Exception:
            self.grace_until = time.monotonic() + self.lease_seconds
            return [], []
        run_id = str(info.get("run_id", ""))
        if self._redis_run_id and run_id != self._redis_run_id:  # Redis restarted: leases come back on renewal
            self.grace_until = time.monotonic() + self.lease_seconds * 1.5
        self._redis_run_id = run_id
        seen: dict[str, WorkerAdvert] = {}
        for body in raw:
            if body:
                advert = WorkerAdvert.model_validate_json(body)
                if self.backend in advert.backends:
                    seen[advert.name] = advert
        joined = [a for name, a in seen.items() if name not in self.live]
        lost = [name for name in self.live if name not in seen]
        self.live = seen
        self.lost.difference_update(seen)
        self.lost.update(lost)
        return joined, lost

    def total_slots(self) -> int:
        return sum(a.slots for a in self.live.values())

    def assign(self, agent_id: str) -> str:
        """The worker that runs this agent slot's next attempt: its usual one while it lives
        and has a free slot, else the live worker with the most free slots."""
        sticky = self._sticky.get(agent_id, "")
        pick = sticky
        if sticky not in self.live or self.busy.get(sticky, 0) >= self.live[sticky].slots:
            free = sorted(self.live.values(), key=lambda a: (self.busy.get(a.name, 0) - a.slots, a.name))
            pick = free[0].name if free else sticky
        if pick:
            self._sticky[agent_id] = pick
            self.busy[pick] = self.busy.get(pick, 0) + 1
        return pick

    def release(self, worker: str) -> None:
        if self.busy.get(worker, 0) > 0:
            self.busy[worker] -= 1

    def label(self, worker: str) -> str:
        """``name@host`` as the console shows an agent slot's worker."""
        advert = self.live.get(worker)
        return f"{worker}@{advert.host}" if advert else worker

    def agents_on(self, worker: str) -> list[str]:
        return sorted(agent for agent, name in self._sticky.items() if name == worker)

    # ------------------------------------------------------------------ the loop's side
    async def serve(self, ctx: RunContext) -> None:
        """Background: advertisements (workers joined and lost) and the run's results list."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_workers, ctx)
            tg.start_soon(self._read_results, ctx)

    async def _watch_workers(self, ctx: RunContext) -> None:
        hosts: dict[str, str] = {}
        while True:
            hosts.update((a.name, a.host) for a in self.live.values())
            joined, lost = await anyio.to_thread.run_sync(self.refresh)
            if joined or lost:
                with ctx.transaction() as txn:
                    for advert in joined:
                        ctx.events.add("worker.joined", f"worker {advert.name} on {advert.host}: {advert.slots} slots",
                                       worker=advert.name, host=advert.host, slots=advert.slots)
                    for name in lost:
                        ctx.events.add("worker.lost", f"worker {name} stopped advertising (lost)", level="warning",
                                       worker=name)
                        label = f"{name}@{hosts[name]} lost" if name in hosts else f"{name} lost"
                        now = ctx.clock()
                        for agent_id in self.agents_on(name):  # the console shows the slot's worker lost
                            writes.stage_agent_worker(ctx.store, ctx.run_id, agent_id, label, now, txn.version)
            await anyio.sleep(REFRESH_SECONDS)

    def _pop_result(self, run_id: str) -> bytes | None:
        try:
            item = self.redis.blpop([results_key(run_id)], timeout=1)
        except Exception:
            self.grace_until = time.monotonic() + self.lease_seconds
            time.sleep(0.5)
            return None
        return item[1] if item else None

    async def _read_results(self, ctx: RunContext) -> None:
        while True:
            body = await anyio.to_thread.run_sync(self._pop_result, ctx.run_id, abandon_on_cancel=True)
            if body is None:
                continue
            try:
                outcome = AttemptOutcome.model_validate_json(body)
            except ValueError as exc:
                with ctx.transaction():
                    ctx.events.add("worker.result_rejected", f"unreadable result: {str(exc)[:200]}", level="warning")
                continue
            event = self._waiting.get(outcome.token)
            if event is None or event.is_set():
                with ctx.transaction():
                    ctx.events.add(
                        "worker.result_rejected",
                        f"{outcome.task_id} attempt {outcome.attempt} from worker {outcome.worker}: its lease is not "
                        "live (late or duplicate result), discarded",
                        level="warning", task_id=outcome.task_id, attempt=outcome.attempt, worker=outcome.worker)
                continue
            self._outcomes[outcome.token] = outcome
            event.set()

    # ------------------------------------------------------------------ one attempt
    def _send(self, msg: AttemptMessage) -> str:
        start_ttl = int(self.lease_seconds * START_LEASES * 1000)
        with self._send_lock:
            self.redis.set(lease_key(msg.token), msg.token, px=start_ttl)
            sent = self.celery.send_task(TASK_NAME, args=[msg.model_dump()], queue=worker_queue(msg.worker),
                                         ignore_result=True)
        return sent.id

    async def _send_patiently(self, msg: AttemptMessage) -> str:
        """Send, retrying while Redis is away (a restart takes seconds); the last error after
        ``SEND_PATIENCE_SECONDS``."""
        deadline = time.monotonic() + SEND_PATIENCE_SECONDS
        while True:
            try:
                return await anyio.to_thread.run_sync(self._send, msg)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                self.grace_until = time.monotonic() + self.lease_seconds
                await anyio.sleep(1.0)

    def _lease_alive(self, token: str) -> bool | None:
        try:
            return bool(self.redis.exists(lease_key(token)))
        except Exception:
            return None

    def read_spend(self, token: str) -> bytes | None:
        """The attempt's spend key (None: not written yet, or Redis away: read again later)."""
        try:
            return self.redis.get(spend_key(token))
        except Exception:
            return None

    def _drop_lease(self, token: str, celery_id: str, cancel: bool) -> None:
        try:
            self.redis.delete(lease_key(token))
            if cancel:
                # Cooperative first: the worker polls this flag; a message not yet started is revoked.
                self.redis.set(cancel_key(token), "1", ex=flag_seconds(self.lease_seconds))
                if celery_id:
                    self.celery.control.revoke(celery_id)
            else:  # its result came, with the whole spend: the worker writes the key no more
                self.redis.delete(spend_key(token))
        except Exception:  # Redis away: the lease lapses by itself, the worker's result is rejected
            pass

    async def _await_outcome(self, token: str, spend: SpendWatch | None = None) -> AttemptOutcome | None:
        """The attempt's result, or None once its lease lapsed; the spend the worker reported
        meanwhile goes to ``spend`` at every check."""
        event = self._waiting[token]
        check = max(0.2, self.lease_seconds / 3)
        while True:
            with anyio.move_on_after(check):
                await event.wait()
            if event.is_set():
                return self._outcomes.pop(token)
            if spend is not None:
                await spend.check()
            alive = await anyio.to_thread.run_sync(self._lease_alive, token)
            if alive is None:
                self.grace_until = time.monotonic() + self.lease_seconds
                continue
            if alive or time.monotonic() < self.grace_until:
                continue
            if event.is_set():
                return self._outcomes.pop(token)
            return None

    async def run_attempt(self, ctx: RunContext, request: ImplementRequest) -> ImplementResult:
        attempt = ctx.running.get(request.task.task_id)
        worker = attempt.worker if attempt is not None else ""
        if not worker:
            worker = self.assign(request.agent_id)
            if attempt is not None:
                attempt.worker = worker
        sandbox = request.sandbox
        if sandbox is None or not worker:
            return ImplementResult(ok=False, model=request.model, failure_type="environment_error",
                                   message="no worker to run the attempt on" if sandbox else "workers need git")
        try:
            return await self._run_on(ctx, request, worker, attempt)
        finally:
            self.release(worker)  # the slot counted by assign()

    async def _run_on(self, ctx: RunContext, request: ImplementRequest, worker: str, attempt: Any) -> ImplementResult:
        sandbox = request.sandbox
        assert sandbox is not None
        worktree = Path(sandbox.root)
        base = await anyio.to_thread.run_sync(head_of, worktree)
        token = uuid.uuid4().hex
        recorded = request.recorded
        msg = AttemptMessage(
            token=token, run_id=request.run_id, task_id=request.task.task_id, attempt=request.attempt,
            agent_id=request.agent_id, worker=worker, endpoint=self.endpoint, base=base,
            task_json=request.task.model_dump_json(), recorded_json=recorded.model_dump_json() if recorded else "",
            config_json=ctx.config.model_dump_json(), backend=self.backend, model=request.model,
            feedback=request.feedback, pace=self.pace, seed=self.seed, lease_seconds=self.lease_seconds,
            limits=dataclasses.asdict(request.limits), memory_cap_mb=request.memory_cap_mb,
        )
        if carries_secret(msg):
            return ImplementResult(ok=False, model=request.model, failure_type="environment_error",
                                   message=f"{request.task.task_id}: not sent to worker {worker}: the task or the "
                                           "mission configuration holds a credential (workers read their own)")
        self._waiting[token] = anyio.Event()
        spend = SpendWatch(self, token, request.report_spend)
        celery_id = ""
        finished = False
        outcome: AttemptOutcome | None = None
        try:
            celery_id = await self._send_patiently(msg)
            outcome = await self._await_outcome(token, spend)
            finished = True
        except anyio.get_cancelled_exc_class():
            # Cancelled (the operator, the attempt's timeout, the run stopping): no result will
            # come, so what the worker last reported billed is recorded now.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._drop_lease, token, celery_id, True)
                await spend.check()
            raise
        except Exception as exc:  # Redis unreachable when sending: as a lost worker, run it again
            return ImplementResult(ok=False, model=request.model, failure_type="interrupted",
                                   message=f"cannot send to worker {worker}: {exc}")
        finally:
            self._waiting.pop(token, None)
            self._outcomes.pop(token, None)
            if finished:  # a lapsed lease: the worker, should it come back, is told to stop
                await anyio.to_thread.run_sync(self._drop_lease, token, celery_id, outcome is None)
        if outcome is not None and self.start_latencies is not None and attempt is not None:
            self.start_latencies.append(outcome.started_at - attempt.started)
        if outcome is None:
            await spend.check()  # the turns a lost worker was billed for
            state = "lost" if worker in self.lost else "alive but silent"
            return ImplementResult(ok=False, model=request.model, failure_type="interrupted",
                                   message=f"lease lapsed: worker {worker} ({state}) stopped renewing it")
        return await self._accept(ctx, request, outcome, base, worktree)

    async def _accept(self, ctx: RunContext, request: ImplementRequest, outcome: AttemptOutcome, base: str,
                      worktree: Path) -> ImplementResult:
        if outcome.log_text:
            request.log_path.parent.mkdir(parents=True, exist_ok=True)
            request.log_path.write_text(outcome.log_text)
        usage = Usage(**outcome.usage) if outcome.usage else Usage()
        common: dict[str, Any] = dict(model=outcome.model or request.model, usage=usage, cost_usd=outcome.cost_usd,
                                      summary=outcome.summary)
        if not outcome.ok:
            return ImplementResult(ok=False, failure_type=outcome.failure_type or "agent_error", message=outcome.message,
                                   retry_after=outcome.retry_after, **common)
        if outcome.base != base:
            return ImplementResult(ok=False, failure_type="agent_error", **common,
                                   message=f"patch from worker {outcome.worker} rejected: base {outcome.base[:12]} "
                                           f"is not the dispatched base {base[:12]}")
        sandbox = request.sandbox
        assert sandbox is not None
        git_env = ctx.repo.object_environment(worktree)  # new objects in the user's store, as integration's
        try:
            files = await anyio.to_thread.run_sync(
                check_and_apply, worktree, base, base64.b64decode(outcome.patch_b64), outcome.tree, sandbox.allows,
                git_env)
        except PatchRejected as exc:
            return ImplementResult(ok=False, failure_type="agent_error", **common,
                                   message=f"patch from worker {outcome.worker} rejected: {exc}")
        return ImplementResult(ok=True, files_touched=files, **common)


class RemoteImplementer:
    """The implementer an attempt sees when the run has workers: the work happens on one."""

    def __init__(self, pool: WorkerPool, ctx: RunContext, name: str) -> None:
        self.pool = pool
        self.ctx = ctx
        self.name = name

    async def implement(self, request: ImplementRequest) -> ImplementResult:
        return await self.pool.run_attempt(self.ctx, request)
