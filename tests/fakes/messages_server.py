"""A local HTTP server speaking enough of the Anthropic Messages API (and Message Batches) for tests.

Each test scripts the replies in order (``server.push(...)``): a dict is a 200 JSON message,
a :class:`Reply` sets a status, headers, a delay (to provoke client timeouts) or ``drop``
(close the connection without answering). Every request is recorded (path, headers, JSON
body) for assertions. A batch consumes one scripted reply per request it contains; a reply
with an error status becomes an ``errored`` batch result.

A ``responder(body) -> dict | Reply`` answers when the queue is empty: for conversations
driven by the request content (an end-to-end run where requests arrive in any order).

The real ``anthropic`` SDK is pointed at ``server.base_url``.
"""

from __future__ import annotations

import itertools
import json
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
        429: "rate_limit_error",
        500: "api_error",
        529: "overloaded_error",
    }.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def error(status: int, message: str = "scripted error", headers: dict[str, str] | None = None) -> Reply:
    return Reply(body=error_body(status, message), status=status, headers=headers or {})


class MessagesServer:
    def __init__(self, batch_polls_before_end: int = 1, responder: Callable[[Any], dict | Reply] | None = None):
        self.responder = responder
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.requests: list[Recorded] = []
        self.batches: dict[str, dict] = {}
        self.batch_polls_before_end = batch_polls_before_end
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

    # -- batches
    def _create_batch(self, body: dict) -> dict:
        batch_id = f"msgbatch_{next(_ids):04d}"
        results = []
        for item in body.get("requests", []):
            reply = self._next(item.get("params"))
            if reply.status == 200:
                result = {"type": "succeeded", "message": reply.body}
            else:
                result = {"type": "errored", "error": reply.body}
            results.append({"custom_id": item["custom_id"], "result": result})
        self.batches[batch_id] = {"polls": 0, "results": results, "requests": body.get("requests", [])}
        return self._batch_object(batch_id, ended=False)

    def _batch_object(self, batch_id: str, *, ended: bool) -> dict:
        results = self.batches[batch_id]["results"]
        ok = sum(1 for r in results if r["result"]["type"] == "succeeded")
        return {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": {
                "processing": 0 if ended else len(results),
                "succeeded": ok if ended else 0,
                "errored": (len(results) - ok) if ended else 0,
                "canceled": 0,
                "expired": 0,
            },
            "created_at": "2025-01-01T00:00:00Z",
            "expires_at": "2025-01-02T00:00:00Z",
            "ended_at": "2025-01-01T00:01:00Z" if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{self.base_url}/v1/messages/batches/{batch_id}/results" if ended else None,
        }


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
            if path == "/v1/messages":
                self._send(server._next(body))
            elif path == "/v1/messages/batches":
                self._send(Reply(body=server._create_batch(body)))
            else:
                self._send(Reply(body=error_body(404, f"no route {path}"), status=404))

        def do_GET(self) -> None:
            self._record(None)
            parts = self.path.split("?")[0].strip("/").split("/")
            # v1/messages/batches/<id>[/results]
            if len(parts) >= 4 and parts[:3] == ["v1", "messages", "batches"] and parts[3] in server.batches:
                batch_id = parts[3]
                batch = server.batches[batch_id]
                if len(parts) == 5 and parts[4] == "results":
                    lines = "".join(json.dumps(r) + "\n" for r in batch["results"])
                    self._send(Reply(), raw=lines.encode(), content_type="application/binary")
                    return
                batch["polls"] += 1
                ended = batch["polls"] > server.batch_polls_before_end
                self._send(Reply(body=server._batch_object(batch_id, ended=ended)))
                return
            self._send(Reply(body=error_body(404, f"no route {self.path}"), status=404))

    return Handler
