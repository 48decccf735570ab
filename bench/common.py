"""Shared benchmark plumbing (room: bench): figures, timers, the results table, JSON results.

A :class:`Figure` is one measured number next to its baseline measured in the same run
(absolute times on a shared machine are noise; the ratio is the stable part) and, where
DESIGN.md sets one, its budget. ``verdict`` is ``met``/``missed`` against the budget, or
``-`` when there is no budget for that figure.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Figure:
    bench: str  # which benchmark: scheduling, store, integration, console, scaling
    name: str  # what was measured
    value: float
    unit: str
    baseline: float | None = None  # same unit, measured in the same run
    baseline_name: str = ""
    budget: float | None = None  # upper bound on ``value`` (or on ``ratio`` when budget_on_ratio)
    budget_text: str = ""  # the budget as DESIGN.md / the issue states it
    budget_on_ratio: bool = False
    higher_is_better: bool = False
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline

    @property
    def verdict(self) -> str:
        if self.budget is None:
            return "-"
        measured = self.ratio if self.budget_on_ratio else self.value
        if measured is None:
            return "-"
        ok = measured >= self.budget if self.higher_is_better else measured <= self.budget
        return "met" if ok else "MISSED"

    def as_dict(self) -> dict:
        return asdict(self) | {"ratio": self.ratio, "verdict": self.verdict}


@dataclass
class Timer:
    """Wall (perf_counter) and CPU (process_time, all threads of this process) seconds."""

    wall: float = 0.0
    cpu: float = 0.0
    _wall0: float = field(default=0.0, repr=False)
    _cpu0: float = field(default=0.0, repr=False)

    def __enter__(self) -> "Timer":
        self._wall0, self._cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall0
        self.cpu = time.process_time() - self._cpu0


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest-rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = math.ceil(q * len(ordered) / 100)  # the smallest value with q % of the values at or below it
    return ordered[max(0, min(len(ordered), rank) - 1)]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def render_table(figures: list[Figure]) -> str:
    headers = ("benchmark", "figure", "value", "unit", "baseline", "baseline value", "ratio", "budget", "verdict")
    rows = [
        (
            f.bench,
            f.name,
            _fmt(f.value),
            f.unit,
            f.baseline_name or "-",
            _fmt(f.baseline),
            "-" if f.ratio is None else f"{f.ratio:.2f}x",
            f.budget_text or "-",
            f.verdict,
        )
        for f in figures
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    right = {2, 5, 6}

    def line(cells) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    previous = None
    for f, row in zip(figures, rows):
        if previous is not None and f.bench != previous:
            out.append("")
        previous = f.bench
        out.append(line(row))
    notes = [f"  {f.bench} / {f.name}: {f.note}" for f in figures if f.note]
    if notes:
        out += ["", "notes:", *notes]
    return "\n".join(out)


def machine_info() -> dict:
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    try:
        info["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
            cwd=Path(__file__).resolve().parent, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def save_results(figures: list[Figure], path: Path, *, options: dict, seconds: float, extra: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(seconds, 1),
        "options": options,
        "machine": machine_info(),
        "figures": [f.as_dict() for f in figures],
        "details": extra or {},
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def iter_chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
