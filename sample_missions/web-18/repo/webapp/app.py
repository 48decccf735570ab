"""The WSGI application: template pages, the knowledge base and the JSON API."""

from __future__ import annotations

from html import escape
from pathlib import Path
from urllib.parse import parse_qs

from . import agents, api
from .knowledge import DocumentNotFound, KnowledgeBase
from .render import render_page

DEFAULT_KNOWLEDGE = Path(__file__).resolve().parent.parent / "knowledge"
HTML = [("Content-Type", "text/html; charset=utf-8")]


def page(body: str, status: str = "200 OK") -> api.Response:
    return status, list(HTML), body


def not_found(what: str) -> api.Response:
    return page(render_page("error.html", "Not found", message=f"{what} was not found."), "404 Not Found")


class App:
    def __init__(self, knowledge_dir: str | Path = DEFAULT_KNOWLEDGE) -> None:
        self.knowledge = KnowledgeBase(knowledge_dir)

    def __call__(self, environ, start_response):
        status, headers, body = self.route(environ)
        data = body.encode("utf-8")
        start_response(status, headers + [("Content-Length", str(len(data)))])
        return [data]

    def route(self, environ: dict) -> api.Response:
        path = environ.get("PATH_INFO") or "/"
        if path == "/":
            return self.dashboard()
        if path == "/settings":
            return page(render_page("settings.html", "Settings"))
        if path == "/profile":
            return page(render_page("profile.html", "Profile", name="Ada Operator", role="Mission lead"))
        if path == "/docs":
            return self.document_list()
        if path.startswith("/docs/"):
            return self.document(path.removeprefix("/docs/"))
        if path == "/search":
            return self.search(environ)
        if path == "/api/agents":
            return api.agents_endpoint(environ)
        return not_found(f"The page {path}")

    def dashboard(self) -> api.Response:
        pool = agents.load_agents()
        busy = sum(1 for agent in pool if agent["status"] == "running")
        rows = "\n".join(
            f'      <tr><td>{escape(a["name"])}</td><td>{escape(a["domain"])}</td><td>{escape(a["status"])}</td></tr>'
            for a in pool
        )
        progress = round(100 * busy / len(pool)) if pool else 0
        return page(render_page("dashboard.html", "Dashboard", progress=progress, busy=busy, rows_html=rows))

    def document_list(self) -> api.Response:
        items = "\n".join(f'    <li><a href="/docs/{escape(n)}">{escape(n)}</a></li>' for n in self.knowledge.names())
        return page(render_page("docs.html", "Knowledge", items_html=items))

    def document(self, name: str) -> api.Response:
        try:
            text = self.knowledge.read(name)
        except DocumentNotFound:
            return not_found(f"The document {name!r}")
        return page(render_page("doc.html", name, text=text))

    def search(self, environ: dict) -> api.Response:
        query = parse_qs(environ.get("QUERY_STRING", "")).get("q", [""])[0].strip()
        names = self.knowledge.search(query) if query else []
        items = "\n".join(f'    <li><a href="/docs/{escape(n)}">{escape(n)}</a></li>' for n in names)
        return page(render_page("search.html", "Search", query=query, count=len(names), items_html=items))


application = App()
