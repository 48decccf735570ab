"""No escape sequence from mission, model or validation text reaches a terminal: the headless
progress on a real terminal (a pty), ``runs``, ``report``, and error lines show them as visible
control pictures (ESC -> ␛), never as bytes a terminal would act on. The console's own
rendering is pinned in tests/reliability/test_hostile_input.py and tests/tui/test_pilot.py."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

from .helpers import NO_AUTO_PAUSE, cli, explain, only_run_dir, py, task, write_mission

# A window title, a hyperlink, a colour and a C1 CSI (one byte on some terminals).
TITLE = "\x1b]0;pwned\x07"
LINK = "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"
COLOUR = "\x1b[31mEVIL"
C1_CSI = "\x9b2J"
HOSTILE = TITLE + LINK + COLOUR + C1_CSI
RAW_SEQUENCES = ("\x1b]0;pwned", "\x1b]8;;https://evil", "\x1b[31mEVIL", "\x9b2J", "\x07")


def hostile_mission(root: Path) -> Path:
    loud = py(f"import sys; sys.stdout.write({HOSTILE!r} + ' validation said so\\n'); sys.exit(1)")
    mission = write_mission(root, [task("loud", checks=[loud], title=f"Loud {HOSTILE} task"), task("fine")],
                            mission=NO_AUTO_PAUSE)
    toml = (mission / "mission.toml").read_text()
    # TOML's \u escapes put the raw control characters into the mission's name.
    (mission / "mission.toml").write_text(toml.replace('name = "demo"', f"name = {json.dumps('demo ' + HOSTILE)}"))
    return mission


def run_on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """``hybrid-tui ARGS`` with stdout and stderr on a pseudo-terminal; everything it wrote."""
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "hybrid_tui", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=child, stderr=child, env={**os.environ, "TERM": "xterm-256color"})
    os.close(child)
    chunks = []
    while True:
        ready, _, _ = select.select([main], [], [], 120)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child side closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", errors="replace")


def assert_inert(text: str) -> None:
    assert [s for s in RAW_SEQUENCES if s in text] == []


def test_headless_progress_on_a_terminal_runs_and_report_show_hostile_text_inert(tmp_path: Path):
    mission = hostile_mission(tmp_path / "m")
    runs = tmp_path / "runs"
    code, screen = run_on_a_terminal(["run", str(mission), "--headless", "--runs-dir", str(runs)], tmp_path)
    assert code == 1, screen
    assert "validation said so" in screen and "␛]0;pwned" in screen  # the output was shown, inert
    assert_inert(screen)
    run_dir = only_run_dir(runs)
    for args in (["runs", "--runs-dir", str(runs)], ["report", str(run_dir)]):
        proc = cli(*args, cwd=tmp_path)
        assert proc.returncode == 0, explain(proc)
        assert "␛" in proc.stdout, args  # the mission's name or the task's title is there
        assert_inert(proc.stdout + proc.stderr)
    code, screen = run_on_a_terminal(["runs", "--runs-dir", str(runs)], tmp_path)
    assert code == 0 and "demo ␛]0;pwned" in screen
    assert_inert(screen)

