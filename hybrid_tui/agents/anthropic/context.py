"""Repository context for the planner: the excerpts most relevant to an issue.

Room: agents. Reads files of the repository at the mission base (read-only); writes
nothing and runs no git: the file list it ranks comes from the caller
(``workspace.tree.repository_files``).
Relevance is lexical and cheap: a file scores for being named in the issue, for path words
the issue uses, and for identifiers of the issue found in its text.
"""

from __future__ import annotations

import re
from pathlib import Path

MAX_EXCERPTS = 6
MAX_EXCERPT_LINES = 200
MAX_SCANNED_BYTES = 200_000
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
_STOP = {
    "the", "and", "for", "with", "that", "this", "from", "should", "must", "when", "into", "add", "all",
    "are", "not", "but", "can", "has", "have", "use", "new", "its", "our", "was", "will", "also", "each",
}


def relevant_excerpts(repo_root: Path, files: list[str], issue_text: str, limit: int = MAX_EXCERPTS) -> dict[str, str]:
    words = {w.lower() for w in _WORD.findall(issue_text)} - _STOP
    identifiers = {w for w in _WORD.findall(issue_text) if "_" in w or any(c.isupper() for c in w[1:])}
    scores: dict[str, float] = {}
    for rel in files:
        score = 0.0
        if rel in issue_text or Path(rel).name in issue_text:
            score += 10
        parts = {p.lower() for p in re.split(r"[/._-]", rel) if p}
        score += 3 * len(parts & words)
        if score or identifiers:
            path = Path(repo_root) / rel
            try:
                if path.is_file() and not path.is_symlink() and path.stat().st_size <= MAX_SCANNED_BYTES:
                    text = path.read_text("utf-8")
                    score += sum(1 for ident in identifiers if ident in text)
            except (OSError, UnicodeDecodeError):
                pass
        if score > 0:
            scores[rel] = score
    best = sorted(scores, key=lambda r: (-scores[r], r))[:limit]
    excerpts: dict[str, str] = {}
    for rel in best:
        try:
            lines = (Path(repo_root) / rel).read_text("utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        text = "\n".join(lines[:MAX_EXCERPT_LINES])
        if len(lines) > MAX_EXCERPT_LINES:
            text += f"\n... [{len(lines) - MAX_EXCERPT_LINES} more lines]"
        excerpts[rel] = text
    return excerpts
