"""A local HTTP server speaking enough of the Anthropic Messages API (and Message Batches) for tests.

Each test scripts the replies in order (``server.push(...)``): a dict is a 200 JSON message,
a :class:`Reply` sets a status, headers, a delay (to provoke client timeouts) or ``drop``
(close the connection without answering). Every request is recorded (path, headers, JSON
body) for assertions. A batch consumes one scripted reply per request it contains; a reply
with an error status becomes an ``errored`` batch result.

A ``responder(body) -> dict | Reply`` answers when the queue is empty: for conversations
driven by the request content (an end-to-end run where requests arrive in any order).

The server is strict: every Messages request (direct, or inside a batch) is checked
against the rules the API documents and a request the API would refuse gets the API's 400
(or 404 for an unknown model) with its message; ``server.rejected`` lists them, and the
agents' ``server`` fixture fails a test whose code sent one (a test that sends one on
purpose sets ``server.expect_rejections = True``). The rules, from the Messages and
Message Batches API references:

- ``model`` is a known API id (``MODEL_MAX_OUTPUT``: dated ids and aliases, with their
  maximum output tokens; ``claude-test`` is this server's own model) and ``max_tokens``
  is 1..that maximum;
- ``messages`` is not empty; every message has non-empty content except an optional final
  assistant message; text blocks hold non-whitespace text;
- every ``tool_use`` of an assistant message has its ``tool_result`` in the next message,
  where the ``tool_result`` blocks come first (before any text), and every ``tool_result``
  answers a ``tool_use`` of the previous message, once; ``tool_use`` ids are unique;
- a final assistant message (a prefill) does not end with whitespace;
- every request carries a credential (``x-api-key`` or a bearer token: else 401) and an
  ``anthropic-version`` header;
- at most 4 blocks carry ``cache_control`` (tools, system and messages together), each
  ``{"type": "ephemeral"}`` (an optional ``ttl`` of 5m or 1h); a ``tool_use`` input is an object;
- tool names match ``^[a-zA-Z0-9_-]{1,64}$`` and are unique; ``input_schema`` is an
  object schema; a ``tool_choice`` of type ``tool`` names a defined tool;
- a batch's ``custom_id`` matches ``^[a-zA-Z0-9_-]{1,64}$`` and is unique in the batch; an
  invalid request in a batch becomes an ``errored`` result (``invalid_request_error``).

Errors carry the API's shape (``{"type": "error", "error": {...}, "request_id": ...}``) and
a ``request-id`` header; a 429 carries ``retry-after`` (scripted or 1 second) like the API.
``poll_faults`` are replies served instead of the next batch retrieve (a 529 while polling);
``POST /v1/messages/batches/{id}/cancel`` cancels a batch (results not yet ended become
``canceled``).

The real ``anthropic`` SDK is pointed at ``server.base_url``.
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Reply:
    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)  # when it arrived (retry-after checks)


_ids = itertools.count(1)


def text(value: str) -> dict:
    return {"type": "text", "text": value}


def tool_use(name: str, input: dict, id: str | None = None) -> dict:
    return {"type": "tool_use", "id": id or f"toolu_{next(_ids):04d}", "name": name, "input": input}


def message(
    *content: dict,
    stop_reason: str | None = None,
    input_tokens: int = 100,
    output_tokens: int = 20,
    cache_read: int = 0,
    cache_write: int = 0,
    model: str = "claude-test",
) -> dict:
    if stop_reason is None:
        stop_reason = "tool_use" if any(c["type"] == "tool_use" for c in content) else "end_turn"
    return {
        "id": f"msg_{next(_ids):04d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": list(content),
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_input_tokens": cache_read,
            "cache_creation_input_tokens": cache_write,
        },
    }


def error_body(status: int, message: str) -> dict:
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        500: "api_error",
        504: "timeout_error",
        529: "overloaded_error",
    }.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": f"req_{next(_ids):06d}"}


def error(status: int, message: str = "scripted error", headers: dict[str, str] | None = None) -> Reply:
    headers = dict(headers or {})
    if status == 429:  # the API always says when to come back
        headers.setdefault("retry-after", "1")
    return Reply(body=error_body(status, message), status=status, headers=headers)


def overloaded() -> Reply:
    """The API's 529, exactly as it is sent."""
    return error(529, "Overloaded")


# Maximum output tokens per API model id (dated ids and their aliases), from the models
# overview; "claude-test" is this server's own model for tests that do not care.
MODEL_MAX_OUTPUT: dict[str, int] = {
    "claude-test": 64_000,
    "claude-opus-4-6": 128_000,
    "claude-sonnet-4-6": 64_000,
    "claude-opus-4-5": 64_000, "claude-opus-4-5-20251101": 64_000,
    "claude-opus-4-1": 32_000, "claude-opus-4-1-20250805": 32_000,
    "claude-opus-4-0": 32_000, "claude-opus-4-20250514": 32_000,
    "claude-sonnet-4-5": 64_000, "claude-sonnet-4-5-20250929": 64_000,
    "claude-sonnet-4-0": 64_000, "claude-sonnet-4-20250514": 64_000,
    "claude-3-7-sonnet-latest": 64_000, "claude-3-7-sonnet-20250219": 64_000,
    "claude-haiku-4-5": 64_000, "claude-haiku-4-5-20251001": 64_000,
    "claude-3-5-haiku-latest": 8_192, "claude-3-5-haiku-20241022": 8_192,
    "claude-3-haiku-20240307": 4_096,
}
MAX_CACHE_BREAKPOINTS = 4
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_CUSTOM_ID = _TOOL_NAME


class Refused(Exception):
    """A request the API would refuse: its status and the API's message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _blocks(content: Any) -> list[dict]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])


def check_messages_request(body: Any) -> None:
    """Raise :class:`Refused` for a Messages request the API documents as invalid."""
    if not isinstance(body, dict):
        raise Refused(400, "request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or model not in MODEL_MAX_OUTPUT:
        raise Refused(404, f"model: {model}")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise Refused(400, "max_tokens: Field required" if max_tokens is None else "max_tokens: must be at least 1")
    if max_tokens > MODEL_MAX_OUTPUT[model]:
        raise Refused(400, f"max_tokens: {max_tokens} > {MODEL_MAX_OUTPUT[model]}, which is the maximum "
                           f"allowed number of output tokens for {model}")
    breakpoints = 0
    tools = body.get("tools") or []
    names: set[str] = set()
    for index, tool in enumerate(tools):
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise Refused(400, f"tools.{index}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
        if name in names:
            raise Refused(400, "tools: Tool names must be unique.")
        names.add(name)
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise Refused(400, f"tools.{index}.custom.input_schema.type: Input should be 'object'")
        breakpoints += "cache_control" in tool
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool" and choice.get("name") not in names:
        raise Refused(400, f"tool_choice.name: tool {choice.get('name')!r} is not among the request's tools")
    system = body.get("system")
    if isinstance(system, list):
        for index, block in enumerate(system):
            if block.get("type") != "text" or not str(block.get("text") or "").strip():
                raise Refused(400, f"system.{index}: text content blocks must contain non-whitespace text")
            breakpoints += "cache_control" in block
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Refused(400, "messages: at least one message is required")
    previous_tool_uses: set[str] = set()
    every_tool_use: set[str] = set()
    for index, msg in enumerate(messages):
        role, content = msg.get("role"), msg.get("content")
        if role not in ("user", "assistant"):
            raise Refused(400, f"messages.{index}.role: Input should be 'user' or 'assistant'")
        final_assistant = role == "assistant" and index == len(messages) - 1
        if not content and not final_assistant:
            raise Refused(400, f"messages.{index}: all messages must have non-empty content except for "
                               "the optional final assistant message")
        blocks = _blocks(content) if content else []
        answered: set[str] = set()
        tool_uses: set[str] = set()
        seen_other = False  # a block that is not a tool_result: no tool_result may follow it
        for position, block in enumerate(blocks):
            kind = block.get("type")
            breakpoints += "cache_control" in block
            if kind == "tool_result" and seen_other and previous_tool_uses:
                raise Refused(400, f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
                                   f"immediately after: {', '.join(sorted(previous_tool_uses))}. Each `tool_use` "
                                   "block must have a corresponding `tool_result` block in the next message, and "
                                   "the `tool_result` blocks must come first in its content.")
            seen_other = seen_other or kind != "tool_result"
            if kind == "text":
                if not isinstance(block.get("text"), str) or not block["text"]:
                    raise Refused(400, "messages: text content blocks must be non-empty")
                if not block["text"].strip() and not final_assistant:
                    raise Refused(400, "messages: text content blocks must contain non-whitespace text")
                if final_assistant and position == len(blocks) - 1 and block["text"] != block["text"].rstrip():
                    raise Refused(400, "messages: final assistant content cannot end with trailing whitespace")
            elif kind == "tool_use":
                if role != "assistant":
                    raise Refused(400, f"messages.{index}.content.{position}: tool_use blocks are only allowed in assistant messages")
                if not isinstance(block.get("input"), dict):
                    raise Refused(400, f"messages.{index}.content.{position}.tool_use.input: Input should be a valid dictionary")
                if block.get("id") in tool_uses or block.get("id") in every_tool_use:
                    raise Refused(400, f"messages.{index}.content.{position}: `tool_use` ids must be unique")
                tool_uses.add(block.get("id"))
            elif kind == "tool_result":
                if role != "user" or block.get("tool_use_id") not in previous_tool_uses:
                    raise Refused(400, f"messages.{index}.content.{position}: unexpected `tool_use_id` found in "
                                       f"`tool_result` blocks: {block.get('tool_use_id')}. Each `tool_result` block "
                                       "must have a corresponding `tool_use` block in the previous message.")
                if block["tool_use_id"] in answered:
                    raise Refused(400, f"messages.{index}.content.{position}: each `tool_use` block must have a "
                                       f"single `tool_result` block: {block['tool_use_id']} is answered twice")
                answered.add(block["tool_use_id"])
        missing = previous_tool_uses - answered
        if missing:
            raise Refused(400, f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately "
                               f"after: {', '.join(sorted(missing))}. Each `tool_use` block must have a corresponding "
                               "`tool_result` block in the next message.")
        previous_tool_uses = tool_uses
        every_tool_use |= tool_uses
    for where, block in _cache_controlled(body):
        control = block["cache_control"]
        if not isinstance(control, dict) or control.get("type") != "ephemeral" or \
                set(control) - {"type", "ttl"} or control.get("ttl", "5m") not in ("5m", "1h"):
            raise Refused(400, f"{where}.cache_control: Input should be {{'type': 'ephemeral'}} "
                               "(with an optional ttl of '5m' or '1h')")
    if breakpoints > MAX_CACHE_BREAKPOINTS:
        raise Refused(400, f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {breakpoints}.")


def _refused_headers(headers: Any) -> Refused | None:
    """The API answers 401 without a credential and 400 without an ``anthropic-version``."""
    if not headers.get("x-api-key") and not (headers.get("authorization") or "").startswith("Bearer "):
        return Refused(401, "x-api-key header is required")
    if not headers.get("anthropic-version"):
        return Refused(400, "anthropic-version: header is required")
    return None


def _cache_controlled(body: dict) -> list[tuple[str, dict]]:
    """(location, block) of every block of the request that carries ``cache_control``."""
    found = [(f"tools.{i}", t) for i, t in enumerate(body.get("tools") or []) if isinstance(t, dict)]
    if isinstance(body.get("system"), list):
        found += [(f"system.{i}", b) for i, b in enumerate(body["system"]) if isinstance(b, dict)]
    for index, msg in enumerate(body.get("messages") or []):
        content = msg.get("content")
        if isinstance(content, list):
            found += [(f"messages.{index}.content.{i}", b) for i, b in enumerate(content) if isinstance(b, dict)]
    return [(where, block) for where, block in found if "cache_control" in block]


def refusal_reply(refused: Refused) -> Reply:
    return Reply(body=error_body(refused.status, refused.message), status=refused.status)


class MessagesServer:
    def __init__(self, batch_polls_before_end: int = 1, responder: Callable[[Any], dict | Reply] | None = None):
        self.responder = responder
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.requests: list[Recorded] = []
        self.batches: dict[str, dict] = {}
        self.batch_polls_before_end = batch_polls_before_end
        self.rejected: list[tuple[str, str]] = []  # (path, the API's message) of every refused request
        self.expect_rejections = False
        self.poll_faults: deque[Reply] = deque()  # served instead of the next batch retrieve
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    # -- lifecycle
    def __enter__(self) -> "MessagesServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- scripting
    def push(self, *replies: dict | Reply) -> None:
        with self._lock:
            for reply in replies:
                self._queue.append(reply if isinstance(reply, Reply) else Reply(body=reply))

    def _next(self, body: Any = None) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if self.responder is not None:
            try:
                reply = self.responder(body)
            except Exception as exc:  # a broken script shows up as a server error, not a hang
                return Reply(body=error_body(500, f"fake server responder failed: {exc!r}"), status=500)
            return reply if isinstance(reply, Reply) else Reply(body=reply)
        return Reply(body=error_body(500, "fake server: no scripted reply left"), status=500)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def message_requests(self) -> list[dict]:
        """The JSON bodies sent to POST /v1/messages, in order."""
        return [r.body for r in self.requests if r.method == "POST" and r.path == "/v1/messages"]

    def reject(self, path: str, refused: Refused) -> Reply:
        with self._lock:
            self.rejected.append((path, refused.message))
        return refusal_reply(refused)

    def answer_message(self, body: Any) -> Reply:
        """A POST /v1/messages: refused when invalid, else the next scripted reply."""
        try:
            check_messages_request(body)
        except Refused as refused:
            return self.reject("/v1/messages", refused)
        return self._next(body)

    # -- batches
    def _create_batch(self, body: Any) -> Reply:
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            return self.reject("/v1/messages/batches", Refused(400, "requests: List should have at least 1 item"))
        seen: set[str] = set()
        for index, item in enumerate(requests):
            custom_id = item.get("custom_id")
            if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
                return self.reject("/v1/messages/batches", Refused(
                    400, f"requests.{index}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"))
            if custom_id in seen:
                return self.reject("/v1/messages/batches", Refused(
                    400, f"requests.{index}.custom_id: custom_id {custom_id!r} is not unique in the batch"))
            seen.add(custom_id)
        batch_id = f"msgbatch_{next(_ids):04d}"
        results = []
        for item in requests:
            try:
                check_messages_request(item.get("params"))
            except Refused as refused:
                self.reject(f"/v1/messages/batches#{item['custom_id']}", refused)
                results.append({"custom_id": item["custom_id"],
                                "result": {"type": "errored", "error": error_body(400, refused.message)}})
                continue
            reply = self._next(item.get("params"))
            if reply.status == 200:
                result = {"type": "succeeded", "message": reply.body}
            else:
                result = {"type": "errored", "error": reply.body}
            results.append({"custom_id": item["custom_id"], "result": result})
        self.batches[batch_id] = {"polls": 0, "results": results, "requests": requests, "canceled": False}
        return Reply(body=self._batch_object(batch_id, ended=False))

    def _cancel_batch(self, batch_id: str) -> dict:
        batch = self.batches[batch_id]
        if not self._ended(batch_id):
            batch["canceled"] = True
            for item in batch["results"]:  # nothing of an unfinished batch was processed here
                item["result"] = {"type": "canceled"}
        return self._batch_object(batch_id, ended=self._ended(batch_id))

    def _ended(self, batch_id: str) -> bool:
        batch = self.batches[batch_id]
        return batch["canceled"] or batch["polls"] > self.batch_polls_before_end

    def _batch_object(self, batch_id: str, *, ended: bool) -> dict:
        results = self.batches[batch_id]["results"]
        counts = {kind: sum(1 for r in results if r["result"]["type"] == kind)
                  for kind in ("succeeded", "errored", "canceled", "expired")}
        return {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": {
                "processing": 0 if ended else len(results),
                **({k: v for k, v in counts.items()} if ended else {k: 0 for k in counts}),
            },
            "created_at": "2025-01-01T00:00:00Z",
            "expires_at": "2025-01-02T00:00:00Z",
            "ended_at": "2025-01-01T00:01:00Z" if ended else None,
            "archived_at": None,
            "cancel_initiated_at": "2025-01-01T00:00:30Z" if self.batches[batch_id]["canceled"] else None,
            "results_url": f"{self.base_url}/v1/messages/batches/{batch_id}/results" if ended else None,
        }

    @property
    def cancelled_batches(self) -> list[str]:
        return [batch_id for batch_id, batch in self.batches.items() if batch["canceled"]]


def _handler_for(server: MessagesServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _record(self, body: Any) -> None:
            with server._lock:
                server.requests.append(
                    Recorded(self.command, self.path.split("?")[0], dict(self.headers.items()), body)
                )

        def _send(self, reply: Reply, raw: bytes | None = None, content_type: str = "application/json") -> None:
            if reply.delay:
                time.sleep(reply.delay)
            if reply.drop:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            data = raw if raw is not None else json.dumps(reply.body).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                if reply.status != 200:
                    self.send_header("request-id", (reply.body or {}).get("request_id", "req_scripted")
                                     if isinstance(reply.body, dict) else "req_scripted")
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up (timeout test)
                self.close_connection = True

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            self._record(body)
            path = self.path.split("?")[0]
            parts = path.strip("/").split("/")
            refused = _refused_headers(self.headers)
            if refused is not None:
                self._send(server.reject(path, refused))
                return
            if path == "/v1/messages":
                self._send(server.answer_message(body))
            elif path == "/v1/messages/batches":
                self._send(server._create_batch(body))
            elif len(parts) == 5 and parts[:3] == ["v1", "messages", "batches"] and parts[4] == "cancel" \
                    and parts[3] in server.batches:
                self._send(Reply(body=server._cancel_batch(parts[3])))
            else:
                self._send(Reply(body=error_body(404, f"no route {path}"), status=404))

        def do_GET(self) -> None:
            self._record(None)
            refused = _refused_headers(self.headers)
            if refused is not None:
                self._send(server.reject(self.path, refused))
                return
            parts = self.path.split("?")[0].strip("/").split("/")
            # v1/messages/batches/<id>[/results]
            if len(parts) >= 4 and parts[:3] == ["v1", "messages", "batches"] and parts[3] in server.batches:
                batch_id = parts[3]
                batch = server.batches[batch_id]
                if len(parts) == 5 and parts[4] == "results":
                    if not server._ended(batch_id):
                        self._send(server.reject(self.path, Refused(
                            400, f"Batch {batch_id} has not finished processing; results are available once it has ended")))
                        return
                    lines = "".join(json.dumps(r) + "\n" for r in batch["results"])
                    self._send(Reply(), raw=lines.encode(), content_type="application/binary")
                    return
                with server._lock:
                    fault = server.poll_faults.popleft() if server.poll_faults else None
                if fault is not None:
                    self._send(fault)
                    return
                batch["polls"] += 1
                self._send(Reply(body=server._batch_object(batch_id, ended=server._ended(batch_id))))
                return
            self._send(Reply(body=error_body(404, f"no route {self.path}"), status=404))

    return Handler
