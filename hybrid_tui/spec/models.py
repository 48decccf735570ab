"""Typed models of the mission file (mission.toml), the SIS document and recorded attempts.

Room: spec. Pure data: no I/O here (loading lives in ``loader.py``). The JSON Schema the
planner uses as its ``submit_sis`` tool schema is generated from these same classes.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    field_validator,
)

SIS_VERSION = "1.0"


class Strict(BaseModel):
    """Unknown keys are errors: a typo in a mission must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------- SIS


class Priority(str, Enum):
    CRITICAL = "CRITICAL"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


class CreateOp(Strict):
    op: Literal["create"]
    path: str = Field(min_length=1, description="File to create, relative to the repository root.")
    content: str = Field(description="Full content of the new file.")


class EditOp(Strict):
    op: Literal["edit"]
    path: str = Field(min_length=1)
    old_string: str = Field(min_length=1, description="Exact text to replace; must occur exactly once.")
    new_string: str


class DeleteOp(Strict):
    op: Literal["delete"]
    path: str = Field(min_length=1)


class PatchOp(Strict):
    op: Literal["patch"]
    path: str = Field(min_length=1, description="The file the unified diff applies to.")
    diff: str = Field(min_length=1, description="A unified diff (git apply format).")


class IntentOp(Strict):
    """No concrete change: an LLM implementer decides how to carry out the intent."""

    op: Literal["intent"]
    path: str = Field(min_length=1)
    intent: str = Field(min_length=1)


FileOperation = Annotated[
    Union[CreateOp, EditOp, DeleteOp, PatchOp, IntentOp], Field(discriminator="op")
]


class TokenEstimate(Strict):
    input: int = Field(default=15_000, ge=0)
    output: int = Field(default=8_000, ge=0)


class Validation(Strict):
    commands: list[str] = Field(
        default_factory=list, description="Shell commands run in the worktree; all must exit 0."
    )
    timeout_seconds: PositiveFloat = 300.0
    security_checks: list[str] = Field(default_factory=list)


class SisTask(Strict):
    task_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    title: str = Field(min_length=1, max_length=300)
    description: str = ""
    priority: Priority = Priority.MEDIUM
    domain: str = "general"
    dependencies: list[str] = Field(default_factory=list)
    estimated_duration_minutes: float = Field(default=10.0, ge=0)
    estimated_tokens: TokenEstimate = Field(default_factory=TokenEstimate)
    model_hint: str | None = None
    file_operations: list[FileOperation] = Field(default_factory=list)
    validation: Validation = Field(default_factory=Validation)

    @property
    def declared_files(self) -> list[str]:
        seen: dict[str, None] = {}
        for op in self.file_operations:
            seen.setdefault(op.path, None)
        return list(seen)


class SisIssue(Strict):
    id: str = Field(min_length=1)
    title: str = Field(min_length=1)
    body: str = ""


class Sis(Strict):
    """Structured implementation spec: one issue planned into one or more tasks."""

    sis_version: Literal["1.0"] = SIS_VERSION
    issue: SisIssue
    tasks: list[SisTask] = Field(min_length=1)


# ------------------------------------------------------------------ recorded attempts


class Usage(Strict):
    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cache_read_tokens: int = Field(default=0, ge=0)
    cache_write_tokens: int = Field(default=0, ge=0)


class RecordedAttempt(Strict):
    """What one implementer attempt did, replayed by the ``replay`` backend.

    The outcome is not recorded: replay applies the file operations and runs the task's
    validation commands for real, so a recorded bad edit fails validation for real.
    """

    file_operations: list[FileOperation] = Field(default_factory=list)
    model: str | None = None
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float | None = Field(default=None, ge=0)
    duration_seconds: float = Field(default=0.0, ge=0)
    summary: str = ""
    failure_type: str | None = Field(
        default=None, description="Replays an agent-side failure (e.g. network_error) without running validation."
    )
    batch_share: bool | None = Field(
        default=None,
        description="usage and cost are this task's share of one batched session (the shared context counted "
                    "once for the batch): a batched replay does not take the shared context off again.",
    )


class RecordedTask(Strict):
    task_id: str = Field(min_length=1)
    attempts: list[RecordedAttempt] = Field(min_length=1)


# ------------------------------------------------------------------------- mission


class MissionSection(Strict):
    name: str = Field(min_length=1)
    repo: str = Field(default="repo", min_length=1)
    base_branch: str | None = Field(default=None, description="Default: the repository's current branch.")
    mission_branch: str | None = Field(default=None, description="Default: hybrid/<mission name>.")
    issues: str = "issues/*.md"
    sis: str = "sis/*.json"
    replay: str = "replay/*.json"


class AgentsSection(Strict):
    planners: PositiveInt = 4
    min_implementers: PositiveInt = 4
    max_implementers: PositiveInt = 12
    backend: Literal["replay", "sim", "anthropic", "cli"] = "replay"
    cli: str | None = Field(default=None, description="Command template for the cli backend.")
    attempt_timeout_seconds: PositiveFloat = 1800.0
    max_turns: PositiveInt = 40
    max_tokens_per_attempt: PositiveInt = 400_000
    max_cost_per_attempt: PositiveFloat = 1.0


class ModelLimits(Strict):
    requests_per_minute: PositiveInt = 50
    input_tokens_per_minute: PositiveInt = 40_000
    output_tokens_per_minute: PositiveInt = 8_000


class ModelsSection(Strict):
    planner: str = "claude-haiku-4-5"
    implementer: str = "claude-haiku-4-5"
    strong: str = "claude-sonnet-4-5"
    coordinator: str = "claude-sonnet-4-5"
    # max_tokens of each planner / implementer request: within every model's output limit
    # and the default output-tokens-per-minute limit (`validate` checks both).
    planner_max_tokens: PositiveInt = 8000
    implementer_max_tokens: PositiveInt = 8000
    limits: dict[str, ModelLimits] = Field(default_factory=dict)


class BudgetSection(Strict):
    mission_usd: PositiveFloat = 25.0
    retry_usd: PositiveFloat = 2.0


class PriorityWeights(Strict):
    """``[policies.priority]``. ``mode``: ``critical_path`` (default) orders ready tasks by
    priority class, then by their remaining critical path (own estimate plus the longest
    chain of dependents after it); ``review`` is the review's additive formula (the weights
    below it; ``critical``..``low`` are the class order in both modes)."""

    mode: Literal["critical_path", "review"] = "critical_path"
    critical: float = 100
    high: float = 70
    medium: float = 40
    low: float = 10
    no_dependencies_bonus: float = 50
    per_dependent_bonus: float = 10
    duration_divisor: PositiveFloat = 10
    duration_penalty_cap: float = 30
    locked_file_penalty: float = 40


class RetryRule(Strict):
    max_retries: int = Field(ge=0)
    backoff: Literal["exponential", "linear", "immediate", "retry_after"]
    base_seconds: float = Field(default=1.0, ge=0)
    action: Literal["same_agent", "requeue", "with_feedback", "different_agent", "attention"] = "requeue"


def default_retry_rules() -> dict[str, RetryRule]:
    return {
        "network_error": RetryRule(max_retries=5, backoff="exponential", base_seconds=1, action="same_agent"),
        "rate_limited": RetryRule(max_retries=5, backoff="retry_after", base_seconds=1, action="same_agent"),
        "file_locked": RetryRule(max_retries=10, backoff="linear", base_seconds=5, action="requeue"),
        "validation_failed": RetryRule(max_retries=2, backoff="immediate", action="with_feedback"),
        "agent_error": RetryRule(max_retries=3, backoff="exponential", base_seconds=1, action="different_agent"),
        "git_conflict": RetryRule(max_retries=0, backoff="immediate", action="attention"),
        "timeout": RetryRule(max_retries=2, backoff="exponential", base_seconds=1, action="different_agent"),
        "budget_exhausted": RetryRule(max_retries=0, backoff="immediate", action="attention"),
        "resource_exhausted": RetryRule(max_retries=1, backoff="exponential", base_seconds=5, action="requeue"),
        "interrupted": RetryRule(max_retries=3, backoff="immediate", action="requeue"),
        # Refused credentials fail every attempt the same way: ask the operator, do not retry.
        "auth_error": RetryRule(max_retries=0, backoff="immediate", action="attention"),
        # The project's toolchain, not the agent: a retry would spend money on the same error.
        "environment_error": RetryRule(max_retries=0, backoff="immediate", action="attention"),
    }


class BatchPolicy(Strict):
    """``[policies.batch]``: small ready tasks of one domain given to ONE implementer attempt
    (review §2.4 strategy 3). Absent: no batching (every task is its own attempt)."""

    max_tasks: int = Field(
        default=6, ge=2, le=50,
        description="Most tasks one batched attempt takes (the review: 12 ARIA tasks -> 2 agents of 6).",
    )
    max_estimate_minutes: PositiveFloat = Field(
        default=10, description="Only tasks whose SIS estimate is at most this many minutes are batched.",
    )
    domains: list[str] = Field(
        default_factory=list,
        description="Domains whose tasks may be batched; empty: every domain (a batch never mixes domains).",
    )
    shared_context_tokens: int = Field(
        default=5000, ge=0,
        description="Input tokens each attempt spends loading the shared context (repository layout, "
                    "conventions): a batch of N pays them once instead of N times (the review's ~5,000).",
    )


class PoliciesSection(Strict):
    priority: PriorityWeights = Field(default_factory=PriorityWeights)
    approve: list[str] = Field(
        default_factory=list,
        description="Tasks an operator approves before they run (review §8.3): each entry is a priority "
                    "class (CRITICAL, HIGH, MEDIUM, LOW), a task id or a domain. Such a task waits as "
                    "awaiting_approval once its dependencies are done, until `hybrid-tui approve` "
                    "(or the console) releases it or `hybrid-tui reject` fails it.",
    )
    batch: BatchPolicy | None = Field(
        default=None,
        description="Task batching (off unless the [policies.batch] table is given).",
    )
    retries: dict[str, RetryRule] = Field(default_factory=default_retry_rules)
    backoff_cap_seconds: PositiveFloat = 60
    backoff_jitter: float = Field(default=0.25, ge=0, le=1)
    breaker_threshold: PositiveInt = 5
    breaker_reset_seconds: PositiveFloat = 300
    budget_alerts: list[float] = Field(default_factory=lambda: [0.5, 0.75, 0.9, 1.0])
    failure_rate_pause: float = Field(default=0.15, gt=0, le=1)
    failure_rate_min_attempts: PositiveInt = 5
    memory_pause_percent: float = Field(default=90, gt=0, le=100)
    disk_pause_percent: float = Field(default=95, gt=0, le=100)
    memory_resume_percent: float | None = Field(default=None, gt=0, le=100)
    disk_resume_percent: float | None = Field(default=None, gt=0, le=100)
    resume_after_seconds: PositiveFloat = 60
    task_memory_cap_mb: PositiveInt = 2048
    lock_ttl_seconds: PositiveFloat = 3600
    scaling: list[tuple[int, int]] = Field(
        default_factory=lambda: [(0, 4), (6, 8), (16, 12)],
        description="(minimum queue depth, pool size) steps, ascending.",
    )
    dispatch_batch: PositiveInt = Field(
        default=16,
        description="New attempts (and new agents) per coordinator loop turn; each turn is one store transaction.",
    )
    sample_interval_seconds: PositiveFloat = 2.0
    secret_env: list[str] = Field(
        default_factory=list,
        description="More environment variables whose values are secrets: kept out of validation and agent "
        "environments and redacted from every output, like ANTHROPIC_API_KEY.",
    )

    @field_validator("retries", mode="after")
    @classmethod
    def _retries_over_defaults(cls, given: dict[str, RetryRule]) -> dict[str, RetryRule]:
        # A partial table (only `timeout`, say) changes those rules and keeps the others: a
        # failure type without a rule would otherwise stop the run at its first occurrence.
        return {**default_retry_rules(), **given}

    @field_validator("secret_env", mode="after")
    @classmethod
    def _secret_env_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"not an environment variable name: {name!r}")
        return names


class WorkspaceSection(Strict):
    """How a worktree of the repository is made ready, and the environment its commands get."""

    setup: list[str] = Field(
        default_factory=list,
        description=(
            "Shell commands run from the root of each agent slot's fresh worktree before its first "
            "attempt (e.g. create a venv, npm ci); what they create is kept across that slot's tasks "
            "and never lands on the mission branch."
        ),
    )
    path: list[str] = Field(
        default_factory=list,
        description="Folders relative to the worktree put first on PATH for setup, agent and validation commands.",
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables for those commands.")
    setup_timeout_seconds: PositiveFloat = 900.0


class MissionFile(Strict):
    mission: MissionSection
    agents: AgentsSection = Field(default_factory=AgentsSection)
    models: ModelsSection = Field(default_factory=ModelsSection)
    budget: BudgetSection = Field(default_factory=BudgetSection)
    policies: PoliciesSection = Field(default_factory=PoliciesSection)
    workspace: WorkspaceSection = Field(default_factory=WorkspaceSection)
    pricing: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="Per-model price overrides (USD per million tokens)."
    )
