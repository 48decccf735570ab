"""The ``hybrid-tui`` command: a thin dispatcher over the subcommands of each layer.

Each layer that offers commands has a ``cli.py`` with ``register(subparsers)``; it adds its
subcommands and sets ``func`` on each, a callable taking the parsed arguments and returning
the exit code. Exit codes: 0 ok, 1 mission finished with failures, 2 bad input, 3 stopped or
paused by a policy.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn

from hybrid_tui.runtime.secrecy import hide_secrets_from_children
from hybrid_tui.store import stores_unsafe_to_close
from hybrid_tui.vocabulary import EXIT_BAD_INPUT, EXIT_STOPPED, UserError, inert, redact

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



class _OneLineErrors(argparse.ArgumentParser):
    """Usage errors as one line (the command and what is wrong), exit 2; ``--help`` has the rest."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("hybrid-tui").strip()
        where = f"{command}: " if command else ""
        self.exit(EXIT_BAD_INPUT, f"hybrid-tui: error: {where}{inert(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from hybrid_tui import __version__

    parser = _OneLineErrors(
        prog="hybrid-tui",
        description="Run many AI coding agents on one git repository, and keep them under control.",
    )
    parser.add_argument("--version", action="version", version=f"hybrid-tui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    code = run_command(argv)
    if stores_unsafe_to_close():  # a store file made immutable mid-run: closing it would fault
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def run_command(argv: list[str] | None = None) -> int:
    # First of all: the commands a run starts must not find the API key in our /proc files.
    hide_secrets_from_children()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        # One line per problem, whatever they quote (a mission's text, a path, a command's output).
        print(f"hybrid-tui: error: {inert(redact(str(exc)), keep_newlines=True)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_STOPPED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
