"""The command line of an agent CLI: a named preset or the operator's raw template.

Room: agents. Pure: builds an argv and says where the prompt goes and which reader parses the
output; runs nothing.

``[agents] cli`` is either a preset name or a template:

- ``claude-code``: ``claude -p --output-format stream-json --verbose --model M --max-turns N
  --max-budget-usd D --permission-mode acceptEdits --allowedTools <each validation command,
  and each part of a compound one, as Bash(<command>)>``, the prompt on stdin (no bare file
  tool is allowed: that would allow it on every path).
- ``aider``: ``aider --message-file <prompt file> --model M --yes-always --no-auto-commits
  --no-dirty-commits --no-gitignore --test-cmd <validation> --auto-test`` with its history
  files in the attempt's scratch folder (not the worktree) and no update checks or analytics.
- ``codex``: ``codex exec --json --sandbox workspace-write --skip-git-repo-check --model M
  -C <worktree> -``, the prompt on stdin (``-``).

A template is split with ``shlex`` and never passed to a shell, so placeholder values cannot
inject commands. Placeholders: ``{prompt_file}``, ``{prompt}`` (the text as one argument: at
most 128 KiB on Linux), ``{prompt_stdin}`` (a whole argument, removed: the prompt goes to the
command's stdin), ``{worktree}``, ``{task_id}``, ``{attempt}``, ``{model}``, ``{max_turns}``,
``{max_cost_usd}``, ``{max_tokens}``, ``{timeout_seconds}``, ``{scratch_dir}``.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from dataclasses import dataclass
from typing import Callable, Sequence

from hybrid_tui.agents.cli.reports import AiderReader, AutoReader, ClaudeCodeReader, CodexReader, OutputReader
from hybrid_tui.spec.agent_cli import PLACEHOLDERS, PRESET_NAMES, PROMPT_STDIN, cli_template_problem

_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
MAX_ARGUMENT_BYTES = 131072  # Linux MAX_ARG_STRLEN: one argument longer fails with E2BIG

# Files the agent CLIs write into the repository they work in, that must never land in a
# task's commit (the integration takes only the task's changes; these name the usual ones).
AGENT_SCRATCH_GLOBS = (
    ".aider*",  # .aider.chat.history.md, .aider.input.history, .aider.tags.cache.v4/, .aider.conf.yml
    ".claude/",  # Claude Code's per-project settings and todos
    ".codex/",
)

def is_agent_scratch(path: str) -> bool:
    """True for a repository path an agent CLI writes for itself (see AGENT_SCRATCH_GLOBS)."""
    return any(
        path.startswith(pattern) if pattern.endswith("/") else fnmatch.fnmatchcase(path.split("/", 1)[0], pattern)
        for pattern in AGENT_SCRATCH_GLOBS
    )




def shell_parts(command: str) -> list[str]:
    """``command`` and, for a compound one (``a && b``, ``a || b``, ``a; b``, ``a | b``, ``a &``),
    each of its parts as written: Claude Code matches every part against the permission rules
    on its own, so the whole command's rule alone does not let it run."""
    parts, start, quote, i = [], 0, "", 0
    while i < len(command):
        char = command[i]
        if quote:
            if char == "\\" and quote == '"':
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "\\":
            i += 1
        elif command.startswith(("&&", "||"), i) or char in ";|\n" or (
                char == "&" and command[i - 1:i] not in (">", "<") and command[i + 1:i + 2] != ">"):
            parts.append(command[start:i])
            i += 2 if command.startswith(("&&", "||"), i) else 1
            start = i
            continue
        i += 1
    parts.append(command[start:])
    return list(dict.fromkeys([command.strip(), *(part.strip() for part in parts if part.strip())]))


class TemplateError(ValueError):
    """An unusable ``[agents] cli`` template."""


@dataclass(frozen=True)
class CommandValues:
    prompt_file: str
    prompt: str
    worktree: str
    task_id: str
    attempt: int
    model: str
    max_turns: int
    max_cost_usd: float
    max_tokens: int
    timeout_seconds: float
    scratch_dir: str
    validation_commands: Sequence[str] = ()

    def placeholder(self, name: str) -> str:
        if name == "max_cost_usd":
            return f"{self.max_cost_usd:.6g}"
        if name == "timeout_seconds":
            return f"{self.timeout_seconds:g}"
        return str(getattr(self, name))


@dataclass(frozen=True)
class AgentCommand:
    argv: list[str]
    prompt_on_stdin: bool
    reader: OutputReader
    shown: str  # the command line for the log, the prompt text left out


def _shown(argv: list[str], prompt: str) -> str:
    return " ".join("{prompt}" if a == prompt else shlex.quote(a) for a in argv)


def _claude_code(v: CommandValues) -> AgentCommand:
    # acceptEdits accepts file edits inside the working directory (the worktree) and reads
    # there need no rule. No file tool is listed in --allowedTools: a bare rule ("Edit",
    # "Write", "Read") allows the tool on every path, outside the worktree too. Only the
    # task's validation commands are allowed to Bash, each exactly as written.
    argv = [
        "claude", "-p", "--output-format", "stream-json", "--verbose",
        "--model", v.model, "--max-turns", str(v.max_turns), "--max-budget-usd", v.placeholder("max_cost_usd"),
        "--permission-mode", "acceptEdits",
    ]
    # A part with unbalanced parentheses (a subshell's "(cd x") cannot be written as a rule:
    # Claude Code would misread the rest of the list.
    rules = [f"Bash({part})" for command in v.validation_commands for part in shell_parts(command)
             if part.count("(") == part.count(")")]
    if rules:
        argv += ["--allowedTools", ",".join(dict.fromkeys(rules))]
    return AgentCommand(argv, True, ClaudeCodeReader(), _shown(argv, v.prompt))


def _aider(v: CommandValues) -> AgentCommand:
    argv = [
        "aider", "--message-file", v.prompt_file, "--model", v.model,
        "--yes-always", "--no-auto-commits", "--no-dirty-commits", "--no-gitignore",
        "--no-check-update", "--no-show-release-notes", "--analytics-disable",
        "--no-pretty", "--no-stream", "--no-restore-chat-history",
        "--chat-history-file", f"{v.scratch_dir}/aider.chat.history.md",
        "--input-history-file", f"{v.scratch_dir}/aider.input.history",
    ]
    if v.validation_commands:
        argv += ["--test-cmd", " && ".join(v.validation_commands), "--auto-test"]
    return AgentCommand(argv, False, AiderReader(), _shown(argv, v.prompt))


def _codex(v: CommandValues) -> AgentCommand:
    # --sandbox workspace-write: writes in the worktree only (--full-auto, its old alias, was
    # deprecated and then removed from codex exec); exec never asks for approval.
    argv = ["codex", "exec", "--json", "--sandbox", "workspace-write", "--skip-git-repo-check", "--model", v.model,
            "-C", v.worktree, "-"]
    return AgentCommand(argv, True, CodexReader(v.model), _shown(argv, v.prompt))


PRESETS: dict[str, Callable[[CommandValues], AgentCommand]] = {
    "claude-code": _claude_code,
    "aider": _aider,
    "codex": _codex,
}
assert tuple(PRESETS) == PRESET_NAMES


def check_template(template: str) -> None:
    """Raise :class:`TemplateError` for a template that cannot be split or names an unknown placeholder."""
    problem = cli_template_problem(template)
    if problem:
        raise TemplateError(f"[agents] cli: {problem}")


def build_command(template: str, values: CommandValues) -> AgentCommand:
    """The argv for one attempt. Raises :class:`TemplateError` for a prompt too long for ``{prompt}``."""
    preset = PRESETS.get(template.strip())
    if preset is not None:
        return preset(values)
    check_template(template)
    parts = shlex.split(template)
    on_stdin = PROMPT_STDIN in parts
    argv = [_PLACEHOLDER.sub(lambda m: values.placeholder(m.group(1)), part) for part in parts if part != PROMPT_STDIN]
    too_long = [a for a in argv if len(a.encode()) >= MAX_ARGUMENT_BYTES]
    if too_long:
        size = len(too_long[0].encode()) // 1024
        raise TemplateError(
            f"[agents] cli: an argument of {size} KiB (the prompt?) is over the 128 KiB one argument may hold; "
            "use {prompt_stdin} or {prompt_file} instead of {prompt}"
        )
    return AgentCommand(argv, on_stdin, AutoReader(values.model), _shown(argv, values.prompt))
