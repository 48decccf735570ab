"""``hybrid-tui plan``: run L2 planning alone with the Claude planner and write ``sis/*.json`` for review.

Room: app. Reads the mission folder and the repository, calls the Anthropic API (or its
Message Batches API with ``--batch``), writes one SIS file per planned issue into the
output folder and nothing else (no run, no store).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import anyio

from hybrid_tui.vocabulary import EXIT_FAILED, EXIT_OK, UserError, inert, redact
from hybrid_tui.spec.models import Usage
from hybrid_tui.agents.base import PlanRequest
from hybrid_tui.workspace.tree import repository_files


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

    out = Path(args.out) if args.out else mission.root / "sis"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: not a folder")
    targets = {issue.id: out / f"{issue.id}.json" for issue in issues}
    existing = [str(path) for path in targets.values() if path.exists()]
    if existing and not args.force:
        raise UserError(f"{existing[0]} already exists (use --force to overwrite, or --out DIR)")

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
    planner = make_planner(mission, batch=args.batch, poll_seconds=args.poll)
    mode = "as a Message Batch" if args.batch else f"{planner.concurrency} at a time"
    print(f"planning {len(requests)} issue(s) with {model} ({mode})", file=sys.stderr)
    results = anyio.run(planner.plan_many, requests)

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
    return EXIT_FAILED if failed else EXIT_OK
