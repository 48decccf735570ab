"""``hybrid-tui validate``: each broken mission is reported as FILE:LOCATION: message, exit 2,
and nothing is created on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from hybrid_tui.app.main import main

SIS = "sis/001-sub.json"


# ----------------------------------------------------------------- mutation helpers


def edit_sis(change: Callable[[dict], None], name: str = SIS) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / name
        doc = json.loads(path.read_text())
        change(doc)
        path.write_text(json.dumps(doc, indent=2))

    return apply


def edit_toml(old: str, new: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / "mission.toml"
        text = path.read_text()
        assert old in text, f"{old!r} not in mission.toml"
        path.write_text(text.replace(old, new))

    return apply


def write(rel: str, text: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)

    return apply


def add_issue(issue_id: str, tasks: list[dict]) -> Callable[[Path], None]:
    """A second issue with its own SIS holding ``tasks``."""

    def apply(root: Path) -> None:
        (root / "issues" / f"{issue_id}.md").write_text(f"# Issue {issue_id}\n")
        doc = {"issue": {"id": issue_id, "title": f"Issue {issue_id}"}, "tasks": tasks}
        (root / "sis" / f"{issue_id}.json").write_text(json.dumps(doc, indent=2))

    return apply


def task(task_id: str, *deps: str, path: str = "other.py") -> dict:
    return {
        "task_id": task_id,
        "title": f"Task {task_id}",
        "dependencies": list(deps),
        "file_operations": [{"op": "create", "path": path, "content": "x = 1\n"}],
    }


def op0(doc: dict) -> dict:
    return doc["tasks"][0]["file_operations"][0]


def create_op(path: str) -> dict:
    return {"op": "create", "path": path, "content": "x = 1\n"}


def symlink_out(root: Path) -> None:
    outside = root.parent / "outside"
    outside.mkdir()
    (root / "repo" / "vendor").symlink_to(outside, target_is_directory=True)
    edit_sis(lambda d: d["tasks"][0].update(file_operations=[create_op("vendor/evil.py")]))(root)


def symlink_into_git(root: Path) -> None:
    # Inside the repository's folder, but into .git/: the run's sandbox refuses it, so must validate.
    (root / "repo" / "hooks").symlink_to(root / "repo" / ".git" / "hooks", target_is_directory=True)
    edit_sis(lambda d: d["tasks"][0].update(file_operations=[create_op("hooks/post-commit")]))(root)


def symlink_inside(root: Path) -> None:
    # A symlink that stays in the repository is fine: the mission must stay valid.
    (root / "repo" / "pkg").mkdir()
    (root / "repo" / "alias").symlink_to(root / "repo" / "pkg", target_is_directory=True)
    edit_sis(lambda d: d["tasks"][0].update(file_operations=[create_op("alias/mod.py")]))(root)


def both(*changes: Callable[[Path], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        for change in changes:
            change(root)

    return apply


# ------------------------------------------------------------------------ the table

CASES: list[tuple[str, Callable[[Path], None], list[str]]] = [
    (
        "toml-syntax",
        write("mission.toml", '[mission]\nname = "tiny"\nrepo = repo\n'),
        ["mission.toml:3:8: invalid TOML: Invalid value"],
    ),
    (
        "json-syntax",
        write(SIS, '{\n  "issue": {"id": "001-sub", "title": "t"},\n  "tasks": [,]\n}\n'),
        [f"{SIS}:3:13: invalid JSON: Expecting value"],
    ),
    (
        "json-not-object",
        write(SIS, "[1, 2]\n"),
        [f"{SIS}: expected a JSON object, got list"],
    ),
    (
        "missing-task-title",
        edit_sis(lambda d: d["tasks"][1].pop("title")),
        [f"{SIS}:tasks[1].title: missing required field"],
    ),
    (
        "missing-mission-name",
        edit_toml('name = "tiny"\n', ""),
        ["mission.toml:mission.name: missing required field"],
    ),
    (
        "wrong-priority-enum",
        edit_sis(lambda d: d["tasks"][0].update(priority="URGENT")),
        [f"""{SIS}:tasks[0].priority: Input should be 'CRITICAL', 'HIGH', 'MEDIUM' or 'LOW' (got "URGENT")"""],
    ),
    (
        "wrong-backend-enum",
        edit_toml("[agents]\n", '[agents]\nbackend = "gpt"\n'),
        ["""mission.toml:agents.backend: Input should be 'replay', 'sim', 'anthropic' or 'cli' (got "gpt")"""],
    ),
    (
        "unknown-operation",
        edit_sis(lambda d: op0(d).update(op="rename")),
        [
            f"{SIS}:tasks[0].file_operations[0].op: unknown operation \"rename\"; "
            "expected one of 'create', 'edit', 'delete', 'patch', 'intent'"
        ],
    ),
    (
        "typo-field",
        edit_sis(lambda d: d["tasks"][1].update(dependecies=["sub"])),
        [f"{SIS}:tasks[1].dependecies: unknown field (not part of the format)"],
    ),
    (
        "duplicate-task-id-across-files",
        add_issue("002-more", [task("sub")]),
        [f"sis/002-more.json:tasks[0].task_id: duplicate task id 'sub' (also in {SIS}:tasks[0].task_id)"],
    ),
    (
        "unknown-dependency",
        edit_sis(lambda d: d["tasks"][1]["dependencies"].append("nope")),
        [f"{SIS}:tasks[1].dependencies[1]: unknown task 'nope'"],
    ),
    (
        "cycle-of-two",
        edit_sis(lambda d: d["tasks"][0].update(dependencies=["sub-test"])),
        [f"{SIS}:tasks[0].dependencies[0]: dependency cycle: sub -> sub-test -> sub"],
    ),
    (
        "cycle-of-three-across-files",
        both(
            edit_sis(lambda d: d["tasks"][0].update(dependencies=["c"])),
            add_issue("002-more", [task("c", "sub-test")]),
        ),
        [f"{SIS}:tasks[0].dependencies[0]: dependency cycle: sub -> c -> sub-test -> sub"],
    ),
    (
        "self-dependency",
        edit_sis(lambda d: d["tasks"][0].update(dependencies=["sub"])),
        [f"{SIS}:tasks[0].dependencies[0]: dependency cycle: sub -> sub"],
    ),
    (
        "absolute-path",
        edit_sis(lambda d: op0(d).update(path="/etc/passwd")),
        [
            f"{SIS}:tasks[0].file_operations[0].path: absolute path '/etc/passwd' is not allowed; "
            "use a path relative to the repository"
        ],
    ),
    (
        "dotdot-escape",
        edit_sis(lambda d: op0(d).update(path="src/../../secrets.txt")),
        [f"{SIS}:tasks[0].file_operations[0].path: path 'src/../../secrets.txt' escapes the repository with '..'"],
    ),
    (
        "git-dir",
        edit_sis(lambda d: op0(d).update(path="./.git/hooks/pre-commit")),
        [f"{SIS}:tasks[0].file_operations[0].path: path './.git/hooks/pre-commit' is inside .git/"],
    ),
    (
        "symlink-escape",
        symlink_out,
        [
            f"{SIS}:tasks[0].file_operations[0].path: path 'vendor/evil.py' goes through the symlink "
            "'vendor', which leads outside the repository"
        ],
    ),
    (
        "symlink-into-git",
        symlink_into_git,
        [
            f"{SIS}:tasks[0].file_operations[0].path: path 'hooks/post-commit' goes through the symlink "
            "'hooks', which leads into .git/"
        ],
    ),
    (
        "empty-old-string",
        edit_sis(lambda d: op0(d).update(old_string="")),
        [f"{SIS}:tasks[0].file_operations[0].old_string: edit needs a non-empty old_string (the exact text to replace)"],
    ),
    (
        "negative-budget",
        edit_toml("mission_usd = 5.0", "mission_usd = -5.0"),
        ["mission.toml:budget.mission_usd: Input should be greater than 0 (got -5.0)"],
    ),
    (
        "zero-timeout",
        edit_sis(lambda d: d["tasks"][0]["validation"].update(timeout_seconds=0)),
        [f"{SIS}:tasks[0].validation.timeout_seconds: Input should be greater than 0 (got 0)"],
    ),
    (
        "min-above-max-implementers",
        edit_toml("min_implementers = 1", "min_implementers = 3"),
        ["mission.toml:agents.min_implementers: min_implementers (3) is greater than max_implementers (2)"],
    ),
    (
        "missing-repo-folder",
        edit_toml('repo = "repo"', 'repo = "nowhere"'),
        ["mission.toml:mission.repo: repository folder 'nowhere' does not exist"],
    ),
    (
        "replay-unknown-task",
        write("replay/ghost.json", json.dumps({"task_id": "ghost", "attempts": [{}]})),
        ["replay/ghost.json:task_id: unknown task 'ghost'"],
    ),
    (
        "issue-without-title",
        write("issues/001-sub.md", "Just some text, no heading.\n"),
        ["issues/001-sub.md: no title: the issue needs a first-level heading ('# Title')"],
    ),
    (
        "sis-for-unknown-issue",
        edit_sis(lambda d: d["issue"].update(id="ISSUE-1")),
        [
            f"{SIS}:issue.id: no issue 'ISSUE-1': an issue's id is its file name in issues/*.md "
            "without the suffix (did you mean '001-sub'?)"
        ],
    ),
    (
        "batch-max-tasks-one",
        edit_toml("retry_usd = 1.0\n", "retry_usd = 1.0\n\n[policies.batch]\nmax_tasks = 1\n"),
        ["mission.toml:policies.batch.max_tasks: Input should be greater than or equal to 2 (got 1)"],
    ),
    (
        "batch-unknown-domain",
        edit_toml("retry_usd = 1.0\n", "retry_usd = 1.0\n\n[policies.batch]\ndomains = [\"acessibility\"]\n"),
        ["mission.toml:policies.batch.domains[0]: 'acessibility' is no domain of this mission's tasks (backend, tests)"],
    ),
    (
        "batch-zero-estimate",
        edit_toml("retry_usd = 1.0\n", "retry_usd = 1.0\n\n[policies.batch]\nmax_estimate_minutes = 0\n"),
        ["mission.toml:policies.batch.max_estimate_minutes: Input should be greater than 0 (got 0)"],
    ),
    (
        "batch-misspelt-key",
        edit_toml("retry_usd = 1.0\n", "retry_usd = 1.0\n\n[policies.batch]\nmax_task = 3\n"),
        ["mission.toml:policies.batch.max_task: unknown field (not part of the format)"],
    ),
    (
        "no-tasks",
        edit_sis(lambda d: d.update(tasks=[])),
        [
            f"{SIS}:tasks: List should have at least 1 item after validation, not 0",
            "replay/sub.json:task_id: unknown task 'sub'",
        ],
    ),
]


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and mtime: validate must change none of it."""
    return {
        str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if "__pycache__" not in p.parts
    }


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory: the default runs folder would appear here."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def test_the_table_has_enough_distinct_cases() -> None:
    assert len({name for name, _, _ in CASES}) == len(CASES) >= 15


@pytest.mark.parametrize("name,breakage,expected", CASES, ids=[c[0] for c in CASES])
def test_broken_mission_is_reported_exactly(
    name: str, breakage, expected: list[str], tiny_mission: Path, workdir: Path, capsys
) -> None:
    breakage(tiny_mission)
    before = tree(tiny_mission.parent)

    code = main(["validate", str(tiny_mission)])

    out, err = capsys.readouterr()
    assert out.splitlines() == expected
    assert code == 2
    assert f"{len(expected)} problem" in err
    assert tree(tiny_mission.parent) == before  # no run folder, no store, nothing touched
    assert list(workdir.iterdir()) == []


def test_valid_mission_prints_one_summary_line(tiny_mission: Path, workdir: Path, capsys) -> None:
    before = tree(tiny_mission.parent)
    assert main(["validate", str(tiny_mission / "mission.toml")]) == 0
    out, err = capsys.readouterr()
    assert out == "OK: tiny: 1 issues, 2 tasks, 1 dependencies, 2 files\n"
    assert err == ""
    assert tree(tiny_mission.parent) == before
    assert list(workdir.iterdir()) == []


def test_symlink_that_stays_inside_the_repository_is_fine(tiny_mission: Path, workdir: Path, capsys) -> None:
    symlink_inside(tiny_mission)
    assert main(["validate", str(tiny_mission)]) == 0, capsys.readouterr().out


def test_every_problem_of_a_mission_is_reported_at_once(tiny_mission: Path, workdir: Path, capsys) -> None:
    edit_toml("mission_usd = 5.0", "mission_usd = 0")(tiny_mission)
    edit_toml("min_implementers = 1", "min_implementers = 0")(tiny_mission)

    def many(doc: dict) -> None:
        op0(doc).update(path="../up.py")
        doc["tasks"][0]["dependencies"] = ["sub-test"]
        doc["tasks"][1]["priority"] = "urgent"
        doc["tasks"][1]["file_operations"].append({"op": "edit", "path": "calc.py", "old_string": "", "new_string": "x"})

    edit_sis(many)(tiny_mission)
    add_issue("002-more", [task("sub-test"), task("d", "ghost")])(tiny_mission)
    write("replay/bad.json", "{oops}")(tiny_mission)

    assert main(["validate", str(tiny_mission)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "mission.toml:agents.min_implementers: Input should be greater than 0 (got 0)",
        "mission.toml:budget.mission_usd: Input should be greater than 0 (got 0)",
        f"""{SIS}:tasks[1].priority: Input should be 'CRITICAL', 'HIGH', 'MEDIUM' or 'LOW' (got "urgent")""",
        f"{SIS}:tasks[1].file_operations[1].old_string: edit needs a non-empty old_string (the exact text to replace)",
        f"sis/002-more.json:tasks[0].task_id: duplicate task id 'sub-test' (also in {SIS})",
        "sis/002-more.json:tasks[1].dependencies[0]: unknown task 'ghost'",
        "replay/bad.json:1:2: invalid JSON: Expecting property name enclosed in double quotes",
    ]


def test_problems_with_a_parsed_sis_are_all_reported(tiny_mission: Path, workdir: Path, capsys) -> None:
    def many(doc: dict) -> None:
        op0(doc).update(path="../up.py")
        doc["tasks"][0]["dependencies"] = ["sub-test"]
        doc["tasks"][1]["file_operations"].append({"op": "delete", "path": ".git/config"})

    edit_sis(many)(tiny_mission)
    add_issue("002-more", [task("d", "ghost"), task("d")])(tiny_mission)
    assert main(["validate", str(tiny_mission)]) == 2
    assert capsys.readouterr().out.splitlines() == [
        f"{SIS}:tasks[0].file_operations[0].path: path '../up.py' escapes the repository with '..'",
        f"{SIS}:tasks[1].file_operations[1].path: path '.git/config' is inside .git/",
        "sis/002-more.json:tasks[1].task_id: duplicate task id 'd' (also in sis/002-more.json:tasks[0].task_id)",
        "sis/002-more.json:tasks[0].dependencies[0]: unknown task 'ghost'",
        f"{SIS}:tasks[0].dependencies[0]: dependency cycle: sub -> sub-test -> sub",
    ]


def test_missing_mission_folder(tmp_path: Path, workdir: Path, capsys) -> None:
    assert main(["validate", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().out == f"{tmp_path / 'nope'}: no such mission folder\n"


def test_folder_without_mission_toml(tmp_path: Path, workdir: Path, capsys) -> None:
    assert main(["validate", str(tmp_path)]) == 2
    assert capsys.readouterr().out == f"{tmp_path}: no mission.toml in this folder\n"


def test_validate_as_a_subprocess(tiny_mission: Path, workdir: Path) -> None:
    edit_sis(lambda d: d["tasks"][0].update(dependencies=["sub-test"]))(tiny_mission)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "hybrid_tui", "validate", str(tiny_mission)],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
    )
    assert proc.returncode == 2
    assert proc.stdout == f"{SIS}:tasks[0].dependencies[0]: dependency cycle: sub -> sub-test -> sub\n"
    assert "1 problem in" in proc.stderr
    assert list(workdir.iterdir()) == []


def test_sample_quickstart_mission_is_valid(workdir: Path, capsys) -> None:
    quickstart = Path(__file__).resolve().parents[2] / "sample_missions" / "quickstart"
    if not (quickstart / "mission.toml").exists():
        pytest.skip("sample_missions/quickstart is not in this checkout")
    code = main(["validate", str(quickstart)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("OK: quickstart: ")


def test_a_base_branch_the_repository_lacks_is_a_validate_problem_and_run_names_it(
    tiny_mission: Path, workdir: Path, capsys
) -> None:
    """`validate` said OK for `base_branch = "develop"` on a repository without it, and `run`
    (its preflight) then refused with "mission.toml: mission.repo: git rev-parse: failed"."""
    repo = tiny_mission / "repo"
    for command in (["init", "-q", "-b", "main"], ["add", "-A"],
                    ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "base"]):
        subprocess.run(["git", *command], cwd=repo, check=True, capture_output=True)
    edit_toml('repo = "repo"\n', 'repo = "repo"\nbase_branch = "develop"\n')(tiny_mission)
    before = tree(tiny_mission.parent)
    expected = f"mission.toml:mission.base_branch: base branch 'develop' does not exist in {repo.resolve()}"

    assert main(["validate", str(tiny_mission)]) == 2
    out, err = capsys.readouterr()
    assert out.splitlines() == [expected] and "1 problem" in err

    assert main(["validate", str(tiny_mission), "--preflight"]) == 2
    assert capsys.readouterr().out.splitlines() == [expected]

    assert main(["run", str(tiny_mission), "--headless", "--backend", "replay"]) == 2
    err = capsys.readouterr().err
    assert f"mission.toml: mission.base_branch: base branch 'develop' does not exist in {repo.resolve()}" in err
    assert "rev-parse" not in err
    assert tree(tiny_mission.parent) == before
    assert list(workdir.iterdir()) == []  # no run folder

    edit_toml('base_branch = "develop"', 'base_branch = "main"')(tiny_mission)
    assert main(["validate", str(tiny_mission)]) == 0, capsys.readouterr().out
