"""What the coordinator and its workers share through the broker: the Celery app, the Redis
keys, and the messages (an attempt to run, its spend so far, its result).

Room: runtime. Celery only carries work: the coordinator decides what runs where and when
an attempt is over. Celery is used the way long attempts need: a message is acknowledged on
receipt (``task_acks_late=False``), so Redis's visibility timeout never hands a running
attempt to a second worker; no prefetch beyond one per slot; Celery's own retries off (a
retry is the coordinator's decision, a new attempt with a new lease).

Liveness stays with the coordinator: each attempt holds a lease key the coordinator sets
when it sends the message and the worker renews every few seconds; a cancel is a flag key
the worker polls. What the API billed the attempt so far (cumulative, after every turn) is
on a spend key the worker writes and the coordinator reads while it waits and once more
when it gives up on the attempt (a cancel, the timeout, a lapsed lease): no result comes
back then, and the dollars are still recorded. Results come back on one Redis list per run
(``RPUSH``), read by the coordinator: a result whose lease is not one it is waiting for is
rejected.

Secrets never travel: a message carries the task, the backend's name and the mission's
configuration (which names environment variables, never their values); each worker reads
its own environment.
"""

from __future__ import annotations

import socket
from typing import Any

from pydantic import BaseModel, Field

TASK_NAME = "hybrid_tui.run_attempt"
KEY_PREFIX = "hybrid-tui"
DEFAULT_LEASE_SECONDS = 10.0
WORKER_ADVERT_SECONDS = 10.0  # a worker's advertisement lives this long without renewal


def worker_queue(name: str) -> str:
    """The queue one worker consumes: the coordinator's slot choice holds across machines."""
    return f"{KEY_PREFIX}.worker.{name}"


def lease_key(token: str) -> str:
    return f"{KEY_PREFIX}:lease:{token}"


def cancel_key(token: str) -> str:
    return f"{KEY_PREFIX}:cancel:{token}"


def spend_key(token: str) -> str:
    return f"{KEY_PREFIX}:spend:{token}"


def flag_seconds(lease_seconds: float) -> int:
    """How long a cancel flag or a spend key outlives its last write: long past the lease, so
    the other side reads it after an attempt ended; Redis forgets it by itself."""
    return int(max(60.0, lease_seconds * 10))


def results_key(run_id: str) -> str:
    return f"{KEY_PREFIX}:results:{run_id}"


def worker_key(name: str) -> str:
    return f"{KEY_PREFIX}:worker:{name}"


WORKER_KEY_PATTERN = f"{KEY_PREFIX}:worker:*"


class AttemptMessage(BaseModel):
    """One attempt, as sent to a worker (no secret: see the module docstring)."""

    token: str  # the lease: one per dispatched attempt
    run_id: str
    task_id: str
    attempt: int
    agent_id: str
    worker: str
    endpoint: str  # read-only git endpoint the base is fetched from
    base: str  # the pinned base commit
    task_json: str  # spec.models.SisTask
    recorded_json: str = ""  # spec.models.RecordedAttempt (replay backend)
    config_json: str  # spec.models.MissionFile (names env vars, never their values)
    backend: str
    model: str
    feedback: str = ""
    pace: float = 0.0
    seed: int = 0
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    limits: dict[str, Any] = Field(default_factory=dict)  # agents.base.AttemptLimits fields
    memory_cap_mb: int = 2048


class AttemptOutcome(BaseModel):
    """What a worker sends back on the run's results list."""

    token: str
    run_id: str
    task_id: str
    attempt: int
    worker: str
    host: str = ""
    ok: bool
    model: str = ""
    usage: dict[str, int] = Field(default_factory=dict)
    cost_usd: float = 0.0
    failure_type: str | None = None
    message: str = ""
    summary: str = ""
    retry_after: float | None = None
    base: str = ""
    tree: str = ""
    patch_b64: str = ""  # git diff --binary, base64
    log_text: str = ""
    started_at: float = 0.0


class AttemptSpend(BaseModel):
    """What the API billed a running attempt so far (cumulative), on its spend key."""

    usage: dict[str, int] = Field(default_factory=dict)  # spec.models.Usage fields
    cost_usd: float = 0.0
    model: str = ""  # the model it is booked to, when the agent named one ("" : the one asked for)


class WorkerAdvert(BaseModel):
    """What a worker advertises while it lives (renewed every few seconds)."""

    name: str
    host: str = Field(default_factory=socket.gethostname)
    pid: int = 0
    slots: int = 1
    backends: list[str] = Field(default_factory=list)
    started_at: float = 0.0


def make_celery(broker_url: str) -> Any:
    """The Celery app both sides use (Celery only carries the attempt messages)."""
    from celery import Celery  # lazy: a run without --broker never loads Celery

    app = Celery("hybrid_tui", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=False,  # acknowledge on receipt: a running attempt is never redelivered
        worker_prefetch_multiplier=1,  # no prefetch beyond one message per slot
        task_ignore_result=True,  # results come back on the run's list, checked by the coordinator
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a restarted Redis is waited for, not fatal
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_default_queue=f"{KEY_PREFIX}.default",
        broker_transport_options={"visibility_timeout": 24 * 3600},
    )
    return app


def redis_client(url: str) -> Any:
    import redis  # lazy, as Celery

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=10)
