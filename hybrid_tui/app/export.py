"""``export-replay``: turn a recorded run into a mission folder that replays it offline.

Room: app. Reads a run folder (store, ``record/``, the run's repository) and writes a
new mission folder; never changes the run. The mission it writes:

- ``mission.toml`` -- the configuration the run used, with ``[agents] backend = "replay"``;
- ``repo/``        -- the run's base commit as a plain folder (``git archive``);
- ``issues/``      -- the run's issues; ``sis/`` -- the SIS the run used (from the store);
- ``replay/``      -- the recorded attempts (``runtime.record``), durations x ``pace``.

Replaying it (``hybrid-tui run DEST``) gives the same file changes, outcomes and recorded
costs: each attempt applies the recorded operations (validation runs for real) or replays
the recorded failure.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybrid_tui.spec.models import MissionFile, RecordedTask, Sis, SisIssue, SisTask
from hybrid_tui.app.launch import LaunchError, open_run_store
from hybrid_tui.runtime.record import read_record
from hybrid_tui.store import queries
from hybrid_tui.store.records import RunRecord

REAL_OUTCOMES = ("succeeded", "failed")


class ExportError(Exception):
    """Bad input for an export (unknown run, DEST not empty, ...): one line."""


@dataclass
class ExportSummary:
    dest: Path
    run_id: str
    issues: int
    tasks: int
    recorded_tasks: int
    recorded_attempts: int
    missing: list[str]  # tasks whose real attempts have no (complete) recording: replayed from the SIS


def export_replay(run: str | Path, dest: str | Path, *, pace: float = 1.0, runs_dir: str | Path | None = None,
                  store_url: str | None = None) -> ExportSummary:
    """Write the mission folder ``dest`` (absent or empty) that replays ``run``."""
    if not (pace >= 0 and math.isfinite(pace)):
        raise ExportError(f"--pace must be a non-negative number (got {pace})")
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ExportError(f"{dest}: destination exists and is not an empty folder")
    try:
        store, run_id = open_run_store(run, runs_dir, store_url)
    except LaunchError as exc:
        raise ExportError(str(exc)) from None
    try:
        with store.read():
            return _export(store, run_id, dest, pace)
    finally:
        store.close()


def _export(store: Any, run_id: str, dest: Path, pace: float) -> ExportSummary:
    row = queries.run_record(run_id)
    run_dir = Path(row.run_dir)
    issues = queries.issue_records(run_id)
    tasks = queries.task_records(run_id)
    replays, missing = _replays(run_id, run_dir, pace)
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        _write_repo(row, dest / "repo")
        (dest / "issues").mkdir()
        (dest / "sis").mkdir()
        (dest / "replay").mkdir()
        tasks_of: dict[str, list[SisTask]] = {}
        for task in tasks:
            tasks_of.setdefault(task.issue_id, []).append(SisTask.model_validate_json(task.spec_json))
        for issue in issues:
            body = issue.body.strip()
            (dest / "issues" / f"{issue.issue_id}.md").write_text(f"# {issue.title}\n" + (f"\n{body}\n" if body else ""))
            if tasks_of.get(issue.issue_id):
                sis = Sis(issue=SisIssue(id=issue.issue_id, title=issue.title, body=issue.body),
                          tasks=tasks_of[issue.issue_id])
                (dest / "sis" / f"{issue.issue_id}.json").write_text(
                    sis.model_dump_json(indent=2, exclude_none=True) + "\n")
        for task_id, recorded in replays.items():
            (dest / "replay" / f"{task_id}.json").write_text(recorded.model_dump_json(indent=2, exclude_none=True) + "\n")
        (dest / "mission.toml").write_text(_mission_toml(row))
    except BaseException:
        # Leave DEST as it was (absent or empty): no half-written mission.
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        else:
            for child in dest.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    return ExportSummary(
        dest=dest, run_id=run_id, issues=len(issues), tasks=len(tasks), recorded_tasks=len(replays),
        recorded_attempts=sum(len(r.attempts) for r in replays.values()), missing=missing,
    )


def _replays(run_id: str, run_dir: Path, pace: float) -> tuple[dict[str, RecordedTask], list[str]]:
    """The recorded attempts of the attempts the store counts as real, in attempt order."""
    ledger, recordings = read_record(run_dir)
    index_of: dict[tuple[str, int], int] = {}
    for line in ledger:
        index_of[(line["task_id"], int(line["number"]))] = int(line["index"])
    real: dict[str, list[int]] = {}
    for task_id, number in queries.real_attempt_numbers(run_id, REAL_OUTCOMES):
        real.setdefault(task_id, []).append(number)
    out: dict[str, RecordedTask] = {}
    missing: list[str] = []
    for task_id, numbers in real.items():
        rec = recordings.get(task_id)
        attempts = []
        for number in numbers:
            index = index_of.get((task_id, number))
            if rec is None or index is None or index >= len(rec.attempts):
                break  # the rest would replay out of order: stop at the first gap
            attempts.append(rec.attempts[index])
        if len(attempts) < len(numbers):
            missing.append(task_id)
        if attempts:
            paced = [a.model_copy(update={"duration_seconds": a.duration_seconds * pace}) for a in attempts]
            out[task_id] = RecordedTask(task_id=task_id, attempts=paced)
    return out, missing


def _write_repo(row: RunRecord, target: Path) -> None:
    """The run's base commit as a plain folder (or the source folder of a --no-git run)."""
    if not row.base_commit:
        source = Path(row.source_repo)
        if not source.is_dir():
            raise ExportError(f"run {row.id}: no base commit and the source folder {source} is gone")
        shutil.copytree(source, target, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        return
    done = subprocess.run(["git", "archive", "--format=tar", row.base_commit], cwd=row.repo_path, capture_output=True)
    if done.returncode != 0:
        raise ExportError(
            f"run {row.id}: cannot read base commit {row.base_commit[:12]} in {row.repo_path}: "
            f"{done.stderr.decode(errors='replace').strip()}"
        )
    target.mkdir()
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        archive.extractall(target, filter="tar")


def _mission_toml(row: RunRecord) -> str:
    config = MissionFile.model_validate_json(row.config_json)
    section = config.mission
    # The exported folder's own layout, the replay backend, and no base branch (repo/ gets one commit on main).
    data = config.model_dump(mode="json", exclude_none=True)
    data["mission"].update(repo="repo", issues="issues/*.md", sis="sis/*.json", replay="replay/*.json")
    data["mission"].pop("base_branch", None)
    data["agents"]["backend"] = "replay"
    header = (
        f"# Exported by hybrid-tui export-replay from run {row.id} of mission {section.name!r}.\n"
        "# The replay backend reproduces that run offline: replay/ holds what each attempt did.\n"
    )
    text = header + dumps_toml(data)
    check = MissionFile.model_validate(tomllib.loads(text))  # what we wrote reads back as the same config
    expected = MissionFile.model_validate(data)
    if check != expected:  # pragma: no cover - a TOML writer bug
        raise ExportError("internal error: mission.toml does not read back as the run's configuration")
    return text


# ---------------------------------------------------------------------- a small TOML writer


def dumps_toml(data: dict[str, Any]) -> str:
    """TOML for plain data (tables, scalars, arrays); keys with ``None`` are left out."""
    lines: list[str] = []
    _table(lines, [], data)
    return "\n".join(lines).strip() + "\n"


def _table(lines: list[str], path: list[str], table: dict[str, Any]) -> None:
    scalars = {k: v for k, v in table.items() if v is not None and not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (scalars or not tables):
        lines.append("")
        lines.append("[" + ".".join(_key(p) for p in path) + "]")
    for key, value in scalars.items():
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables.items():
        _table(lines, [*path, key], value)


def _key(key: str) -> str:
    if key and all(ch.isalnum() or ch in "-_" for ch in key) and key.isascii():
        return key
    return json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if math.isnan(value):
            return "nan"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None) + "}"
    raise ExportError(f"cannot write {type(value).__name__} to mission.toml")
