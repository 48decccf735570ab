"""Hostile input: specs, recordings, model tool calls and output that try to escape the repository,
run something, flood the logs or drive the operator's terminal. Each gets a clear error and has
no side effect.

Unit-level cousins: tests/workspace/test_sandbox.py (every path rule on the sandbox itself),
tests/spec/test_validate_cli.py (a table of broken missions), tests/tui/test_pilot.py (escape
sequences in a hand-filled store). These go through `hybrid-tui validate`/`run` and a real run.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from fakes.messages_server import MessagesServer, message, tool_use

from hybrid_tui.app.main import main as hybrid_main
from hybrid_tui.vocabulary import EXIT_FAILED, EXIT_OK
from hybrid_tui.app.launch import start_run
from hybrid_tui.spec.loader import validate_sis_document
from hybrid_tui.spec.models import RetryRule
from hybrid_tui.store import models as m

from .helpers import (
    NO_AUTO_PAUSE, attempts_of, branch_commits, cli, drive, explain, git, py, task, write_mission,
)

# -- SIS fuzzing ------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
FIELDS = ["sis_version", "issue", "tasks", "task_id", "title", "dependencies", "file_operations", "op", "path",
          "content", "old_string", "new_string", "diff", "validation", "commands", "timeout_seconds", "priority"]
HOSTILE_STRINGS = st.sampled_from(["../x", "/etc/passwd", "a\x00b", "x" * 5000, ".git/config", "", " ", "\x1b[2J",
                                   "a;b $(touch pwned).py", "C:\\windows", "é/ü"])


def _valid_sis() -> dict:
    return {
        "sis_version": "1.0",
        "issue": {"id": "001-x", "title": "X"},
        "tasks": [{"task_id": "t", "title": "T", "file_operations": [{"op": "create", "path": "a.txt", "content": "a"}],
                   "validation": {"commands": ["true"]}}],
    }


@st.composite
def mutated_sis(draw) -> object:
    """A valid SIS with random parts replaced by random JSON or hostile strings (or pure noise)."""
    if draw(st.integers(0, 4)) == 0:
        return draw(json_values)
    doc = _valid_sis()
    task0 = doc["tasks"][0]
    parts = [doc, doc["issue"], task0, task0["file_operations"][0], task0["validation"]]  # before any is replaced
    for _ in range(draw(st.integers(1, 4))):
        target = draw(st.sampled_from(parts))
        key = draw(st.sampled_from(FIELDS))
        target[key] = draw(json_values | HOSTILE_STRINGS)
    return doc


def _as_text(doc: object) -> str:
    return json.dumps(doc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=mutated_sis(), raw=st.booleans())
def test_fuzzed_sis_is_validated_or_refused_with_located_problems_never_a_traceback(doc, raw):
    data = _as_text(doc) if raw else doc
    sis, problems = validate_sis_document(data, source="sis/001-x.json", repo_root=None)  # must not raise
    assert (sis is None) == bool(problems)
    for problem in problems:
        text = str(problem)
        assert text.startswith("sis/001-x.json") and problem.message.strip(), text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(doc=mutated_sis(), garbage=st.one_of(st.none(), st.binary(max_size=200)))
def test_fuzzed_sis_file_through_hybrid_tui_validate(tmp_path_factory, doc, garbage):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "repo").mkdir()
    (root / "repo" / "a.txt").write_text("a")
    (root / "issues").mkdir()
    (root / "issues" / "001-x.md").write_text("# X\n\nbody\n")
    (root / "sis").mkdir()
    sis_file = root / "sis" / "001-x.json"
    if garbage is not None:
        sis_file.write_bytes(garbage)
    else:
        sis_file.write_text(_as_text(doc))
    (root / "mission.toml").write_text('[mission]\nname = "fuzz"\nrepo = "repo"\n')
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    out, err = io.StringIO(), io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = hybrid_main(["validate", str(root)])  # a traceback fails the test
    assert code in (0, 2)
    lines = out.getvalue().splitlines()
    if code == 0:
        assert len(lines) == 1 and lines[0].startswith("OK: fuzz:")
    else:
        assert lines and all(line.split(":", 1)[0] in ("sis/001-x.json", "mission.toml") for line in lines), lines
        assert err.getvalue().startswith("hybrid-tui: ") and "problem" in err.getvalue()
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # validate creates nothing


# -- hostile paths refused before anything runs --------------------------------------------------------

BAD_PATHS = {
    "dotdot": ("../escape.txt", "escapes the repository"),
    "absolute": ("/tmp/hybrid-escape.txt", "absolute path"),
    "nul": ("a\x00b.txt", "NUL"),
    "long-name": ("x" * 300 + ".txt", "longer than"),
    "git-dir": (".git/hooks/post-commit", ".git"),
    "symlink-out": ("out/pwned.txt", "outside"),
}


@pytest.mark.parametrize("case", list(BAD_PATHS))
@pytest.mark.parametrize("where", ["sis", "recording"])
def test_hostile_path_in_a_spec_or_recording_is_refused_by_run_with_no_side_effect(tmp_path: Path, case: str, where: str):
    path, words = BAD_PATHS[case]
    outside = tmp_path / "outside"
    outside.mkdir()
    op = {"op": "create", "path": path, "content": "pwned\n"}
    ok_op = {"op": "create", "path": "fine.txt", "content": "fine\n"}
    mission = write_mission(
        tmp_path / "m", [task("t", ops=[op] if where == "sis" else [ok_op])],
        recorded={"t": [{"file_operations": [op]}]} if where == "recording" else None,
    )
    (mission / "repo" / "out").symlink_to(outside)
    git(mission / "repo", "add", "-A")
    git(mission / "repo", "commit", "-qm", "a link pointing outside")
    branches = git(mission / "repo", "branch", "--list")
    runs = tmp_path / "runs"

    proc = cli("run", str(mission), "--headless", "--json", "--runs-dir", str(runs), cwd=tmp_path)

    assert proc.returncode == 2, explain(proc)
    assert proc.stdout == ""
    source = "sis/001-work.json" if where == "sis" else "replay/t.json"
    assert any(source in line and words in line for line in proc.stderr.splitlines()), proc.stderr  # file, field, why
    assert "Traceback" not in proc.stderr
    assert not runs.exists() or not any(runs.iterdir())  # no run folder
    assert git(mission / "repo", "branch", "--list") == branches  # no mission branch
    assert list(outside.iterdir()) == [] and not Path("/tmp/hybrid-escape.txt").exists()


def test_patch_whose_diff_targets_a_path_outside_is_refused_at_apply(tmp_path: Path):
    """The declared path is fine; the diff inside it is not. The sandbox refuses every attempt."""
    diff = "--- /dev/null\n+++ b/../outside.txt\n@@ -0,0 +1 @@\n+pwned\n"
    mission = write_mission(tmp_path / "m", [task("sneaky", ops=[{"op": "patch", "path": "inside.txt", "diff": diff}])],
                            mission=NO_AUTO_PAUSE)
    store, run_id, coordinator = start_run(mission, tmp_path / "runs")
    coordinator.config.policies.retries["agent_error"] = RetryRule(max_retries=1, backoff="immediate")
    try:
        assert drive(coordinator) == EXIT_FAILED
        attempts = attempts_of("sneaky")
        assert [a.failure_type for a in attempts] == ["agent_error", "agent_error"]
        assert all("patch" in a.failure_message and ("outside" in a.failure_message or ".." in a.failure_message)
                   for a in attempts), [a.failure_message for a in attempts]
        assert not (tmp_path / "m" / "outside.txt").exists() and not (tmp_path / "outside.txt").exists()
        run = m.Run.get_by_id(run_id)
        assert branch_commits(Path(run.repo_path), run.mission_branch) == []
    finally:
        store.close()


def test_model_tool_calls_that_try_to_leave_the_repository_are_refused(tmp_path: Path, monkeypatch):
    """The Claude implementer in a real run: every escape is a tool error the model sees, the
    outside stays untouched, and the task's honest work is integrated."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP SECRET\n")
    mission = write_mission(tmp_path / "m", [task("t", ops=[{"op": "intent", "path": "t.txt", "intent": "write t"}],
                                                  checks=[py("assert open('t.txt').read() == 't\\n'")])])
    (mission / "repo" / "out").symlink_to(outside)
    git(mission / "repo", "add", "-A")
    git(mission / "repo", "commit", "-qm", "a link pointing outside")
    attempts = [
        tool_use("write_file", {"path": "../escape.txt", "content": "x"}),
        tool_use("write_file", {"path": str(outside / "abs.txt"), "content": "x"}),
        tool_use("write_file", {"path": "out/pwned.txt", "content": "x"}),
        tool_use("read_file", {"path": "out/secret.txt"}),
        tool_use("edit_file", {"path": "out/secret.txt", "old_string": "TOP", "new_string": "PWNED"}),
        tool_use("write_file", {"path": ".git/hooks/post-commit", "content": "#!/bin/sh\ntouch /tmp/pwned\n"}),
        tool_use("write_file", {"path": "a\x00b", "content": "x"}),
        tool_use("list_files", {"path": "../"}),
        tool_use("search", {"pattern": "SECRET", "path": "out"}),
    ]
    script = [message(call) for call in attempts] + [
        message(tool_use("write_file", {"path": "t.txt", "content": "t\n"})),
        message(tool_use("finish", {"summary": "done"})),
    ]
    with MessagesServer() as server:
        server.push(*script)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        store, run_id, coordinator = start_run(mission, tmp_path / "runs", backend="anthropic")
        coordinator.planner = None  # the mission's SIS is the plan; the server scripts only the implementer
        try:
            assert drive(coordinator) == EXIT_OK
            results = [b for body in server.message_requests[1:len(attempts) + 1]
                       for b in body["messages"][-1]["content"] if b.get("type") == "tool_result"]
        finally:
            store.close()
    assert server.rejected == []
    assert len(results) == len(attempts)
    assert all(r["is_error"] for r in results), [r["content"][:80] for r in results]
    assert not any("TOP SECRET" in json.dumps(body) for body in server.message_requests)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "TOP SECRET\n"
    assert not (tmp_path / "m" / "escape.txt").exists()
    assert not (mission / "repo" / ".git" / "hooks" / "post-commit").exists()


# -- floods and terminal escapes ----------------------------------------------------------------------

ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b[31m"


def test_enormous_output_and_escape_sequences_are_capped_in_the_store_and_inert_on_screen(tmp_path: Path):
    flood = py(
        "import sys\n"
        f"sys.stdout.write({ESCAPES!r} + 'x' * 3_000_000 + '\\n' + {ESCAPES!r} + 'LAST LINE\\n'); sys.exit(1)"
    )
    mission = write_mission(
        tmp_path / "m",
        [task("loud", checks=[flood], title=f"Loud {ESCAPES}task [bold]markup[/bold]")],
        mission=NO_AUTO_PAUSE,
    )
    store, run_id, coordinator = start_run(mission, tmp_path / "runs")
    coordinator.config.policies.retries["validation_failed"] = RetryRule(max_retries=0, backoff="immediate")
    try:
        assert drive(coordinator) == EXIT_FAILED
        (attempt,) = attempts_of("loud")
        # The store keeps a bounded tail (the full output is in the attempt's log file).
        assert len(attempt.failure_message) <= 20_000 and attempt.failure_message.rstrip().endswith("[exit code 1]")
        assert "LAST LINE" in attempt.failure_message
        assert max(len(e.message) for e in m.Event.select()) <= 2_100  # events carry a bounded excerpt
        row = m.Task.get(m.Task.task_id == "loud")
        # The attention reason shows the end of the output, where the error is.
        assert row.status == "failed" and "LAST LINE\n[exit code 1]" in row.attention_reason
        assert len(row.attention_reason) <= 2_100
        assert ESCAPES in row.title  # stored as the spec said
        screen = asyncio_render_console(store, run_id)
    finally:
        store.close()
    assert "\x1b]0;pwned" not in screen and "\x1b[2J" not in screen and "\x07" not in screen
    assert "␛]0;pwned␇" in screen or "␛[2J" in screen  # shown, as visible control pictures


def asyncio_render_console(store, run_id: str) -> str:
    """The console on ``run_id``: the task's detail screen rendered to a real terminal stream."""
    from hybrid_tui.tui import HybridApp

    async def main() -> str:
        app = HybridApp(store, run_id, poll_interval=0.1)
        app.animation_level = "none"
        chunks = []
        async with app.run_test(size=(200, 60)) as pilot:
            await pilot.pause(0.3)
            for screen_key in (None, "enter"):
                if screen_key:
                    await pilot.press(screen_key)
                    await pilot.pause(0.3)
                console = Console(width=200, height=60, file=io.StringIO(), force_terminal=True, color_system="truecolor")
                console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
                chunks.append(console.file.getvalue())
        return "".join(chunks)

    return anyio.run(main)


def test_shell_metacharacters_in_file_names_are_plain_names(tmp_path: Path):
    name = "a;b $(touch pwned) `touch pwned2` && echo x | y > z.py"
    check = py(f"import pathlib; assert pathlib.Path({name!r}).read_text() == 'ok\\n'")
    mission = write_mission(tmp_path / "m", [task("meta", ops=[{"op": "create", "path": name, "content": "ok\n"}],
                                                  checks=[check])])
    runs = tmp_path / "runs"
    proc = cli("run", str(mission), "--headless", "--json", "--runs-dir", str(runs), cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    run_dir = next(runs.iterdir())
    branch = next(json.loads(line) for line in proc.stdout.splitlines()[-1:])  # summary line
    assert branch["kind"] == "run.summary"
    repo = mission / "repo"
    mission_branch = git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/hybrid/").split()
    (only,) = [b for b in mission_branch if "/agent-" not in b and b.count("/") == 1]
    assert git(repo, "ls-tree", "-z", "--name-only", only, "--", name).rstrip("\0") == name
    for folder in (tmp_path, mission, repo, run_dir, Path.cwd()):
        assert not list(folder.rglob("pwned*")), folder
