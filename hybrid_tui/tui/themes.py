"""Themes as data (room: tui): ``themes/*.toml`` files become ``textual.theme.Theme`` objects.

Each TOML file holds the Theme fields (name, dark, primary, ..., [variables]). The folder is
the repository's ``themes/`` (shipped next to the package in an editable install), or
``HYBRID_TUI_THEMES`` when set.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path

from textual.theme import Theme

THEME_ORDER = ("dark", "light", "high-contrast")
_FIELDS = {f.name for f in dataclasses.fields(Theme)}


def themes_dir() -> Path:
    override = os.environ.get("HYBRID_TUI_THEMES")
    if override:
        return Path(override)
    for candidate in (Path(__file__).resolve().parents[2] / "themes", Path(__file__).resolve().parent / "themes"):
        if candidate.is_dir():
            return candidate
    return Path(__file__).resolve().parents[2] / "themes"


def load_theme(path: Path) -> Theme:
    """One theme file; an unknown key or a missing name is an error naming the file."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ValueError(f"{path}: unknown theme key(s) {', '.join(unknown)}")
    data.setdefault("name", path.stem)
    if "primary" not in data:
        raise ValueError(f"{path}: a theme needs at least 'primary'")
    return Theme(**data)


def load_themes(folder: Path | None = None) -> dict[str, Theme]:
    """Every theme in the folder, the shipped ones first in THEME_ORDER."""
    folder = folder or themes_dir()
    themes = {t.name: t for t in (load_theme(p) for p in sorted(folder.glob("*.toml")))}
    ordered = {name: themes.pop(name) for name in THEME_ORDER if name in themes}
    ordered.update(themes)
    return ordered


def available_themes() -> list[str]:
    return list(load_themes())
