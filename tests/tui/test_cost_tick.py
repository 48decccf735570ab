"""The console's cost summary on a tick (issue 21: the 10,000-task tick was mostly the cost
summary's queries, each a scan of every task). While no attempt and no task's cost stand
changed, a tick reuses the last summary and moves only the burn chart with the clock; the
result is what a fresh ``cost_summary`` computes."""

from __future__ import annotations

from hybrid_tui.store import cost_queries
from hybrid_tui.store import models as m
from hybrid_tui.tui.data import StoreView

from .conftest import FIXED, RUN_ID


def test_a_tick_reuses_the_cost_summary_until_an_attempt_or_a_cost_stand_changes(demo_store, monkeypatch):
    scans: list[str] = []
    task_estimate_groups = cost_queries.task_estimate_groups

    def counted(run_id, long_task_minutes):
        scans.append(run_id)
        return task_estimate_groups(run_id, long_task_minutes)

    monkeypatch.setattr(cost_queries, "task_estimate_groups", counted)
    now = [FIXED]
    view = StoreView(demo_store, RUN_ID, lambda: now[0])
    first = view.poll(now[0])
    assert first.costs is not None and len(scans) == 1

    def rewrite(**fields) -> None:
        with demo_store.write(RUN_ID) as version:
            m.Task.update(version=version, **fields).where(m.Task.task_id == "T2-model").execute()

    # A status step inside the same cost stand (running → validating), the clock past the
    # burn chart's refresh: new costs, no scan of the tasks, and the same figures as a fresh
    # summary (the burn chart moved with the clock).
    rewrite(status="validating")
    now[0] += StoreView.COST_REFRESH_SECONDS + 1
    delta = view.poll(now[0])
    assert delta.costs is not None and len(scans) == 1
    fresh = view.cost_summary(now[0])
    assert delta.costs == fresh and len(scans) == 2
    assert delta.costs.burn and delta.costs.spent_usd > 0
    # The same step before the refresh is due: no costs at all.
    rewrite(status="running")
    now[0] += 1
    assert view.poll(now[0]).costs is None and len(scans) == 2
    # A task finishing moves its cost stand: a full summary.
    rewrite(status="done")
    now[0] += 1
    delta = view.poll(now[0])
    assert delta.costs is not None and len(scans) == 3
    assert delta.costs.tasks_done == first.costs.tasks_done + 1
    # An attempt's dollars change: a full summary, which counts them.
    with demo_store.write(RUN_ID) as version:
        m.Attempt.update(cost_usd=m.Attempt.cost_usd + 1.0, version=version).where(
            (m.Attempt.task_id == "T2-model") & (m.Attempt.number == 1)).execute()
    now[0] += 1
    delta = view.poll(now[0])
    assert delta.costs is not None and len(scans) == 4
    assert abs(delta.costs.spent_usd - (first.costs.spent_usd + 1.0)) < 1e-9
    assert delta.costs == view.cost_summary(now[0])
