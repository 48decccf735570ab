"""``hybrid-tui schema`` and ``hybrid-tui validate``.

Room: app. Reads the mission folder and prints; creates nothing on disk (``--preflight``
works in a temporary folder it removes).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hybrid_tui.spec.loader import (
    MissionInvalid,
    Problem,
    attempt_timeout_warnings,
    load_mission,
    mission_json_schema,
    sis_json_schema,
)

SCHEMAS = {"sis": sis_json_schema, "mission": mission_json_schema}


def register(sub: argparse._SubParsersAction) -> None:
    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of a SIS document or of mission.toml",
        description="Print the JSON Schema generated from the models the loader validates with.",
    )
    schema.add_argument("kind", choices=sorted(SCHEMAS), help="which document")
    schema.set_defaults(func=cmd_schema)

    validate = sub.add_parser(
        "validate",
        help="check a mission folder and report every problem",
        description=(
            "Check mission.toml, issues, SIS and recorded attempts. Prints every problem as "
            "FILE:LOCATION: message and exits 2, or prints a one-line summary and exits 0. "
            "A task estimated longer than the attempt timeout is a warning (exit 0)."
        ),
    )
    validate.add_argument("mission", metavar="MISSION", help="mission folder or its mission.toml")
    validate.add_argument("--backend", choices=("replay", "sim", "anthropic", "cli"),
                          help="check for this backend (default: [agents] backend); anthropic also checks "
                               "that every model is an API id and every max_tokens within its limits")
    validate.add_argument(
        "--preflight", action="store_true",
        help="also run [workspace] setup in a scratch worktree of the base commit and check that every "
             "validation command's program (and python -m module) is there; one line per problem, exit 2",
    )
    validate.set_defaults(func=cmd_validate)


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(SCHEMAS[args.kind](), indent=2))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from hybrid_tui.costs.pricing import mission_pricing_problems
    from hybrid_tui.workspace.git import base_branch_problem

    try:
        mission = load_mission(args.mission)
        if pricing_problems := mission_pricing_problems(mission, backend=getattr(args, "backend", None)):
            raise MissionInvalid(pricing_problems)
        # A base branch the repository lacks passed `validate` and then failed `run`.
        if base_problem := base_branch_problem(Path(mission.repo_path), mission.config.mission.base_branch):
            raise MissionInvalid([Problem("mission.toml", "mission.base_branch", base_problem)])
    except MissionInvalid as exc:
        for problem in exc.problems:
            print(problem)
        count = len(exc.problems)
        print(f"hybrid-tui: {count} problem{'s' if count != 1 else ''} in {args.mission}", file=sys.stderr)
        return 2
    for warning in attempt_timeout_warnings(mission):
        print(warning)
    if args.preflight:
        from hybrid_tui.workspace.preflight import preflight

        problems = preflight(mission)
        for problem in problems:
            print(problem)
        if problems:
            count = len(problems)
            print(f"hybrid-tui: preflight found {count} environment problem{'s' if count != 1 else ''} "
                  f"in {args.mission}", file=sys.stderr)
            return 2
    print(
        f"OK: {mission.name}: {len(mission.issues)} issues, {len(mission.tasks)} tasks, "
        f"{mission.dependency_count} dependencies, {len(mission.declared_files)} files"
    )
    return 0
