"""The words every room shares, defined once: exit codes and the operator's error, the task
and run status sets, the secret variables and the one redactor.

Room: the bottom of the house. Imports nothing of hybrid-tui; every room may import it.
"""

from __future__ import annotations

import json
import os
import re
from itertools import chain
from typing import IO, Any, Iterable

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
DEAD_STATUSES = TERMINAL_STATUSES - {"done"}  # never done without an operator; what a retry takes back
RUN_STATUSES = ("created", "planning", "running", "paused", "stopped", "finished")
LIVE_RUN_STATUSES = frozenset({"created", "planning", "running", "paused"})  # a coordinator may drive it

# ------------------------------------------------------------------ terminal text
# C0 controls, DEL and the C1 controls (U+0080-U+009F: a lone U+009B is a CSI on some
# terminals) become visible "control pictures" (ESC -> ␛), so an escape sequence in a task
# title, a mission name, a model's words or a validation's output is shown, never executed.
_CONTROL_PICTURES = {c: 0x2400 + c for c in range(0x20) if c != 0x0A}
_CONTROL_PICTURES[0x7F] = 0x2421
_CONTROL_PICTURES[0x09] = 0x20  # tab: a plain space keeps columns intact
_CONTROL_PICTURES.update({c: 0xFFFD for c in range(0x80, 0xA0)})
_WITH_NEWLINE_PICTURE = {**_CONTROL_PICTURES, 0x0A: 0x2424}  # ␤


def inert(text: str | None, *, keep_newlines: bool = False) -> str:
    """``text`` with every control character made visible and harmless: what every terminal
    sink (console, headless output, ``runs``, ``report``, error lines) shows of text that
    came from missions, models or validation output."""
    if not text:
        return ""
    return text.translate(_CONTROL_PICTURES if keep_newlines else _WITH_NEWLINE_PICTURE)


# ------------------------------------------------------------------ the coordinator's heartbeat
# The coordinator writes Run.heartbeat_at every second (runtime.coordinator); silent this long,
# it is gone (killed, crashed, stopped): views say so and the console queues nothing for it.
HEARTBEAT_LOST_SECONDS = 5.0


def coordinator_alive(heartbeat_at: float | None, now: float) -> bool:
    """True while a coordinator's heartbeat is fresh (a clock a little behind counts as fresh)."""
    return heartbeat_at is not None and now - heartbeat_at <= HEARTBEAT_LOST_SECONDS


def shown_run_status(status: str, heartbeat_at: float | None, now: float) -> str:
    """A run's status as views show it: a live status whose coordinator is gone says so."""
    if status in LIVE_RUN_STATUSES and status != "created" and not coordinator_alive(heartbeat_at, now):
        return f"{status} (coordinator lost)"
    return status

# ------------------------------------------------------------------ secrets
# The credentials the anthropic backend signs in with (one must be set to run it).
ANTHROPIC_CREDENTIAL_NAMES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
# Secret whatever the mission says: the Anthropic credentials and the keys the agent CLIs'
# presets sign in with (Codex reads CODEX_API_KEY; OPENAI_API_KEY is the usual OpenAI one).
SECRET_ENV_NAMES = (*ANTHROPIC_CREDENTIAL_NAMES, "OPENAI_API_KEY", "CODEX_API_KEY")
# More secret variables, named by the user: this variable (names separated by commas or
# spaces), or a mission's `[policies] secret_env` (declared when the mission is loaded).
SECRET_ENV_LIST_VARIABLE = "HYBRID_TUI_SECRET_ENV"
_declared_secret_names: list[str] = []
REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 8  # shorter values (a test's "k") would redact ordinary words
KEY_PATTERN = re.compile(r"sk-ant-[A-Za-z0-9_\-]{4,}")
_KEY_PATTERN_BYTES = re.compile(KEY_PATTERN.pattern.encode())
_SECRET_FIELD = re.compile(r"(api[_-]?key|auth[_-]?token|authorization|password|secret)", re.IGNORECASE)
_SECRET_FIELD_WORDS = ("key", "token", "authoriz", "password", "secret")  # in every _SECRET_FIELD match


def secret_env_names() -> tuple[str, ...]:
    """Every variable whose value is a secret: the built-in names, the ones listed in
    ``$HYBRID_TUI_SECRET_ENV`` and the ones a mission declared."""
    listed = re.split(r"[\s,]+", os.environ.get(SECRET_ENV_LIST_VARIABLE, ""))
    return tuple(dict.fromkeys([*SECRET_ENV_NAMES, *(n for n in listed if n), *_declared_secret_names]))


def declare_secret_env(names: Iterable[str]) -> None:
    """Add ``names`` (a mission's ``secret_env``) to the secret variables of this process."""
    for name in names:
        if name and name not in _declared_secret_names:
            _declared_secret_names.append(name)


def secret_values(extra: Iterable[str] = ()) -> list[str]:
    """The credential values to hide, longest first. Read from the environment at every call:
    a key set after the run started is still hidden."""
    found = {os.environ.get(name, "") for name in secret_env_names()} | set(extra)
    return sorted((v for v in found if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


class Redactor:
    """Replaces secret values and key-shaped strings in text, and recursively in dicts and
    lists (where a key that names a secret has its value replaced whole)."""

    def __init__(self, extra_values: Iterable[str] = ()):
        self.extra_values = [v for v in extra_values if v]
        self._needles_key: tuple | None = None
        self._needles: tuple[str, ...] = ()

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

    def needles(self) -> tuple[str, ...]:
        """What a text holding a secret contains: a secret value or its JSON-escaped form (text
        already encoded as JSON); pass it to :meth:`params` or :meth:`rows`, which also look for
        ``sk-ant-``. Cached while the secret variables keep their values (every store
        statement asks)."""
        get = os.environ.get
        listed = get(SECRET_ENV_LIST_VARIABLE, "")
        key = (listed, *map(get, _NAMES_CACHE.get(listed, len(_declared_secret_names))))
        if key != self._needles_key:
            values = self.values()
            self._needles = tuple(dict.fromkeys([*values, *escaped_secrets(values)]))
            self._needles_key = key
        return self._needles

    def params(self, params: Any, needles: tuple[str, ...]) -> Any:
        """The parameters of one SQL statement (a sequence or a mapping) with every string that
        holds a secret redacted; ``params`` itself when none does (the usual case: no copy)."""
        is_mapping = isinstance(params, dict)
        if not may_hold_secret_value(_JOINER.join(filter(_is_text, params.values() if is_mapping else params)),
                                     needles):
            return params
        texts = list(needles)
        if is_mapping:
            return {k: self.text(v, texts) if isinstance(v, str) else v for k, v in params.items()}
        return tuple(self.text(p, texts) if isinstance(p, str) else p for p in params)

    def rows(self, rows: Iterable[Any], needles: tuple[str, ...]) -> list[Any]:
        """The parameter rows of one batch (``executemany``) with every string that holds a
        secret redacted. Every string of the batch is searched at once (joined: a few scans at
        C speed, where a search per string cost more than the rest of the row's write); only
        when that finds something are the rows looked at one by one, and only the rows holding
        a secret are copied. ``rows`` itself (as a list) in the usual case."""
        rows = rows if type(rows) is list else list(rows)
        if any(map(_is_mapping, rows)):  # named parameters: their values
            values = chain.from_iterable(row.values() if isinstance(row, dict) else row for row in rows)
        else:
            values = chain.from_iterable(rows)
        if not may_hold_secret_value(_JOINER.join(filter(_is_text, values)), needles):
            return rows
        return [self.params(row, needles) for row in rows]

    def json_text(self, text: str) -> str:
        """JSON text (or any text) with every secret, raw or JSON-escaped, replaced."""
        needles = self.needles()
        if may_hold_secret_value(text, needles):
            return self.text(text, list(needles))
        return text


# Joins a statement's or a batch's strings for one search. Every string is in the joined text
# whole, so a secret in any of them is found; a match spanning two of them (a needle holding
# NUL, which no environment variable can) would only send the batch down the slow path.
_JOINER = "\0"
# isinstance(value, str) and isinstance(value, dict) as bound builtins that run no bytecode:
# a batch's values are filtered in C (both drivers bind a str subclass as text: it counts).
_is_text = str.__instancecheck__
_is_mapping = dict.__instancecheck__


class _SecretNamesCache:
    """:func:`secret_env_names` for the current ``$HYBRID_TUI_SECRET_ENV`` and declared names."""

    def __init__(self) -> None:
        self._key: tuple[str, int] | None = None
        self._names: tuple[str, ...] = ()

    def get(self, listed: str, declared: int) -> tuple[str, ...]:
        if (listed, declared) != self._key:
            self._names, self._key = secret_env_names(), (listed, declared)
        return self._names


_NAMES_CACHE = _SecretNamesCache()


class RedactingWriter:
    """A binary file whose writes have every secret replaced. Holds back a partial line (up to
    a bound) so a secret split across two writes is still caught. For subprocess output going
    to a log: validation commands, agent CLIs."""

    def __init__(self, file: IO[bytes], hold_max: int = 65536):
        self.file = file
        self.hold_max = hold_max
        self.secrets = [s.encode() for s in secret_values()]
        self.pending = bytearray()

    def write(self, data: bytes) -> int:
        self.pending += data
        cut = self.pending.rfind(b"\n") + 1
        if not cut and len(self.pending) > self.hold_max:
            cut = len(self.pending) - max((len(s) for s in self.secrets), default=len("sk-ant-") + 64)
        if cut > 0:
            self._emit(bytes(self.pending[:cut]))
            del self.pending[:cut]
        return len(data)

    def flush(self) -> None:
        """Everything written so far reaches the file (a held-back partial line too)."""
        if self.pending:
            self._emit(bytes(self.pending))
            self.pending.clear()
        self.file.flush()

    def flush_lines(self) -> None:
        """The complete lines written so far reach the file (for a log read while it grows)."""
        self.file.flush()

    def close(self) -> None:
        self.flush()
        self.file.close()

    def _emit(self, data: bytes) -> None:
        for secret in self.secrets:
            data = data.replace(secret, REDACTED.encode())
        if b"sk-ant-" in data:
            data = _KEY_PATTERN_BYTES.sub(b"sk-ant-" + REDACTED.encode(), data)
        self.file.write(data)


def escaped_secrets(values: list[str]) -> tuple[str, ...]:
    """The JSON-escaped forms of ``values``: JSON escapes a string one character at a time, so
    a string holding a secret encodes to text holding the secret's escaped form."""
    return tuple(json.dumps(v)[1:-1] for v in values)


def may_hold_secret_value(text: str, needles: tuple[str, ...]) -> bool:
    """Whether ``text`` holds a key-shaped prefix (``sk-ant-``, plain ASCII: the same in JSON)
    or any of ``needles`` (secret values or their JSON-escaped forms, as
    :meth:`Redactor.needles` or :func:`escaped_secrets` give them): plain substring searches,
    each one fast scan of the text."""
    if "sk-ant-" in text:
        return True
    for needle in needles:
        if needle in text:
            return True
    return False


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
