"""Helpers for the sample-mission tests: load a mission's models, apply file operations,
run validation commands, and replay tasks on a real git repository.

Deliberately independent of the runtime/workspace code: these tests check that the sample
missions themselves are correct (every edit applies where the SIS says, every validation
command passes, the designed failures really fail), whatever the engine does.
"""

from __future__ import annotations

import heapq
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from hybrid_tui.spec.models import MissionFile, RecordedTask, Sis, SisTask

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPO_ROOT / "sample_missions"


class OpFailed(Exception):
    """A file operation that does not apply to the current content."""


@dataclass
class SampleMission:
    root: Path
    config: MissionFile
    sis: dict[str, Sis]  # file name -> SIS
    tasks: dict[str, SisTask]
    recorded: dict[str, RecordedTask] = field(default_factory=dict)

    @property
    def repo(self) -> Path:
        return self.root / self.config.mission.repo

    def ancestors(self, task_id: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self.tasks[task_id].dependencies)
        while stack:
            dep = stack.pop()
            if dep not in seen:
                seen.add(dep)
                stack.extend(self.tasks[dep].dependencies)
        return seen

    def topological_order(self, subset: set[str] | None = None, reverse_ties: bool = False) -> list[str]:
        """Dependency order (Kahn); among ready tasks the earliest in file order goes first,
        or the latest with ``reverse_ties`` (a different but equally valid integration order)."""
        ids = [t for t in self.tasks if subset is None or t in subset]
        rank = {t: (-i if reverse_ties else i) for i, t in enumerate(ids)}
        waiting = {t: {d for d in self.tasks[t].dependencies if d in rank} for t in ids}
        ready = [(rank[t], t) for t, deps in waiting.items() if not deps]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            _, task_id = heapq.heappop(ready)
            order.append(task_id)
            for other, deps in waiting.items():
                if task_id in deps:
                    deps.discard(task_id)
                    if not deps:
                        heapq.heappush(ready, (rank[other], other))
        assert len(order) == len(ids), "dependency cycle"
        return order

    def levels(self) -> list[list[str]]:
        """Waves of tasks whose dependencies are all in earlier waves (maximal parallelism)."""
        level: dict[str, int] = {}
        for task_id in self.topological_order():
            deps = self.tasks[task_id].dependencies
            level[task_id] = 1 + max((level[d] for d in deps), default=-1)
        waves: list[list[str]] = [[] for _ in range(max(level.values()) + 1)]
        for task_id in self.tasks:
            waves[level[task_id]].append(task_id)
        return waves

    def final_operations(self, task_id: str):
        """The operations that end up integrated: the last recorded attempt, else the SIS."""
        recorded = self.recorded.get(task_id)
        return recorded.attempts[-1].file_operations if recorded else self.tasks[task_id].file_operations


def load_sample(name_or_path: str | Path) -> SampleMission:
    root = Path(name_or_path)
    if not root.is_absolute():
        root = SAMPLES / root
    config = MissionFile.model_validate(tomllib.loads((root / "mission.toml").read_text()))
    sis = {p.name: Sis.model_validate_json(p.read_text()) for p in sorted(root.glob(config.mission.sis))}
    tasks: dict[str, SisTask] = {}
    for doc in sis.values():
        for task in doc.tasks:
            assert task.task_id not in tasks, f"duplicate task id {task.task_id}"
            tasks[task.task_id] = task
    recorded = {}
    for p in sorted(root.glob(config.mission.replay)):
        rec = RecordedTask.model_validate_json(p.read_text())
        recorded[rec.task_id] = rec
    return SampleMission(root, config, sis, tasks, recorded)


# ------------------------------------------------------------------ file operations


def apply_to_text(files: dict[str, str], ops) -> None:
    """Apply operations to an in-memory {path: content} snapshot (same rules as on disk)."""
    for op in ops:
        if op.op == "create":
            if op.path in files:
                raise OpFailed(f"{op.path}: create, but the file exists")
            files[op.path] = op.content
        elif op.op == "edit":
            if op.path not in files:
                raise OpFailed(f"{op.path}: edit, but the file does not exist")
            count = files[op.path].count(op.old_string)
            if count != 1:
                raise OpFailed(f"{op.path}: old_string occurs {count} times, expected exactly once")
            # The samples edit whole lines; a match in the middle of a line means a wrong indent.
            at = files[op.path].index(op.old_string)
            if (at and files[op.path][at - 1] != "\n") or not op.old_string.endswith("\n"):
                raise OpFailed(f"{op.path}: old_string is not a run of whole lines")
            files[op.path] = files[op.path].replace(op.old_string, op.new_string)
        elif op.op == "delete":
            if files.pop(op.path, None) is None:
                raise OpFailed(f"{op.path}: delete, but the file does not exist")
        else:
            raise OpFailed(f"{op.path}: {op.op} operations are not used by the sample missions")


def read_tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.parts and "__pycache__" not in p.parts and ".pytest_cache" not in p.parts
    }


def apply_to_dir(root: Path, ops) -> None:
    paths = {op.path for op in ops}
    files = {p: (root / p).read_text() for p in paths if (root / p).is_file()}
    before = set(files)
    apply_to_text(files, ops)
    for path in before - set(files):
        (root / path).unlink()
    for path, content in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(content)


# ------------------------------------------------------------------ validation


def validation_env() -> dict[str, str]:
    """`python` on PATH is this interpreter (it has pytest); no bytecode litter."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # The sample projects use bare pytest; this venv's plugins (textual snapshots...) cost seconds.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env.pop("PYTHONPATH", None)
    return env


@dataclass
class CommandResult:
    command: str
    returncode: int
    output: str


def run_validation(worktree: Path, task: SisTask) -> list[CommandResult]:
    results = []
    # Like the runtime: the commands, then the security checks, all in a shell.
    for command in [*task.validation.commands, *task.validation.security_checks]:
        proc = subprocess.run(
            ["bash", "-c", command], cwd=worktree, env=validation_env(), capture_output=True, text=True,
            timeout=task.validation.timeout_seconds,
        )
        results.append(CommandResult(command, proc.returncode, proc.stdout + proc.stderr))
    return results


def passed(results: list[CommandResult]) -> bool:
    return all(r.returncode == 0 for r in results)


# ------------------------------------------------------------------ git


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=check)


def init_repo(sample: SampleMission, dest: Path) -> Path:
    """Copy the mission's plain-folder repo and make it a git repository on branch main."""
    shutil.copytree(sample.repo, dest, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "base")
    return dest


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)


def discard_changes(repo: Path) -> None:
    git(repo, "reset", "-q", "--hard")
    git(repo, "clean", "-qfd")


# ------------------------------------------------------------------ whole-mission replays


@dataclass
class TaskOutcome:
    task_id: str
    status: str  # "integrated" | "conflict" | "skipped"
    first_attempt_failed: bool = False
    detail: str = ""


def serial_run(sample: SampleMission, repo: Path, order: list[str]) -> dict[str, TaskOutcome]:
    """Integrate tasks one after the other on the repository's current branch, each on the
    head left by the previous one (what file locks enforce for tasks sharing a file).

    A task whose edit no longer applies (the designed conflict) is reported, not raised; a
    recorded task replays its attempts in order, the worktree reset between attempts.
    """
    outcomes: dict[str, TaskOutcome] = {}
    for task_id in order:
        task = sample.tasks[task_id]
        if any(outcomes[d].status != "integrated" for d in task.dependencies):
            outcomes[task_id] = TaskOutcome(task_id, "skipped")
            continue
        attempts = [a.file_operations for a in sample.recorded[task_id].attempts] if task_id in sample.recorded else [task.file_operations]
        failed_first = False
        for number, ops in enumerate(attempts):
            try:
                apply_to_dir(repo, ops)
            except OpFailed as exc:
                discard_changes(repo)
                outcomes[task_id] = TaskOutcome(task_id, "conflict", detail=str(exc))
                break
            results = run_validation(repo, task)
            last = number == len(attempts) - 1
            if not last:
                assert not passed(results), f"{task_id}: recorded attempt {number + 1} should fail validation"
                failed_first = True
                discard_changes(repo)
                continue
            assert passed(results), f"{task_id}: validation failed:\n" + "\n".join(r.output for r in results)
            commit_all(repo, f"task {task_id}")
            outcomes[task_id] = TaskOutcome(task_id, "integrated", first_attempt_failed=failed_first)
    return outcomes


def wave_run(sample: SampleMission, repo: Path) -> dict[str, TaskOutcome]:
    """Maximal parallelism: every task of a wave starts from the same head (its own branch,
    validated there), then the wave is cherry-picked onto main one by one (a 3-way merge)."""
    outcomes: dict[str, TaskOutcome] = {}
    for wave in sample.levels():
        base = git(repo, "rev-parse", "HEAD").stdout.strip()
        branches = []
        for task_id in wave:
            task = sample.tasks[task_id]
            if any(outcomes[d].status != "integrated" for d in task.dependencies):
                outcomes[task_id] = TaskOutcome(task_id, "skipped")
                continue
            git(repo, "checkout", "-q", "-b", f"task/{task_id}", base)
            apply_to_dir(repo, sample.final_operations(task_id))
            results = run_validation(repo, task)
            assert passed(results), f"{task_id}: validation failed on its own branch:\n" + "\n".join(r.output for r in results)
            commit_all(repo, f"task {task_id}")
            branches.append(task_id)
            git(repo, "checkout", "-q", "main")
        for task_id in branches:
            pick = git(repo, "cherry-pick", f"task/{task_id}", check=False)
            if pick.returncode == 0:
                outcomes[task_id] = TaskOutcome(task_id, "integrated")
            else:
                status = git(repo, "status", "--porcelain").stdout
                git(repo, "cherry-pick", "--abort")
                outcomes[task_id] = TaskOutcome(task_id, "conflict", detail=status)
    return outcomes


def run_full_suite(repo: Path) -> CommandResult:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=repo,
                          env=validation_env(), capture_output=True, text=True, timeout=300)
    return CommandResult("pytest", proc.returncode, proc.stdout + proc.stderr)


def chain_depth(sample: SampleMission) -> int:
    """Length (in tasks) of the longest dependency chain."""
    return len(sample.levels())


def independent_pairs_sharing_files(sample: SampleMission) -> list[tuple[str, str, set[str]]]:
    pairs = []
    ids = list(sample.tasks)
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            shared = set(sample.tasks[a].declared_files) & set(sample.tasks[b].declared_files)
            if shared and a not in sample.ancestors(b) and b not in sample.ancestors(a):
                pairs.append((a, b, shared))
    return pairs


def apply_pair_in_order(sample: SampleMission, first: str, second: str) -> None:
    """Text-only: base + everything both tasks depend on + ``first`` + ``second``; raises
    OpFailed if ``second`` does not apply after ``first``."""
    files = read_tree(sample.repo)
    needed = sample.ancestors(first) | sample.ancestors(second)
    for task_id in sample.topological_order(needed):
        apply_to_text(files, sample.final_operations(task_id))
    apply_to_text(files, sample.final_operations(first))
    apply_to_text(files, sample.final_operations(second))


def final_tree(sample: SampleMission, order: list[str]) -> dict[str, str]:
    """Text-only: the repository after applying every task's final operations in ``order``."""
    files = read_tree(sample.repo)
    for task_id in order:
        apply_to_text(files, sample.final_operations(task_id))
    return files


def three_way_merge_pair(sample: SampleMission, a: str, b: str) -> dict[str, tuple[int, str]]:
    """Both tasks start from the same base (everything either depends on); merge their
    versions of each shared file with ``git merge-file``: {path: (conflicts, merged text)}."""
    base = read_tree(sample.repo)
    for task_id in sample.topological_order(sample.ancestors(a) | sample.ancestors(b)):
        apply_to_text(base, sample.final_operations(task_id))
    ours, theirs = dict(base), dict(base)
    apply_to_text(ours, sample.final_operations(a))
    apply_to_text(theirs, sample.final_operations(b))
    shared = set(sample.tasks[a].declared_files) & set(sample.tasks[b].declared_files)
    merged: dict[str, tuple[int, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted(shared):
            names = []
            for label, tree in (("ours", ours), ("base", base), ("theirs", theirs)):
                file = Path(tmp, label)
                file.write_text(tree.get(path, ""))
                names.append(str(file))
            proc = subprocess.run(["git", "merge-file", "-p", *names], capture_output=True, text=True)
            assert proc.returncode >= 0, proc.stderr
            merged[path] = (proc.returncode, proc.stdout)
    return merged
