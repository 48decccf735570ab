"""Load and validate a mission folder: mission.toml, issues/*.md, sis/*.json, replay/*.json.

Room: spec. Reads the mission folder (and looks at the repository folder for symlinks);
never writes anything.

Contract (used by every other layer):

- ``load_mission(path)`` returns a fully validated :class:`Mission` or raises
  :class:`MissionInvalid` carrying *all* problems found, each a :class:`Problem` that
  prints as ``FILE:LOCATION: message`` (FILE relative to the mission folder).
- ``validate_sis_document(data, source=..., repo_root=..., known_task_ids=...)`` applies
  the same rules to one SIS document (the LLM planner validates its output with it and
  sends the problems back as the repair message).
- ``sis_json_schema()`` / ``mission_json_schema()``: JSON Schema of the same models.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError

from hybrid_tui.spec.agent_cli import cli_template_problem
from hybrid_tui.spec.models import EditOp, MissionFile, MissionSection, Priority, RecordedTask, Sis, SisTask
from hybrid_tui.spec.paths import UnsafePath, normalize_repo_path

MISSION_FILE_NAME = "mission.toml"
PRIORITY_CLASSES = tuple(p.value for p in Priority)


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    location: str
    message: str

    def __str__(self) -> str:
        # Keys and values come from the document: control characters are shown escaped so
        # one problem stays one FILE:LOCATION line (and cannot drive the terminal).
        file, location, message = (_visible(part) for part in (self.file, self.location, self.message))
        if not location:
            return f"{file}: {message}"
        return f"{file}:{location}: {message}"


_CONTROL_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]} | {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


def _visible(text: str) -> str:
    return text.translate(_CONTROL_ESCAPES)


class MissionInvalid(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class Issue:
    id: str
    title: str
    body: str
    path: Path


@dataclass
class Mission:
    root: Path  # the mission folder
    mission_file: Path  # root / "mission.toml"
    config: MissionFile
    repo_path: Path  # resolved [mission] repo
    issues: list[Issue] = field(default_factory=list)
    sis: list[tuple[Path, Sis]] = field(default_factory=list)
    tasks: list[SisTask] = field(default_factory=list)  # every task of every SIS, file order
    recorded: dict[str, RecordedTask] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.mission.name

    def task(self, task_id: str) -> SisTask:
        return self._by_id[task_id]

    def issue_of(self, task_id: str) -> str:
        """The issue id whose SIS holds ``task_id``."""
        for _, sis in self.sis:
            if any(t.task_id == task_id for t in sis.tasks):
                return sis.issue.id
        raise KeyError(task_id)

    @property
    def dependency_count(self) -> int:
        return sum(len(t.dependencies) for t in self.tasks)

    @property
    def declared_files(self) -> list[str]:
        seen: dict[str, None] = {}
        for t in self.tasks:
            for path in t.declared_files:
                seen.setdefault(path, None)
        return list(seen)

    @property
    def _by_id(self) -> dict[str, SisTask]:
        cache = self.__dict__.get("_task_index")
        if cache is None or len(cache) != len(self.tasks):
            cache = {t.task_id: t for t in self.tasks}
            self.__dict__["_task_index"] = cache
        return cache


# ------------------------------------------------------------------------ schemas


def sis_json_schema() -> dict[str, Any]:
    """JSON Schema of a SIS document (the planner's ``submit_sis`` tool input schema)."""
    return Sis.model_json_schema()


def mission_json_schema() -> dict[str, Any]:
    return MissionFile.model_json_schema()


# --------------------------------------------------------------- error conversion

_OP_TAGS = {"create", "edit", "delete", "patch", "intent"}


def format_location(loc: Iterable[Any]) -> str:
    """``('tasks', 1, 'dependencies')`` -> ``tasks[1].dependencies``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _strip_union_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # A discriminated union puts the tag into the location (file_operations[0].edit.path);
    # the user's document has no such level, so drop it.
    out: list[Any] = []
    for i, part in enumerate(loc):
        if (
            isinstance(part, str)
            and part in _OP_TAGS
            and i >= 2
            and isinstance(loc[i - 1], int)
            and loc[i - 2] == "file_operations"
        ):
            continue
        out.append(part)
    return tuple(out)


def _short(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool)) or value is None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _pydantic_problems(exc: ValidationError, source: str, prefix: tuple[Any, ...] = ()) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = prefix + _strip_union_tags(tuple(err["loc"]))
        kind = err["type"]
        value = err.get("input")
        ctx = err.get("ctx") or {}
        if kind == "missing":
            message = "missing required field"
        elif kind == "extra_forbidden":
            message = "unknown field (not part of the format)"
        elif kind == "union_tag_not_found":
            loc = loc + (ctx.get("discriminator", "'op'").strip("'"),)
            message = "missing required field"
        elif kind == "union_tag_invalid":
            loc = loc + (ctx.get("discriminator", "'op'").strip("'"),)
            message = f"unknown operation {_short(ctx.get('tag'))}; expected one of {ctx.get('expected_tags')}"
        elif kind == "string_too_short" and ctx.get("min_length") == 1:
            message = (
                "edit needs a non-empty old_string (the exact text to replace)"
                if loc and loc[-1] == "old_string"
                else "must not be empty"
            )
        elif kind == "model_type" or kind == "dict_type":
            message = f"expected a table/object, got {_short(value)}"
        else:
            message = err["msg"]
            if isinstance(value, (str, int, float, bool)) or value is None:
                message += f" (got {_short(value)})"
        problems.append(Problem(source, format_location(loc), message))
    return problems


_TOML_POSITION = re.compile(r"^(?P<msg>.*?)\s*\(at line (?P<line>\d+), column (?P<col>\d+)\)\s*$", re.S)


def _parse_toml(text: str, source: str) -> tuple[dict | None, list[Problem]]:
    try:
        return tomllib.loads(text), []
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_POSITION.match(str(exc))
        if match:
            return None, [Problem(source, f"{match['line']}:{match['col']}", f"invalid TOML: {match['msg']}")]
        return None, [Problem(source, "", f"invalid TOML: {exc}")]


def _parse_json(text: str, source: str) -> tuple[Any, list[Problem]]:
    try:
        return json.loads(text), []
    except json.JSONDecodeError as exc:
        return None, [Problem(source, f"{exc.lineno}:{exc.colno}", f"invalid JSON: {exc.msg}")]


def _read_text(path: Path, source: str) -> tuple[str | None, list[Problem]]:
    try:
        return path.read_text(encoding="utf-8"), []
    except UnicodeDecodeError as exc:
        return None, [Problem(source, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})")]
    except OSError as exc:
        return None, [Problem(source, "", f"cannot read: {exc.strerror or exc}")]


# --------------------------------------------------------------------- file paths


def symlink_escape(repo_root: Path, rel_path: str) -> str | None:
    """The first component of ``rel_path`` (normalised) that is a symlink leading outside
    ``repo_root`` or into its ``.git``, or None. Components that do not exist yet are fine (a
    create). The run's sandbox refuses both; refusing them here keeps them out of a run."""
    root = repo_root.resolve()
    current = repo_root
    walked: list[str] = []
    for part in rel_path.split("/"):
        current = current / part
        walked.append(part)
        if not current.is_symlink():
            if not current.exists():
                return None
            continue
        target = current.resolve()
        if (target != root and root not in target.parents) or _inside_git_dir(repo_root, "/".join(walked)):
            return "/".join(walked)
    return None


def _inside_git_dir(repo_root: Path, link: str) -> bool:
    git_dir = repo_root.resolve() / ".git"
    target = (repo_root / link).resolve()
    return target == git_dir or git_dir in target.parents


def _check_ops(
    ops: list[BaseModel], loc: str, source: str, repo_root: Path | None
) -> list[Problem]:
    """Path safety and non-empty edits for a list of file operations; normalises op.path."""
    problems = []
    for j, op in enumerate(ops):
        here = f"{loc}[{j}]"
        try:
            norm = normalize_repo_path(op.path)
        except UnsafePath as exc:
            problems.append(Problem(source, f"{here}.path", str(exc)))
            continue
        if repo_root is not None and repo_root.is_dir():
            link = symlink_escape(repo_root, norm)
            if link is not None:
                problems.append(
                    Problem(
                        source,
                        f"{here}.path",
                        f"path {op.path!r} goes through the symlink {link!r}, which leads "
                        + ("into .git/" if _inside_git_dir(repo_root, link) else "outside the repository"),
                    )
                )
                continue
        op.path = norm
        if isinstance(op, EditOp) and not op.old_string:
            problems.append(
                Problem(source, f"{here}.old_string", "edit needs a non-empty old_string (the exact text to replace)")
            )
    return problems


# ---------------------------------------------------------------------- SIS rules


@dataclass
class _SisEntry:
    source: str  # display name, e.g. sis/002-auth.json
    sis: Sis | None  # None: did not parse into the model
    raw_task_ids: list[str]  # ids found in the raw document (for unparsed documents)
    unreadable: bool = False  # not even JSON: its task ids are unknown


def _raw_task_ids(data: Any) -> list[str]:
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        return []
    return [t["task_id"] for t in data["tasks"] if isinstance(t, dict) and isinstance(t.get("task_id"), str)]


def _parse_sis(data: dict | str, source: str, repo_root: Path | None) -> tuple[_SisEntry, list[Problem]]:
    """Parse one SIS document and apply the per-document rules (not the graph rules)."""
    if isinstance(data, str):
        data, problems = _parse_json(data, source)
        if problems:
            return _SisEntry(source, None, [], unreadable=True), problems
    if not isinstance(data, dict):
        return _SisEntry(source, None, [], unreadable=True), [Problem(source, "", f"expected a JSON object, got {type(data).__name__}")]
    try:
        sis = Sis.model_validate(data)
    except ValidationError as exc:
        return _SisEntry(source, None, _raw_task_ids(data)), _pydantic_problems(exc, source)
    problems = []
    for i, task in enumerate(sis.tasks):
        problems += _check_ops(task.file_operations, f"tasks[{i}].file_operations", source, repo_root)
    return _SisEntry(source, sis, []), problems


def _check_graph(entries: list[_SisEntry], known_task_ids: Iterable[str] = ()) -> list[Problem]:
    """Unique task ids, dependencies that exist, no cycles, across all documents."""
    problems: list[Problem] = []
    first_seen: dict[str, str] = {}  # task id -> "FILE:LOCATION" of its first definition
    known_outside = set(known_task_ids)
    for entry in entries:
        if entry.sis is None:
            for tid in entry.raw_task_ids:
                first_seen.setdefault(tid, entry.source)
            continue
        for i, task in enumerate(entry.sis.tasks):
            where = f"{entry.source}:tasks[{i}].task_id"
            if task.task_id in first_seen:
                problems.append(
                    Problem(
                        entry.source,
                        f"tasks[{i}].task_id",
                        f"duplicate task id {task.task_id!r} (also in {first_seen[task.task_id]})",
                    )
                )
            elif task.task_id in known_outside:
                problems.append(
                    Problem(
                        entry.source,
                        f"tasks[{i}].task_id",
                        f"duplicate task id {task.task_id!r} (already used by another issue's task)",
                    )
                )
            else:
                first_seen[task.task_id] = where
    all_ids = set(first_seen) | known_outside
    # A document that is not even JSON may define any id: do not pile "unknown task"
    # errors on top of its syntax error.
    ids_complete = not any(e.unreadable for e in entries)

    # Graph of the parsed tasks, in file order, for the cycle search.
    graph: dict[str, list[str]] = {}
    position: dict[str, tuple[str, int]] = {}  # task id -> (source, index) of its definition
    for entry in entries:
        if entry.sis is None:
            continue
        for i, task in enumerate(entry.sis.tasks):
            seen_deps: set[str] = set()
            for k, dep in enumerate(task.dependencies):
                loc = f"tasks[{i}].dependencies[{k}]"
                if dep in seen_deps:
                    problems.append(Problem(entry.source, loc, f"dependency {dep!r} is listed twice"))
                elif dep not in all_ids and ids_complete:
                    problems.append(Problem(entry.source, loc, f"unknown task {dep!r}"))
                seen_deps.add(dep)
            if task.task_id not in position:
                position[task.task_id] = (entry.source, i)
                graph[task.task_id] = [d for d in task.dependencies if d in all_ids]
    for cycle in find_cycles(graph):
        start = cycle[0]
        source, index = position[start]
        task = _task_at(entries, source, index)
        k = task.dependencies.index(cycle[1] if len(cycle) > 1 else start)
        names = " -> ".join(cycle + [start])
        problems.append(Problem(source, f"tasks[{index}].dependencies[{k}]", f"dependency cycle: {names}"))
    return problems


def _task_at(entries: list[_SisEntry], source: str, index: int) -> SisTask:
    for entry in entries:
        if entry.source == source and entry.sis is not None:
            return entry.sis.tasks[index]
    raise KeyError(source)  # pragma: no cover - positions come from entries


def find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one, each starting at its
    member that comes first in ``graph`` order (file order), following dependency edges."""
    order = {node: n for n, node in enumerate(graph)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in graph:  # iterative Tarjan: a 10,000-task chain must not hit the recursion limit
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            edges = graph.get(node, [])
            if child < len(edges):
                work.append((node, child + 1))
                nxt = edges[child]
                if nxt not in graph:
                    continue
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    cycles = []
    for component in components:
        members = set(component)
        start = min(component, key=order.__getitem__)
        if len(component) == 1 and start not in graph[start]:
            continue
        cycles.append(_cycle_path(graph, start, members))
    cycles.sort(key=lambda c: order[c[0]])
    return cycles


def _cycle_path(graph: dict[str, list[str]], start: str, members: set[str]) -> list[str]:
    """Shortest path start -> ... -> start inside one strongly connected component (BFS)."""
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        next_frontier = []
        for node in frontier:
            for nxt in graph[node]:
                if nxt not in members:
                    continue
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return list(reversed(path))
                if nxt not in parents:
                    parents[nxt] = node
                    next_frontier.append(nxt)
        frontier = next_frontier
    return [start]  # pragma: no cover - a component with a cycle always closes


def validate_sis_document(
    data: dict | str,
    *,
    source: str,
    repo_root: Path | None,
    known_task_ids: Iterable[str] = frozenset(),
) -> tuple[Sis | None, list[Problem]]:
    """Validate one SIS document with the mission rules.

    ``known_task_ids`` are the ids of tasks in *other* documents of the mission: a
    dependency may name them, and reusing one is a duplicate. ``repo_root`` (when given)
    is checked for symlinks leading out. Returns ``(sis, [])`` when valid, otherwise
    ``(None, problems)``; file paths in the returned SIS are normalised.
    """
    entry, problems = _parse_sis(data, source, repo_root)
    if entry.sis is not None:
        problems += _check_graph([entry], known_task_ids)
    return (entry.sis if not problems else None), problems


# ------------------------------------------------------------------- the mission


def _issue_from_markdown(path: Path, source: str) -> tuple[Issue | None, list[Problem]]:
    text, problems = _read_text(path, source)
    if text is None:
        return None, problems
    lines = text.splitlines()
    for n, line in enumerate(lines):
        if line.startswith("# ") and line[2:].strip():
            body = "\n".join(lines[:n] + lines[n + 1 :]).strip()
            return Issue(id=path.stem, title=line[2:].strip(), body=body, path=path), []
    return None, [Problem(source, "", "no title: the issue needs a first-level heading ('# Title')")]


def _display(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return os.path.relpath(path, root).replace(os.sep, "/")


def _glob(root: Path, pattern: str) -> list[Path]:
    if Path(pattern).is_absolute():
        base, rel = Path(pattern).anchor, Path(pattern).relative_to(Path(pattern).anchor).as_posix()
        return sorted(p for p in Path(base).glob(rel) if p.is_file())
    return sorted(p for p in root.glob(pattern) if p.is_file())


def _section_defaults(raw: dict | None) -> MissionSection:
    """The [mission] section's globs and repo even when the file as a whole is invalid,
    so the rest of the mission can still be checked and all problems reported at once."""
    values = {}
    section = raw.get("mission") if isinstance(raw, dict) else None
    if isinstance(section, dict):
        for key in ("repo", "issues", "sis", "replay"):
            if isinstance(section.get(key), str) and section[key]:
                values[key] = section[key]
    return MissionSection(name="?", **values)


def attempt_timeout_warnings(mission: Mission) -> list[str]:
    """One line per task whose estimate exceeds ``agents.attempt_timeout_seconds``: such an
    attempt is stopped as a ``timeout`` before it can finish (a warning, not an error)."""
    timeout = mission.config.agents.attempt_timeout_seconds
    sources = {t.task_id: _display(path, mission.root) for path, sis in mission.sis for t in sis.tasks}
    warnings = []
    for task in mission.tasks:
        if task.estimated_duration_minutes * 60 > timeout:
            warnings.append(
                f"warning: {sources.get(task.task_id, 'sis')}: task {task.task_id}: estimated "
                f"{task.estimated_duration_minutes:g} min is over agents.attempt_timeout_seconds = {timeout:g} s "
                f"({timeout / 60:g} min): its attempts will time out"
            )
    return warnings


def load_mission(path: str | Path) -> Mission:
    """Load the mission at ``path`` (its folder or its mission.toml) and validate all of it."""
    path = Path(path)
    if path.is_dir():
        root, mission_file = path, path / MISSION_FILE_NAME
    else:
        root, mission_file = path.parent, path
    root = root.absolute()
    mission_file = mission_file.absolute()
    mission_source = _display(mission_file, root)
    if not mission_file.is_file():
        what = "no such mission folder" if not path.exists() else f"no {MISSION_FILE_NAME} in this folder"
        raise MissionInvalid([Problem(str(path), "", what)])

    problems: list[Problem] = []

    # mission.toml
    config: MissionFile | None = None
    text, found = _read_text(mission_file, mission_source)
    problems += found
    raw = None
    if text is not None:
        raw, found = _parse_toml(text, mission_source)
        problems += found
    if raw is not None:
        try:
            config = MissionFile.model_validate(raw)
        except ValidationError as exc:
            problems += _pydantic_problems(exc, mission_source)
    section = config.mission if config else _section_defaults(raw)
    if config is not None:
        agents = config.agents
        if agents.min_implementers > agents.max_implementers:
            problems.append(
                Problem(
                    mission_source,
                    "agents.min_implementers",
                    f"min_implementers ({agents.min_implementers}) is greater than "
                    f"max_implementers ({agents.max_implementers})",
                )
            )
        if agents.backend == "cli" and not agents.cli:
            problems.append(
                Problem(mission_source, "agents.cli", "the cli backend needs a command template (agents.cli)")
            )
        elif agents.cli and (cli_problem := cli_template_problem(agents.cli)):
            problems.append(Problem(mission_source, "agents.cli", cli_problem))
        for index, folder in enumerate(config.workspace.path):
            # The worktree is the only place these folders may be: never the user's own tree.
            try:
                normalize_repo_path(folder)
            except UnsafePath as exc:
                problems.append(Problem(mission_source, f"workspace.path[{index}]", f"{folder!r}: {exc}"))
        steps = config.policies.scaling
        if [s[0] for s in steps] != sorted(s[0] for s in steps):
            problems.append(Problem(mission_source, "policies.scaling", "steps must be in ascending queue depth"))

    repo_path = Path(section.repo).expanduser()
    if not repo_path.is_absolute():
        repo_path = root / repo_path
    repo_ok = repo_path.is_dir()
    if not repo_ok:
        problems.append(
            Problem(mission_source, "mission.repo", f"repository folder {section.repo!r} does not exist")
        )

    # issues/*.md
    issues: list[Issue] = []
    issue_files = _glob(root, section.issues)
    if not issue_files:
        problems.append(Problem(mission_source, "mission.issues", f"no issue files match {section.issues!r}"))
    for issue_path in issue_files:
        issue, found = _issue_from_markdown(issue_path, _display(issue_path, root))
        problems += found
        if issue is not None:
            issues.append(issue)
    issue_ids = {i.id for i in issues} | {p.stem for p in issue_files}

    # sis/*.json
    entries: list[_SisEntry] = []
    sis_docs: list[tuple[Path, Sis]] = []
    planned_by: dict[str, str] = {}  # issue id -> SIS file that plans it
    for sis_path in _glob(root, section.sis):
        source = _display(sis_path, root)
        text, found = _read_text(sis_path, source)
        problems += found
        if text is None:
            continue
        entry, found = _parse_sis(text, source, repo_path if repo_ok else None)
        problems += found
        entries.append(entry)
        if entry.sis is None:
            continue
        sis_docs.append((sis_path, entry.sis))
        issue_id = entry.sis.issue.id
        if issue_id not in issue_ids:
            hint = f" (did you mean {sis_path.stem!r}?)" if sis_path.stem in issue_ids else ""
            problems.append(
                Problem(
                    source,
                    "issue.id",
                    f"no issue {issue_id!r}: an issue's id is its file name in {section.issues} without the suffix{hint}",
                )
            )
        elif issue_id in planned_by:
            problems.append(Problem(source, "issue.id", f"issue {issue_id!r} is already planned by {planned_by[issue_id]}"))
        else:
            planned_by[issue_id] = source
    problems += _check_graph(entries)
    tasks = [t for _, sis in sis_docs for t in sis.tasks]
    task_ids = {t.task_id for t in tasks} | {tid for e in entries for tid in e.raw_task_ids}
    if config is not None and config.policies.approve and set(planned_by) >= {i.id for i in issues}:
        # Every issue is planned, so every task is known: an entry naming nothing is a typo
        # that would let the work it meant to hold run unapproved.
        domains = {t.domain for t in tasks}
        for k, entry in enumerate(config.policies.approve):
            if entry not in PRIORITY_CLASSES and entry not in task_ids and entry not in domains:
                problems.append(Problem(mission_source, f"policies.approve[{k}]",
                                        f"{entry!r} is no priority class ({', '.join(PRIORITY_CLASSES)}), "
                                        "task id or domain of this mission"))

    batch = config.policies.batch if config is not None else None
    if batch is not None and batch.domains and set(planned_by) >= {i.id for i in issues}:
        domains = {t.domain for t in tasks}
        for k, entry in enumerate(batch.domains):
            if entry not in domains:
                problems.append(Problem(mission_source, f"policies.batch.domains[{k}]",
                                        f"{entry!r} is no domain of this mission's tasks "
                                        f"({', '.join(sorted(domains)) or 'none'})"))

    # replay/*.json
    recorded: dict[str, RecordedTask] = {}
    recorded_in: dict[str, str] = {}
    for replay_path in _glob(root, section.replay):
        source = _display(replay_path, root)
        text, found = _read_text(replay_path, source)
        problems += found
        if text is None:
            continue
        data, found = _parse_json(text, source)
        problems += found
        if found:
            continue
        try:
            record = RecordedTask.model_validate(data)
        except ValidationError as exc:
            problems += _pydantic_problems(exc, source)
            continue
        for a, attempt in enumerate(record.attempts):
            problems += _check_ops(
                attempt.file_operations, f"attempts[{a}].file_operations", source, repo_path if repo_ok else None
            )
        if record.task_id not in task_ids and not any(e.unreadable for e in entries):
            problems.append(Problem(source, "task_id", f"unknown task {record.task_id!r}"))
        elif record.task_id in recorded_in and record.task_id in task_ids:
            problems.append(
                Problem(source, "task_id", f"task {record.task_id!r} already has recorded attempts in {recorded_in[record.task_id]}")
            )
        else:
            recorded[record.task_id] = record
            recorded_in[record.task_id] = source

    if problems or config is None:
        raise MissionInvalid(problems)
    return Mission(
        root=root,
        mission_file=mission_file,
        config=config,
        repo_path=repo_path.resolve(),
        issues=issues,
        sis=sis_docs,
        tasks=tasks,
        recorded=recorded,
    )
