"""Load and validate a mission folder: mission.toml, issues/*.md, sis/*.json, replay/*.json.

Room: spec. Reads the mission folder and nothing else; never writes.

Contract (used by every other layer):

- ``load_mission(path)`` returns a fully validated :class:`Mission` or raises
  :class:`MissionInvalid` carrying *all* problems found, each a :class:`Problem` that
  prints as ``FILE:LOCATION: message``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .models import MissionFile, RecordedTask, Sis, SisTask


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.location}: {self.message}"


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

    @property
    def _by_id(self) -> dict[str, SisTask]:
        cache = self.__dict__.get("_task_index")
        if cache is None or len(cache) != len(self.tasks):
            cache = {t.task_id: t for t in self.tasks}
            self.__dict__["_task_index"] = cache
        return cache


def load_mission(path: str | Path) -> Mission:  # pragma: no cover - filled in by validate work
    raise NotImplementedError
