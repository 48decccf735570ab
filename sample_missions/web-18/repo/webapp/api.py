"""The JSON API: /api/agents."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from . import agents

Response = tuple[str, list[tuple[str, str]], str]


def json_error(status: str, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
    body = json.dumps({"error": message})
    return status, [("Content-Type", "application/json")] + (headers or []), body


def agents_endpoint(environ: dict) -> Response:
    """GET /api/agents[?status=...]: the agent pool as JSON."""
    client = environ.get("REMOTE_ADDR", "-")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    status = query.get("status", [None])[0]

    records = agents.load_agents()
    if status is not None:
        records = [record for record in records if record["status"] == status]

    body = json.dumps({"agents": records, "count": len(records)})
    return "200 OK", [("Content-Type", "application/json")], body
