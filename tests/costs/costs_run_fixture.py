"""Builds a real run store (SQLite file in a run folder) with hand-computable spend.

Spend, hand-computed (Sonnet 4.5: $3 in, $15 out, $3.75 cache write, $0.30 cache read):
  ISSUE-1 planning  claude-3-haiku 2,000 in / 3,000 out              = $0.00425
  T1 #1 succeeded   15,000 in / 8,000 out                             = $0.165
  T2 #1 failed      10,000 in / 2,000 out / 40,000 cw / 100,000 cr    = $0.24
  T2 #2 retry       same usage, batch pricing (half)                  = $0.12
  T4 #1 running     so far                                            = $0.05
  total $0.57925 of a $1.00 mission budget; retries $0.12 of $0.50.
"""

from __future__ import annotations

import json
from pathlib import Path

from hybrid_tui.costs.pricing import PricingTable
from hybrid_tui.spec.models import Usage
from hybrid_tui.store import models as m
from hybrid_tui.store import open_store

RUN_ID = "run-20250101-000000"
T0 = 1_700_000_000.0
CACHED = Usage(input_tokens=10_000, output_tokens=2_000, cache_write_tokens=40_000, cache_read_tokens=100_000)


def _config() -> str:
    return json.dumps(
        {
            "mission": {"name": "demo"},
            "models": {"implementer": "claude-sonnet-4-5", "planner": "claude-3-haiku"},
            "policies": {"budget_alerts": [0.5, 0.75, 0.9, 1.0]},
            "pricing": {},
        }
    )


def populate(db_path: Path) -> None:
    table = PricingTable.load(user_config=db_path.parent / "no-user-pricing.toml")
    store = open_store(db_path)
    try:
        with store.write():
            m.Run.create(
                id=RUN_ID, mission_name="demo", mission_path="/m", run_dir=str(db_path.parent),
                repo_path="/r", source_repo="/r", base_branch="main", mission_branch="hybrid/demo",
                backend="anthropic", status="running", config_json=_config(), mission_budget_usd=1.0,
                retry_budget_usd=0.5, pool_min=4, pool_max=12, pool_target=4, created_at=T0, updated_at=T0,
            )
            m.Issue.create(run=RUN_ID, issue_id="ISSUE-1", title="Harden paths")
            for task_id, status, cost in [
                ("T1", "done", 0.165), ("T2", "done", 0.36), ("T3", "pending", 0.0),
                ("T4", "running", 0.05), ("T5", "failed", 0.0),
            ]:
                m.Task.create(
                    run=RUN_ID, task_id=task_id, issue_id="ISSUE-1", title=f"Task {task_id}", priority="HIGH",
                    estimated_duration_minutes=10, estimated_input_tokens=15_000, estimated_output_tokens=8_000,
                    spec_json="{}", status=status, attempts=0, cost_usd=cost, created_at=T0, updated_at=T0,
                    failure_type="git_conflict" if task_id == "T5" else None,
                )
            rows = [
                # task, number, phase, model, start, end, outcome, failure, usage, cost
                ("ISSUE-1", 1, "planning", "claude-3-haiku", T0, T0 + 20, "succeeded", None,
                 Usage(input_tokens=2_000, output_tokens=3_000), None),
                ("T1", 1, "implementing", "claude-sonnet-4-5", T0 + 30, T0 + 300, "succeeded", None,
                 Usage(input_tokens=15_000, output_tokens=8_000), None),
                ("T2", 1, "implementing", "claude-sonnet-4-5", T0 + 30, T0 + 400, "failed", "validation_failed",
                 CACHED, None),
                ("T2", 2, "retry", "claude-sonnet-4-5", T0 + 400, T0 + 700, "succeeded", None, CACHED,
                 table.cost("claude-sonnet-4-5", CACHED, batch=True)),
                ("T4", 1, "implementing", "claude-sonnet-4-5", T0 + 700, None, "running", None,
                 Usage(input_tokens=1_000), 0.05),
            ]
            for task_id, number, phase, model, start, end, outcome, failure, usage, cost in rows:
                m.Attempt.create(
                    run=RUN_ID, task_id=task_id, number=number, phase=phase, agent_id="a1", backend="anthropic",
                    model=model, started_at=start, finished_at=end, duration_seconds=(end or start) - start,
                    outcome=outcome, failure_type=failure, failure_message="tests failed" if failure else "",
                    input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                    cache_read_tokens=usage.cache_read_tokens, cache_write_tokens=usage.cache_write_tokens,
                    cost_usd=table.cost(model, usage) if cost is None else cost,
                )
            store.add_event(RUN_ID, "run.started", "run started", ts=T0)
            store.add_event(RUN_ID, "attempt.failed", "T2 failed: validation_failed", level="warning",
                            task_id="T2", attempt=1, ts=T0 + 400)
            store.add_event(RUN_ID, "alert.budget", "mission budget: $0.58 of $1.00 (50% reached)",
                            level="warning", ts=T0 + 700, threshold=0.5)
            store.add_event(RUN_ID, "alert.budget_exhausted", "mission budget cannot cover 1 task(s): T3",
                            level="error", task_id="T3", ts=T0 + 710)
            store.add_event(RUN_ID, "pool.target", "pool target 4: queue depth 1", ts=T0 + 720)
    finally:
        store.close()
