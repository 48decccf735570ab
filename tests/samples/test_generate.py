"""The mission generator: deterministic, valid, realistically shaped, and its file
operations really apply (and merge) so the replay backend could run it too."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from hybrid_tui.app.main import main
from hybrid_tui.app.sample_missions import generate_mission
from hybrid_tui.spec.loader import load_mission

from .mission_kit import (
    SAMPLES,
    apply_to_text,
    independent_pairs_sharing_files,
    load_sample,
    read_tree,
    three_way_merge_pair,
)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def mission_120(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("gen") / "m"
    generate_mission(dest, tasks=120, seed=7)
    return dest


def test_same_seed_same_mission_other_seed_other_mission(tmp_path, mission_120):
    generate_mission(tmp_path / "again", tasks=120, seed=7)
    generate_mission(tmp_path / "other", tasks=120, seed=8)
    assert tree(tmp_path / "again") == tree(mission_120)
    assert tree(tmp_path / "other") != tree(mission_120)


def test_committed_scale_200_is_the_generator_output(tmp_path):
    generate_mission(tmp_path / "s", tasks=200, seed=200, name="scale-200")
    assert tree(tmp_path / "s") == tree(SAMPLES / "scale-200")


@pytest.mark.parametrize("tasks", [1, 7, 120])
def test_generated_missions_load_and_validate(tmp_path, tasks):
    generate_mission(tmp_path / "m", tasks=tasks, seed=tasks)
    mission = load_mission(tmp_path / "m")  # raises MissionInvalid on any problem (cycles included)
    assert len(mission.tasks) == tasks
    assert mission.config.agents.backend == "sim"
    assert len(mission.issues) == len(mission.sis)
    assert main(["validate", str(tmp_path / "m")]) == 0


def test_dependency_structure_is_layered_and_realistic(mission_120):
    sample = load_sample(mission_120)
    order = sample.topological_order()  # asserts no cycle
    assert len(order) == 120
    position = {t: i for i, t in enumerate(order)}
    for task in sample.tasks.values():
        assert all(position[d] < position[task.task_id] for d in task.dependencies)
    dep_counts = Counter(len(t.dependencies) for t in sample.tasks.values())
    assert set(dep_counts) <= {0, 1, 2, 3}
    assert dep_counts[0] >= 12 and dep_counts[1] + dep_counts[2] + dep_counts[3] >= 60
    dependents = Counter(d for t in sample.tasks.values() for d in t.dependencies)
    assert dependents.most_common(1)[0][1] >= 8  # hubs exist
    assert len(sample.levels()) >= 4  # chains several tasks deep


def test_file_popularity_is_skewed(mission_120):
    sample = load_sample(mission_120)
    touches = Counter(p for t in sample.tasks.values() for p in t.declared_files)
    ranked = [n for _, n in touches.most_common()]
    assert 20 <= len(read_tree(sample.repo)) <= 80  # a few dozen files
    assert ranked[0] >= 4 * ranked[len(ranked) // 2]  # a few hot files, a long tail
    assert sum(1 for n in ranked if n == 1) >= len(ranked) // 3


def test_priorities_domains_and_estimates_are_mixed(mission_120):
    tasks = list(load_sample(mission_120).tasks.values())
    assert {t.priority.value for t in tasks} == {"CRITICAL", "HIGH", "MEDIUM", "LOW"}
    assert len({t.domain for t in tasks}) >= 4
    minutes = sorted(t.estimated_duration_minutes for t in tasks)
    assert 2 <= minutes[0] and minutes[-1] <= 90 and 6 <= minutes[len(minutes) // 2] <= 20
    assert all(t.estimated_tokens.input > t.estimated_tokens.output > 0 for t in tasks)


def test_every_operation_applies_in_dependency_order_and_compiles(mission_120):
    sample = load_sample(mission_120)
    files = read_tree(sample.repo)
    for task_id in sample.topological_order(reverse_ties=True):
        apply_to_text(files, sample.tasks[task_id].file_operations)
    for path, text in files.items():
        if path.endswith(".py"):
            compile(text, path, "exec")
            assert '"pending"' not in text, path


def test_independent_edits_of_a_file_merge_cleanly(mission_120):
    sample = load_sample(mission_120)
    pairs = independent_pairs_sharing_files(sample)
    assert len(pairs) > 50  # plenty of lock contention
    for a, b, _ in random.Random(1).sample(pairs, 25):
        for path, (conflicts, _) in three_way_merge_pair(sample, a, b).items():
            assert conflicts == 0, (a, b, path)


def test_cli_writes_a_mission_and_refuses_a_non_empty_folder(tmp_path, capsys):
    dest = tmp_path / "out"
    assert main(["generate", "--tasks", "12", "--seed", "3", str(dest)]) == 0
    assert load_mission(dest).name == "synthetic-12"
    before = tree(dest)
    assert main(["generate", "--tasks", "5", "--seed", "4", str(dest)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an empty folder" in err
    assert tree(dest) == before  # nothing changed


def test_cli_rejects_zero_tasks(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--tasks", "0", "--seed", "1", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    assert not (tmp_path / "x").exists()
