"""``hybrid-tui serve RUN``: the console of a run, in a browser.

Room: app. textual-serve runs ``hybrid-tui attach RUN`` as a child process for each browser
tab and relays its screen over a websocket; nothing here draws anything. The served console
is read-only unless ``--control`` is given (then it queues the same control rows as the
terminal console). Secrets are removed from this process's environment before any child
starts: an attached console never needs a key, and a browser session must not be able to
reach one.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shlex
import sys
from pathlib import Path

from hybrid_tui.app.runs_commands import add_runs_dir_argument, store_url_of
from hybrid_tui.store.db import redact_url
from hybrid_tui.vocabulary import SECRET_ENV_NAMES, UserError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="serve a run's console to a browser (read-only unless --control)",
        description="Serve the console of a run to a web browser with textual-serve. Binds to "
                    f"{DEFAULT_HOST} by default: reach it from another machine through an SSH tunnel "
                    f"(ssh -L {DEFAULT_PORT}:127.0.0.1:{DEFAULT_PORT} HOST).")
    p.add_argument("target", metavar="RUN")
    add_runs_dir_argument(p)
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    p.add_argument("--control", action="store_true",
                   help="let the browser pause, retry, cancel and roll back (default: read-only)")
    p.add_argument("--theme", default="dark")
    p.set_defaults(func=cmd_serve)


def attach_command(run_dir: Path | str, *, control: bool, theme: str, store_url: str | None = None) -> str:
    """The shell command textual-serve starts for each browser session. A ``store_url``
    goes without its password (the child reads PGPASSWORD or ~/.pgpass, as this process)."""
    argv = [sys.executable, "-m", "hybrid_tui", "attach", str(run_dir), "--theme", theme]
    if store_url:
        argv += ["--store", redact_url(store_url)]
    if not control:
        argv.append("--read-only")
    return shlex.join(argv)


def cmd_serve(args: argparse.Namespace) -> int:
    from hybrid_tui.app.launch import LaunchError, find_run_dir, open_run_store

    if not 0 < args.port < 65536:
        raise UserError(f"serve --port: {args.port} is not a TCP port (1-65535)")
    store_url = store_url_of(args)
    try:
        if store_url:  # the run by id in that store; its folder may be on another machine
            store, run_id = open_run_store(args.target, args.runs_dir, store_url)
            run_dir = run_id
        else:
            run_dir = find_run_dir(args.target, args.runs_dir)
            store, run_id = open_run_store(run_dir)
    except LaunchError as exc:
        raise UserError(str(exc)) from None
    store.close()
    # textual-serve (aiohttp) takes a moment to import: only this command pays for it.
    from textual_serve.server import Server

    for name in SECRET_ENV_NAMES:
        os.environ.pop(name, None)
    server = Server(attach_command(run_dir, control=args.control, theme=args.theme, store_url=store_url),
                    host=args.host, port=args.port, title=f"hybrid-tui · {run_id}")
    mode = "with controls" if args.control else "read-only"
    print(f"hybrid-tui: serving run {run_id} ({mode}) on http://{_url_host(args.host)}:{args.port}/",
          file=sys.stderr)
    if not _is_loopback(args.host):
        print(f"hybrid-tui: warning: {args.host} is reachable from other machines and the page has no login; "
              "prefer an SSH tunnel to 127.0.0.1", file=sys.stderr)
    try:
        server.serve()
    except OSError as exc:  # the port is taken, or the address is not this machine's
        raise UserError(f"serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
