"""The run report: one document (dict for --json, Markdown for people) of a finished or running run.

Room: costs. Reads the store through ``accounting`` and ``store.queries``; writes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from hybrid_tui.store import open_store, queries
from hybrid_tui.store.db import redact_url
from hybrid_tui.store.records import AttemptRecord
from hybrid_tui.store.runs import DEFAULT_RUNS_DIR, run_store_location

from hybrid_tui.costs import accounting as acc
from hybrid_tui.costs.pricing import PricingTable, UnknownModel

STORE_FILE = "state.db"
BUDGET_EVENT_PREFIXES = ("budget", "alert.budget", "alert.retry_budget")
TIMELINE_LIMIT = 500  # events shown in Markdown; --json carries them all


class RunNotFound(LookupError):
    def __str__(self) -> str:
        return self.args[0]


def locate_run(run: str, runs_dir: Path = DEFAULT_RUNS_DIR) -> tuple[str, str]:
    """(store location, run id) for a run id under ``runs_dir`` or a run folder path: its
    state.db, or the store its store.url names."""
    candidates = [Path(run), runs_dir / run]
    for folder in candidates:
        location = run_store_location(folder)
        if location is not None:
            return location, folder.resolve().name
    raise RunNotFound(f"no run {run!r} (looked for {' and '.join(str(c / STORE_FILE) for c in candidates)})")


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="seconds")


def build_report(run_id: str, *, now: float | None = None, table: PricingTable | None = None) -> dict[str, Any]:
    """Everything the report shows, as plain JSON-ready data (the store must be open)."""
    run = queries.run_record(run_id)
    tasks = queries.task_records(run_id)
    attempts = queries.attempt_records(run_id)
    events = queries.event_records(run_id)
    table = table or acc.table_for_run(run)
    end = run.finished_at or now or max(
        [run.updated_at] + [a.finished_at or a.started_at for a in attempts] + [e.ts for e in events]
    )

    summary = acc.summarize_spend(
        attempts,
        mission_budget=run.mission_budget_usd,
        retry_budget=run.retry_budget_usd,
        alerts=acc.alert_thresholds(run),
        table=table,
    )
    tiers = acc.run_models(run)
    warnings: list[str] = []
    try:
        projection = acc.project(
            tasks, attempts, table, models=tiers, mission_budget=run.mission_budget_usd,
        ).to_dict()
    except UnknownModel as exc:  # a report of what happened must not fail over a forecast
        projection = None
        warnings.append(f"no projection: {exc}")

    # Per model: cost and tokens.
    models: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for a in attempts:
        row = models[a.model or "(none)"]
        row["attempts"] += 1
        row["cost_usd"] += acc.attempt_cost(a, table)
        row["input_tokens"] += a.input_tokens or 0
        row["output_tokens"] += a.output_tokens or 0
        row["cache_read_tokens"] += a.cache_read_tokens or 0
        row["cache_write_tokens"] += a.cache_write_tokens or 0

    # Per task, with its estimate against what it actually cost.
    by_task_attempts: dict[str, list[AttemptRecord]] = defaultdict(list)
    for a in attempts:
        by_task_attempts[a.task_id].append(a)
    task_rows = []
    for t in tasks:
        mine = [a for a in by_task_attempts.get(t.task_id, []) if acc.attempt_phase(a) != "planning"]
        actual = sum(acc.attempt_cost(a, table) for a in mine)
        try:
            estimate = acc.estimated_task_cost(t, acc.task_model(t, tiers), table)
        except UnknownModel:
            estimate = None
        task_rows.append(
            {
                "task_id": t.task_id,
                "issue_id": t.issue_id,
                "title": t.title,
                "priority": t.priority,
                "status": t.status,
                "attempts": len(mine),
                "cost_usd": actual,
                "estimated_cost_usd": estimate,
                "actual_to_estimate": (actual / estimate) if estimate and t.status in acc.FINISHED_STATUSES else None,
                "estimated_duration_minutes": t.estimated_duration_minutes,
                "duration_seconds": sum(a.duration_seconds or 0 for a in mine),
                "failure_type": t.failure_type,
                "attention_reason": t.attention_reason,
                "commit_sha": t.commit_sha,
            }
        )

    failures: dict[str, dict[str, float]] = defaultdict(lambda: {"attempts": 0, "cost_usd": 0.0})
    for a in attempts:
        if a.outcome == "failed" or a.failure_type:
            kind = a.failure_type or "unknown"
            failures[kind]["attempts"] += 1
            failures[kind]["cost_usd"] += acc.attempt_cost(a, table)
    status_counts = Counter(t.status for t in tasks)
    finished = [r for r in task_rows if r["status"] in acc.FINISHED_STATUSES and r["estimated_cost_usd"] is not None]
    estimate_vs_actual = {
        "finished_tasks": len(finished),
        "estimated_usd": sum(r["estimated_cost_usd"] for r in finished),
        "actual_usd": sum(r["cost_usd"] for r in finished),
        "estimated_minutes": sum(r["estimated_duration_minutes"] for r in finished),
        "actual_minutes": sum(r["duration_seconds"] for r in finished) / 60.0,
    }
    timeline = [
        {
            "seq": e.seq,
            "ts": e.ts,
            "at": _iso(e.ts),
            "offset_seconds": e.ts - run.created_at,
            "level": e.level,
            "kind": e.kind,
            "task_id": e.task_id,
            "attempt": e.attempt,
            "agent_id": e.agent_id,
            "message": e.message,
            "data": json.loads(e.data_json or "{}"),
        }
        for e in events
    ]
    # The coordinator persists the core's budget alerts as alert.budget*, alert.retry_budget*;
    # a task refused for lack of budget says so in its status message.
    budget_events = [
        e for e in timeline
        if e["kind"].startswith(BUDGET_EVENT_PREFIXES) or "budget" in (e["message"] or "").lower()
    ]
    waits = queries.wait_reasons(run_id)
    for row in task_rows:
        wait = waits.get(row["task_id"])
        row["wait_reason"] = wait.message if wait is not None else None

    return {
        "run": {
            "id": run.id,
            "mission": run.mission_name,
            "status": run.status,
            "pause_reason": run.pause_reason,
            "backend": run.backend,
            "mission_branch": run.mission_branch,
            "created_at": _iso(run.created_at),
            "finished_at": _iso(run.finished_at),
            "elapsed_seconds": end - run.created_at,
        },
        "tasks_by_status": dict(sorted(status_counts.items())),
        "spend": summary.to_dict(),
        "burn_rate_usd_per_hour": acc.burn_rate_of(attempts, end, window_seconds=None, start=run.created_at, table=table),
        "projection": projection,
        "by_model": {name: dict(values) for name, values in models.items()},
        "tasks": task_rows,
        "failures_by_type": {k: dict(v) for k, v in sorted(failures.items())},
        "estimate_vs_actual": estimate_vs_actual,
        "budget_events": budget_events,
        # Tasks a budget stopped: refused at dispatch, or an attempt cut at its cap.
        "budget_stopped_tasks": [
            r["task_id"] for r in task_rows if r["status"] == "failed" and r["failure_type"] == "budget_exhausted"
        ],
        "time_forecast": _time_forecast(run_id, run.finished_at, end),
        "waiting": [{"task_id": w.task_id, "kind": w.kind, "message": w.message, "holder": w.holder,
                     "until": _iso(w.until)} for w in waits.values()],
        "timeline": timeline,
        "warnings": warnings,
    }


def _time_forecast(run_id: str, finished_at: float | None, end: float) -> dict[str, Any] | None:
    """The forecast made at the start against the actual duration (so far, while running),
    and the latest forecast."""
    first = queries.start_forecast(run_id)
    if first is None:
        return None
    latest = queries.latest_forecast(run_id)
    actual = max((finished_at or end) - first.ts, 0.0)
    return {
        "at_start": {"made_at": _iso(first.ts), "remaining_seconds": first.remaining_seconds,
                     "low_seconds": first.low_seconds, "high_seconds": first.high_seconds,
                     "finish_at": _iso(first.finish_at), "tasks_left": first.tasks_left},
        "actual_seconds": actual,
        "finished": finished_at is not None,
        "actual_to_forecast": actual / first.remaining_seconds if first.remaining_seconds > 0 else None,
        "within_range": first.low_seconds <= actual <= first.high_seconds if finished_at is not None else None,
        "latest": None if latest is None else {
            "made_at": _iso(latest.ts), "remaining_seconds": latest.remaining_seconds,
            "low_seconds": latest.low_seconds, "high_seconds": latest.high_seconds,
            "finish_at": _iso(latest.finish_at), "tasks_left": latest.tasks_left, "speed": latest.speed},
        "forecasts": len(queries.forecast_records(run_id)),
    }


# ---------------------------------------------------------------------------- Markdown


def usd(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:,.2f}" if abs(value) >= 10 else f"${value:.4f}"


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f} %"


def _hms(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(headers: list[str], rows: list[list[Any]], align: str = "") -> str:
    """A GitHub Markdown table; ``align`` has one of l/r per column (default left)."""
    align = align.ljust(len(headers), "l")
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: dict[str, Any]) -> str:
    run, spend, proj = report["run"], report["spend"], report["projection"]
    out: list[str] = [f"# Run report: {run['mission']} ({run['id']})", ""]

    out += ["## Summary", ""]
    tasks_line = ", ".join(f"{n} {s}" for s, n in report["tasks_by_status"].items()) or "no tasks"
    out += [
        f"- Status: **{run['status']}**" + (f" ({run['pause_reason']})" if run["pause_reason"] else ""),
        f"- Backend: {run['backend']}; mission branch `{run['mission_branch']}`",
        f"- Started {run['created_at']}" + (f", finished {run['finished_at']}" if run["finished_at"] else "")
        + f"; elapsed {_hms(run['elapsed_seconds'])}",
        f"- Tasks: {tasks_line}",
        f"- Spent: **{usd(spend['total'])}** of {usd(spend['mission_budget'])} mission budget "
        f"({pct(spend['mission_fraction'])}); retries {usd(spend['retry_spent'])} of "
        f"{usd(spend['retry_budget'])} ({pct(spend['retry_fraction'])})",
        f"- Burn rate: {usd(report['burn_rate_usd_per_hour'])}/hour",
    ]
    if spend["alert_level"] is not None:
        out.append(f"- Budget alert: mission budget past {pct(spend['alert_level'])}")
    stopped = report["budget_stopped_tasks"]
    if stopped:
        out.append(f"- **Stopped by the budget**: {len(stopped)} task(s) ({', '.join(stopped)}); "
                   "raise it with `hybrid-tui budget RUN --mission-usd X`, then retry them")
    if proj:
        out.append(
            f"- Projected total at completion: {usd(proj['projected_total'])} "
            f"({proj['remaining_tasks']} tasks to run, estimates x {proj['actual_to_estimate_ratio']:.2f})"
            + (" — **over budget**" if proj["over_budget"] else "")
        )
    out += [f"- Warning: {w}" for w in report["warnings"]]

    out += ["", "## Cost breakdown", "", "By phase:", ""]
    total = spend["total"] or 1.0
    out.append(
        md_table(
            ["phase", "cost", "share"],
            [[p, usd(c), pct(c / total)] for p, c in spend["by_phase"].items()] + [["**total**", usd(spend["total"]), ""]],
            "lrr",
        )
    )
    out += ["", "By model:", ""]
    out.append(
        md_table(
            ["model", "attempts", "input", "output", "cache write", "cache read", "cost"],
            [
                [name, int(v["attempts"]), f"{int(v['input_tokens']):,}", f"{int(v['output_tokens']):,}",
                 f"{int(v['cache_write_tokens']):,}", f"{int(v['cache_read_tokens']):,}", usd(v["cost_usd"])]
                for name, v in sorted(report["by_model"].items(), key=lambda kv: -kv[1]["cost_usd"])
            ],
            "lrrrrrr",
        )
    )

    out += ["", "## Tasks", ""]
    out.append(
        md_table(
            ["task", "title", "status", "attempts", "cost", "estimate", "actual/est", "failure"],
            [
                [r["task_id"], r["title"], r["status"], r["attempts"], usd(r["cost_usd"]),
                 usd(r["estimated_cost_usd"]),
                 "—" if r["actual_to_estimate"] is None else f"{r['actual_to_estimate']:.2f}",
                 r["failure_type"] or ""]
                for r in report["tasks"]
            ],
            "lllrrrrl",
        )
    )

    out += ["", "## Failures by type", ""]
    if report["failures_by_type"]:
        out.append(
            md_table(
                ["failure type", "attempts", "cost"],
                [[k, int(v["attempts"]), usd(v["cost_usd"])] for k, v in report["failures_by_type"].items()],
                "lrr",
            )
        )
    else:
        out.append("No failed attempts.")

    eva = report["estimate_vs_actual"]
    out += ["", "## Estimate vs actual", ""]
    if eva["finished_tasks"]:
        ratio = eva["actual_usd"] / eva["estimated_usd"] if eva["estimated_usd"] else None
        out.append(
            md_table(
                ["finished tasks", "estimated cost", "actual cost", "ratio", "estimated time", "actual time"],
                [[eva["finished_tasks"], usd(eva["estimated_usd"]), usd(eva["actual_usd"]),
                  "—" if ratio is None else f"{ratio:.2f}",
                  _hms(eva["estimated_minutes"] * 60), _hms(eva["actual_minutes"] * 60)]],
                "rrrrrr",
            )
        )
    else:
        out.append("No finished tasks yet.")

    out += ["", "## Time", ""]
    tf = report.get("time_forecast")
    if tf is None:
        out.append("No time forecast was made (the run never dispatched).")
    else:
        start = tf["at_start"]
        ratio = "" if tf["actual_to_forecast"] is None else f" ({tf['actual_to_forecast']:.2f} x the forecast)"
        out += [
            f"- Forecast at the start ({start['made_at']}, {start['tasks_left']} tasks): "
            f"{_hms(start['remaining_seconds'])} (range {_hms(start['low_seconds'])} to {_hms(start['high_seconds'])}), "
            f"finish {start['finish_at']}",
            f"- Actual: {_hms(tf['actual_seconds'])}{ratio}" + ("" if tf["finished"] else " so far (still running)")
            + ("" if tf["within_range"] is None else "; within the range" if tf["within_range"] else "; outside the range"),
        ]
        latest = tf["latest"]
        if latest is not None and not tf["finished"]:
            out.append(f"- Latest forecast ({latest['made_at']}, {latest['tasks_left']} tasks left): finish "
                       f"{latest['finish_at']}, {_hms(latest['remaining_seconds'])} after it was made")
    waiting = report.get("waiting") or []
    out += ["", "## Waiting tasks", ""]
    if waiting:
        out.append(md_table(["task", "waits for", "why"],
                            [[w["task_id"], w["holder"] or w["kind"], w["message"]
                              + (f" (until {w['until']})" if w["until"] else "")] for w in waiting], "lll"))
    else:
        out.append("No task is waiting to run.")

    out += ["", "## Budget events", ""]
    if report["budget_events"]:
        out += [f"- +{_hms(e['offset_seconds'])} **{e['kind']}** " + (f"{e['task_id']}: " if e["task_id"] else "")
                + e["message"] for e in report["budget_events"]]
    else:
        out.append("No budget events.")

    timeline = report["timeline"]
    out += ["", "## Timeline", ""]
    if timeline:
        shown = timeline[-TIMELINE_LIMIT:]
        if len(shown) < len(timeline):
            out += [f"(last {len(shown)} of {len(timeline)} events; --json has them all)", ""]
        out.append(
            md_table(
                ["time", "level", "event", "task", "message"],
                [[f"+{_hms(e['offset_seconds'])}", e["level"], e["kind"], e["task_id"] or "", e["message"]] for e in shown],
                "rlll",
            )
        )
    else:
        out.append("No events.")
    return "\n".join(out) + "\n"


def report_for(run: str, runs_dir: Path = DEFAULT_RUNS_DIR, *, now: float | None = None,
               store_url: str | None = None) -> dict[str, Any]:
    """Open the run's store read-only-in-spirit, build the report in one read snapshot,
    close the store. With ``store_url`` the run is looked up in that store by id."""
    if store_url:
        store_path, run_id = store_url, Path(run).name
    else:
        store_path, run_id = locate_run(run, runs_dir)
    store = open_store(store_path, create=False)
    try:
        with store.read():  # one committed state, even while the coordinator writes
            if queries.find_run(run_id) is None:
                if store_url:
                    raise RunNotFound(f"{redact_url(store_url)}: no run {run_id!r} in this store")
                # A folder not named after its run: take the store's only run.
                ids = queries.run_ids()
                if len(ids) != 1:
                    raise RunNotFound(f"{redact_url(str(store_path))}: holds runs {ids}, none named {run_id!r}")
                run_id = ids[0]
            return build_report(run_id, now=now)
    finally:
        store.close()
