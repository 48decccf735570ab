"""Driving a started run to its end: in the console, or headless.

Room: app. Used by ``run`` / ``resume`` (:mod:`hybrid_tui.app.run_commands`) and by the
``demo`` walkthrough: takes the run lock, picks the console or headless mode, and returns
the exit code.
"""

from __future__ import annotations

import sys

from hybrid_tui.runtime.runlock import RunLocked
from hybrid_tui.store.db import Store
from hybrid_tui.store.queries import last_event_seq
from hybrid_tui.views.headless import run_headless
from hybrid_tui.vocabulary import EXIT_BAD_INPUT, inert


def drive_run(store: Store, run_id: str, coordinator, *, headless: bool = False, json_mode: bool = False,
              theme: str = "dark", resumed: bool = False) -> int:
    """Run ``coordinator`` until the run ends, shown in the console (or headless: when asked,
    for ``json_mode``, when stdout is not a terminal, or without the console). A resumed
    run's headless output starts after its last event."""
    try:
        coordinator.lock.acquire()
    except RunLocked as exc:
        print(f"hybrid-tui: error: {inert(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    headless = headless or json_mode
    if not headless:
        try:
            # Late on purpose: a build without the console (Textual) still runs headless.
            from hybrid_tui.tui.app import run_console  # type: ignore[import-not-found]
        except ImportError:
            print("hybrid-tui: note: the console is not available in this build; running headless", file=sys.stderr)
            headless = True
        else:
            if not sys.stdout.isatty():
                print("hybrid-tui: note: stdout is not a terminal; running headless", file=sys.stderr)
                headless = True
    if headless:
        print(f"hybrid-tui: run {run_id} in {coordinator.run_dir}", file=sys.stderr)
        since = last_event_seq(run_id) if resumed else 0
        return run_headless(store, run_id, coordinator, json_mode=json_mode, since_seq=since)
    coordinator.exit_when_finished = False  # the operator may still retry or roll back from the console
    coordinator.exit_on_policy_pause = False
    return int(run_console(store, run_id, coordinator=coordinator, theme=theme) or 0)
