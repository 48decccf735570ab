"""The knowledge base: Markdown documents in one folder, read by name."""

from __future__ import annotations

from pathlib import Path


class DocumentNotFound(LookupError):
    """No such document in the knowledge base."""


class KnowledgeBase:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def names(self) -> list[str]:
        """Document names (file names without .md), sorted."""
        return sorted(path.stem for path in self.root.glob("*.md"))

    def read(self, name: str) -> str:
        """The text of document ``name`` (with or without the .md suffix)."""
        path = self.root / (name if name.endswith(".md") else name + ".md")
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DocumentNotFound(name) from None

    def search(self, query: str) -> list[str]:
        """Names of the documents that contain ``query``, ignoring case."""
        needle = query.lower()
        return [name for name in self.names() if needle in self.read(name).lower()]
