"""Issue 17: real repositories. Each worktree gets the project's own environment
(``[workspace]`` setup, path, env), only the task's work lands, validation commands cannot
touch the user's repository, environment problems are found before spending (preflight)
or fail once as ``environment_error`` and pause the run, and locks are leases.

Everything here is real: git repositories, the CLI as a subprocess, venvs made by setup.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from runtime.helpers import branch_commits, git, only_run_dir, task, write_mission

TOML_ESCAPE = json.dumps  # a TOML basic string is a JSON string for these texts


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, drop: tuple[str, ...] = (),
        timeout: float = 300) -> subprocess.CompletedProcess:
    full = {**os.environ, **(env or {})}
    full.pop("HYBRID_TUI_CRASH_AT", None) if "HYBRID_TUI_CRASH_AT" not in (env or {}) else None
    for name in drop:
        full.pop(name, None)
    # hybrid-tui's own interpreter is NOT on PATH: validation must not depend on it.
    full["PATH"] = os.pathsep.join(p for p in full.get("PATH", "").split(os.pathsep)
                                   if Path(p).resolve() != Path(sys.executable).parent.resolve())
    return subprocess.run([sys.executable, "-m", "hybrid_tui", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=timeout)


def explain(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"


def rows(run_dir: Path, sql: str, *params) -> list[tuple]:
    from hybrid_tui.store.runs import run_store_location

    location = run_store_location(run_dir)  # its state.db, or (the PostgreSQL leg) the store its store.url names
    if location is not None and location.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(location) as db:
            return [tuple(row) for row in db.execute(sql.replace("%", "%%").replace("?", "%s"), params).fetchall()]
    with sqlite3.connect(run_dir / "state.db") as db:
        return db.execute(sql, params).fetchall()


def user_repo_state(repo: Path) -> dict[str, str]:
    """What a validation command must never change: refs, HEAD, config, index, checkout."""
    return {
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/main", "refs/heads/x",
                    "refs/tags/"),
        "all_branches": "\n".join(ref for ref in git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/").split()
                                  if not ref.startswith("refs/heads/hybrid/")),
        "head": (repo / ".git" / "HEAD").read_text(),
        "config": (repo / ".git" / "config").read_text(),
        "status": git(repo, "status", "--porcelain", "--ignored"),
        "index": git(repo, "ls-files", "-s"),
    }


# A dependency the project needs and hybrid-tui's environment lacks: installed by setup into
# the worktree's own venv only.
SLUG_FILES = {
    "slugkit/__init__.py": "from textdep import fold\n\n\ndef slug(text):\n    return fold(text).lower().replace(' ', '-')\n",
    "third_party/textdep/__init__.py": "def fold(text):\n    return text.replace('\\u00e9', 'e')\n",
    "tests/__init__.py": "",
    "tests/test_slug.py": textwrap.dedent("""\
        import unittest

        from slugkit import slug


        class SlugTest(unittest.TestCase):
            def test_slug(self):
                self.assertEqual(slug('Caf\\u00e9 Au Lait'), 'cafe-au-lait')
        """),
}
SLUG_WORKSPACE = textwrap.dedent("""\
    [workspace]
    setup = [
      "python3 -m venv --without-pip .venv",
      ".venv/bin/python -c \\"import shutil, sysconfig; shutil.copytree('third_party/textdep', sysconfig.get_paths()['purelib'] + '/textdep')\\"",
    ]
    path = [".venv/bin"]
    env = { SLUG_STYLE = "kebab" }
    """)
# Every attack of issue 23 item 2, from inside a validation command that passes.
ATTACKS = (
    "git -c user.name=v -c user.email=v@v commit -q --allow-empty -m sneaky && git update-ref refs/heads/main HEAD"
    " && git checkout -q -b x && git config user.name x && mkdir -p build && echo bin > build/out.bin"
    " && echo artifact > validation-artifact.txt"
)


def slug_mission(root: Path, *, workspace: str = SLUG_WORKSPACE) -> Path:
    title_test = textwrap.dedent("""\
        import unittest

        from slugkit.title import title_slug


        class TitleTest(unittest.TestCase):
            def test_title(self):
                self.assertEqual(title_slug('Un Caf\\u00e9'), 'Un-Cafe')
        """)
    style_check = "import os, slugkit; assert os.environ['SLUG_STYLE'] == 'kebab'; assert slugkit.slug('A B') == 'a-b'"
    tasks = [
        task("title", ops=[
            {"op": "create", "path": "slugkit/title.py",
             "content": "from textdep import fold\n\n\ndef title_slug(text):\n    return fold(text).replace(' ', '-')\n"},
            {"op": "create", "path": "tests/test_title.py", "content": title_test},
        ], checks=[f"python -m unittest -q tests.test_title tests.test_slug && {ATTACKS}"]),
        task("upper", deps=["title"], ops=[
            {"op": "edit", "path": "slugkit/__init__.py", "old_string": "return fold(text).lower()",
             "new_string": "return fold(text).strip().lower()"},
        ], checks=["python -m unittest -q tests.test_slug tests.test_title", f"python -c {shlex.quote(style_check)}",
                   "mkdir -p build && echo bin > build/out.bin && touch .venv/marker"]),
        task("readme", ops=[{"op": "create", "path": "docs/slug.md", "content": "# slug\n"}],
             checks=["test -f docs/slug.md && echo again > validation-artifact.txt && git update-ref refs/heads/main HEAD"
                     " && git config core.bare true && git branch -f x HEAD"]),
    ]
    mission = write_mission(root, tasks, files=SLUG_FILES,
                            mission="\n[policies]\nfailure_rate_pause = 1.0\n\n" + workspace)
    return mission


def test_a_repository_needing_its_own_dependency_runs_and_lands_only_the_tasks_files(tmp_path: Path):
    mission = slug_mission(tmp_path / "m")
    repo = mission / "repo"
    assert subprocess.run([sys.executable, "-c", "import textdep"], cwd=tmp_path).returncode != 0  # not ours
    before = user_repo_state(repo)
    runs = tmp_path / "runs"
    proc = cli("run", str(mission), "--headless", "--agents", "2", "--runs-dir", str(runs), cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    run_dir = only_run_dir(runs)
    branch = rows(run_dir, "select mission_branch from run")[0][0]
    assert sorted(rows(run_dir, "select task_id, status from task")) == [
        ("readme", "done"), ("title", "done"), ("upper", "done")]
    assert rows(run_dir, "select count(*) from attempt where outcome != 'succeeded'") == [(0,)]
    # One commit per task, holding exactly its declared files: no .venv, build output or artifact.
    commits = branch_commits(repo, branch)
    assert sorted(c["task"] for c in commits) == ["readme", "title", "upper"]
    declared = {"title": ["slugkit/title.py", "tests/test_title.py"], "upper": ["slugkit/__init__.py"],
                "readme": ["docs/slug.md"]}
    for commit in commits:
        files = git(repo, "show", "--name-only", "--format=", commit["sha"]).split()
        assert sorted(files) == declared[commit["task"]], commit
    landed = git(repo, "ls-tree", "-r", "--name-only", branch).split()
    assert not [f for f in landed if f.startswith((".venv", "build/")) or f == "validation-artifact.txt"], landed
    # The user's repository: branches, HEAD, config, index and checkout unchanged.
    after = user_repo_state(repo)
    assert after == before
    assert "sneaky" not in git(repo, "log", "--all", "--format=%s")
    # Setup ran once per agent slot (2 slots, 3 tasks), with its log.
    logs = sorted((run_dir / "worktrees").glob("*.setup.log"))
    assert len(logs) == 2 and all("python3 -m venv" in log.read_text() for log in logs)


def test_without_workspace_the_projects_dependency_is_missing_and_validation_says_so(tmp_path: Path):
    """The same project with no [workspace]: nothing of hybrid-tui's environment helps it."""
    mission = slug_mission(tmp_path / "m", workspace="")
    proc = cli("validate", str(mission), "--preflight", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)  # python exists; the missing module is the project's own
    runs = tmp_path / "runs"
    proc = cli("run", str(mission), "--headless", "--agents", "1", "--runs-dir", str(runs), cwd=tmp_path)
    assert proc.returncode == 1, explain(proc)
    run_dir = only_run_dir(runs)
    assert rows(run_dir, "select status from task where task_id = 'title'") == [("failed",)]
    assert "No module named 'textdep'" in "".join(
        r[0] for r in rows(run_dir, "select failure_message from attempt where task_id = 'title'"))


def missing_program_mission(root: Path, **workspace: str) -> Path:
    extra = "".join(f"{key} = {value}\n" for key, value in workspace.items())
    return write_mission(root, [
        task("ok", checks=["test -f ok.txt"]),
        task("broken", checks=["test -f broken.txt", "definitely-not-a-program-i17 --check"]),
        task("later", deps=["ok"], checks=["python3 -c 'pass'"]),
        task("after", deps=["ok"], estimated_duration_minutes=0.5, checks=["test -f after.txt"]),
    ], mission="\n[policies]\nfailure_rate_pause = 1.0\n" + (f"\n[workspace]\n{extra}" if extra else ""))


def test_preflight_names_the_task_and_the_missing_program_and_run_refuses_before_starting(tmp_path: Path):
    mission = missing_program_mission(tmp_path / "m")
    before = user_repo_state(mission / "repo")
    proc = cli("validate", str(mission), "--preflight", cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert proc.stdout.splitlines() == [
        "sis/001-work.json: task broken: validation command 'definitely-not-a-program-i17 --check': "
        "program 'definitely-not-a-program-i17' was not found on PATH (exit 127 when run)"]
    runs = tmp_path / "runs"
    proc = cli("run", str(mission), "--headless", "--runs-dir", str(runs), cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert "task broken" in proc.stderr and "definitely-not-a-program-i17" in proc.stderr
    assert not runs.exists() or not any(runs.iterdir())  # no run folder left behind
    assert user_repo_state(mission / "repo") == before


def test_a_run_that_reaches_a_missing_program_fails_it_once_as_environment_error_and_pauses(tmp_path: Path):
    mission = missing_program_mission(tmp_path / "m")
    runs = tmp_path / "runs"
    proc = cli("run", str(mission), "--headless", "--agents", "1", "--no-preflight", "--runs-dir", str(runs),
               cwd=tmp_path)
    assert proc.returncode == 3, explain(proc)  # paused by a policy: the operator must fix the toolchain
    run_dir = only_run_dir(runs)
    attempts = rows(run_dir, "select outcome, failure_type, failure_message from attempt where task_id = 'broken'")
    assert len(attempts) == 1, attempts  # no retry
    outcome, failure_type, message = attempts[0]
    assert (outcome, failure_type) == ("failed", "environment_error")
    assert "'definitely-not-a-program-i17 --check' exited 127" in message
    (status, reason), = rows(run_dir, "select status, attention_reason from task where task_id = 'broken'")
    assert status == "failed" and "environment_error" in reason
    (run_status, pause_reason), = rows(run_dir, "select status, pause_reason from run")
    # The pause says why, not only the command's "$ ..." echo (the output's first line).
    assert (run_status, pause_reason) == ("paused", "environment_error in task broken: "
                                          "'definitely-not-a-program-i17 --check' exited 127: its program was not found")


def test_a_failing_setup_is_found_by_preflight_and_fails_the_attempt_as_environment_error(tmp_path: Path):
    mission = missing_program_mission(tmp_path / "m", setup='["echo preparing", "echo broken >&2; exit 7"]')
    proc = cli("validate", str(mission), "--preflight", cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert proc.stdout.splitlines() == [
        "mission.toml: workspace.setup: environment_error: preflight: [workspace] setup command "
        "'echo broken >&2; exit 7' exited 7 (last output: broken)"]
    runs = tmp_path / "runs"
    proc = cli("run", str(mission), "--headless", "--agents", "1", "--no-preflight", "--runs-dir", str(runs),
               cwd=tmp_path)
    assert proc.returncode == 3, explain(proc)
    run_dir = only_run_dir(runs)
    failed = rows(run_dir, "select task_id, failure_type, failure_message from attempt where outcome = 'failed'")
    assert len(failed) == 1, failed
    assert failed[0][1] == "environment_error" and "'echo broken >&2; exit 7' exited 7" in failed[0][2]
    assert rows(run_dir, "select count(*) from attempt where phase != 'planning'") == [(1,)]  # paused: nothing else


def test_a_long_attempt_keeps_its_locks_past_the_lock_ttl(tmp_path: Path):
    """lock_ttl_seconds 0.3, a validation of 2 s: the lease is renewed, the attempt succeeds,
    and the task waiting for the same file runs after it (it used to be cancelled as timeout)."""
    mission = write_mission(tmp_path / "m", [
        task("long", ops=[{"op": "edit", "path": "shared.txt", "old_string": "zero", "new_string": "zero long"}],
             checks=["sleep 2"]),
        task("short", ops=[{"op": "edit", "path": "shared.txt", "old_string": "zero", "new_string": "zero short"}],
             checks=["true"]),
    ], files={"shared.txt": "zero\n"}, mission="\n[policies]\nlock_ttl_seconds = 0.3\nfailure_rate_pause = 1.0\n")
    runs = tmp_path / "runs"
    proc = cli("run", str(mission), "--headless", "--agents", "2", "--runs-dir", str(runs), cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    run_dir = only_run_dir(runs)
    attempts = rows(run_dir, "select task_id, outcome, failure_type, started_at, finished_at from attempt "
                             "where phase != 'planning' order by started_at")
    assert sorted((a[0], a[1], a[2]) for a in attempts) == [("long", "succeeded", None), ("short", "succeeded", None)]
    first, second = attempts
    assert second[3] >= first[4] - 0.05  # the second waited for the first's lock to be released
    assert rows(run_dir, "select count(*) from event where kind = 'alert' and message like '%expired%'") == [(0,)]
    assert rows(run_dir, "select count(*) from file_lock") == [(0,)]


def test_the_lock_of_a_crashed_attempt_is_reclaimed_on_resume(tmp_path: Path):
    mission = write_mission(tmp_path / "m", [
        task("a", ops=[{"op": "create", "path": "shared.txt", "content": "a\n"}], checks=["true"]),
    ], mission="\n[policies]\nfailure_rate_pause = 1.0\n")
    runs = tmp_path / "runs"
    proc = cli("run", str(mission), "--headless", "--runs-dir", str(runs), cwd=tmp_path,
               env={"HYBRID_TUI_CRASH_AT": "implemented:a"})
    assert proc.returncode == -signal.SIGKILL, explain(proc)
    run_dir = only_run_dir(runs)
    assert rows(run_dir, "select path, task_id from file_lock") == [("shared.txt", "a")]  # its holder is gone
    proc = cli("resume", str(run_dir), "--headless", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert rows(run_dir, "select status from task") == [("done",)]
    assert rows(run_dir, "select count(*) from file_lock") == [(0,)]


def test_validate_warns_about_an_estimate_over_the_attempt_timeout(tmp_path: Path):
    mission = write_mission(tmp_path / "m", [task("quick"), task("slow", estimated_duration_minutes=89)],
                            mission="attempt_timeout_seconds = 1800\n")
    proc = cli("validate", str(mission), cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    warnings = [line for line in proc.stdout.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: sis/001-work.json: task slow: estimated 89 min is over "
                        "agents.attempt_timeout_seconds = 1800 s (30 min): its attempts will time out"]


def test_run_with_the_anthropic_backend_and_no_key_is_refused_before_anything_exists(tmp_path: Path):
    mission = write_mission(tmp_path / "m", [task("a")])
    before = user_repo_state(mission / "repo")
    runs = tmp_path / "runs"
    proc = cli("run", str(mission), "--headless", "--backend", "anthropic", "--runs-dir", str(runs), cwd=tmp_path,
               drop=("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"))
    assert proc.returncode == 2, explain(proc)
    assert "ANTHROPIC_API_KEY" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not runs.exists() or not any(runs.iterdir())
    assert user_repo_state(mission / "repo") == before


def test_resume_with_the_anthropic_backend_and_no_key_is_refused_and_changes_nothing(tmp_path: Path):
    mission = write_mission(tmp_path / "m", [task("a", checks=["true"])])
    runs = tmp_path / "runs"
    proc = cli("run", str(mission), "--headless", "--runs-dir", str(runs), cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    run_dir = only_run_dir(runs)
    before = rows(run_dir, "select status, pause_reason from run"), rows(run_dir, "select count(*) from event")
    proc = cli("resume", str(run_dir), "--headless", "--backend", "anthropic", cwd=tmp_path,
               drop=("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"))
    assert proc.returncode == 2, explain(proc)
    assert "ANTHROPIC_API_KEY" in proc.stderr
    assert (rows(run_dir, "select status, pause_reason from run"), rows(run_dir, "select count(*) from event")) == before


def test_the_quickstart_runs_in_its_own_declared_environment_not_hybrid_tuis(tmp_path: Path):
    """hybrid-tui's interpreter (with its test extra) is not on PATH here: the quickstart's
    `python -m pytest` runs on the venv its [workspace] setup made in each agent slot."""
    from runtime.helpers import copy_quickstart

    mission = copy_quickstart(tmp_path / "quickstart")
    runs = tmp_path / "runs"
    proc = cli("run", str(mission), "--headless", "--agents", "2", "--runs-dir", str(runs), cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    run_dir = only_run_dir(runs)
    slots = sorted(p for p in (run_dir / "worktrees").iterdir() if p.is_dir())
    assert len(slots) == 2 and all((slot / ".venv" / "bin" / "python").exists() for slot in slots)
    branch = rows(run_dir, "select mission_branch from run")[0][0]
    landed = git(mission / "repo", "ls-tree", "-r", "--name-only", branch).split()
    assert not [f for f in landed if f.startswith(".venv/")]


def _kill_the_coordinator_during_setup(tmp_path: Path, setup: str, pid_file: Path) -> Path:
    """Run a one-task mission whose slot setup is ``setup`` (a `hybrid-tui run` process) and
    SIGKILL it once the setup wrote ``pid_file``. Returns the runs folder."""
    mission = write_mission(tmp_path / "m", [task("a", checks=["true"])],
                            mission=f"\n[workspace]\nsetup = [{TOML_ESCAPE(setup)}]\n")
    runs = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if k != "HYBRID_TUI_CRASH_AT"}
    coordinator = subprocess.Popen([sys.executable, "-m", "hybrid_tui", "run", str(mission), "--headless",
                                    "--agents", "1", "--no-preflight", "--runs-dir", str(runs)], cwd=tmp_path,
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120  # a safety net
        while time.monotonic() < deadline and not (pid_file.exists() and pid_file.read_text().strip()):
            time.sleep(0.1)
    finally:
        coordinator.kill()
        coordinator.wait()
    return runs


def test_a_setup_left_running_by_a_killed_coordinator_is_killed_on_resume(tmp_path: Path):
    """The coordinator SIGKILLed while a slot's setup runs: the setup's process group lives on
    (its own session); `resume` kills it before it resets the worktree, then sets up again."""
    pid_file, first_time = tmp_path / "setup.pid", tmp_path / "setup-ran-once"
    slow_once = (f"if [ ! -e {first_time} ]; then touch {first_time}; sleep 600 & echo $! > {pid_file}; wait; fi")
    runs = _kill_the_coordinator_during_setup(tmp_path, slow_once, pid_file)
    orphan = int(pid_file.read_text())
    assert psutil.pid_exists(orphan)  # the setup outlived its coordinator
    proc = cli("resume", str(only_run_dir(runs)), "--headless", cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    assert not psutil.pid_exists(orphan) or psutil.Process(orphan).status() == psutil.STATUS_ZOMBIE



def test_a_setup_that_fails_on_resume_is_the_tasks_environment_error_not_a_traceback(tmp_path: Path):
    """The coordinator SIGKILLed during a slot's setup; on `resume` the setup fails (no network
    for pip, say). Recovery re-ran the setup while resetting the worktrees, before anything
    was dispatched, and its failure ended `resume` with a traceback (exit 1), the run left
    `running (coordinator lost)`. Setup belongs to the slot's next attempt, where a failure is
    the task's `environment_error`: one clear reason, dispatching paused, and with nothing
    else to run the run ends (exit 1)."""
    pid_file, first_time, broken = tmp_path / "setup.pid", tmp_path / "setup-ran-once", tmp_path / "broken"
    setup = (f"if [ -e {broken} ]; then echo no network >&2; exit 9; fi; "
             f"if [ ! -e {first_time} ]; then touch {first_time}; sleep 600 & echo $! > {pid_file}; wait; fi")
    runs = _kill_the_coordinator_during_setup(tmp_path, setup, pid_file)
    broken.touch()
    run_dir = only_run_dir(runs)
    proc = cli("resume", str(run_dir), "--headless", cwd=tmp_path)
    assert "Traceback" not in proc.stderr, explain(proc)
    assert proc.returncode == 1, explain(proc)
    attempts = rows(run_dir, "select outcome, failure_type, failure_message from attempt where task_id = 'a' "
                             "order by number")
    assert [a[:2] for a in attempts] == [("interrupted", "interrupted"), ("failed", "environment_error")], attempts
    assert "exited 9" in attempts[-1][2] and attempts[-1][2].startswith("setup of agent-01: ")
    assert "environment_error: environment_error" not in proc.stdout  # said once
    assert rows(run_dir, "select status from run") == [("finished",)]
    assert "run.paused environment_error in task a" in proc.stdout
