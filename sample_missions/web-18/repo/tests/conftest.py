"""Test client: calls the WSGI application directly, no sockets."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from wsgiref.util import setup_testing_defaults

import pytest

from webapp.app import App


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    text: str

    def json(self):
        return json.loads(self.text)


def call(app, path: str, query: str = "", **environ) -> Response:
    env = {"PATH_INFO": path, "QUERY_STRING": query, "wsgi.input": io.BytesIO(b"")} | environ
    setup_testing_defaults(env)
    captured = {}

    def start_response(status, headers):
        captured["status"], captured["headers"] = status, dict(headers)

    body = b"".join(app(env, start_response)).decode("utf-8")
    assert captured["headers"]["Content-Length"] == str(len(body.encode("utf-8")))
    return Response(int(captured["status"].split()[0]), captured["headers"], body)


@pytest.fixture
def app():
    return App()


@pytest.fixture
def client(app):
    return lambda path, query="", **environ: call(app, path, query, **environ)
