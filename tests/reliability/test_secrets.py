"""No secret in any output: with ANTHROPIC_API_KEY set to a recognisable value, run the suite's
representative scenarios and search everything they leave behind for it: the run folder (state.db
and its WAL, logs, events.jsonl, prompts), stdout/stderr, and the console's screens.

Unit-level cousins: tests/workspace/test_validation.py (child env stripped),
tests/agents/test_anthropic_*.py (key not in logs/results). Here the scenarios are whole runs."""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import anyio
from rich.console import Console

from fakes.messages_server import MessagesServer, error, message, tool_use

from .helpers import SECRET, attempts_of, cli, explain, git, py, read_store, task, write_mission

PRINT_ENV = "env; " + py("import os; print(dict(os.environ))")
LEAKY_AGENT = r'''
import os, pathlib, sys
print(dict(os.environ))                      # stdout: the agent's report channel
print(dict(os.environ), file=sys.stderr)     # stderr: straight into the attempt log
pathlib.Path(sys.argv[1] + ".txt").write_text(sys.argv[1] + "\n")
'''


def _everything_under(folder: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file() and ".git" not in p.parts[-6:-1]]


def assert_no_secret(run_dir: Path, *texts: str) -> None:
    needle = SECRET.encode()
    leaks = [str(p) for p, data in _everything_under(run_dir) if needle in data]
    assert leaks == [], f"the key is in {leaks}"
    for text in texts:
        assert SECRET not in text


def screenshots(run_dir: Path) -> str:
    """Every screen an operator opens on the run: main view, a task's detail, attention."""
    from hybrid_tui.app.launch import open_run_store
    from hybrid_tui.tui import HybridApp

    store, run_id = open_run_store(run_dir)

    async def main() -> str:
        app = HybridApp(store, run_id, poll_interval=0.1)
        app.animation_level = "none"
        shots = []
        async with app.run_test(size=(200, 60)) as pilot:
            for keys in ((), ("enter",), ("escape", "a")):
                for key in keys:
                    await pilot.press(key)
                await pilot.pause(0.3)
                console = Console(width=200, height=60, file=io.StringIO(), force_terminal=True, record=True)
                console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
                shots.append(console.export_text())
        return "\n".join(shots)

    try:
        return anyio.run(main)
    finally:
        store.close()


def _run(tmp_path: Path, mission: Path, *extra: str, env: dict | None = None, code: int = 0):
    runs = tmp_path / "runs"
    proc = cli("run", str(mission), "--headless", "--json", "--runs-dir", str(runs), *extra, cwd=tmp_path,
               env={"ANTHROPIC_API_KEY": SECRET, **(env or {})}, drop=("ANTHROPIC_AUTH_TOKEN",))
    assert proc.returncode == code, explain(proc)
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    return run_dir, proc


def test_replay_run_with_a_validation_that_prints_its_environment(tmp_path: Path):
    mission = write_mission(tmp_path / "m", [task("ok"), task("dumps", checks=[PRINT_ENV + "; exit 1"])],
                            mission="\n[policies]\nfailure_rate_pause = 1.0\n")
    run_dir, proc = _run(tmp_path, mission, code=1)
    assert "PATH=" in (run_dir / "logs" / "dumps.1.log").read_text()  # the env really was printed
    assert_no_secret(run_dir, proc.stdout, proc.stderr, screenshots(run_dir))


def test_cli_agent_that_prints_its_environment(tmp_path: Path):
    agent = tmp_path / "agent.py"
    agent.write_text(LEAKY_AGENT)
    template = f"{shlex.quote(sys.executable)} {shlex.quote(str(agent))} {{task_id}}"
    mission = write_mission(tmp_path / "m", [task("t", ops=[{"op": "intent", "path": "t.txt", "intent": "write"}],
                                                  checks=[PRINT_ENV])])
    toml = (mission / "mission.toml").read_text().replace("[agents]\n", f"[agents]\ncli = {json.dumps(template)}\n")
    (mission / "mission.toml").write_text(toml)
    run_dir, proc = _run(tmp_path, mission, "--backend", "cli")
    log = (run_dir / "logs" / "t.1.log").read_text()
    assert "PATH" in log and "[redacted]" in log  # the agent printed its environment; the key was taken out
    assert_no_secret(run_dir, proc.stdout, proc.stderr, screenshots(run_dir))


def test_anthropic_run_against_the_fake_server_with_an_api_error_echoing_the_key(tmp_path: Path):
    mission = write_mission(tmp_path / "m", [task("t", ops=[{"op": "intent", "path": "t.txt", "intent": "write t"}],
                                                  checks=[PRINT_ENV])])
    sis = json.loads((mission / "sis" / "001-work.json").read_text())
    implementer_replies = [
        error(401, f"invalid x-api-key: {SECRET}"),  # an API error that quotes the credential
        message(tool_use("write_file", {"path": "t.txt", "content": "t\n"})),
        message(tool_use("run_checks", {})),
        message(tool_use("finish", {"summary": f"done; by the way my key is {SECRET}"})),
    ]

    def respond(body: dict):
        if (body.get("tool_choice") or {}).get("name") == "submit_sis":  # the planner
            return message(tool_use("submit_sis", sis))
        return implementer_replies.pop(0)

    with MessagesServer(responder=respond) as server:
        run_dir, proc = _run(tmp_path, mission, "--backend", "anthropic",
                             env={"ANTHROPIC_BASE_URL": server.base_url})
        sent = json.dumps([r.body for r in server.requests])
    assert SECRET not in sent  # never sent in a body either (only the x-api-key header)
    assert server.rejected == []
    store, _ = read_store(run_dir)
    try:  # the echoing 401 really was met, and stored redacted
        first, second = attempts_of("t")
        assert (first.outcome, second.outcome) == ("failed", "succeeded")
        assert "invalid x-api-key: [redacted]" in first.failure_message
    finally:
        store.close()
    assert_no_secret(run_dir, proc.stdout, proc.stderr, screenshots(run_dir))


# Every ancestor's initial environment, as a validation command can read it: its parent (the
# coordinator) and up. Removing the key from the command's own environment is not enough.
DUMP_ANCESTORS = ("p=$$; while [ \"$p\" -gt 1 ]; do echo \"== environ of $p\"; tr '\\0' '\\n' </proc/$p/environ; "
                  "p=$(sed 's/.*) //' /proc/$p/stat | cut -d' ' -f2); done")
USER_SECRET = "user-listed-password-7310"  # named in $HYBRID_TUI_SECRET_ENV
MISSION_SECRET = "mission-listed-token-9921"  # named in the mission's [policies] secret_env


def test_validation_reading_every_ancestors_environment_finds_no_secret_and_found_secrets_are_redacted(tmp_path: Path):
    secrets_file = tmp_path / "outside" / "secrets.txt"  # a file a command may find (a .env elsewhere)
    secrets_file.parent.mkdir()
    secrets_file.write_text(f"key={SECRET}\nuser={USER_SECRET}\nmission={MISSION_SECRET}\n")
    mission = write_mission(
        tmp_path / "m",
        [
            task("dumps", checks=[DUMP_ANCESTORS + "; exit 1"]),  # fails: its output becomes feedback, reasons
            task("writes", checks=[DUMP_ANCESTORS + " > env-dump.txt"]),  # leaves the dump in its worktree
            task("finds", checks=[f"cat {shlex.quote(str(secrets_file))}; exit 1"]),
        ],
        mission='\n[policies]\nfailure_rate_pause = 1.0\nsecret_env = ["MISSION_DB_TOKEN"]\n',
    )
    # --no-preflight: the preflight's reading of shell text takes the `done > file` of a loop
    # for a program named '>' (the commands are plain bash and run fine).
    run_dir, proc = _run(tmp_path, mission, "--no-preflight", code=1, env={
        "HYBRID_TUI_SECRET_ENV": "USER_DB_PASSWORD", "USER_DB_PASSWORD": USER_SECRET,
        "MISSION_DB_TOKEN": MISSION_SECRET,
    })
    dump = (run_dir / "logs" / "dumps.1.log").read_text()
    # The coordinator's environment really was read: the names are there, the values masked.
    assert "ANTHROPIC_API_KEY=***" in dump and "USER_DB_PASSWORD=***" in dump and "MISSION_DB_TOKEN=***" in dump
    assert "key=[redacted]" in (run_dir / "logs" / "finds.1.log").read_text()  # found, printed, redacted
    report = cli("report", str(run_dir), cwd=tmp_path)
    report_json = cli("report", str(run_dir), "--json", cwd=tmp_path)
    runs = cli("runs", "--runs-dir", str(run_dir.parent), cwd=tmp_path)
    assert report.returncode == report_json.returncode == runs.returncode == 0, explain(report)
    store, run = read_store(run_dir)
    try:
        repo, branch = Path(run.repo_path), run.mission_branch
        assert [a.outcome for a in attempts_of("writes")] == ["succeeded"]
        assert "[redacted]" in attempts_of("finds")[0].failure_message
    finally:
        store.close()
    branch_bytes = git(repo, "log", "-p", "--binary", f"main..{branch}")
    outputs = (proc.stdout, proc.stderr, report.stdout, report_json.stdout, runs.stdout, branch_bytes,
               screenshots(run_dir))
    for secret in (SECRET, USER_SECRET, MISSION_SECRET):
        leaks = [str(p) for p, data in _everything_under(run_dir) if secret.encode() in data]
        assert leaks == [], f"{secret} is in {leaks}"
        assert [i for i, text in enumerate(outputs) if secret in text] == [], secret


SCRUB_PROBE = """
import os, subprocess, sys
from hybrid_tui.runtime.secrecy import hide_secrets_from_children
secret = sys.argv[1]
assert hide_secrets_from_children()
own_block = open("/proc/self/environ", "rb").read()
child = subprocess.run(["sh", "-c", 'echo "$ANTHROPIC_API_KEY"; cat /proc/$PPID/environ'], capture_output=True).stdout
print(os.environ["ANTHROPIC_API_KEY"] == secret, secret.encode() in own_block,
      child.startswith(secret.encode()), child.count(secret.encode()))
"""


def test_the_environment_block_of_the_coordinator_is_scrubbed_and_the_key_kept_in_memory():
    out = subprocess.run([sys.executable, "-c", SCRUB_PROBE, SECRET], check=False, env={**os.environ, "ANTHROPIC_API_KEY": SECRET},
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=60)
    # The process still has the key (os.environ, and libc's environment for an agent CLI it
    # starts with the inherited environment), while its /proc environ block holds it no more:
    # the child prints it once (its own inherited variable), never from its parent's block.
    assert out.stdout.split() == ["True", "False", "True", "1"], out.stderr
