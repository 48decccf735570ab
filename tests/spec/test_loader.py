"""load_mission's result, validate_sis_document (the planner's check) and the schema command."""

from __future__ import annotations

import json
from pathlib import Path

from hybrid_tui.app.main import main
from hybrid_tui.spec.loader import MissionInvalid, load_mission, validate_sis_document
from hybrid_tui.spec.models import EditOp, Priority


def test_loaded_mission_has_issues_tasks_and_recorded_attempts(tiny_mission: Path) -> None:
    mission = load_mission(tiny_mission)
    assert mission.name == "tiny"
    assert mission.root == tiny_mission
    assert mission.mission_file == tiny_mission / "mission.toml"
    assert mission.repo_path == (tiny_mission / "repo").resolve()
    assert [(i.id, i.title, i.body) for i in mission.issues] == [("001-sub", "Add subtraction", "calc needs sub().")]
    assert [t.task_id for t in mission.tasks] == ["sub", "sub-test"]
    assert mission.task("sub-test").dependencies == ["sub"]
    assert mission.task("sub").priority is Priority.HIGH
    assert mission.issue_of("sub-test") == "001-sub"
    assert list(mission.recorded) == ["sub"]
    assert isinstance(mission.recorded["sub"].attempts[0].file_operations[0], EditOp)
    assert mission.config.agents.max_implementers == 2
    assert mission.config.policies.retries["validation_failed"].max_retries == 2  # defaults filled in


def test_file_paths_come_back_normalised(tiny_mission: Path) -> None:
    sis_file = tiny_mission / "sis" / "001-sub.json"
    doc = json.loads(sis_file.read_text())
    doc["tasks"][1]["file_operations"][0]["path"] = "./tests//check_sub.py"
    sis_file.write_text(json.dumps(doc))
    mission = load_mission(tiny_mission)
    assert mission.task("sub-test").declared_files == ["tests/check_sub.py"]


def test_invalid_mission_raises_with_every_problem(tiny_mission: Path) -> None:
    (tiny_mission / "mission.toml").write_text('[mission]\nname = "tiny"\n[budget]\nretry_usd = -1\n')
    (tiny_mission / "issues" / "002-x.md").write_text("no heading\n")
    try:
        load_mission(tiny_mission)
    except MissionInvalid as exc:
        assert [str(p) for p in exc.problems] == [
            "mission.toml:budget.retry_usd: Input should be greater than 0 (got -1)",
            "issues/002-x.md: no title: the issue needs a first-level heading ('# Title')",
        ]
    else:
        raise AssertionError("mission should be invalid")


def test_validate_sis_document_accepts_a_valid_document(tiny_mission: Path, tiny_sis: dict) -> None:
    doc = tiny_sis
    doc["tasks"][0]["file_operations"][0]["path"] = "./calc.py"
    sis, problems = validate_sis_document(doc, source="planner", repo_root=tiny_mission / "repo")
    assert problems == []
    assert sis is not None and sis.tasks[0].declared_files == ["calc.py"]


def test_validate_sis_document_dependencies_on_other_issues(tiny_sis: dict) -> None:
    doc = tiny_sis
    doc["tasks"][0]["dependencies"] = ["setup"]
    sis, problems = validate_sis_document(
        json.dumps(doc), source="submit_sis", repo_root=None, known_task_ids={"setup", "sub-test"}
    )
    assert sis is None
    assert [str(p) for p in problems] == [
        "submit_sis:tasks[1].task_id: duplicate task id 'sub-test' (already used by another issue's task)"
    ]
    doc["tasks"][1]["task_id"] = "sub-test-2"
    sis, problems = validate_sis_document(doc, source="submit_sis", repo_root=None, known_task_ids={"setup"})
    assert problems == [] and sis is not None


def test_validate_sis_document_reports_syntax_and_model_errors() -> None:
    sis, problems = validate_sis_document('{"issue": ', source="reply", repo_root=None)
    assert sis is None and [str(p) for p in problems] == ["reply:1:11: invalid JSON: Expecting value"]
    sis, problems = validate_sis_document({"issue": {"id": "x"}, "tasks": "all"}, source="reply", repo_root=None)
    assert [str(p) for p in problems] == [
        "reply:issue.title: missing required field",
        'reply:tasks: Input should be a valid list (got "all")',
    ]


def test_long_dependency_chain_and_a_cycle_at_its_end() -> None:
    """5,000 chained tasks (no recursion limit), then one back edge: the cycle is named."""
    n = 5000
    tasks = [{"task_id": f"t{i}", "title": "t", "dependencies": [f"t{i - 1}"] if i else []} for i in range(n)]
    doc = {"issue": {"id": "big", "title": "big"}, "tasks": tasks}
    assert validate_sis_document(doc, source="big.json", repo_root=None)[1] == []
    tasks[0]["dependencies"] = ["t2"]
    _, problems = validate_sis_document(doc, source="big.json", repo_root=None)
    assert [str(p) for p in problems] == ["big.json:tasks[0].dependencies[0]: dependency cycle: t0 -> t2 -> t1 -> t0"]


def test_schema_command_prints_the_models_schema(capsys) -> None:
    assert main(["schema", "sis"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["required"] == ["issue", "tasks"]
    edit = schema["$defs"]["EditOp"]
    assert edit["properties"]["old_string"]["minLength"] == 1
    assert edit["additionalProperties"] is False
    task = schema["$defs"]["SisTask"]["properties"]
    assert set(task["priority"]["$ref"].split("/")[-1:]) == {"Priority"}
    assert schema["$defs"]["Priority"]["enum"] == ["CRITICAL", "HIGH", "MEDIUM", "LOW"]

    assert main(["schema", "mission"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["required"] == ["mission"]
    assert {"agents", "budget", "policies", "models"} <= set(schema["properties"])


def test_schema_command_rejects_an_unknown_kind(capsys) -> None:
    try:
        main(["schema", "issue"])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("argparse should refuse")
    assert "invalid choice: 'issue'" in capsys.readouterr().err
