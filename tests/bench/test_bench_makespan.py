"""The makespan benchmark's claims, on its seeded DAG families (virtual time: no clock).

The default (critical-path aware) priority matches a textbook critical-path list scheduler
(median within 3 %, never worse where files contend); the review's formula, kept as
``mode = "review"``, starves the critical path; nothing beats the lower bound."""

from __future__ import annotations

import pytest

from bench import makespan
from bench.common import median
from hybrid_tui.core import TaskInfo


@pytest.mark.parametrize("family", makespan.FAMILIES)
def test_default_priority_keeps_up_with_the_critical_path_list_scheduler(family):
    r = makespan.measure(family, seeds=5)
    assert median(r.default) <= makespan.MAKESPAN_BUDGET * median(r.cp_list)
    if family == "shared-files":
        assert median(r.default_vs_list) <= 1.0 + 1e-9
    for ratio in r.default + r.review + r.cp_list:
        assert ratio >= 1.0 - 1e-9  # the lower bound is one


def test_the_review_formula_starves_the_chains():
    r = makespan.measure("chains", seeds=5)
    assert median(r.review) > 1.1 > median(r.default)


def test_reference_list_scheduler_and_bound_on_a_hand_made_dag():
    # a(10) -> b(10); c(15) and d(5) share f.py; 2 agents: a, c first (longest paths), then b
    # and d (c frees f.py at 15): makespan 20 = the bound (total 40 / 2 agents).
    tasks = [TaskInfo("a", estimated_duration_minutes=10), TaskInfo("b", dependencies=("a",), estimated_duration_minutes=10),
             TaskInfo("c", files=("f.py",), estimated_duration_minutes=15),
             TaskInfo("d", files=("f.py",), estimated_duration_minutes=5)]
    assert makespan.critical_path_list(tasks, 2) == 20
    assert makespan.lower_bound(tasks, 2) == 20
    assert makespan.hybrid_makespan(tasks, 2, "critical_path") == 20
    assert makespan.lower_bound(tasks, 1) == 40 and makespan.critical_path_list(tasks, 1) == 40
