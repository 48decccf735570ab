"""A batched attempt for backends that do each task on its own (replay, sim): every member of
``request.batch`` is run as its own request, in turn, in the one sandbox, and reported in
``per_task``; each member but the first spends the shared context less.

Room: agents. No store, no git: the sandbox and the pricing callable of the request only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from hybrid_tui.agents.base import ImplementRequest, ImplementResult
from hybrid_tui.spec.models import Usage


async def implement_each(implement: Callable[[ImplementRequest], Awaitable[ImplementResult]],
                         request: ImplementRequest) -> ImplementResult:
    """Run ``implement`` for each member of the batch, then take off what the shared context
    would have cost again: every member but the first saves ``min(shared_context_tokens, its
    input tokens)`` input tokens, priced at its model's input rate (not a member whose
    recording is a share of a batched session: that share already paid it once)."""
    per_task: dict[str, ImplementResult] = {}
    for k, member in enumerate(request.batch):
        own = dataclasses.replace(request, task=member.task, recorded=member.recorded, batch=())
        result = await implement(own)
        # A recorded share of a batched session paid the shared context once already.
        share = member.recorded is not None and bool(member.recorded.batch_share)
        saved = min(request.shared_context_tokens, result.usage.input_tokens) if k and not share else 0
        if saved:
            saving = min(price_or_zero(own, result.model, Usage(input_tokens=saved)), result.cost_usd)
            result.usage = result.usage.model_copy(update={"input_tokens": result.usage.input_tokens - saved})
            result.cost_usd -= saving
            result.context_saved, result.context_saved_usd = Usage(input_tokens=saved), saving
        per_task[member.task.task_id] = result
    results = list(per_task.values())
    usage = Usage(**{name: sum(getattr(r.usage, name) for r in results) for name in Usage.model_fields})
    failed = next((r for r in results if not r.ok), None)
    return ImplementResult(
        ok=failed is None,
        model=results[0].model,
        usage=usage,
        cost_usd=sum(r.cost_usd for r in results),
        failure_type=failed.failure_type if failed else None,
        message=failed.message if failed else "",
        summary=f"a batch of {len(results)} task(s), each on its own",
        files_touched=sorted({path for r in results for path in r.files_touched}),
        duration_seconds=sum(r.duration_seconds for r in results),
        per_task=per_task,
    )


def price_or_zero(request: ImplementRequest, model: str, usage: Usage) -> float:
    try:
        return float(request.cost_of(model, usage))
    except Exception:  # a model missing from the pricing table: count it as free, not a crash
        return 0.0
