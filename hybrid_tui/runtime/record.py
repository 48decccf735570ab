"""Recording what each implementer attempt did, so a run can be replayed offline later.

Room: runtime. The recording's file format: its :class:`Recorder` (writes only under
``run_dir/record/``, the ledger held open for the coordinator's lifetime), its readers, and
:func:`recorded_attempt` (what the ``replay`` backend replays for an attempt). What each
attempt did is recorded by ``runtime/settle.py`` as the attempt's end is stored, *before*
the store update (which releases the agent, whose worktree is reset for its next task).

Layout of ``run_dir/record/``:

- ``attempts.jsonl`` -- one line per recorded attempt, appended as the attempt ends: its
  number (recordings are matched to the store's attempts by number, so an attempt the store
  later calls interrupted is left out of an export), outcome, failure type, validation
  outcome and output tail, agent and commit, and under ``recorded`` a
  :class:`~hybrid_tui.spec.models.RecordedAttempt`, the format the ``replay`` backend reads
  from a mission's ``replay/*.json``: the file operations actually applied, usage, cost,
  duration, model, and ``failure_type`` when the failure is not one that replaying the
  operations reproduces by itself (only a failed validation run by the runtime is, so it
  is replayed for real). Readers rebuild each task's
  :class:`~hybrid_tui.spec.models.RecordedTask` from its lines, in file order.

A crash can leave a last line that does not parse (see :class:`Recorder`): it held only the
attempt that was ending, which the store never counted, so it is skipped.

Run folders written by earlier versions hold each task's recordings in ``<task_id>.json``
(a ``RecordedTask``; a file that does not parse was torn by a crash and is skipped) and,
in each ledger line, ``index``: the attempt's place in that file. They are still read: a
task's attempts are those of its file, then those of its ledger lines with ``recorded``.

File operations: the ``replay`` and ``sim`` backends apply known operations (the recorded
or SIS ones), which are recorded as such; any other backend's changes are read from the
worktree against the commit it was reset to: new text files become ``create``, removed
files ``delete``, everything else a ``patch`` with the file's unified diff.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from pydantic_core import to_json

from hybrid_tui.spec.models import CreateOp, DeleteOp, EditOp, IntentOp, PatchOp, RecordedAttempt, RecordedTask, Usage
from hybrid_tui.store import engine_reads
from hybrid_tui.vocabulary import Redactor

RECORD_DIR = "record"
LEDGER = "attempts.jsonl"
OUTPUT_TAIL_CHARS = 2000
# Failures that replaying the recorded file operations reproduces for real.
REPLAYED_FOR_REAL = {"validation_failed"}
KNOWN_OPS_BACKENDS = {"replay", "sim"}


def record_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / RECORD_DIR


def recording_json(
    operations: list[Any], model: Any, usage: Any, cost_usd: float, duration: float, summary: Any, failure_type: Any,
    batch_share: bool = False,
) -> str:
    """``RecordedAttempt(...).model_dump_json(exclude_none=True)``, byte for byte; raises
    pydantic's ValidationError as that would."""
    if (
        type(usage) is Usage and type(summary) is str and (model is None or type(model) is str)
        and (failure_type is None or type(failure_type) is str)
        and 0.0 <= cost_usd < math.inf and 0.0 <= duration < math.inf
        and all(type(op) in _RECORDED_OP_TYPES for op in operations)
    ):
        # Every field already holds what RecordedAttempt's validation would keep as it is:
        # pydantic serializes the same values, in the model's field order, with no model
        # built and validated first (a third of recording a git-off attempt).
        fields: dict[str, Any] = {"file_operations": operations}
        if model is not None:
            fields["model"] = model
        fields["usage"] = usage
        fields["cost_usd"] = cost_usd
        fields["duration_seconds"] = duration
        fields["summary"] = summary
        if failure_type is not None:
            fields["failure_type"] = failure_type
        if batch_share:
            fields["batch_share"] = True
        return to_json(fields, exclude_none=True).decode()
    return RecordedAttempt(
        file_operations=operations,
        model=model,
        usage=usage,
        cost_usd=cost_usd,
        duration_seconds=duration,
        summary=summary,
        failure_type=failure_type,
        batch_share=True if batch_share else None,
    ).model_dump_json(exclude_none=True)


# The file operation models a recording holds (FileOperation's members).
_RECORDED_OP_TYPES = frozenset({CreateOp, EditOp, DeleteOp, PatchOp, IntentOp})
_REDACTOR = Redactor()


# ---------------------------------------------------------------------- files


class Recorder:
    """The run's ``record/attempts.jsonl``, held open for one coordinator's lifetime.

    Crash safety is against the coordinator dying (SIGKILL), not the machine: a recording is
    in the kernel's page cache before the store update that makes its attempt real, so it is
    never lost once the store says the attempt ended. Hence no fsync, and:

    - each attempt is one line (its ledger entry and its recording together) handed to the
      kernel by one ``write`` on a file opened for appending, so recording an attempt never
      rewrites, nor puts at risk, what earlier attempts recorded;
    - a line torn by a crash holds only the attempt that was ending, which never reached the
      store: readers skip it, and the next coordinator ends it with a newline before
      appending, so it cannot swallow the next line. A write that fails half way (disk full)
      is treated the same way: the file is reopened, and so repaired, before the next line.
    """

    def __init__(self, run_dir: str | Path):
        self.folder = record_dir(run_dir)
        self._fd: int | None = None

    def record(self, line: dict[str, Any], recorded: RecordedAttempt | str) -> None:
        """Append one attempt: the ledger fields ``line`` (``task_id``, ``number``, ...) and
        what it did (a RecordedAttempt, or its ``model_dump_json(exclude_none=True)``)."""
        if not isinstance(recorded, str):
            recorded = recorded.model_dump_json(exclude_none=True)
        self._append(_REDACTOR.json_text(f'{json.dumps(line)[:-1]}, "recorded": {recorded}}}\n').encode("utf-8"))

    def ledger(self, line: dict[str, Any]) -> None:
        """Append a ledger line without a recording."""
        self._append(_REDACTOR.json_text(json.dumps(line) + "\n").encode("utf-8"))

    def open(self) -> None:
        """Open the ledger now (the coordinator's start-up) rather than at the first attempt's
        end, whose settle readies its dependents: creating the folder and file there would
        delay their dispatch by about a millisecond. A failure here is left for the first
        :meth:`record` to meet and report (the recording never stops a run)."""
        if self._fd is None:
            try:
                self._open_ledger()
            except OSError:
                pass

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _append(self, data: bytes) -> None:
        if self._fd is None:
            self._open_ledger()
        assert self._fd is not None
        try:
            written = os.write(self._fd, data)
            if written < len(data):  # rare (a signal, a full disk): hand the kernel the rest
                view = memoryview(data)[written:]
                while view:
                    view = view[os.write(self._fd, view):]
        except BaseException:
            self.close()  # reopening checks for (and ends) the torn line
            raise

    def _open_ledger(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / LEDGER
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                os.write(fd, b"\n")  # a crash tore the last line: end it, or the next line would be glued to it
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd


def recorded_attempt(mission: Any, run_id: str, task_id: str, number: int) -> Any:
    """The recording (a ``RecordedAttempt``) replayed by attempt ``number`` of ``task_id``,
    None when the mission has none left: attempts that were interrupted or cancelled did
    not really happen, so they do not use up a recording."""
    rec = getattr(mission, "recorded", {}).get(task_id)
    if rec is None:
        return None
    real = engine_reads.count_real_attempts_before(run_id, task_id, number)
    return rec.attempts[real] if real < len(rec.attempts) else None


def read_record(run_dir: str | Path) -> tuple[list[dict[str, Any]], dict[str, RecordedTask]]:
    """The ledger's lines and, task id -> everything recorded for it, in the run folder.

    Each ledger line (without its recording) carries ``index``: its attempt's place in the
    task's :class:`RecordedTask`. Lines torn by a crash are skipped; so are ``<task_id>.json``
    files of the older layout that do not parse (they held only an attempt the store never
    counted)."""
    folder = record_dir(run_dir)
    attempts_of: dict[str, list[RecordedAttempt]] = {}
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):  # the older layout
            try:
                rec = RecordedTask.model_validate_json(path.read_bytes())
            except ValueError:  # pydantic's ValidationError included
                continue
            attempts_of[rec.task_id] = list(rec.attempts)
    lines: list[dict[str, Any]] = []
    path = folder / LEDGER
    if path.is_file():
        for raw in path.read_bytes().splitlines():
            try:
                line = json.loads(raw)
                recorded = line.pop("recorded", None)
                if recorded is not None:
                    attempt = RecordedAttempt.model_validate(recorded)
                    attempts = attempts_of.setdefault(str(line["task_id"]), [])
                    line["index"] = len(attempts)
                    attempts.append(attempt)
            except (ValueError, TypeError, KeyError, AttributeError):  # torn, or not a ledger line
                continue
            lines.append(line)
    return lines, {task_id: RecordedTask(task_id=task_id, attempts=attempts) for task_id, attempts in attempts_of.items()}


def read_ledger(run_dir: str | Path) -> list[dict[str, Any]]:
    """The ledger's lines (see :func:`read_record`)."""
    return read_record(run_dir)[0]


def read_recordings(run_dir: str | Path) -> dict[str, RecordedTask]:
    """Task id -> everything recorded for it in the run folder (see :func:`read_record`)."""
    return read_record(run_dir)[1]
