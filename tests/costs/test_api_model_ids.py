"""The pricing table knows which spellings the Anthropic API accepts and each model's output
limit; ``validate`` (and ``run``) refuse, for the anthropic backend, what the API would refuse
(issue 18, item 9)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hybrid_tui.costs.pricing import PricingTable
from hybrid_tui.spec.models import Usage

REPO_ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = REPO_ROOT / "sample_missions" / "quickstart"


@pytest.fixture
def table(tmp_path):
    return PricingTable.load(user_config=tmp_path / "absent.toml")


def test_each_row_maps_its_dated_and_alias_api_ids(table):
    usage = Usage(input_tokens=1000, output_tokens=100)
    for api_id, row in [("claude-3-5-haiku-20241022", "claude-3-5-haiku"), ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
                        ("claude-3-7-sonnet-20250219", "claude-3-7-sonnet"), ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
                        ("claude-sonnet-4-20250514", "claude-sonnet-4-0"), ("claude-haiku-4-5", "claude-haiku-4-5")]:
        assert table.is_api_id(api_id), api_id
        assert table.cost(api_id, usage) == table.cost(row, usage)
    # Row names and aliases still price (reports, old runs) but are not what the API accepts.
    for name in ("claude-3-5-haiku", "claude-3-7-sonnet", "claude-haiku-3.5", "sonnet"):
        assert name in table and not table.is_api_id(name), name
    assert table.api_ids_of("claude-3-5-haiku") == ["claude-3-5-haiku-20241022", "claude-3-5-haiku-latest"]
    assert table.output_limit("claude-3-5-haiku-20241022") == 8192
    assert table.output_limit("claude-opus-4-6") == 128_000
    # A suffix the table does not list is not guessed.
    assert "claude-sonnet-4-5-20990101" not in table


def test_a_mission_model_of_its_own_is_its_own_api_id(tmp_path):
    table = PricingTable.load({"my-gateway-model": {"input": 1.0, "output": 2.0}}, user_config=tmp_path / "absent.toml")
    assert table.is_api_id("my-gateway-model") and table.output_limit("my-gateway-model") is None


def validate(mission: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hybrid_tui", "validate", str(mission), *extra],
                          capture_output=True, text=True, timeout=120, cwd=mission.parent)


def mission_with(tmp_path: Path, models: str) -> Path:
    import shutil

    root = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, root, ignore=shutil.ignore_patterns(".pytest_cache", "__pycache__"))
    toml = root / "mission.toml"
    text = toml.read_text()
    assert "[models]" not in text
    toml.write_text(text + "\n[models]\n" + models)
    return root


def test_validate_refuses_what_the_api_would_refuse(tmp_path):
    root = mission_with(tmp_path, 'planner = "claude-3-5-haiku"\nimplementer = "claude-3-7-sonnet"\n'
                                  'strong = "claude-3-5-haiku-20241022"\nplanner_max_tokens = 16000\n'
                                  'implementer_max_tokens = 9000\n')
    proc = validate(root, "--backend", "anthropic")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert ("mission.toml:models.planner: 'claude-3-5-haiku' is not an Anthropic API model id "
            "(use claude-3-5-haiku-20241022 or claude-3-5-haiku-latest)") in lines
    assert any(line.startswith("mission.toml:models.implementer: 'claude-3-7-sonnet' is not an Anthropic API model id")
               for line in lines)
    assert ("mission.toml:models.implementer_max_tokens: 9000 is above claude-3-5-haiku-20241022's output limit "
            "of 8192 tokens (the API refuses it)") in lines
    assert any("output_tokens_per_minute limit of 8000" in line for line in lines)
    # The replay backend sends nothing to the API: the same names only need a price.
    assert validate(root).returncode == 0


def test_validate_accepts_dated_and_latest_ids_within_their_limits(tmp_path):
    root = mission_with(tmp_path, 'planner = "claude-3-5-haiku-latest"\nimplementer = "claude-haiku-4-5-20251001"\n'
                                  'strong = "claude-sonnet-4-5"\nplanner_max_tokens = 8000\n'
                                  '[models.limits."claude-3-5-haiku-latest"]\noutput_tokens_per_minute = 16000\n')
    proc = validate(root, "--backend", "anthropic")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_resuming_a_run_with_the_anthropic_backend_refuses_models_the_api_would_refuse(tmp_path, monkeypatch):
    """A run made with the replay backend (its names only need a price), resumed with
    ``--backend anthropic``: refused in one line naming the field, nothing changed."""
    import shutil

    from hybrid_tui.app.launch import LaunchError, open_run, start_run
    from hybrid_tui.store import models as m

    root = tmp_path / "m"
    repo = root / "repo"
    repo.mkdir(parents=True)
    (repo / "README.md").write_text("demo\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=u", "-c", "user.email=u@e", "commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    (root / "issues").mkdir()
    (root / "issues" / "001-work.md").write_text("# Work\n\nDo it.\n")
    (root / "sis").mkdir()
    (root / "sis" / "001-work.json").write_text(
        '{"sis_version": "1.0", "issue": {"id": "001-work", "title": "Work"}, "tasks": [{"task_id": "a", '
        '"title": "A", "file_operations": [{"op": "create", "path": "a.txt", "content": "a\\n"}]}]}')
    (root / "mission.toml").write_text('[mission]\nname = "demo"\nrepo = "repo"\n\n[models]\n'
                                       'planner = "claude-3-5-haiku"\nimplementer = "claude-haiku-4-5"\n'
                                       'strong = "claude-haiku-4-5"\n')
    store, run_id, _ = start_run(root, tmp_path / "runs", backend="replay")
    store.close()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    with pytest.raises(LaunchError) as refused:
        open_run(run_id, tmp_path / "runs", backend="anthropic")
    assert ("mission.toml:models.planner: 'claude-3-5-haiku' is not an Anthropic API model id "
            "(use claude-3-5-haiku-20241022 or claude-3-5-haiku-latest)") in str(refused.value)
    store, _, _ = open_run(run_id, tmp_path / "runs")  # its own backend still resumes
    try:
        assert m.Run.get_by_id(run_id).backend == "replay"
    finally:
        store.close()
    shutil.rmtree(tmp_path / "runs")
