"""Themes as data (room: tui): ``themes/*.toml`` files become ``textual.theme.Theme`` objects.

Each TOML file holds the Theme fields (name, dark, primary, ..., [variables]). The folder is
the repository's ``themes/``, reached as ``hybrid_tui/tui/themes`` (a link to it in a source
checkout, the files themselves in an installed wheel), or ``HYBRID_TUI_THEMES`` when set.
Only themes that render are offered: every colour a theme names must parse and its colour
system must build (a theme the console cannot paint would crash it the moment it is chosen),
and a file that does not is skipped with its reason in :func:`theme_problems`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

THEME_ORDER = ("dark", "light", "high-contrast")
_FIELDS = {f.name for f in dataclasses.fields(Theme)}
_COLOUR_FIELDS = ("primary", "secondary", "warning", "error", "success", "accent", "foreground", "background",
                  "surface", "panel", "boost")


def themes_dir() -> Path:
    override = os.environ.get("HYBRID_TUI_THEMES")
    if override:
        return Path(override)
    # Next to this module, never above the package: installed, that is site-packages, where
    # a `themes` folder would be someone else's (and a wheel without them ran no mission at all).
    return Path(__file__).resolve().parent / "themes"


def check_renders(theme: Theme) -> None:
    """ValueError naming the field when ``theme`` cannot be painted by the console's panes
    (they turn theme colours into rich styles) or by Textual (its colour system)."""
    for name in _COLOUR_FIELDS:
        value = getattr(theme, name, None)
        if value is None:
            continue
        try:
            Color.parse(value).rich_color  # noqa: B018 - the conversion the panes make
        except (ColorParseError, ValueError) as exc:
            raise ValueError(f"theme {theme.name}: {name} = {value!r} is not a colour ({exc})") from None
    try:
        theme.to_color_system().generate()
    except Exception as exc:  # Textual raises several types here; any of them means "does not render"
        raise ValueError(f"theme {theme.name}: its colours do not build ({exc})") from None


def load_theme(path: Path) -> Theme:
    """One theme file; an unknown key, a missing name or a colour that does not render is an
    error naming the file."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ValueError(f"{path}: unknown theme key(s) {', '.join(unknown)}")
    data.setdefault("name", path.stem)
    if "primary" not in data:
        raise ValueError(f"{path}: a theme needs at least 'primary'")
    theme = Theme(**data)
    try:
        check_renders(theme)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return theme


_problems: dict[Path, str] = {}


def load_themes(folder: Path | None = None) -> dict[str, Theme]:
    """Every theme in the folder that renders, the shipped ones first in THEME_ORDER; the
    files skipped are in :func:`theme_problems`."""
    folder = folder or themes_dir()
    themes: dict[str, Theme] = {}
    for path in sorted(folder.glob("*.toml")):
        try:
            theme = load_theme(path)
        except (ValueError, tomllib.TOMLDecodeError, TypeError) as exc:
            _problems[path] = str(exc)
            continue
        _problems.pop(path, None)
        themes[theme.name] = theme
    ordered = {name: themes.pop(name) for name in THEME_ORDER if name in themes}
    ordered.update(themes)
    return ordered


def theme_problems() -> dict[Path, str]:
    """Theme files the last :func:`load_themes` skipped, with why."""
    return dict(_problems)


def available_themes() -> list[str]:
    return list(load_themes())


def check_theme_name(name: str) -> str:
    """``name`` when it is a theme the console offers; else ValueError listing those it does
    (``run --theme``, ``attach --theme`` check this before anything is created)."""
    names = available_themes()
    if name not in names:
        raise ValueError(f"--theme: unknown theme {name!r}; available: {', '.join(names) or 'none'}")
    return name
