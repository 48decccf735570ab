"""The quickstart sample mission is correct: it validates, every task's file operations
apply in dependency order (and in parallel waves) on a real git repository, every
validation command passes for real, and the recorded first attempt of `low-stock` fails."""

from __future__ import annotations

import pytest

from .mission_kit import (
    apply_pair_in_order,
    chain_depth,
    independent_pairs_sharing_files,
    init_repo,
    load_sample,
    run_full_suite,
    run_validation,
    serial_run,
    wave_run,
    passed,
    read_tree,
    final_tree,
    three_way_merge_pair,
)


@pytest.fixture(scope="module")
def sample():
    return load_sample("quickstart")


def test_mission_shape(sample):
    assert sample.config.mission.name == "quickstart"
    assert sample.config.agents.backend == "replay"
    assert sample.config.agents.min_implementers >= 4
    assert 6 <= len(sample.sis) <= 10
    assert len(list((sample.root / "issues").glob("*.md"))) == len(sample.sis)
    assert chain_depth(sample) >= 3
    # Two independent tasks share inventory/store.py, and they are the only such pair.
    assert [(a, b, files) for a, b, files in independent_pairs_sharing_files(sample)] == [
        ("total-value", "low-stock", {"inventory/store.py"})
    ]
    # Recorded attempts: a bad one, then exactly the SIS's operations.
    recorded = sample.recorded["low-stock"]
    assert len(recorded.attempts) == 2
    assert recorded.attempts[-1].file_operations == sample.tasks["low-stock"].file_operations
    for task in sample.tasks.values():
        assert task.file_operations and task.validation.commands
        assert all(" python -m pytest -q tests/" in f" {cmd}" for cmd in task.validation.commands)


def test_issue_files_have_a_title_and_body(sample):
    for path in sorted((sample.root / "issues").glob("*.md")):
        first, _, body = path.read_text().partition("\n")
        assert first.startswith("# ") and body.strip(), path.name


def test_project_tests_pass_as_shipped(sample, tmp_path):
    repo = init_repo(sample, tmp_path / "repo")
    result = run_full_suite(repo)
    assert result.returncode == 0, result.output


def test_independent_edits_apply_in_either_order_and_merge_cleanly(sample):
    for a, b, _ in independent_pairs_sharing_files(sample):
        apply_pair_in_order(sample, a, b)
        apply_pair_in_order(sample, b, a)
        for path, (conflicts, _) in three_way_merge_pair(sample, a, b).items():
            assert conflicts == 0, (a, b, path)


def test_tasks_integrate_one_by_one_in_dependency_order(sample, tmp_path):
    repo = init_repo(sample, tmp_path / "repo")
    order = sample.topological_order()
    outcomes = serial_run(sample, repo, order)
    assert {o.status for o in outcomes.values()} == {"integrated"}
    assert [t for t, o in outcomes.items() if o.first_attempt_failed] == ["low-stock"]
    final = run_full_suite(repo)
    assert final.returncode == 0, final.output
    assert "passed" in final.output and "failed" not in final.output


def test_recorded_first_attempt_fails_on_the_threshold_test(sample, tmp_path):
    repo = init_repo(sample, tmp_path / "repo")
    from .mission_kit import apply_to_dir

    apply_to_dir(repo, sample.recorded["low-stock"].attempts[0].file_operations)
    results = run_validation(repo, sample.tasks["low-stock"])
    assert not passed(results)
    assert "test_items_at_or_below_the_threshold_are_low" in results[0].output


def test_parallel_waves_merge_cleanly(sample, tmp_path):
    repo = init_repo(sample, tmp_path / "repo")
    outcomes = wave_run(sample, repo)
    assert {t: o.status for t, o in outcomes.items()} == {t: "integrated" for t in sample.tasks}
    final = run_full_suite(repo)
    assert final.returncode == 0, final.output
    # Same tree whichever order the tasks were integrated in.
    for reverse_ties in (False, True):
        assert read_tree(repo) == final_tree(sample, sample.topological_order(reverse_ties=reverse_ties))
