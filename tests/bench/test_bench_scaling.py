"""The scaling benchmark's harness: each size is measured several times and its figure is
the least CPU of those runs (one load spike on a shared machine must not decide the 50k/1k
ratio). No timing is asserted."""

from __future__ import annotations

import pytest

from bench import scaling


@pytest.mark.slow
def test_each_size_is_measured_repeatedly_and_its_figure_is_the_least_cpu():
    figures, details = scaling.run(quick=True, repeats=2)
    for n in (100, 300, 1_000):
        each = details[str(n)]["cpu_s_each_run"]
        assert len(each) == 2 and all(cpu > 0 for cpu in each)
        assert details[str(n)]["cpu_s"] == min(each)
    flat = [f for f in figures if f.name == "runtime+store per task, CPU, 1,000 tasks"]
    assert len(flat) == 1 and flat[0].budget == scaling.FLAT_RATIO_LIMIT == 1.3
    assert flat[0].value == pytest.approx(min(details["1000"]["cpu_s_each_run"]) / 1_000 * 1e3)


@pytest.mark.slow
def test_a_size_already_measured_counts_as_one_of_its_repeats():
    known = scaling.measure(100, 8, 1, baselines=False)
    _, details = scaling.run(quick=True, agents=8, repeats=1, known={100: known})
    assert details["100"]["cpu_s_each_run"] == [known.runtime.cpu]
