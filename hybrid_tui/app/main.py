"""The ``hybrid-tui`` command: a thin dispatcher over the subcommands of each layer.

Each layer that offers commands has a ``cli.py`` with ``register(subparsers)``; it adds its
subcommands and sets ``func`` on each, a callable taking the parsed arguments and returning
the exit code. Exit codes: 0 ok, 1 mission finished with failures, 2 bad input, 3 stopped or
paused by a policy.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hybrid_tui.vocabulary import EXIT_BAD_INPUT, EXIT_STOPPED, UserError

# Modules that register subcommands, in the order they appear in --help.
COMMAND_MODULES = [
    "hybrid_tui.app.mission_commands",
    "hybrid_tui.app.runs_commands",
    "hybrid_tui.app.run_commands",
    "hybrid_tui.app.replay_commands",
    "hybrid_tui.app.cost_commands",
    "hybrid_tui.app.plan_command",
    "hybrid_tui.app.generate_command",
    "hybrid_tui.app.worker_command",
    "hybrid_tui.app.serve_command",
]



def build_parser() -> argparse.ArgumentParser:
    from hybrid_tui import __version__

    parser = argparse.ArgumentParser(
        prog="hybrid-tui",
        description="Run many AI coding agents on one git repository, and keep them under control.",
    )
    parser.add_argument("--version", action="version", version=f"hybrid-tui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"hybrid-tui: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_STOPPED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
