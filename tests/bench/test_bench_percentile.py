"""The benchmarks' percentile is the nearest-rank one its docstring names: the smallest value
with at least q % of the values at or below it."""

from bench.common import percentile


def test_p95_of_twenty_values_is_the_nineteenth_not_the_largest():
    values = [float(v) for v in range(1, 21)]  # 1..20
    assert percentile(values, 95) == 19.0
    assert percentile(values, 50) == 10.0
    assert percentile(values, 100) == 20.0
    assert percentile(values, 0) == 1.0


def test_nearest_rank_on_sizes_that_do_not_divide_evenly():
    assert percentile([3.0, 1.0, 2.0], 95) == 3.0  # ceil(2.85) = 3rd
    assert percentile([5.0, 1.0, 4.0, 2.0, 3.0, 7.0, 6.0], 50) == 4.0  # ceil(3.5) = 4th
    assert percentile([], 95) == 0.0
