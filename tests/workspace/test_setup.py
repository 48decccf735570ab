"""``[workspace] setup`` on its own (workspace/setup.py): commands in order from the worktree
root with the workspace environment, output in a log, a timeout that kills everything the
command started, and a failure that names the command."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from hybrid_tui.spec.models import WorkspaceSection
from hybrid_tui.workspace.setup import SetupFailed, run_setup


def test_setup_commands_run_in_order_with_path_and_env_and_log_their_output(tmp_path: Path) -> None:
    root = tmp_path / "worktree"
    root.mkdir()
    workspace = WorkspaceSection(
        setup=["mkdir -p tools && printf '#!/bin/sh\\necho tool says $MODE\\n' > tools/t && chmod +x tools/t",
               "t > made-by-setup.txt"],  # the second finds the first's tool on the workspace PATH
        path=["tools"], env={"MODE": "test"})
    log = tmp_path / "agent-01.setup.log"
    run_setup(workspace, root, log, what="setup of agent-01")
    assert (root / "made-by-setup.txt").read_text() == "tool says test\n"
    assert log.read_text().splitlines()[0].startswith("$ mkdir -p tools")
    assert not list(tmp_path.glob("*.pgid"))  # its process group is named only while it runs


def test_a_setup_command_over_its_timeout_is_killed_with_everything_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    workspace = WorkspaceSection(setup=["echo first", f"sleep 300 & echo $! > {pid_file}; wait"],
                                 setup_timeout_seconds=1)
    log = tmp_path / "agent-01.setup.log"
    started = time.monotonic()
    with pytest.raises(SetupFailed) as caught:
        run_setup(workspace, tmp_path, log, what="setup of agent-01")
    assert time.monotonic() - started < 30
    assert str(caught.value) == (f"environment_error: setup of agent-01: [workspace] setup command "
                                 f"'sleep 300 & echo $! > {pid_file}; wait' timed out after 1 s (log: {log})")
    assert caught.value.reason.startswith("setup of agent-01: ")
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the setup's background child outlived its timeout"
        time.sleep(0.05)
    assert "$ echo first\nfirst\n" in log.read_text()


def test_a_failing_setup_command_stops_the_setup_and_names_itself(tmp_path: Path) -> None:
    workspace = WorkspaceSection(setup=["echo one > one.txt", "exit 4", "echo never > never.txt"])
    log = tmp_path / "setup.log"
    with pytest.raises(SetupFailed, match=r"setup command 'exit 4' exited 4 \(log: "):
        run_setup(workspace, tmp_path, log, what="preflight")
    assert (tmp_path / "one.txt").exists() and not (tmp_path / "never.txt").exists()
