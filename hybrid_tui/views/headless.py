"""Headless mode: drive a run without the console and show its progress from the store.

Room: views (a thin view; it reads the store like the console does and renders text only).

- ``--json``: exactly one JSON object per line on stdout (every event, then a summary), nothing else.
  The run's time forecasts are ``run.forecast`` events (``fields``: ``remaining_seconds``,
  ``finish_at``, ``low_seconds``, ``high_seconds``, ``tasks_left``); the summary carries the
  forecast made at the start next to the actual duration.
- not a TTY: plain lines, one per event; a forecast reads ``forecast: finish ~HH:MM:SS ...``.
- a TTY: a rich progress bar with task counts and the forecast finish; warnings and errors
  printed above it.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import Any, TextIO

import anyio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from hybrid_tui.store import queries
from hybrid_tui.store.db import Store
from hybrid_tui.store.records import EventRecord
from hybrid_tui.vocabulary import TASK_STATUSES, inert

POLL_SECONDS = 0.2
STATUSES = TASK_STATUSES


def status_counts(run_id: str) -> dict[str, int]:
    counts = {s: 0 for s in STATUSES}
    counts.update(queries.task_status_counts(run_id))
    return counts


class EventFeed:
    """New Event rows since the last call, in order."""

    def __init__(self, run_id: str, since_seq: int = 0):
        self.run_id = run_id
        self.last_seq = since_seq

    def poll(self, limit: int = 1000) -> list[EventRecord]:
        rows = queries.events_after(self.run_id, self.last_seq, limit)
        if rows:
            self.last_seq = rows[-1].seq
        return rows


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def forecast_line(remaining: float, finish_at: float, low: float, high: float, tasks_left: int) -> str:
    """``finish ~14:05:10 (13:58:02-14:20:41), 12 tasks left``: the forecast finish with its range."""
    start = finish_at - remaining
    return (f"finish ~{_clock(finish_at)} ({_clock(start + low)}-{_clock(start + high)}), "
            f"{tasks_left} tasks left")


def start_vs_actual(run_id: str) -> dict[str, Any] | None:
    """The forecast made at the run's start next to how long the run took so far (or in all)."""
    first = queries.start_forecast(run_id)
    run = queries.find_run(run_id)
    if first is None or run is None:
        return None
    end = run.finished_at or time.time()
    return {"forecast_seconds": first.remaining_seconds, "low_seconds": first.low_seconds,
            "high_seconds": first.high_seconds, "actual_seconds": max(end - first.ts, 0.0),
            "finished": run.finished_at is not None}


def event_dict(row: EventRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"seq": row.seq, "ts": row.ts, "run": row.run_id, "kind": row.kind, "level": row.level}
    if row.task_id is not None:
        out["task"] = row.task_id
    if row.attempt is not None:
        out["attempt"] = row.attempt
    if row.agent_id is not None:
        out["agent"] = row.agent_id
    out["message"] = row.message
    try:
        data = json.loads(row.data_json or "{}")
    except ValueError:
        data = {}
    if data:
        out["fields"] = data
    return out


class JsonDisplay:
    def __init__(self, out: TextIO):
        self.out = out

    def events(self, rows: list[EventRecord], counts: dict[str, int]) -> None:
        for row in rows:
            self.out.write(json.dumps(event_dict(row), default=str, sort_keys=True) + "\n")
        self.out.flush()

    def finish(self, code: int, counts: dict[str, int], run_id: str) -> None:
        summary = {"kind": "run.summary", "run": run_id, "exit_code": code, "tasks": counts, "ts": time.time()}
        forecast = start_vs_actual(run_id)
        if forecast is not None:
            summary["forecast_at_start"] = forecast
        self.out.write(json.dumps(summary, sort_keys=True) + "\n")
        self.out.flush()


HEADLINE_CHARS = 300  # an event's message on one headless line, at most
HEADLINE_FIRST_CHARS = 120  # of which its first line (a validation failure's "$ command")


def _middle_cut(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    half = max(1, (width - 1) // 2)
    return f"{text[:half]}…{text[-half:]}"


def headline(message: str) -> str:
    """An event's message as one short line: a validation failure carries up to 64 KB of
    output, which made one headless line of thousands of characters. The first line (the
    command) is kept, then as many of the last lines (where a tool says what failed) as fit,
    with how many lines were left out; the whole text stays in the attempt's log
    (``logs/<task>.<attempt>.log``), ``report`` and ``--json``."""
    lines = [inert(line.strip()) for line in (message or "").splitlines() if line.strip()]
    if not lines:
        return ""
    head = _middle_cut(lines[0], HEADLINE_FIRST_CHARS)
    room = HEADLINE_CHARS - len(head) - len(f" / [{len(lines)} more lines]")
    tail: list[str] = []
    for line in reversed(lines[1:]):
        if len(line) + 3 > room:
            if not tail:  # the last line, cut in the middle, rather than nothing of the end
                tail.append(_middle_cut(line, max(1, room - 3)))
            break
        tail.insert(0, line)
        room -= len(line) + 3
    left_out = len(lines) - 1 - len(tail)
    return " / ".join([head, *([f"[{left_out} more lines]"] if left_out else []), *tail])


def ending_line(code: int, counts: dict[str, int], run_id: str) -> str:
    """The last line: the run's stored status, not "finished" for a run a policy paused (exit 3)."""
    run = queries.find_run(run_id)
    status = run.status if run is not None else ("finished" if code in (0, 1) else "stopped")
    why = f" ({inert(run.pause_reason)})" if run is not None and status == "paused" and run.pause_reason else ""
    shown = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
    return f"run {run_id} {status}{why} (exit {code}): {shown}"


class PlainDisplay:
    def __init__(self, out: TextIO):
        self.out = out

    def events(self, rows: list[EventRecord], counts: dict[str, int]) -> None:
        for row in rows:
            stamp = _clock(row.ts)
            who = f" [{row.task_id}]" if row.task_id else ""
            level = "" if row.level == "info" else f" {row.level.upper()}"
            fields = event_dict(row).get("fields", {})
            if row.kind == "run.forecast" and "finish_at" in fields:
                text = forecast_line(fields["remaining_seconds"], fields["finish_at"], fields["low_seconds"],
                                     fields["high_seconds"], fields["tasks_left"])
                self.out.write(f"{stamp} forecast: {text}\n")
                continue
            self.out.write(f"{stamp}{level} {row.kind}{who} {headline(row.message)}\n")
        self.out.flush()

    def finish(self, code: int, counts: dict[str, int], run_id: str) -> None:
        self.out.write(ending_line(code, counts, run_id) + "\n")
        self.out.flush()


class RichDisplay:
    def __init__(self, out: TextIO, run_id: str | None = None):
        self.run_id = run_id
        self.console = Console(file=out)
        self.progress = Progress(
            TextColumn("[bold]tasks"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
            TimeElapsedColumn(), console=self.console, transient=False,
        )
        self.bar = self.progress.add_task("", total=None)
        self.progress.start()

    def events(self, rows: list[EventRecord], counts: dict[str, int]) -> None:
        for row in rows:
            if row.level in ("warning", "error") or row.kind.startswith(("run.", "attempt.succeeded")):
                style = {"warning": "yellow", "error": "red"}.get(row.level, "")
                who = f"[{row.task_id}] " if row.task_id else ""
                self.progress.console.print(Text(f"{inert(row.kind)} {inert(who)}{headline(row.message)}", style=style))
        total = sum(counts.values())
        active = counts["running"] + counts["validating"] + counts["integrating"]
        problems = counts["failed"] + counts["blocked"] + counts["cancelled"]
        forecast = queries.latest_forecast(self.run_id) if self.run_id else None
        eta = "" if forecast is None else "  " + forecast_line(
            forecast.remaining_seconds, forecast.finish_at, forecast.low_seconds, forecast.high_seconds,
            forecast.tasks_left).split(", ")[0]
        self.progress.update(
            self.bar, total=total or None, completed=counts["done"],
            description=f"running {active}  queued {counts['pending'] + counts['ready'] + counts['retry_wait']}  "
                        f"problems {problems}{eta}",
        )

    def finish(self, code: int, counts: dict[str, int], run_id: str) -> None:
        self.progress.stop()
        self.console.print(Text(ending_line(code, counts, run_id)))


def make_display(json_mode: bool, out: TextIO | None = None, run_id: str | None = None):
    out = out or sys.stdout
    if json_mode:
        return JsonDisplay(out)
    if out.isatty():
        return RichDisplay(out, run_id)
    return PlainDisplay(out)


async def drive_headless(store: Store, run_id: str, coordinator: Any, display: Any, since_seq: int = 0) -> int:
    """Run the coordinator and the display until the run ends; SIGINT/SIGTERM stop it (exit 3).

    Events after ``since_seq`` are shown (a resumed run does not repeat its history)."""
    feed = EventFeed(run_id, since_seq)
    result: dict[str, int] = {}

    async def drive(scope: anyio.CancelScope) -> None:
        try:
            result["code"] = await coordinator.run()
        finally:
            scope.cancel()

    async def signals() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
            async for _ in received:
                coordinator.request_stop("signal")

    async with anyio.create_task_group() as tg:
        watch = anyio.CancelScope()
        tg.start_soon(drive, tg.cancel_scope)
        tg.start_soon(signals)
        with watch:
            while True:
                display.events(feed.poll(), status_counts(run_id))
                await anyio.sleep(POLL_SECONDS)
    counts = status_counts(run_id)
    while rows := feed.poll():
        display.events(rows, counts)
    code = result.get("code", 3)
    display.finish(code, counts, run_id)
    return code


def run_headless(
    store: Store, run_id: str, coordinator: Any, *, json_mode: bool = False, out: TextIO | None = None,
    since_seq: int = 0,
) -> int:
    display = make_display(json_mode, out, run_id)
    return anyio.run(drive_headless, store, run_id, coordinator, display, since_seq)
