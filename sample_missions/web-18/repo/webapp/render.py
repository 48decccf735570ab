"""Page rendering with string.Template: each page template is wrapped in layout.html."""

from __future__ import annotations

from html import escape
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).resolve().parent / "templates"


def load_template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def render_page(template: str, title: str, **values: object) -> str:
    """Render templates/<template> inside the layout. Values are HTML-escaped, except those
    whose key ends in ``_html`` (already-built markup)."""
    safe = {key: value if key.endswith("_html") else escape(str(value)) for key, value in values.items()}
    content = load_template(template).substitute(safe)
    return load_template("layout.html").substitute(title=escape(title), content_html=content)
