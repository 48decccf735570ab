"""Synthetic missions of any size for the ``sim`` backend, load tests and benchmarks.

Room: app. Builds the SIS documents with the spec models (so they are valid by
construction) and writes a mission folder; no other I/O.

Shape of a generated mission (all of it deterministic for a seed):

- a small repository of a few dozen Python files in a handful of modules, each file holding
  one ``<task> = "pending"`` line per task that edits it, separated by blank lines so that
  independent edits of one file merge cleanly;
- tasks in layers: a task depends only on tasks of earlier layers (acyclic by construction),
  most on 0-3 of them, with a few "hub" tasks many others build on;
- file popularity follows a Zipf law, so a few files are touched by many tasks (lock
  contention) and most by few;
- a realistic mix of priorities, domains (the module of the first file a task touches),
  durations (log-normal, median about 12 minutes) and token estimates;
- concrete ``edit`` (and some ``create``) operations and a ``python -m py_compile``
  validation, so the ``replay`` backend can run the mission for real too.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from hybrid_tui.spec.models import (
    CreateOp,
    EditOp,
    Priority,
    Sis,
    SisIssue,
    SisTask,
    TokenEstimate,
    Validation,
)

MODULES = ["api", "auth", "billing", "search", "storage", "ui"]
FILE_STEMS = ["core", "handlers", "models", "views", "utils", "cache", "client", "config", "schema", "errors"]
VERBS = ["Fix", "Add", "Refactor", "Harden", "Speed up", "Document", "Validate", "Simplify", "Log", "Test"]
OBJECTS = [
    "error handling", "input validation", "pagination", "retry logic", "caching", "rate limits",
    "ARIA labels", "timeouts", "audit logging", "config loading", "session expiry", "query builder",
]
PRIORITY_WEIGHTS = [(Priority.CRITICAL, 5), (Priority.HIGH, 25), (Priority.MEDIUM, 50), (Priority.LOW, 20)]
DEPENDENCY_COUNT_WEIGHTS = [(0, 25), (1, 35), (2, 25), (3, 15)]
FILES_PER_TASK_WEIGHTS = [(1, 55), (2, 30), (3, 15)]
HUB_SHARE = 0.03  # share of tasks that many others depend on
HUB_PICK = 0.3  # chance that a dependency goes to a hub when one is available
CREATE_SHARE = 0.15  # share of tasks that also create a new file
ZIPF_EXPONENT = 1.0


def _weighted(rng: random.Random, pairs):
    values, weights = zip(*pairs)
    return rng.choices(values, weights=weights)[0]


def _file_count(tasks: int) -> int:
    """A few dozen files: 12 for tiny missions, about 40 at 200 tasks, at most 60."""
    return max(12, min(60, 12 + tasks // 7))


def _layer_count(tasks: int) -> int:
    return max(1, min(12, round(math.sqrt(tasks) / 2)))


def _plan_files(rng: random.Random, count: int) -> list[str]:
    paths = [f"src/{module}/{stem}.py" for stem in FILE_STEMS for module in MODULES]
    rng.shuffle(paths)  # popularity rank is random across modules
    return paths[:count]


def _zipf_sample(rng: random.Random, items: list[str], k: int) -> list[str]:
    """``k`` distinct items, item ``r`` (0-based rank) with weight 1/(r+1)^s."""
    chosen: list[str] = []
    weights = [1 / (rank + 1) ** ZIPF_EXPONENT for rank in range(len(items))]
    while len(chosen) < min(k, len(items)):
        pick = rng.choices(items, weights=weights)[0]
        if pick not in chosen:
            chosen.append(pick)
    return chosen


def _slot(task_id: str) -> str:
    return task_id.replace("-", "_")


def build_mission(tasks: int, seed: int, name: str) -> tuple[dict[str, str], list[tuple[str, str, Sis]]]:
    """The repository files ({path: content}) and the issues [(issue id, markdown, SIS)]."""
    if tasks < 1:
        raise ValueError("a mission needs at least one task")
    rng = random.Random(seed)
    files = _plan_files(rng, _file_count(tasks))
    layers = _layer_count(tasks)

    # Layer sizes shrink a little with depth: early layers hold the foundations.
    layer_of = sorted(min(layers - 1, int(layers * (i / tasks) ** 1.15)) for i in range(tasks))
    ids: list[str] = []
    hubs: list[int] = []
    deps_of: list[list[str]] = []
    files_of: list[list[str]] = []
    for index in range(tasks):
        touched = _zipf_sample(rng, files, _weighted(rng, FILES_PER_TASK_WEIGHTS))
        module = touched[0].split("/")[1]
        ids.append(f"{module}-{index + 1:04d}")
        files_of.append(touched)
        earlier = [i for i in range(index) if layer_of[i] < layer_of[index]]
        wanted = _weighted(rng, DEPENDENCY_COUNT_WEIGHTS) if earlier else 0
        recent = [i for i in earlier if layer_of[i] >= layer_of[index] - 2] or earlier
        chosen: set[int] = set()
        usable_hubs = [h for h in hubs if h in earlier]
        while len(chosen) < min(wanted, len(earlier)):
            pool = usable_hubs if usable_hubs and rng.random() < HUB_PICK else recent
            chosen.add(rng.choice(pool))
            if len(chosen) == len(set(usable_hubs) | set(recent)):
                break
        deps_of.append([ids[i] for i in sorted(chosen)])
        if layer_of[index] < layers - 1 and rng.random() < HUB_SHARE * 3 and len(hubs) < max(1, tasks * HUB_SHARE):
            hubs.append(index)

    # Repository: one slot line per (file, task), blank lines between slots.
    slots: dict[str, list[str]] = {path: [] for path in files}
    sis_tasks: list[SisTask] = []
    for index, task_id in enumerate(ids):
        for path in files_of[index]:
            slots[path].append(task_id)
    for index, task_id in enumerate(ids):
        verb, thing = rng.choice(VERBS), rng.choice(OBJECTS)
        module = files_of[index][0].split("/")[1]
        ops: list = [
            EditOp(
                op="edit",
                path=path,
                old_string=f'{_slot(task_id)} = "pending"\n',
                new_string=f'{_slot(task_id)} = "done"  # {verb.lower()} {thing}\n',
            )
            for path in files_of[index]
        ]
        if rng.random() < CREATE_SHARE:
            new_path = f"src/{module}/{_slot(task_id)}.py"
            ops.append(
                CreateOp(op="create", path=new_path, content=f'"""{verb} {thing} ({task_id})."""\n\nVALUE = {index}\n')
            )
        minutes = round(min(90.0, max(2.0, rng.lognormvariate(math.log(12), 0.6))), 1)
        tokens_in = int(6000 + minutes * 900 * rng.uniform(0.7, 1.3))
        tokens_out = int(tokens_in * rng.uniform(0.2, 0.45))
        compiled = " ".join(op.path for op in ops)
        sis_tasks.append(
            SisTask(
                task_id=task_id,
                title=f"{verb} {thing} in {module}",
                description=f"Synthetic task {index + 1} of {tasks}: {verb.lower()} {thing} ({', '.join(files_of[index])}).",
                priority=_weighted(rng, PRIORITY_WEIGHTS),
                domain=module,
                dependencies=deps_of[index],
                estimated_duration_minutes=minutes,
                estimated_tokens=TokenEstimate(input=tokens_in, output=tokens_out),
                file_operations=ops,
                validation=Validation(commands=[f"python -m py_compile {compiled}"], timeout_seconds=60),
            )
        )

    repo: dict[str, str] = {
        "README.md": f"# {name}\n\nA synthetic repository generated by `hybrid-tui generate` (seed {seed}).\n",
        ".gitignore": "__pycache__/\n*.pyc\n",
    }
    for module in MODULES:
        if any(path.startswith(f"src/{module}/") for path in files):
            repo[f"src/{module}/__init__.py"] = f'"""The {module} module."""\n'
    for path in files:
        body = "".join(f'{_slot(task_id)} = "pending"\n\n' for task_id in slots[path])
        repo[path] = f'"""{path}: synthetic module for the {name} mission."""\n\n{body}'

    # Issues: runs of 1-4 consecutive tasks (neighbours are in the same or adjacent layers).
    issues: list[tuple[str, str, Sis]] = []
    start = 0
    while start < tasks:
        size = min(tasks - start, _weighted(rng, [(1, 40), (2, 30), (3, 20), (4, 10)]))
        group = sis_tasks[start : start + size]
        number = len(issues) + 1
        title = group[0].title if size == 1 else f"{group[0].title} (+{size - 1} related)"
        issue_id = f"{number:04d}-{group[0].task_id}"
        body = "Synthetic issue planned into:\n\n" + "".join(f"- {t.task_id}: {t.title}\n" for t in group)
        sis = Sis(issue=SisIssue(id=issue_id, title=title, body=body), tasks=group)
        issues.append((issue_id, f"# {title}\n\n{body}", sis))
        start += size
    return repo, issues


def mission_toml(name: str, tasks: int, seed: int) -> str:
    # About $0.165 per Sonnet-class task (the review's cost model) plus a third for retries.
    mission_usd = max(5, math.ceil(tasks * 0.165 * 1.35))
    retry_usd = max(2, math.ceil(mission_usd * 0.1))
    return (
        f"# Synthetic mission: {tasks} tasks, seed {seed}. Regenerate with\n"
        f"#   hybrid-tui generate --tasks {tasks} --seed {seed} --name {name} DEST\n"
        f"[mission]\nname = {json.dumps(name)}\nrepo = \"repo\"\n\n"
        f"[agents]\nplanners = 4\nmin_implementers = 4\nmax_implementers = 12\nbackend = \"sim\"\n"
        # Over the longest generated estimate (90 min): a run (and estimate) would stop it otherwise.
        f"attempt_timeout_seconds = 7200\n\n"
        f"[budget]\nmission_usd = {mission_usd}.0\nretry_usd = {retry_usd}.0\n"
    )


def generate_mission(dest: Path, *, tasks: int, seed: int, name: str | None = None) -> None:
    """Write a synthetic mission folder at ``dest`` (created; must be empty or absent)."""
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"{dest} is not an empty folder")
    name = name or f"synthetic-{tasks}"
    repo, issues = build_mission(tasks, seed, name)
    for relative, content in repo.items():
        path = dest / "repo" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (dest / "issues").mkdir(parents=True, exist_ok=True)
    (dest / "sis").mkdir(parents=True, exist_ok=True)
    for issue_id, markdown, sis in issues:
        (dest / "issues" / f"{issue_id}.md").write_text(markdown)
        (dest / "sis" / f"{issue_id}.json").write_text(sis.model_dump_json(indent=2, exclude_defaults=False) + "\n")
    (dest / "mission.toml").write_text(mission_toml(name, tasks, seed))
