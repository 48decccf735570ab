"""Recording what each implementer attempt did, so a run can be replayed offline later.

Room: runtime. Writes only under ``run_dir/record/``; reads the agent's worktree with git
(never changes it: the diff goes through a throw-away index). Called once per finished
attempt from :meth:`Coordinator.finish_attempt`, *before* the outcome is stored (the store
update releases the agent, whose worktree is reset for its next task), through the
coordinator's :class:`Recorder`, which keeps the ledger open for the coordinator's lifetime.

Layout of ``run_dir/record/``:

- ``<task_id>.json`` -- a :class:`~hybrid_tui.spec.models.RecordedTask`, the format the
  ``replay`` backend reads from a mission's ``replay/*.json``: per attempt the file
  operations actually applied, usage, cost, duration, model, and ``failure_type`` when the
  failure is not one that replaying the operations reproduces by itself (only a failed
  validation run by the runtime is, so it is replayed for real).
- ``attempts.jsonl`` -- one line per recorded attempt: its number (recordings are matched
  to the store's attempts by number, so an attempt the store later calls interrupted is
  left out of an export), outcome, failure type, validation outcome and output tail,
  agent and commit.

A crash can leave a ``<task_id>.json`` that does not parse (see :class:`Recorder`): it
held only the attempt that was ending, which the store never counted, so it is skipped.

File operations: the ``replay`` and ``sim`` backends apply known operations (the recorded
or SIS ones), which are recorded as such; any other backend's changes are read from the
worktree against the commit it was reset to: new text files become ``create``, removed
files ``delete``, everything else a ``patch`` with the file's unified diff.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..spec.models import CreateOp, DeleteOp, IntentOp, PatchOp, RecordedAttempt, RecordedTask, Usage

if TYPE_CHECKING:  # pragma: no cover
    from .coordinator import Coordinator, RunningAttempt

RECORD_DIR = "record"
LEDGER = "attempts.jsonl"
OUTPUT_TAIL_CHARS = 2000
# Failures that replaying the recorded file operations reproduces for real.
REPLAYED_FOR_REAL = {"validation_failed"}
KNOWN_OPS_BACKENDS = {"replay", "sim"}


class RecordError(Exception):
    """The worktree's changes could not be read."""


def record_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / RECORD_DIR


def record_attempt(
    c: "Coordinator",
    attempt: "RunningAttempt",
    *,
    outcome: str,
    failure_type: str | None,
    message: str,
    result: Any,
    commit: Any = None,
) -> RecordedAttempt | None:
    """Record one finished attempt (succeeded or failed; cancelled ones did not happen).

    Never raises: a recording problem is logged as an event, the run goes on."""
    if outcome not in ("succeeded", "failed") or attempt.cancelled_reason:
        return None
    try:
        recorded = _recorded_attempt(c, attempt, outcome, failure_type, message, result)
        _append(c, attempt, recorded, outcome, failure_type, message, result, commit)
        return recorded
    except Exception as exc:  # the recording is a by-product: it must never fail the run
        try:
            with c.transaction():  # joins the attempt's end when that is one transaction
                c.events.add("record.failed", f"could not record attempt {attempt.number}: {exc}", level="warning",
                             task_id=attempt.task_id, attempt=attempt.number)
        except Exception:
            pass
        return None


def _recorded_attempt(
    c: "Coordinator", attempt: "RunningAttempt", outcome: str, failure_type: str | None, message: str, result: Any
) -> RecordedAttempt:
    agent_side = result is None or not getattr(result, "ok", False)
    replay_failure = outcome == "failed" and (agent_side or failure_type not in REPLAYED_FOR_REAL)
    operations = _operations(c, attempt, result, agent_side)
    usage = getattr(result, "usage", None) or Usage()
    duration = float(getattr(result, "duration_seconds", 0.0) or 0.0)
    if duration <= 0:
        duration = max(0.0, c.clock() - attempt.started)
    summary = getattr(result, "summary", "") or ""
    if replay_failure:
        # Replayed as this failure without touching files: keep the message the run showed.
        summary = (message or getattr(result, "message", "") or summary)[-OUTPUT_TAIL_CHARS:]
    return RecordedAttempt(
        file_operations=operations,
        model=getattr(result, "model", None) or None,
        usage=usage,
        cost_usd=float(getattr(result, "cost_usd", 0.0) or 0.0),
        duration_seconds=duration,
        summary=summary,
        failure_type=(failure_type or "agent_error") if replay_failure else None,
    )


def _operations(c: "Coordinator", attempt: "RunningAttempt", result: Any, agent_side: bool) -> list[Any]:
    backend = getattr(c.implementer, "name", c.backend_name)
    spec = c.specs.get(attempt.task_id)
    if backend in KNOWN_OPS_BACKENDS:
        if backend == "sim" and agent_side:
            return []  # a synthetic failure touches nothing
        recorded = c.recorded_attempt(attempt.task_id, attempt.number) if backend == "replay" else None
        operations = recorded.file_operations if recorded is not None else (spec.file_operations if spec else [])
        return [op for op in operations if not isinstance(op, IntentOp)]
    worktree = c.agents.get(attempt.agent_id, "")
    if c.repo is None or not worktree:
        return []
    return worktree_operations(Path(worktree))


# ---------------------------------------------------------------------- worktree diff


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None, text: bool = True) -> Any:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=text, env=env)
    if done.returncode != 0:
        err = done.stderr if text else done.stderr.decode(errors="replace")
        raise RecordError(f"git {' '.join(args[:2])} in {cwd}: {err.strip()}")
    return done.stdout


def worktree_operations(worktree: Path, base: str = "HEAD") -> list[CreateOp | DeleteOp | PatchOp]:
    """The worktree's changes against ``base`` (untracked files included, ignored ones not)
    as file operations. The worktree's own index is left alone."""
    with tempfile.TemporaryDirectory(prefix="hybrid-record-") as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(worktree, "read-tree", base, env=env)
        _git(worktree, "add", "-A", env=env)
        status = _git(worktree, "diff", "--cached", "--name-status", "--no-renames", "-z", base, env=env)
        fields = [f for f in status.split("\0") if f]
        operations: list[CreateOp | DeleteOp | PatchOp] = []
        for kind, path in zip(fields[0::2], fields[1::2]):
            if kind == "D":
                operations.append(DeleteOp(op="delete", path=path))
                continue
            if kind == "A":
                data = _git(worktree, "show", f":{path}", env=env, text=False)
                try:
                    operations.append(CreateOp(op="create", path=path, content=data.decode("utf-8")))
                    continue
                except UnicodeDecodeError:
                    pass  # binary: a git patch carries it
            diff = _git(worktree, "diff", "--cached", "--binary", "--no-renames", "--no-color", "--full-index",
                        base, "--", path, env=env)
            if diff.strip():
                operations.append(PatchOp(op="patch", path=path, diff=diff))
        return operations


# ---------------------------------------------------------------------- files


class Recorder:
    """The run's ``record/`` folder, held open for one coordinator's lifetime.

    Crash safety is against the coordinator dying (SIGKILL), not the machine: a recording is
    in the kernel's page cache before the store update that makes its attempt real, so it is
    never lost once the store says the attempt ended. Hence no fsync, and:

    - the ledger stays open (line-buffered: each line reaches the kernel in one write);
    - a task's first recording is created in place (``O_EXCL``): a write torn by a crash
      leaves a file that does not parse, holding only that attempt, which never reached the
      store; readers skip it and the task's next attempt starts the file afresh;
    - a later recording rewrites the file through a temp file + rename, so the attempts
      already recorded (maybe real ones) are never at risk.
    """

    def __init__(self, run_dir: str | Path):
        self.folder = record_dir(run_dir)
        self._ledger: Any = None

    def add(self, task_id: str, recorded: RecordedAttempt) -> int:
        """Store ``recorded`` as the task's next attempt; its index in the task's file."""
        if self._ledger is None:
            self._open_ledger()
        path = self.folder / f"{task_id}.json"
        if _create(path, _task_json(task_id, [recorded])):
            return 0
        attempts = _read_task(path)
        attempts.append(recorded)
        _write_atomic(path, _task_json(task_id, attempts))
        return len(attempts) - 1

    def ledger(self, line: dict[str, Any]) -> None:
        if self._ledger is None:
            self._open_ledger()
        self._ledger.write(json.dumps(line) + "\n")

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    def _open_ledger(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / LEDGER
        torn = False
        if path.is_file() and path.stat().st_size:
            with open(path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                torn = fh.read(1) != b"\n"
        self._ledger = open(path, "a", encoding="utf-8", buffering=1)
        if torn:  # a crash tore the last line: end it, or the next line would be glued to it
            self._ledger.write("\n")


def _task_json(task_id: str, attempts: list[RecordedAttempt]) -> bytes:
    return RecordedTask(task_id=task_id, attempts=attempts).model_dump_json(indent=2, exclude_none=True).encode("utf-8")


def _create(path: Path, data: bytes) -> bool:
    """Write a new file in place; False if it already exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    except FileExistsError:
        return False
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)  # no half file left behind by a full disk
        raise
    os.close(fd)
    return True


def _read_task(path: Path) -> list[RecordedAttempt]:
    """A task's recorded attempts; none if its file was torn by a crash (see :class:`Recorder`)."""
    try:
        return list(RecordedTask.model_validate_json(path.read_bytes()).attempts)
    except ValueError:  # pydantic's ValidationError included
        return []


def _append(
    c: "Coordinator", attempt: "RunningAttempt", recorded: RecordedAttempt, outcome: str, failure_type: str | None,
    message: str, result: Any, commit: Any,
) -> None:
    rec = c.recorder  # made in Coordinator.__init__, closed when its run() ends
    index = rec.add(attempt.task_id, recorded)
    if outcome == "succeeded":
        validation = "passed"
    elif failure_type == "validation_failed" and result is not None and getattr(result, "ok", False):
        validation = "failed"
    else:
        validation = "not_run" if result is None or not getattr(result, "ok", False) else "passed"
    rec.ledger({
        "task_id": attempt.task_id,
        "number": attempt.number,
        "index": index,
        "agent_id": attempt.agent_id,
        "outcome": outcome,
        "failure_type": failure_type,
        "validation": validation,
        "output": (message or "")[-OUTPUT_TAIL_CHARS:],
        "commit": getattr(commit, "sha", None),
    })


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def read_ledger(run_dir: str | Path) -> list[dict[str, Any]]:
    """The ledger's lines (a torn last line from a crash is skipped)."""
    path = record_dir(run_dir) / LEDGER
    if not path.is_file():
        return []
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    return lines


def read_recordings(run_dir: str | Path) -> dict[str, RecordedTask]:
    """Task id -> everything recorded for it in the run folder."""
    out: dict[str, RecordedTask] = {}
    folder = record_dir(run_dir)
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            try:
                rec = RecordedTask.model_validate_json(path.read_bytes())
            except ValueError:
                continue  # torn by a crash: it held only an attempt the store never counted
            out[rec.task_id] = rec
    return out
