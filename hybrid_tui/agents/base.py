"""The two protocols every backend implements: ``Planner`` (L2) and ``Implementer`` (L3).

Room: agents. Contract between the runtime and the backends (replay, sim, anthropic, cli):

- The runtime builds an :class:`ImplementRequest` per attempt: the task's SIS, the attempt
  number, the model chosen by tiering, feedback from the previous failed attempt, a
  :class:`~hybrid_tui.workspace.sandbox.Sandbox` rooted in the agent's worktree (every
  file access goes through it), the attempt's log file and its limits.
- The backend does the work and returns an :class:`ImplementResult`. It does not run the
  final validation: the runtime does that (state ``validating``) with
  ``workspace.validation.run_checks``, the same function the ``run_checks`` tool uses.
- Failures are reported, not raised: ``ok=False`` with one of the failure types below and
  a one-line ``message``. Cancellation (``anyio`` cancel scope) is the only exception that
  may escape.
- Cost is computed by the backend with the ``cost_of`` callable it is given (pricing lives
  in ``costs``), so every backend prices usage the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import AbstractSet, Any, Callable, Protocol

from hybrid_tui.spec.models import RecordedAttempt, Sis, SisTask, Usage
from hybrid_tui.workspace.sandbox import Sandbox

# The failure types the core's policies know (spec.models.default_retry_rules keys).
FAILURE_TYPES = (
    "network_error",
    "rate_limited",
    "file_locked",
    "validation_failed",
    "agent_error",
    "git_conflict",
    "timeout",
    "budget_exhausted",
    "resource_exhausted",
    "interrupted",
    "auth_error",  # the backend's credentials were refused: retrying cannot help
)

CostFn = Callable[[str, Usage], float]


class SpendReport(Protocol):
    """``report_spend(usage, cost_usd, model=None)``: the spend so far (cumulative); ``model``
    is the one it is booked to when the agent says it ran another than it was asked for."""

    def __call__(self, usage: Usage, cost_usd: float, model: str | None = None, /) -> None: ...
"""``cost_of(model, usage) -> dollars``; raises for a model missing from the pricing table."""


@dataclass(frozen=True)
class AttemptLimits:
    max_turns: int = 40
    max_tokens: int = 400_000
    max_cost_usd: float = 1.0
    timeout_seconds: float = 1800.0


@dataclass(frozen=True)
class BatchMember:
    """One task of a batched attempt (``[policies.batch]``): its SIS and, for the replay
    backend, what its own attempt did when recorded (recordings are per task)."""

    task: SisTask
    recorded: RecordedAttempt | None = None


@dataclass
class ImplementRequest:
    run_id: str
    task: SisTask
    attempt: int  # 1-based
    agent_id: str
    model: str
    sandbox: Sandbox | None  # None with git off (--no-git): backends that need files refuse
    log_path: Path
    cost_of: CostFn
    limits: AttemptLimits = field(default_factory=AttemptLimits)
    feedback: str = ""  # the previous attempt's failure (validation output), "" on the first
    recorded: RecordedAttempt | None = None  # replay backend: what this attempt did when recorded
    memory_cap_mb: int = 2048  # for run_checks
    # Folders an external agent (the cli backend) must not write in: the user's checkout.
    # A file written under one while the attempt ran fails it. unwatched_roots are left out
    # of that check (the run folder when it sits inside the checkout).
    protected_roots: tuple[Path, ...] = ()
    unwatched_roots: tuple[Path, ...] = ()
    # Called by a backend that pays per turn with its usage and dollars so far (cumulative),
    # so a timeout or cancel from outside the backend still records what was billed.
    report_spend: SpendReport | None = None
    # [workspace] env and PATH for the commands the agent runs (its CLI, run_checks): laid
    # over the user's environment.
    environment: dict[str, str] = field(default_factory=dict)
    # A batched attempt: every task of the batch, ``task`` first. The agent does them all in
    # one session, loading the shared context once (``shared_context_tokens`` is what each
    # task's own attempt would have spent on it); the sandbox admits every member's files.
    batch: tuple[BatchMember, ...] = ()
    shared_context_tokens: int = 0


def combined_task(request: ImplementRequest) -> SisTask:
    """The task the agent's tools see: ``request.task``, or for a batch one SIS task holding
    every member's file operations and validation commands (run_checks runs them all)."""
    if not request.batch:
        return request.task
    operations = [op for member in request.batch for op in member.task.file_operations]
    commands = list(dict.fromkeys(c for member in request.batch for c in member.task.validation.commands))
    timeout = max(member.task.validation.timeout_seconds for member in request.batch)
    validation = request.task.validation.model_copy(update={"commands": commands, "timeout_seconds": timeout})
    return request.task.model_copy(update={"file_operations": operations, "validation": validation})


@dataclass
class ImplementResult:
    ok: bool
    model: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    failure_type: str | None = None
    message: str = ""
    summary: str = ""
    retry_after: float | None = None  # seconds, for rate_limited
    files_touched: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0
    session_id: str = ""  # the agent CLI's own session/thread id, to find or resume its transcript
    # A batched attempt's backend that knows each task's own outcome and spend (replay): task
    # id -> its result. Otherwise the runtime splits this one result by cost share.
    per_task: dict[str, ImplementResult] = field(default_factory=dict)
    # The file operations the run's recording keeps for this attempt, when the runtime read
    # them already (a batch member's, before the worktree moved on); None: read at the end.
    recorded_operations: list[Any] | None = None
    # A batch member's share of the shared context it did not load again (replay): the
    # recording adds it back, so a replay of the recording, batched or not, saves it once.
    context_saved: Usage | None = None
    context_saved_usd: float = 0.0
    # A batch member's result split from one session by cost share (a backend that reports
    # no per_task): its usage and cost are its share, the shared context counted once across
    # the batch. Recorded as such, so a batched replay does not take the shared context off again.
    batch_share: bool = False


class Implementer(Protocol):
    name: str

    async def implement(self, request: ImplementRequest) -> ImplementResult: ...


@dataclass
class PlanRequest:
    run_id: str
    issue_id: str
    title: str
    body: str
    repo_root: Path  # read-only view of the repository at the mission base
    model: str
    cost_of: CostFn
    file_tree: list[str] = field(default_factory=list)
    excerpts: dict[str, str] = field(default_factory=dict)
    recorded_sis: Sis | None = None  # replay backend
    # Task ids of the mission's other issues: a planned task may depend on them. A set view,
    # built once per run: a planner that reads it pays for it (a replay planner does not).
    known_task_ids: AbstractSet[str] = frozenset()
    # Told the spend so far (cumulative usage, dollars) after every answer the API billed, so
    # a planning step cut short (a crash, a stop) still has it on its attempt.
    report_spend: Callable[[Usage, float], None] | None = None


@dataclass
class PlanResult:
    ok: bool
    model: str
    sis: Sis | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    failure_type: str | None = None
    message: str = ""  # on failure: every validation error, one per line
    retry_after: float | None = None  # seconds, for rate_limited


class Planner(Protocol):
    name: str

    async def plan(self, request: PlanRequest) -> PlanResult: ...
