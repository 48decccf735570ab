"""Whole runs (``hybrid-tui run --backend cli``) with the agent CLI presets against the
stand-in CLIs of tests/fakes/agent_cli.py: what the store and the mission branch hold.

Unit-level cousins: tests/agents/test_cli_presets.py (each preset and failure),
tests/workspace/test_process.py (the process tree)."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import pytest

from hybrid_tui.store import models as m

from .helpers import attempts_of, cli, end_state, explain, git, only_run_dir, read_store, task, write_mission

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "agent_cli.py"
KEY = "sk-ant-test-cli-run-key-31337"
TURN = 1000 * 3e-6 + 200 * 15e-6


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("claude", "aider", "codex"):
        wrapper = bin_dir / name
        wrapper.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(FAKE))} {name} \"$@\"\n")
        wrapper.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "ANTHROPIC_API_KEY": KEY}


def mission_with(root: Path, preset: str, task_ids=("p", "q"), extra: str = "") -> Path:
    check = "import sys, pathlib; assert pathlib.Path(sys.argv[1]).read_text() == 'done\\n'"
    tasks = [task(t, ops=[{"op": "intent", "path": f"{t}.txt", "intent": "write done"}],
                  checks=[f"{shlex.quote(sys.executable)} -c {shlex.quote(check)} {t}.txt"]) for t in task_ids]
    mission = write_mission(root, tasks)
    toml = (mission / "mission.toml").read_text().replace("[agents]\n", f"[agents]\ncli = {json.dumps(preset)}\n{extra}")
    (mission / "mission.toml").write_text(toml)
    return mission


def run(tmp_path: Path, mission: Path, env: dict[str, str], code: int = 0) -> Path:
    runs = tmp_path / "runs"
    proc = cli("run", str(mission), "--headless", "--backend", "cli", "--runs-dir", str(runs), cwd=tmp_path, env=env)
    assert proc.returncode == code, explain(proc)
    return only_run_dir(runs)


def test_claude_code_run_records_session_model_and_reported_cost(tmp_path: Path, cli_env):
    mission = mission_with(tmp_path / "m", "claude-code")
    run_dir = run(tmp_path, mission, cli_env)
    state = end_state(run_dir)
    assert state["status"] == {"p": "done", "q": "done"}
    store, _ = read_store(run_dir)
    try:
        rows = list(m.Attempt.select())
        assert len(rows) == 2 and all(len(a.session_id) == 36 for a in rows)
        assert {a.model for a in rows} == {"claude-haiku-4-5"}  # as the CLI's init message named it
        for a in rows:  # the CLI's own figure for its two turns (the write and the validation run)
            assert a.cost_usd == pytest.approx(round(2 * TURN, 6))
            assert (a.input_tokens, a.output_tokens) == (2000, 400)
    finally:
        store.close()


def test_aider_scratch_files_never_land_on_the_mission_branch(tmp_path: Path, cli_env):
    """Issue 19 item 5: aider's chat history and tag cache landed, then the parallel task
    failed with git_conflict; its .gitignore addition landed too."""
    mission = mission_with(tmp_path / "m", "aider")
    run_dir = run(tmp_path, mission, cli_env)
    state = end_state(run_dir)
    assert state["status"] == {"p": "done", "q": "done"}
    landed = git(state["repo"], "ls-tree", "-r", "--name-only", state["branch"]).split()
    assert sorted(landed) == ["README.md", "p.txt", "q.txt"]
    store, _ = read_store(run_dir)
    try:
        assert all(a.cost_usd == pytest.approx(round(2 * TURN, 4)) for a in attempts_of("p") + attempts_of("q"))
    finally:
        store.close()


def test_an_auth_error_is_not_retried_and_asks_for_attention(tmp_path: Path, cli_env):
    mission = mission_with(tmp_path / "m", "claude-code", task_ids=("p",), extra="attempt_timeout_seconds = 120\n")
    run_dir = run(tmp_path, mission, {**cli_env, "FAKE_CLI_AUTH_FAIL": "1"}, code=1)
    store, _ = read_store(run_dir)
    try:
        rows = attempts_of("p")
        assert [(a.outcome, a.failure_type) for a in rows] == [("failed", "auth_error")]
        assert "authentication" in rows[0].failure_message and KEY not in rows[0].failure_message
    finally:
        store.close()


@pytest.mark.parametrize("template, why", [
    ("claude -p {max_cost} {prompt_stdin}", "unknown placeholder {max_cost}"),
    ("agent --in={prompt_stdin}", "{prompt_stdin} must be a whole argument"),
    ("claude -p 'unclosed", "cannot split the command template"),
])
def test_a_bad_cli_template_is_refused_by_validate_and_run_with_one_line(tmp_path: Path, cli_env, template, why):
    mission = mission_with(tmp_path / "m", template, task_ids=("p",))
    proc = cli("validate", str(mission), cwd=tmp_path, env=cli_env)
    assert proc.returncode == 2 and f"agents.cli: {why}" in proc.stdout + proc.stderr, explain(proc)
    runs = tmp_path / "runs"
    proc = cli("run", str(mission), "--headless", "--backend", "cli", "--runs-dir", str(runs), cwd=tmp_path, env=cli_env)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and why in proc.stderr, explain(proc)
    assert not runs.exists() or not any(runs.iterdir())


def test_a_coordinator_killed_during_validation_keeps_what_the_cli_reported_it_spent(tmp_path: Path, cli_env):
    """The CLI had finished and reported its cost; the coordinator was SIGKILLed while the
    task's validation ran. The attempt `resume` marks interrupted said $0: the spend the
    coordinator knew was stored only at the attempt's end."""
    mission = mission_with(tmp_path / "m", "claude-code", task_ids=("p",))
    runs = tmp_path / "runs"
    crashed = cli("run", str(mission), "--headless", "--backend", "cli", "--runs-dir", str(runs), cwd=tmp_path,
                  env={**cli_env, "HYBRID_TUI_CRASH_AT": "validation:p"})
    assert crashed.returncode == -9, explain(crashed)
    run_dir = only_run_dir(runs)
    resumed = cli("resume", str(run_dir), "--headless", "--backend", "cli", cwd=tmp_path, env=cli_env)
    assert resumed.returncode == 0, explain(resumed)
    store, _ = read_store(run_dir)
    try:
        rows = [(a.number, a.outcome, a.cost_usd, a.input_tokens) for a in
                m.Attempt.select().where(m.Attempt.phase != "planning").order_by(m.Attempt.number)]
    finally:
        store.close()
    assert rows == [(1, "interrupted", pytest.approx(round(2 * TURN, 6)), 2000),
                    (2, "succeeded", pytest.approx(round(2 * TURN, 6)), 2000)], rows


def test_a_coordinator_killed_during_a_batchs_validation_keeps_each_members_share_of_the_session(tmp_path: Path,
                                                                                                  cli_env):
    """The same for a batched session: the CLI's bill, split among the batch's tasks, was
    stored only as each member ended, so the members `resume` marked interrupted said $0."""
    mission = mission_with(tmp_path / "m", "claude-code", extra="", task_ids=("p", "q"))
    toml = mission / "mission.toml"
    toml.write_text(toml.read_text() + "\n[policies.batch]\nmax_tasks = 2\n")
    runs = tmp_path / "runs"
    crashed = cli("run", str(mission), "--headless", "--backend", "cli", "--agents", "1", "--runs-dir", str(runs),
                  cwd=tmp_path, env={**cli_env, "HYBRID_TUI_CRASH_AT": "validation:p"})
    assert crashed.returncode == -9, explain(crashed)
    run_dir = only_run_dir(runs)
    store, _ = read_store(run_dir)
    try:
        rows = {a.task_id: (a.batch, a.cost_usd) for a in m.Attempt.select().where(m.Attempt.phase != "planning")}
    finally:
        store.close()
    assert {batch for batch, _ in rows.values()} == {"p#1"}, rows  # one session for both
    assert sum(cost for _, cost in rows.values()) == pytest.approx(round(2 * TURN, 6)), rows
    assert all(cost > 0 for _, cost in rows.values()), rows


def test_an_attempt_past_its_time_limit_keeps_what_the_cli_reported_it_spent(tmp_path: Path, cli_env):
    """Issue 19 item 2 in a whole run: the coordinator's attempt clock (started at dispatch,
    so it fires before the CLI's own timer) cancels a CLI that hangs after its first turn.
    The attempt recorded $0 although the CLI had streamed that turn's usage."""
    mission = mission_with(tmp_path / "m", "claude-code", task_ids=("p",),
                           extra="attempt_timeout_seconds = 4\n")
    toml = mission / "mission.toml"
    # The worktree's setup (2 s) counts on the attempt clock, not on the CLI's timer: the
    # coordinator's clock fires first.
    toml.write_text(toml.read_text() + '\n[policies.retries.timeout]\nmax_retries = 0\nbackoff = "immediate"\n'
                                       'action = "attention"\n\n[workspace]\nsetup = ["sleep 2"]\n')
    env = {**cli_env, "FAKE_CLI_TURNS": "3", "FAKE_CLI_TURN_SECONDS": "60"}
    runs = tmp_path / "runs"
    proc = cli("run", str(mission), "--headless", "--backend", "cli", "--runs-dir", str(runs), cwd=tmp_path, env=env)
    assert proc.returncode != -9, explain(proc)
    store, _ = read_store(only_run_dir(runs))
    try:
        rows = [(a.outcome, a.failure_type, a.input_tokens, a.output_tokens, a.cost_usd > 0) for a in attempts_of("p")]
        assert "attempt exceeded" in attempts_of("p")[0].failure_message  # the coordinator's clock ended it
    finally:
        store.close()
    # The turn the CLI streamed is on the row (priced from the pricing table: Claude reports
    # dollars only in its final result).
    assert rows == [("failed", "timeout", 1000, 200, True)], rows


@pytest.mark.parametrize("plain_folder", [False, True], ids=["git-checkout", "plain-folder"])
def test_a_write_in_the_users_folder_fails_the_attempt_naming_it(tmp_path: Path, cli_env, plain_folder):
    """Issue 19 item 6 in a whole run: a CLI told to skip its permissions writes into the
    user's folder. In place (a git checkout) and for a plain folder, which the run copies:
    the user's own folder is the one to watch there, not the copy in the run folder."""
    template = "claude -p --output-format json --dangerously-skip-permissions {prompt_stdin}"
    mission = mission_with(tmp_path / "m", template, task_ids=("p",))
    toml = mission / "mission.toml"
    toml.write_text(toml.read_text() + '\n[policies.retries.agent_error]\nmax_retries = 0\nbackoff = "immediate"\n'
                                       'action = "attention"\n')
    users = mission / "repo"
    if plain_folder:
        import shutil
        shutil.rmtree(users / ".git")
    stray = users / "src" / "stray.py"
    runs = tmp_path / "runs"
    proc = cli("run", str(mission), "--headless", "--backend", "cli", "--runs-dir", str(runs), cwd=tmp_path,
               env={**cli_env, "FAKE_CLI_WRITE": str(stray)})
    assert proc.returncode == 1, explain(proc)
    store, _ = read_store(only_run_dir(runs))
    try:
        rows = [(a.outcome, a.failure_type, a.failure_message) for a in attempts_of("p")]
    finally:
        store.close()
    assert rows == [("failed", "agent_error", f"the agent CLI wrote outside its worktree: {stray}")], rows


def test_an_agent_that_changes_nothing_of_its_task_lands_no_scratch_file(tmp_path: Path, cli_env):
    """aider found its task already done (the file holds what it would write) and left only its
    tag cache: the attempt reported no file, and 'nothing reported' staged every change in
    the worktree, the cache included."""
    check = "import pathlib; assert pathlib.Path('p.txt').read_text() == 'done\\n'"
    mission = write_mission(tmp_path / "m", [task("p", ops=[{"op": "intent", "path": "p.txt", "intent": "write done"}],
                                                   checks=[f"{shlex.quote(sys.executable)} -c {shlex.quote(check)}"])],
                            files={"README.md": "demo\n", "p.txt": "done\n"})
    toml = (mission / "mission.toml").read_text().replace("[agents]\n", "[agents]\ncli = \"aider\"\n")
    (mission / "mission.toml").write_text(toml)
    run_dir = run(tmp_path, mission, cli_env)
    store, run_row = read_store(run_dir)
    try:
        assert [(t.task_id, t.status) for t in m.Task.select()] == [("p", "done")]
        landed = git(Path(run_row.repo_path), "ls-tree", "-r", "--name-only", run_row.mission_branch).split()
    finally:
        store.close()
    assert sorted(landed) == ["README.md", "p.txt"]  # the branch holds no commit of it: nothing to land


def test_what_setup_changes_in_tracked_files_never_lands(tmp_path: Path, cli_env):
    """A [workspace] setup that rewrites a tracked file (`npm install` updating its lock
    file): the agent CLI's changed files held it, and the task's commit carried it."""
    mission = mission_with(tmp_path / "m", "claude-code", task_ids=("p",))
    (mission / "mission.toml").write_text((mission / "mission.toml").read_text()
                                          + '\n[workspace]\nsetup = ["echo locked-by-setup >> README.md"]\n')
    run_dir = run(tmp_path, mission, cli_env)
    state = end_state(run_dir)
    assert state["status"] == {"p": "done"}
    assert git(state["repo"], "show", f"{state['branch']}:README.md") == "demo\n"
    landed = git(state["repo"], "show", "--name-only", "--format=", state["branch"]).split()
    assert landed == ["p.txt"]


def test_an_agent_cli_writing_a_file_another_task_holds_is_refused_as_file_locked(tmp_path: Path, cli_env):
    """A CLI agent's undeclared write needs the file's lock, as a write through the sandbox
    does: task p also wrote held.txt, which the running task holder declared. It landed at
    once, and holder's own held.txt then failed with git_conflict."""
    agent = tmp_path / "agent.sh"
    agent.write_text('#!/bin/sh\nset -e\ncase "$1" in\n'
                     '  holder) sleep 4; echo holder > held.txt ;;\n'
                     '  p) echo p > p.txt; echo p > held.txt ;;\n'
                     'esac\necho done\n')
    agent.chmod(0o755)
    mission = write_mission(tmp_path / "m", [
        task("holder", ops=[{"op": "intent", "path": "held.txt", "intent": "write holder"}], checks=["true"]),
        task("p", ops=[{"op": "intent", "path": "p.txt", "intent": "write p"}], checks=["true"]),
    ], mission="\n[policies]\nfailure_rate_pause = 1.0\n")
    toml = (mission / "mission.toml").read_text().replace(
        "[agents]\n", f"[agents]\ncli = {json.dumps(f'{agent} {{task_id}}')}\n")
    (mission / "mission.toml").write_text(toml)
    run_dir = run(tmp_path, mission, cli_env)
    state = end_state(run_dir)
    assert state["status"] == {"holder": "done", "p": "done"}
    store, _ = read_store(run_dir)
    try:
        first = attempts_of("p")[0]
        assert (first.outcome, first.failure_type) == ("failed", "file_locked")
        assert "held.txt" in first.failure_message
        assert [(a.outcome, a.failure_type) for a in attempts_of("holder")] == [("succeeded", None)]
    finally:
        store.close()
    assert git(state["repo"], "show", f"{state['branch']}:held.txt") == "p\n"  # p's retry, on holder's commit


def test_a_batched_cli_session_writing_a_file_another_task_holds_fails_its_leader_as_file_locked(
        tmp_path: Path, cli_env):
    """The lock check of an undeclared write holds for a batch too: a file no member declared
    goes with the batch's leader, which needs its lock (it landed in the leader's commit and
    the running task that declared it failed with git_conflict)."""
    agent = tmp_path / "agent.sh"
    agent.write_text('#!/bin/sh\nset -e\ncase "$1" in\n'
                     '  holder) sleep 4; echo holder > held.txt ;;\n'
                     '  *) echo p > p.txt; echo q > q.txt; echo batch > held.txt ;;\n'
                     'esac\necho done\n')
    agent.chmod(0o755)
    mission = write_mission(tmp_path / "m", [
        task("holder", ops=[{"op": "intent", "path": "held.txt", "intent": "write holder"}], checks=["true"],
             domain="api"),
        task("p", ops=[{"op": "intent", "path": "p.txt", "intent": "write p"}], checks=["true"], domain="ui"),
        task("q", ops=[{"op": "intent", "path": "q.txt", "intent": "write q"}], checks=["true"], domain="ui"),
    ], mission='\n[policies]\nfailure_rate_pause = 1.0\n\n[policies.batch]\ndomains = ["ui"]\n')
    toml = (mission / "mission.toml").read_text().replace(
        "[agents]\n", f"[agents]\ncli = {json.dumps(f'{agent} {{task_id}}')}\n")
    (mission / "mission.toml").write_text(toml)
    run_dir = run(tmp_path, mission, cli_env)
    state = end_state(run_dir)
    assert state["status"] == {"holder": "done", "p": "done", "q": "done"}
    store, _ = read_store(run_dir)
    try:
        firsts = {tid: attempts_of(tid)[0] for tid in ("p", "q")}
        assert firsts["p"].batch and firsts["p"].batch == firsts["q"].batch  # one session for both
        outcomes = sorted((a.outcome, a.failure_type) for a in firsts.values())
        assert outcomes == [("failed", "file_locked"), ("succeeded", None)], outcomes
        refused = next(a for a in firsts.values() if a.outcome == "failed")
        assert "held.txt" in refused.failure_message
        assert [(a.outcome, a.failure_type) for a in attempts_of("holder")] == [("succeeded", None)]
    finally:
        store.close()
    assert git(state["repo"], "show", f"{state['branch']}:held.txt") == "batch\n"  # the leader's retry, on holder's
