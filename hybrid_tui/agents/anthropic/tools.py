"""The implementer's tools: their definitions for the Messages API and their execution.

Room: agents. Every file access goes through the request's sandbox (paths resolved inside
the worktree, undeclared files locked or refused); ``run_checks`` runs the task's own
validation commands with ``workspace.validation.run_checks``. A tool never raises to the
loop: a problem becomes an ``is_error`` tool result that the model reads and reacts to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from hybrid_tui.workspace.validation import run_checks

MAX_READ_CHARS = 60_000
MAX_CHECK_OUTPUT = 10_000
MAX_LIST = 2000
MAX_MATCHES = 200

TOOL_DEFINITIONS: list[dict[str, Any]] = [
    {
        "name": "read_file",
        "description": "Read a text file of the repository, with line numbers. Optional 1-based inclusive line range.",
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Path relative to the repository root."},
                "start_line": {"type": "integer", "minimum": 1},
                "end_line": {"type": "integer", "minimum": 1},
            },
            "required": ["path"],
        },
    },
    {
        "name": "list_files",
        "description": "List the files under a folder of the repository (recursively).",
        "input_schema": {
            "type": "object",
            "properties": {"path": {"type": "string", "description": "Folder relative to the repository root; default the root."}},
        },
    },
    {
        "name": "search",
        "description": "Search file contents with a Python regular expression. Returns path:line: text for each match.",
        "input_schema": {
            "type": "object",
            "properties": {
                "pattern": {"type": "string"},
                "path": {"type": "string", "description": "Folder or file to search; default the whole repository."},
            },
            "required": ["pattern"],
        },
    },
    {
        "name": "edit_file",
        "description": (
            "Replace old_string with new_string in a file. old_string must match the file exactly "
            "(whitespace included, no line numbers) and occur exactly once; include more context to make it unique."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "old_string": {"type": "string"},
                "new_string": {"type": "string"},
            },
            "required": ["path", "old_string", "new_string"],
        },
    },
    {
        "name": "write_file",
        "description": "Create a file or replace its whole content.",
        "input_schema": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    },
    {
        "name": "run_checks",
        "description": "Run the task's validation commands in the worktree and return whether they pass, with their output.",
        "input_schema": {"type": "object", "properties": {}},
    },
    {
        "name": "finish",
        "description": "End the task. Call it once the change is complete and the checks pass.",
        "input_schema": {
            "type": "object",
            "properties": {"summary": {"type": "string", "description": "What you changed, in a few sentences."}},
            "required": ["summary"],
        },
    },
]


@dataclass
class ToolOutcome:
    content: str
    is_error: bool = False
    finished: bool = False
    file_locked: bool = False


class ToolRunner:
    """Executes tool calls for one attempt against ``sandbox``; blocking sandbox work runs in a thread."""

    def __init__(self, sandbox: Any, task: Any, *, check_log: Path | None = None, memory_cap_mb: int | None = None,
                 environment: dict[str, str] | None = None):
        self.environment = environment or None
        self.sandbox = sandbox
        self.task = task
        self.check_log = check_log
        self.memory_cap_mb = memory_cap_mb
        self.checks_run = 0
        self.last_checks_ok: bool | None = None

    async def run(self, name: str, args: Any) -> ToolOutcome:
        if not isinstance(args, dict):
            return ToolOutcome(f"{name}: input must be an object", is_error=True)
        try:
            if name == "finish":
                return ToolOutcome(str(args.get("summary") or "").strip() or "(no summary)", finished=True)
            if name == "run_checks":
                return await self._run_checks()
            handler = getattr(self, f"_tool_{name}", None)
            if handler is None:
                return ToolOutcome(f"unknown tool {name!r}", is_error=True)
            return await anyio.to_thread.run_sync(handler, args)
        except Exception as exc:  # every tool problem is shown to the model, never raised
            return _error_outcome(name, exc)

    # -- file tools (blocking; run in a worker thread)
    def _tool_read_file(self, args: dict) -> ToolOutcome:
        path = _required(args, "path")
        start = _optional_int(args, "start_line")
        end = _optional_int(args, "end_line")
        if start is not None and end is not None and end < start:
            return ToolOutcome(f"read_file {path}: end_line {end} is before start_line {start}", is_error=True)
        text = self.sandbox.read_text(path, start_line=start, end_line=end)
        first = start or 1
        lines = text.splitlines()
        numbered = "\n".join(f"{first + i:6d}\t{line}" for i, line in enumerate(lines))
        if not lines:
            return ToolOutcome(f"{path}: (empty{' range' if start or end else ' file'})")
        if len(numbered) > MAX_READ_CHARS:
            numbered = numbered[:MAX_READ_CHARS] + "\n... [truncated: read a smaller line range]"
        return ToolOutcome(numbered)

    def _tool_list_files(self, args: dict) -> ToolOutcome:
        rel = str(args.get("path") or ".")
        files = list(self.sandbox.list_files(rel, limit=MAX_LIST))
        if not files:
            return ToolOutcome(f"no files under {rel}")
        suffix = f"\n... [only the first {MAX_LIST} files]" if len(files) >= MAX_LIST else ""
        return ToolOutcome("\n".join(files) + suffix)

    def _tool_search(self, args: dict) -> ToolOutcome:
        pattern = _required(args, "pattern")
        try:
            re.compile(pattern)
        except re.error as exc:
            return ToolOutcome(f"search: invalid regular expression {pattern!r}: {exc}", is_error=True)
        rel = str(args.get("path") or ".")
        matches = list(self.sandbox.search(pattern, rel, limit=MAX_MATCHES))
        if not matches:
            return ToolOutcome(f"no match for {pattern!r} under {rel}")
        lines = [f"{path}:{line_no}: {line[:300]}" for path, line_no, line in matches]
        suffix = f"\n... [only the first {MAX_MATCHES} matches]" if len(matches) >= MAX_MATCHES else ""
        return ToolOutcome("\n".join(lines) + suffix)

    def _tool_edit_file(self, args: dict) -> ToolOutcome:
        path = _required(args, "path")
        old = _required(args, "old_string", allow_empty=True)
        new = args.get("new_string")
        if not isinstance(new, str):
            return ToolOutcome("edit_file: new_string must be a string", is_error=True)
        if old == "":
            return ToolOutcome("edit_file: old_string is empty; use write_file to create a file", is_error=True)
        if old == new:
            return ToolOutcome("edit_file: old_string and new_string are identical", is_error=True)
        self.sandbox.edit(path, old, new)
        return ToolOutcome(f"edited {path}")

    def _tool_write_file(self, args: dict) -> ToolOutcome:
        path = _required(args, "path")
        content = args.get("content")
        if not isinstance(content, str):
            return ToolOutcome("write_file: content must be a string", is_error=True)
        self.sandbox.write_text(path, content)
        return ToolOutcome(f"wrote {path} ({len(content.splitlines())} lines)")

    # -- checks
    async def _run_checks(self) -> ToolOutcome:
        validation = self.task.validation
        if not validation.commands:
            return ToolOutcome("this task has no validation commands; review your change and finish")
        self.checks_run += 1
        result = await run_checks(
            validation, self.sandbox.root, log_path=self.check_log, memory_cap_mb=self.memory_cap_mb,
            env=self.environment,
        )
        self.last_checks_ok = bool(result.ok)
        output = result.output or ""
        if len(output) > MAX_CHECK_OUTPUT:
            output = f"[{len(output) - MAX_CHECK_OUTPUT} characters omitted] ...\n" + output[-MAX_CHECK_OUTPUT:]
        if result.ok:
            return ToolOutcome("checks passed\n" + output)
        return ToolOutcome(f"checks FAILED ({result.failure_type})\n" + output, is_error=True)


class _BadInput(ValueError):
    pass


def _required(args: dict, key: str, *, allow_empty: bool = False) -> str:
    value = args.get(key)
    if not isinstance(value, str) or (not allow_empty and not value):
        raise _BadInput(f"missing or empty string argument {key!r}")
    return value


def _optional_int(args: dict, key: str) -> int | None:
    value = args.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _BadInput(f"{key} must be a positive integer")
    return value


def _error_outcome(tool: str, exc: Exception) -> ToolOutcome:
    kind = type(exc).__name__
    if kind in ("FileLockedError", "FileLocked") or getattr(exc, "failure_type", None) == "file_locked":
        text = str(exc)
        return ToolOutcome(text if text.startswith("file_locked") else f"file_locked: {text}", is_error=True, file_locked=True)
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError)):
        return ToolOutcome(f"{tool}: {exc.strerror or kind}: {exc.filename or exc}", is_error=True)
    if isinstance(exc, UnicodeDecodeError):
        return ToolOutcome(f"{tool}: not a UTF-8 text file", is_error=True)
    # SandboxError (refused path), EditError (old_string missing / not unique), bad input, OS errors.
    return ToolOutcome(f"{tool}: {exc}", is_error=True)
