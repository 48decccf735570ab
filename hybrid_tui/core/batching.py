"""Room: core. Which ready tasks go to ONE implementer attempt together (``[policies.batch]``,
the review's §2.4 strategy 3: "12 ARIA label tasks -> 2 batched agents").

Pure: no I/O, no clock. The scheduler asks :func:`choose_batch` when it dispatches a task the
rule admits, with the other ready tasks of that domain best score first; the shells (the
runtime, the ``estimate`` simulator) then run the batch as one attempt, and each task still
ends on its own (its own validation, commit and cost share).

The rule, in one place:

- only a task's FIRST attempt is batched: a retry (a failed validation, a conflict, an
  interrupted attempt after a crash) runs alone, so one bad task cannot keep failing a batch;
- every task of a batch has the leader's domain, an estimate of at most
  ``max_estimate_minutes``, and a domain in ``domains`` (empty: any);
- the files of a batch are disjoint from each other and from every file locked by running
  work (so the batch's change splits into one change per task by declared files);
- at most ``max_tasks`` tasks, best score first.

A batch's cost is split among its tasks by share of their expected cost (:func:`cost_shares`);
the shared context is paid once (:func:`context_saving_tokens`).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass

from hybrid_tui.spec.models import BatchPolicy


@dataclass(frozen=True, slots=True)
class BatchRule:
    """``[policies.batch]`` as the scheduler uses it."""

    max_tasks: int
    max_estimate_minutes: float
    domains: frozenset[str]
    shared_context_tokens: int

    @classmethod
    def from_policy(cls, policy: BatchPolicy | None) -> BatchRule | None:
        if policy is None:
            return None
        return cls(policy.max_tasks, float(policy.max_estimate_minutes), frozenset(policy.domains),
                   int(policy.shared_context_tokens))

    def admits(self, domain: str, estimate_minutes: float, attempts: int) -> bool:
        """May this task be in a batch (as its leader or a member)?"""
        return (attempts == 0 and estimate_minutes <= self.max_estimate_minutes
                and (not self.domains or domain in self.domains))


def choose_batch(rule: BatchRule, leader: str, leader_files: Iterable[str],
                 candidates: Iterable[tuple[str, Sequence[str]]], locked: Container[str]) -> list[str]:
    """The batch led by ``leader``: ``leader`` then up to ``max_tasks - 1`` of ``candidates``
    ((task id, declared files), best first, each admitted by the rule and of the leader's
    domain), taken greedily when none of its files is ``locked`` or already in the batch."""
    batch = [leader]
    taken = set(leader_files)
    for task_id, files in candidates:
        if len(batch) >= rule.max_tasks:
            break
        if task_id == leader or any(path in taken or path in locked for path in files):
            continue
        batch.append(task_id)
        taken.update(files)
    return batch


def cost_shares(expected_costs: Sequence[float]) -> list[float]:
    """Each task's share of a batch's cost: by its expected cost (its SIS token estimate
    priced), equal shares when none has one. The shares sum to 1."""
    total = sum(max(c, 0.0) for c in expected_costs)
    if total <= 0:
        return [1.0 / len(expected_costs)] * len(expected_costs) if expected_costs else []
    return [max(c, 0.0) / total for c in expected_costs]


def context_saving_tokens(rule_tokens: int, input_tokens: Sequence[int]) -> int:
    """Input tokens a batch does not spend again: every task but the first would have loaded
    the shared context itself (``rule_tokens``, capped by what the task's own attempt reads)."""
    return sum(min(rule_tokens, max(tokens, 0)) for tokens in input_tokens[1:])
