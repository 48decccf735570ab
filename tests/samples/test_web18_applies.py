"""The web-18 sample mission is correct: the review's 18-issue scenario applies on a real
git repository, every validation command passes for real, the recorded first attempt of
the path-validation fix really fails, and the designed pair really conflicts in a 3-way
merge (and only that pair)."""

from __future__ import annotations

import itertools

import pytest

from .mission_kit import (
    OpFailed,
    apply_pair_in_order,
    apply_to_dir,
    final_tree,
    independent_pairs_sharing_files,
    init_repo,
    load_sample,
    passed,
    read_tree,
    run_full_suite,
    run_validation,
    serial_run,
    three_way_merge_pair,
    wave_run,
)

CONFLICT_PAIR = ("a11y-search-field", "sec-search-input")
LAYOUT = "webapp/templates/layout.html"


@pytest.fixture(scope="module")
def sample():
    return load_sample("web-18")


def test_scenario_shape(sample):
    assert sample.config.mission.name == "web-18"
    assert len(sample.sis) == 18 == len(sample.tasks)
    domains = [t.domain for t in sample.tasks.values()]
    assert {d: domains.count(d) for d in set(domains)} == {"accessibility": 12, "security": 3, "performance": 3}
    # Several accessibility tasks per template: locks and domain-aware assignment matter.
    per_template: dict[str, int] = {}
    for task in sample.tasks.values():
        if task.domain == "accessibility":
            for path in task.declared_files:
                if path.startswith("webapp/templates/"):
                    per_template[path] = per_template.get(path, 0) + 1
    assert sorted(per_template.values()) == [3, 3, 3, 3]
    # Performance work is ordered: caching before rate limiting; path validation before caching documents.
    assert sample.tasks["perf-agents-rate-limit"].dependencies == ["perf-agents-cache"]
    assert sample.tasks["perf-knowledge-cache"].dependencies == ["sec-knowledge-path"]
    # The designed conflict: no dependency either way, nobody depends on either.
    a, b = CONFLICT_PAIR
    assert a not in sample.ancestors(b) and b not in sample.ancestors(a)
    assert not any(set(CONFLICT_PAIR) & set(t.dependencies) for t in sample.tasks.values())
    recorded = sample.recorded["sec-knowledge-path"]
    assert [len(recorded.attempts)] == [2]
    assert recorded.attempts[-1].file_operations == sample.tasks["sec-knowledge-path"].file_operations
    for path in sorted((sample.root / "issues").glob("*.md")):
        assert path.read_text().startswith("# "), path.name


def test_app_tests_pass_as_shipped(sample, tmp_path):
    result = run_full_suite(init_repo(sample, tmp_path / "repo"))
    assert result.returncode == 0, result.output


def test_only_the_designed_pair_conflicts(sample):
    pairs = independent_pairs_sharing_files(sample)
    # 3 templates x C(3,2) a11y pairs + layout (3 a11y + the security task) + api.py pairs.
    assert len(pairs) >= 12
    conflicting = []
    for a, b, _ in pairs:
        for path, (conflicts, merged) in three_way_merge_pair(sample, a, b).items():
            if conflicts:
                conflicting.append((a, b, path))
                assert "<<<<<<<" in merged
            else:
                # A clean merge is the same as applying one after the other.
                apply_pair_in_order(sample, a, b)
                apply_pair_in_order(sample, b, a)
    assert conflicting == [(*CONFLICT_PAIR, LAYOUT)]


def test_the_second_of_the_pair_no_longer_applies_after_the_first(sample):
    for first, second in itertools.permutations(CONFLICT_PAIR):
        with pytest.raises(OpFailed, match=f"{LAYOUT}: old_string occurs 0 times"):
            apply_pair_in_order(sample, first, second)


def test_recorded_first_attempt_fails_validation_for_real(sample, tmp_path):
    repo = init_repo(sample, tmp_path / "repo")
    apply_to_dir(repo, sample.recorded["sec-knowledge-path"].attempts[0].file_operations)
    results = run_validation(repo, sample.tasks["sec-knowledge-path"])
    assert not passed(results)
    assert "knowledge-private" in results[0].output and "linked" in results[0].output


@pytest.mark.slow
def test_tasks_integrate_one_by_one_in_dependency_order(sample, tmp_path):
    repo = init_repo(sample, tmp_path / "repo")
    outcomes = serial_run(sample, repo, sample.topological_order())
    statuses = {t: o.status for t, o in outcomes.items()}
    # In file order the accessibility label lands first; the security task then finds its line changed.
    assert statuses == {t: "conflict" if t == "sec-search-input" else "integrated" for t in sample.tasks}
    assert [t for t, o in outcomes.items() if o.first_attempt_failed] == ["sec-knowledge-path"]
    final = run_full_suite(repo)
    assert final.returncode == 0, final.output


@pytest.mark.slow
def test_parallel_waves_integrate_all_but_the_second_of_the_pair(sample, tmp_path):
    repo = init_repo(sample, tmp_path / "repo")
    outcomes = wave_run(sample, repo)
    statuses = {t: o.status for t, o in outcomes.items()}
    assert statuses == {t: "conflict" if t == "sec-search-input" else "integrated" for t in sample.tasks}
    assert f"UU {LAYOUT}" in outcomes["sec-search-input"].detail
    final = run_full_suite(repo)
    assert final.returncode == 0, final.output
    without_loser = [t for t in sample.topological_order() if t != "sec-search-input"]
    assert read_tree(repo) == final_tree(sample, without_loser)


def test_security_checks_are_real_commands_that_fail_before_the_fix(sample, tmp_path):
    repo = init_repo(sample, tmp_path / "repo")
    security_tasks = [t for t in sample.tasks.values() if t.domain == "security"]
    assert all(t.validation.security_checks for t in security_tasks)
    for task in security_tasks:
        checks = task.model_copy(update={"validation": task.validation.model_copy(update={"commands": []})})
        assert not passed(run_validation(repo, checks)), task.task_id
    # The recorded bad attempt is caught by its security check as well as by its tests.
    apply_to_dir(repo, sample.recorded["sec-knowledge-path"].attempts[0].file_operations)
    results = run_validation(repo, sample.tasks["sec-knowledge-path"])
    assert [r.returncode == 0 for r in results] == [False, True, False]
