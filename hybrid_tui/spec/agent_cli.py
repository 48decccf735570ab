"""What ``[agents] cli`` may say: a preset name or a command template with known placeholders.

Room: spec. Pure string work, shared by mission validation (a bad template is refused by
``validate`` and before a run starts) and the ``cli`` backend that builds the command
(``agents.cli.command``).
"""

from __future__ import annotations

import re
import shlex

PRESET_NAMES = ("claude-code", "aider", "codex")
PLACEHOLDERS = (
    "prompt_file", "prompt", "prompt_stdin", "worktree", "task_id", "attempt", "model",
    "max_turns", "max_cost_usd", "max_tokens", "timeout_seconds", "scratch_dir",
)
PROMPT_STDIN = "{prompt_stdin}"


def cli_template_problem(template: str) -> str | None:
    """Why ``template`` is unusable (one line), or None for a preset or a good template."""
    if template.strip() in PRESET_NAMES:
        return None
    try:
        parts = shlex.split(template)
    except ValueError as exc:
        return f"cannot split the command template: {exc}"
    if not parts:
        return "the command template is empty"
    for part in parts:
        for name in re.findall(r"\{([A-Za-z_]+)\}", part):
            if name not in PLACEHOLDERS:
                return (f"unknown placeholder {{{name}}} (known: " + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
                        + f"; or a preset: {', '.join(PRESET_NAMES)})")
        if PROMPT_STDIN in part and part != PROMPT_STDIN:
            return "{prompt_stdin} must be a whole argument (it is removed; the prompt goes to stdin)"
    return None
