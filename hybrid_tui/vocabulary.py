"""The words every room shares, defined once: exit codes and the operator's error, the task
and run status sets, the secret variables and the one redactor.

Room: the bottom of the house. Imports nothing of hybrid-tui; every room may import it.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Iterable

# ------------------------------------------------------------------ exit codes and errors
EXIT_OK = 0  # the mission finished and every task is done
EXIT_FAILED = 1  # the mission finished with failed, blocked or cancelled tasks
EXIT_BAD_INPUT = 2  # bad input from the operator (one line on stderr); nothing changed
EXIT_STOPPED = 3  # stopped by the operator, or paused by a policy


class UserError(Exception):
    """Bad input from the operator: printed as one line, exit code 2."""


# ------------------------------------------------------------------ statuses
TASK_STATUSES = ("pending", "awaiting_approval", "ready", "running", "validating", "integrating", "retry_wait",
                 "done", "failed", "blocked", "cancelled", "rolled_back")
QUEUED_STATUSES = frozenset({"pending", "awaiting_approval", "ready", "retry_wait"})  # waiting for an attempt
IN_FLIGHT_STATUSES = frozenset({"running", "validating", "integrating"})  # an attempt holds the task
TERMINAL_STATUSES = frozenset({"done", "failed", "blocked", "cancelled", "rolled_back"})  # no attempt will come
FINISHED_STATUSES = frozenset({"done", "rolled_back"})  # its work was integrated (and maybe reverted)
UNSUCCESSFUL_STATUSES = frozenset({"failed", "blocked", "cancelled"})  # a run ending with one exits 1
RUN_STATUSES = ("created", "planning", "running", "paused", "stopped", "finished")
LIVE_RUN_STATUSES = frozenset({"created", "planning", "running", "paused"})  # a coordinator may drive it

# ------------------------------------------------------------------ secrets
SECRET_ENV_NAMES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 8  # shorter values (a test's "k") would redact ordinary words
KEY_PATTERN = re.compile(r"sk-ant-[A-Za-z0-9_\-]{4,}")
_SECRET_FIELD = re.compile(r"(api[_-]?key|auth[_-]?token|authorization|password|secret)", re.IGNORECASE)
_SECRET_FIELD_WORDS = ("key", "token", "authoriz", "password", "secret")  # in every _SECRET_FIELD match


def secret_values(extra: Iterable[str] = ()) -> list[str]:
    """The credential values to hide, longest first. Read from the environment at every call:
    a key set after the run started is still hidden."""
    found = {os.environ.get(name, "") for name in SECRET_ENV_NAMES} | set(extra)
    return sorted((v for v in found if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


class Redactor:
    """Replaces secret values and key-shaped strings in text, and recursively in dicts and
    lists (where a key that names a secret has its value replaced whole)."""

    def __init__(self, extra_values: Iterable[str] = ()):
        self.extra_values = [v for v in extra_values if v]

    def values(self) -> list[str]:
        return secret_values(self.extra_values)

    def text(self, value: str, values: list[str] | None = None) -> str:
        for secret in self.values() if values is None else values:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return KEY_PATTERN.sub("sk-ant-" + REDACTED, value)

    def any(self, value: Any, values: list[str] | None = None) -> Any:
        values = self.values() if values is None else values
        if isinstance(value, str):
            return self.text(value, values)
        if isinstance(value, dict):
            return {
                (self.text(k, values) if isinstance(k, str) else k):
                    (REDACTED if isinstance(k, str) and _SECRET_FIELD.search(k) and v else self.any(v, values))
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self.any(v, values) for v in value]
        return value

    def serialise(self, value: Any, values: list[str] | None = None, *, encode: Any = None) -> str:
        """``value`` as one JSON text (sorted keys, ``str`` for other objects) with every
        secret replaced. ``encode`` (default ``json.dumps`` with sorted keys) is tried first:
        when its text shows no trace of a secret, it is the answer, and ``value`` is not walked."""
        values = self.values() if values is None else values
        text = encode(value) if encode is not None else json.dumps(value, sort_keys=True, default=str)
        if not may_hold_secret(text, escaped_secrets(values)):
            return text
        return self.redacted_text(value, values)

    def redacted_text(self, value: Any, values: list[str]) -> str:
        """``value`` walked and redacted, then encoded (the slow path of :meth:`serialise`)."""
        return json.dumps(self.any(value, values), sort_keys=True, default=lambda obj: self.text(str(obj), values))


def escaped_secrets(values: list[str]) -> tuple[str, ...]:
    """The JSON-escaped forms of ``values``: JSON escapes a string one character at a time, so
    a string holding a secret encodes to text holding the secret's escaped form."""
    return tuple(json.dumps(v)[1:-1] for v in values)


def may_hold_secret_value(json_text: str, escaped: tuple[str, ...]) -> bool:
    """Whether JSON text may hold a secret value (given its escaped forms) or a key-shaped
    string (``sk-ant-`` is plain ASCII and encodes as itself)."""
    return "sk-ant-" in json_text or any(secret in json_text for secret in escaped)


def may_hold_secret_name(json_text: str) -> bool:
    """Whether JSON text may hold a dict key naming a secret. ``\\u`` (any non-ASCII
    character) always counts: case-insensitive matching folds a few non-ASCII letters (the
    Kelvin sign matches ``k``), which the ASCII check would miss."""
    if "\\u" in json_text:
        return True
    lowered = json_text.lower()
    return any(word in lowered for word in _SECRET_FIELD_WORDS)


def may_hold_secret(json_text: str, escaped: tuple[str, ...]) -> bool:
    """False only if redacting the value behind ``json_text`` (its JSON encoding) changes nothing."""
    return may_hold_secret_value(json_text, escaped) or may_hold_secret_name(json_text)


_REDACTOR = Redactor()


def redact(text: str) -> str:
    """``text`` with every credential value and key-shaped string replaced."""
    return _REDACTOR.text(text)
