"""``hybrid-tui plan``: run L2 planning alone with the Claude planner and write ``sis/*.json`` for review.

Room: app. Reads the mission folder and the repository, calls the Anthropic API (or its
Message Batches API with ``--batch``), writes one SIS file per planned issue into the
output folder and nothing else (no run, no store).

Retried like ``run`` plans: each request on 429/529/5xx/dropped connections (honouring
``retry-after``, in the planner), then an issue whose planning still failed transiently is
planned again under the mission's ``[policies.retries]``. A batch's id is printed as soon
as it exists; ``--batch --resume ID`` fetches the results of that batch instead of
submitting a new one (after Ctrl-C, a lost connection or an abandoned batch).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path
from typing import Any

import anyio

from hybrid_tui.vocabulary import EXIT_FAILED, EXIT_OK, UserError, inert, redact
from hybrid_tui.spec.models import Usage
from hybrid_tui.agents.base import PlanRequest, PlanResult
from hybrid_tui.core.policies import retry_delay
from hybrid_tui.workspace.tree import repository_files

TRANSIENT_FAILURES = ("network_error", "rate_limited")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="plan a mission's issues with Claude and write sis/*.json for review",
        description=(
            "Run the L2 planner (anthropic backend, [models] planner) on each issue of the mission, "
            "validate every SIS like `hybrid-tui validate` (one repair turn when invalid) and write "
            "<out>/<issue>.json. Needs ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN; ANTHROPIC_BASE_URL "
            "for a gateway). Exit 0 when every issue was planned, 1 when some failed, 2 on bad input."
        ),
    )
    p.add_argument("mission", metavar="MISSION", help="mission folder or its mission.toml")
    p.add_argument("--batch", action="store_true", help="use the Message Batches API (half price, slower)")
    p.add_argument("--out", metavar="DIR", help="folder for the SIS files (default: the mission's sis/)")
    p.add_argument("--issue", action="append", metavar="ID", help="plan only this issue (repeatable)")
    p.add_argument("--model", help="planner model (default: [models] planner)")
    p.add_argument("--force", action="store_true", help="overwrite SIS files that already exist")
    p.add_argument("--poll", type=float, default=30.0, metavar="SECONDS", help="batch polling interval (default 30)")
    p.add_argument("--resume", metavar="BATCH_ID",
                   help="with --batch: fetch the results of this batch (printed when it was submitted) "
                        "instead of submitting a new one")
    p.set_defaults(func=cmd_plan)


def _cost_function(mission: Any, model: str, batch: bool):
    try:
        from hybrid_tui.costs.pricing import PricingTable
    except ImportError:  # pragma: no cover - the costs layer ships with the package
        return lambda _model, _usage: 0.0
    try:
        table = PricingTable.load(mission.config.pricing)
    except Exception as exc:
        raise UserError(str(exc)) from None
    unknown = table.check_models([model])
    if unknown:
        raise UserError(unknown[0])
    if not table.is_api_id(model):
        ids = table.api_ids_of(model)
        raise UserError(f"model {model!r} is not an Anthropic API model id" + (f" (use {' or '.join(ids)})" if ids else ""))
    limit = table.output_limit(model)
    if limit is not None and mission.config.models.planner_max_tokens > limit:
        raise UserError(f"mission.toml:models.planner_max_tokens: {mission.config.models.planner_max_tokens} is above "
                        f"{model}'s output limit of {limit} tokens")

    def cost_of(name: str, usage: Usage) -> float:
        return table.cost(name, usage, batch=batch)

    return cost_of


def cmd_plan(args: argparse.Namespace) -> int:
    # Loaded when planning, not when the CLI starts: the agents pull in the Anthropic SDK.
    from hybrid_tui.spec.loader import MissionInvalid, load_mission
    from hybrid_tui.agents.anthropic import make_planner
    from hybrid_tui.agents.anthropic.context import relevant_excerpts

    try:
        mission = load_mission(args.mission)
    except MissionInvalid as exc:
        first = exc.problems[0] if exc.problems else "invalid mission"
        more = f" (and {len(exc.problems) - 1} more; run `hybrid-tui validate`)" if len(exc.problems) > 1 else ""
        raise UserError(f"{first}{more}") from None
    if not (os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")):
        raise UserError("set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN for a gateway) to plan with Claude")

    issues = mission.issues
    if args.issue:
        known = {i.id for i in issues}
        missing = [i for i in args.issue if i not in known]
        if missing:
            raise UserError(f"--issue {missing[0]}: no such issue in {mission.root / 'issues'}")
        issues = [i for i in issues if i.id in set(args.issue)]
    if not issues:
        raise UserError(f"{args.mission}: the mission has no issues to plan")
    if args.poll < 0:
        raise UserError("--poll must be 0 or more seconds")
    if args.resume and not args.batch:
        raise UserError("--resume BATCH_ID needs --batch (it fetches a Message Batch's results)")

    out = Path(args.out) if args.out else mission.root / "sis"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: not a folder")
    targets = {issue.id: out / f"{issue.id}.json" for issue in issues}
    existing = [str(path) for path in targets.values() if path.exists()]
    if existing and not args.force:
        unplanned = [issue_id for issue_id, path in targets.items() if not path.exists()]
        only = (f"plan only the issues without one with {' '.join(f'--issue {i}' for i in unplanned)}, "
                if unplanned else "")
        raise UserError(f"{existing[0]} already exists{f' (and {len(existing) - 1} more)' if len(existing) > 1 else ''}: "
                        f"{only}use --force to overwrite, or --out DIR")

    model = args.model or mission.config.models.planner
    cost_of = _cost_function(mission, model, args.batch)
    files = repository_files(mission.repo_path)
    requests = [
        PlanRequest(
            run_id="plan",
            issue_id=issue.id,
            title=issue.title,
            body=issue.body,
            repo_root=mission.repo_path,
            model=model,
            cost_of=cost_of,
            file_tree=files,
            excerpts=relevant_excerpts(mission.repo_path, files, f"{issue.title}\n{issue.body}"),
            # Existing plans of the other issues: a new task may depend on their tasks.
            known_task_ids=frozenset(
                t.task_id for _, sis in mission.sis if sis.issue.id != issue.id for t in sis.tasks
            ),
        )
        for issue in issues
    ]
    def announce_batch(batch_id: str) -> None:
        print(f"Message Batch {batch_id}: if this command stops before it ends, fetch its results with "
              f"`hybrid-tui plan {args.mission} --batch --resume {batch_id}`", file=sys.stderr, flush=True)

    planner = make_planner(mission, batch=args.batch, poll_seconds=args.poll, on_batch=announce_batch)
    mode = "as a Message Batch" if args.batch else f"{planner.concurrency} at a time"
    if args.resume:
        mode = f"results of Message Batch {args.resume}"
    print(f"planning {len(requests)} issue(s) with {model} ({mode})", file=sys.stderr)
    if args.resume:
        from hybrid_tui.agents.anthropic.planner import UnknownBatch

        try:
            results = anyio.run(planner.resume_batch, args.resume, requests)
        except UnknownBatch as exc:
            raise UserError(str(exc)) from None
    else:
        results = anyio.run(planner.plan_many, requests)
    results = anyio.run(_retry_transient, planner, mission.config.policies, requests, results)

    out.mkdir(parents=True, exist_ok=True)
    total = 0.0
    failed = 0
    for request, result in zip(requests, results):
        total += result.cost_usd
        if result.ok and result.sis is not None:
            path = targets[request.issue_id]
            path.write_text(result.sis.model_dump_json(indent=2, exclude_defaults=False) + "\n", encoding="utf-8")
            print(f"{request.issue_id}: {len(result.sis.tasks)} task(s) -> {path}  ${result.cost_usd:.4f}")
        else:
            failed += 1
            lines = [inert(line) for line in redact(result.message or "").splitlines()] or [""]  # the model's words
            print(f"{request.issue_id}: FAILED {result.failure_type}: {lines[0]}  ${result.cost_usd:.4f}")
            for line in lines[1:]:
                print(f"    {line}")
    print(f"planned {len(results) - failed}/{len(results)} issue(s), cost ${total:.4f}"
          f"{' (batch price)' if args.batch else ''}", file=sys.stderr)
    if failed:
        again = " ".join(f"--issue {r.issue_id}" for r, res in zip(requests, results) if not res.ok)
        print(f"plan the failed issue(s) again with `hybrid-tui plan {args.mission} {again}`", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


async def _retry_transient(planner: Any, policies: Any, requests: list[PlanRequest],
                           results: list[PlanResult]) -> list[PlanResult]:
    """Plan again the issues whose planning failed transiently, under the mission's retry
    policies (as ``run`` does); spend of every try is kept on the issue's result."""
    results = list(results)
    rng = random.Random()
    tries = [0] * len(results)
    while True:
        due = []
        for index, result in enumerate(results):
            rule = policies.retries.get(result.failure_type or "") if not result.ok else None
            if result.failure_type in TRANSIENT_FAILURES and rule is not None and tries[index] < rule.max_retries:
                due.append((index, retry_delay(rule, tries[index], policies, rng, retry_after=result.retry_after)))
        if not due:
            return results
        await anyio.sleep(max(delay for _, delay in due))
        again = await planner.plan_many([requests[index] for index, _ in due])
        for (index, _), result in zip(due, again):
            tries[index] += 1
            spent = results[index]
            result.cost_usd += spent.cost_usd  # what the failed tries cost is still spent
            result.usage = Usage(**{f: getattr(result.usage, f) + getattr(spent.usage, f) for f in Usage.model_fields})
            results[index] = result
