"""A model missing from the pricing table is refused before anything runs, never a silent $0."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hybrid_tui.app.main import main

QUICKSTART = Path(__file__).resolve().parents[2] / "sample_missions" / "quickstart"


def copy_quickstart(tmp_path: Path) -> Path:
    mission = tmp_path / "mission"
    shutil.copytree(QUICKSTART, mission)
    return mission


def test_validate_names_the_unpriced_model_and_where_it_is_used(tmp_path, capsys):
    mission = copy_quickstart(tmp_path)
    toml = mission / "mission.toml"
    toml.write_text(toml.read_text() + '\n[models]\nstrong = "claude-imaginary-9"\n')
    sis = mission / "sis" / "002-total-stock-value.json"
    doc = json.loads(sis.read_text())
    doc["tasks"][0]["model_hint"] = "gpt-nobody"
    sis.write_text(json.dumps(doc))

    assert main(["validate", str(mission)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("mission.toml:models.strong: unknown model 'claude-imaginary-9'")
    assert lines[1].startswith("sis/002-total-stock-value.json:tasks[0].model_hint: unknown model 'gpt-nobody'")


def test_run_refuses_an_unpriced_model_and_creates_no_run(tmp_path, capsys, monkeypatch):
    mission = copy_quickstart(tmp_path)
    toml = mission / "mission.toml"
    toml.write_text(toml.read_text() + '\n[models]\nimplementer = "claude-imaginary-9"\n')
    monkeypatch.chdir(tmp_path)

    assert main(["run", str(mission), "--headless"]) == 2
    assert "mission.toml:models.implementer: unknown model 'claude-imaginary-9'" in capsys.readouterr().err
    assert not (tmp_path / ".hybrid").exists()


def test_a_price_in_the_mission_makes_the_model_usable(tmp_path, capsys):
    mission = copy_quickstart(tmp_path)
    toml = mission / "mission.toml"
    toml.write_text(
        toml.read_text()
        + '\n[models]\nstrong = "claude-imaginary-9"\n\n[pricing."claude-imaginary-9"]\ninput = 2.0\noutput = 9.0\n'
    )
    assert main(["validate", str(mission)]) == 0
    assert capsys.readouterr().out.startswith("OK: quickstart:")
