"""What an agent CLI said about its own run: cost, tokens, model, session and its own errors.

Room: agents. Pure parsing, no I/O. One reader per CLI, each for the CLI's documented output:

- :class:`ClaudeCodeReader`: Claude Code's ``--output-format json`` (one result object),
  ``json --verbose`` (a JSON array of messages) and ``stream-json`` (one message per line:
  ``system``/``init`` with the model and session, ``assistant`` messages with their usage,
  and a last ``result`` with ``total_cost_usd``, ``usage``, ``modelUsage``, ``session_id``,
  ``is_error``, ``subtype`` and ``permission_denials``).
- :class:`CodexReader`: ``codex exec --json`` JSONL events (``thread.started`` with the
  ``thread_id``, ``turn.completed`` with ``usage``, ``turn.failed``, ``error``, and
  ``item.completed`` items; the last ``agent_message`` is the summary). Codex reports tokens,
  never dollars: they are priced with the pricing table.
- :class:`AiderReader`: aider's text (``Model: <name> with ...`` and ``Tokens: 1.2k sent,
  80 received. Cost: $0.0051 message, $0.0123 session.``).
- :class:`AutoReader` (a raw template): all three at once; the one that recognised the output
  wins.

Readers are fed line by line while the CLI runs (so the dollar cap and an auth error can stop
it early) and get the last bytes of the output at the end, so a result that ends a 50 MB
output, or a single JSON document too long to be a "line", is still read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from hybrid_tui.spec.models import Usage

CostFn = Callable[[str, Usage], float]

# What the CLI's own error means for the core (agents.base.FAILURE_TYPES).
AUTH, RATE_LIMITED, PERMISSION, BUDGET, TURNS, ERROR = (
    "auth_error", "rate_limited", "permission", "budget", "turns", "error",
)

_AUTH_TEXT = re.compile(
    r"authentication_error|authentication_failed|invalid x-api-key|invalid api key|"
    r"AuthenticationError|\b401\b.*(unauthori[sz]ed|auth)|(unauthori[sz]ed|auth)\w*.*\b401\b|"
    r"\"(error_)?status\"\s*:\s*40[13]\b|incorrect api key",
    re.IGNORECASE,
)
_RATE_TEXT = re.compile(r"rate_limit_error|RateLimitError|\b429\b|rate limit", re.IGNORECASE)


def classify_error_text(text: str) -> str:
    if _AUTH_TEXT.search(text):
        return AUTH
    if _RATE_TEXT.search(text):
        return RATE_LIMITED
    return ERROR


def _count(raw: dict, *keys: str) -> int:
    for key in keys:
        value = raw.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return int(value)
    return 0


def _money(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def anthropic_usage(raw: Any) -> Usage:
    """An Anthropic-shaped ``usage`` object (Claude Code's) as our ``Usage``."""
    if not isinstance(raw, dict):
        return Usage()
    return Usage(
        input_tokens=_count(raw, "input_tokens", "inputTokens"),
        output_tokens=_count(raw, "output_tokens", "outputTokens"),
        cache_read_tokens=_count(raw, "cache_read_input_tokens", "cacheReadInputTokens", "cache_read_tokens"),
        cache_write_tokens=_count(raw, "cache_creation_input_tokens", "cacheCreationInputTokens", "cache_write_tokens"),
    )


def add_usage(a: Usage, b: Usage) -> Usage:
    return Usage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cache_read_tokens=a.cache_read_tokens + b.cache_read_tokens,
        cache_write_tokens=a.cache_write_tokens + b.cache_write_tokens,
    )


def bare_model(name: str) -> str:
    """``anthropic/claude-sonnet-4-5`` (litellm's provider prefix, as aider prints it) -> the model."""
    return name.rsplit("/", 1)[-1].strip()


@dataclass
class AgentReport:
    """What the CLI reported. ``cost_usd`` is its own dollar figure (None: it gave none)."""

    recognised: bool = False  # the output had this CLI's shape at all
    final: bool = False  # its end-of-run summary was read
    cost_usd: float | None = None
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    session_id: str = ""
    summary: str = ""
    error_kind: str | None = None  # AUTH, RATE_LIMITED, PERMISSION, BUDGET, TURNS, ERROR
    error: str = ""  # the CLI's own words
    turns: int = 0


class OutputReader:
    """Base of the readers: line splitting and the fallback read of the output's end."""

    def __init__(self) -> None:
        self.report = AgentReport()

    def feed_line(self, line: str) -> None:  # pragma: no cover - every reader overrides it
        raise NotImplementedError

    def feed_stderr_line(self, line: str) -> None:
        """Stderr carries a CLI's diagnostics (and aider's errors): an auth error shows here."""
        if self.report.error_kind is None and _AUTH_TEXT.search(line):
            self.report.error_kind, self.report.error = AUTH, line.strip()[:500]

    def finish(self, tail: str, complete: bool) -> None:
        """``tail`` is the end of stdout (all of it when ``complete``)."""

    def running_cost(self, cost_of: CostFn, default_model: str) -> float:
        """The spend so far, for the per-attempt cap: the CLI's figure, else its tokens priced."""
        if self.report.cost_usd is not None:
            return self.report.cost_usd
        return price(cost_of, self.report.model or default_model, self.report.usage, default_model)


def price(cost_of: CostFn, model: str, usage: Usage, fallback_model: str) -> float:
    """``usage`` priced for ``model``; a model the table does not know is priced as ``fallback_model``."""
    if usage == Usage():
        return 0.0
    for name in dict.fromkeys((model, bare_model(model), fallback_model)):
        try:
            return cost_of(name, usage)
        except Exception:  # unpriced: try the next name
            continue
    return 0.0


def _json_object(line: str) -> dict | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


class ClaudeCodeReader(OutputReader):
    _RESULT_START = re.compile(r'\{\s*"type"\s*:\s*"result"')

    def __init__(self) -> None:
        super().__init__()
        self.message_usage: dict[str, tuple[str, Usage]] = {}  # message id -> (model, usage)

    def feed_line(self, line: str) -> None:
        data = _json_object(line)
        if data is not None:
            self._message(data)
        elif isinstance(line, str) and line.lstrip().startswith("["):
            try:
                items = json.loads(line)
            except ValueError:
                return
            if isinstance(items, list):
                for item in items:
                    if isinstance(item, dict):
                        self._message(item)

    def _message(self, data: dict) -> None:
        kind = data.get("type")
        report = self.report
        if isinstance(data.get("session_id"), str) and data["session_id"]:
            report.session_id = data["session_id"]
        if kind == "system":
            report.recognised = True
            if data.get("subtype") == "init" and isinstance(data.get("model"), str):
                report.model = data["model"]
            status = data.get("error_status") or data.get("status")
            if status in (401, 403) or (isinstance(data.get("error"), str) and classify_error_text(data["error"]) == AUTH):
                report.error_kind = AUTH
                report.error = f"API error {status}: {data.get('error') or 'authentication failed'}"
        elif kind == "assistant":
            report.recognised = True
            message = data.get("message") if isinstance(data.get("message"), dict) else {}
            model = message.get("model") if isinstance(message.get("model"), str) else None
            if model and model != "<synthetic>":
                report.model = report.model or model
            if data.get("error") and classify_error_text(str(data.get("error")) + json.dumps(message)[:2000]) == AUTH:
                report.error_kind, report.error = AUTH, _text_of(message) or str(data.get("error"))
            message_id = message.get("id")
            if isinstance(message_id, str) and isinstance(message.get("usage"), dict):
                if message_id not in self.message_usage:
                    report.turns += 1
                self.message_usage[message_id] = (model or report.model or "", anthropic_usage(message["usage"]))
                if not report.final:
                    total = Usage()
                    for _, usage in self.message_usage.values():
                        total = add_usage(total, usage)
                    report.usage = total
        elif kind == "result" or (kind is None and _looks_like_result(data)):
            self._result(data)

    def _result(self, data: dict) -> None:
        report = self.report
        report.recognised = report.final = True
        report.cost_usd = _money(data.get("total_cost_usd"))
        if report.cost_usd is None:
            report.cost_usd = _money(data.get("cost_usd"))
        if isinstance(data.get("usage"), dict):
            report.usage = anthropic_usage(data["usage"])
        model_usage = data.get("modelUsage")
        if isinstance(model_usage, dict) and model_usage:
            # The model that did most of the work (by its cost, else its output) is the one booked.
            def weight(item: tuple[str, Any]) -> tuple[float, int]:
                spec = item[1] if isinstance(item[1], dict) else {}
                return (_money(spec.get("costUSD")) or 0.0, _count(spec, "outputTokens"))
            report.model = max(model_usage.items(), key=weight)[0]
        if isinstance(data.get("num_turns"), int):
            report.turns = data["num_turns"]
        result_text = data.get("result") if isinstance(data.get("result"), str) else ""
        summary = result_text or (data.get("summary") if isinstance(data.get("summary"), str) else "")
        report.summary = summary
        subtype = str(data.get("subtype") or "")
        denials = data.get("permission_denials")
        if data.get("is_error") is True or subtype.startswith("error"):
            errors = data.get("errors") if isinstance(data.get("errors"), list) else []
            text = result_text or "; ".join(str(e) for e in errors) or subtype or "error"
            if subtype.startswith("error_max_budget"):
                report.error_kind = BUDGET
            elif subtype == "error_max_turns":
                report.error_kind = TURNS
            elif report.error_kind != AUTH:
                report.error_kind = classify_error_text(text)
            report.error = report.error if report.error_kind == AUTH and report.error else text
        elif isinstance(denials, list) and denials:
            report.error_kind = PERMISSION
            report.error = "permission denied: " + "; ".join(_denial(d) for d in denials[:5])

    def finish(self, tail: str, complete: bool) -> None:
        if self.report.final:
            return
        if complete:
            try:
                whole = json.loads(tail)
            except ValueError:
                whole = None
            if isinstance(whole, dict):
                self._message(whole)
            elif isinstance(whole, list):
                for item in whole:
                    if isinstance(item, dict):
                        self._message(item)
            if self.report.final:
                return
        # The result object ends the output: decode it from its start, whatever came before.
        decoder = json.JSONDecoder()
        for match in reversed(list(self._RESULT_START.finditer(tail))):
            try:
                data, _ = decoder.raw_decode(tail, match.start())
            except ValueError:
                continue
            if isinstance(data, dict):
                self._result(data)
                return


def _looks_like_result(data: dict) -> bool:
    return any(key in data for key in ("total_cost_usd", "cost_usd", "usage", "result", "summary", "is_error"))


def _text_of(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict)).strip()
    return str(content or "")


def _denial(denial: Any) -> str:
    if not isinstance(denial, dict):
        return str(denial)[:200]
    tool = str(denial.get("tool_name") or "tool")
    tool_input = denial.get("tool_input") if isinstance(denial.get("tool_input"), dict) else {}
    target = tool_input.get("file_path") or tool_input.get("path") or tool_input.get("command") or ""
    return f"{tool} {target}".strip()[:200]


class CodexReader(OutputReader):
    def __init__(self, model: str | None = None) -> None:
        super().__init__()
        self.report.model = model  # codex runs the model it is given (-m); it does not print it

    def feed_line(self, line: str) -> None:
        data = _json_object(line)
        if data is None:
            return
        kind = data.get("type")
        report = self.report
        if not isinstance(kind, str):
            return
        if kind in ("thread.started", "thread.resumed"):
            report.recognised = True
            report.session_id = str(data.get("thread_id") or report.session_id)
        elif kind == "turn.started":
            report.recognised = True
        elif kind == "turn.completed":
            report.recognised = report.final = True
            report.turns += 1
            raw = data.get("usage") if isinstance(data.get("usage"), dict) else {}
            cached = _count(raw, "cached_input_tokens")
            # OpenAI counts cached input inside input_tokens; ours keeps them apart.
            report.usage = add_usage(report.usage, Usage(
                input_tokens=max(0, _count(raw, "input_tokens") - cached),
                output_tokens=_count(raw, "output_tokens"),
                cache_read_tokens=cached,
            ))
        elif kind in ("turn.failed", "error"):
            report.recognised = True
            error = data.get("error")
            text = str(error.get("message") if isinstance(error, dict) else data.get("message") or error or kind)
            report.error = text[:2000]
            report.error_kind = classify_error_text(text)
            if kind == "turn.failed":
                report.final = True
        elif kind == "item.completed":
            report.recognised = True
            item = data.get("item") if isinstance(data.get("item"), dict) else {}
            if item.get("type") in ("agent_message", "assistant_message") and isinstance(item.get("text"), str):
                report.summary = item["text"]


_NUMBER = r"([\d.,]+)([kKmM]?)"
_AIDER_TOKENS = re.compile(
    rf"Tokens:\s*{_NUMBER} sent(?:,\s*{_NUMBER} cache write)?(?:,\s*{_NUMBER} cache hit)?,\s*{_NUMBER} received\."
)
_AIDER_COST = re.compile(r"Cost:\s*\$([\d.]+) message,\s*\$([\d.]+) session")
_AIDER_MODEL = re.compile(r"^(?:Main model|Model):\s*(\S+)")


def _aider_number(digits: str | None, suffix: str | None) -> int:
    if not digits:
        return 0
    value = float(digits.replace(",", ""))
    return int(value * {"k": 1e3, "m": 1e6}.get((suffix or "").lower(), 1))


class AiderReader(OutputReader):
    def feed_line(self, line: str) -> None:
        report = self.report
        text = line.strip()
        model = _AIDER_MODEL.match(text)
        if model:
            report.recognised = True
            report.model = bare_model(model.group(1))
            return
        tokens = _AIDER_TOKENS.search(text)
        if tokens:
            report.recognised = True
            groups = tokens.groups()
            report.usage = add_usage(report.usage, Usage(
                input_tokens=_aider_number(groups[0], groups[1]),
                cache_write_tokens=_aider_number(groups[2], groups[3]),
                cache_read_tokens=_aider_number(groups[4], groups[5]),
                output_tokens=_aider_number(groups[6], groups[7]),
            ))
            report.turns += 1
        cost = _AIDER_COST.search(text)
        if cost:
            report.recognised = report.final = True
            report.cost_usd = float(cost.group(2))  # the session's total so far
            return
        if re.search(r"litellm\.\w+Error|AuthenticationError|RateLimitError|APIError", text):
            kind = classify_error_text(text)
            if kind != ERROR or report.error_kind is None:
                report.error_kind, report.error = kind, text[:2000]
        elif text and not text.startswith(("Tokens:", "Cost:")):
            report.summary = text[:2000]

    def feed_stderr_line(self, line: str) -> None:
        self.feed_line(line)
        super().feed_stderr_line(line)


class AutoReader(OutputReader):
    """A raw template's output: whichever CLI shape it has (Claude Code's first, as before)."""

    def __init__(self, model: str | None = None) -> None:
        super().__init__()
        self.readers: list[OutputReader] = [ClaudeCodeReader(), CodexReader(model), AiderReader()]

    @property  # type: ignore[override]
    def report(self) -> AgentReport:
        for reader in self.readers:
            if reader.report.recognised:
                return reader.report
        return self.readers[0].report

    @report.setter
    def report(self, value: AgentReport) -> None:  # the base class's __init__ assigns one
        pass

    def feed_line(self, line: str) -> None:
        for reader in self.readers:
            reader.feed_line(line)

    def feed_stderr_line(self, line: str) -> None:
        for reader in self.readers:
            reader.feed_stderr_line(line)

    def finish(self, tail: str, complete: bool) -> None:
        for reader in self.readers:
            reader.finish(tail, complete)
