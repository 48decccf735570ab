"""Preflight: before anything is spent, check that the project's environment can run the
mission's commands.

Room: workspace. Builds a scratch worktree of the base commit in a temporary folder (a
private repository borrowing the user's objects, or a copy of a plain folder), runs the
mission's ``[workspace] setup`` there, then checks every validation command's programs:
each must resolve on the workspace ``PATH`` (or be a shell builtin, or a file a task
declares), be executable, and a ``python -m MODULE`` must find its module. Nothing of the
user's repository is changed and the scratch folder is removed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from hybrid_tui.workspace.git import base_branch_problem
from hybrid_tui.workspace.setup import SetupFailed, run_setup
from hybrid_tui.workspace.validation import child_environment, workspace_environment

__all__ = ["PreflightProblem", "preflight"]

_CHECK_TIMEOUT_SECONDS = 60
_SEPARATORS = {"&&", "||", ";", "|", "&", "|&", "(", ")", "{", "}", "!", "\n"}
_KEYWORDS = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "in", "case", "esac",
             "function", "time", "[[", "]]"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_INTERPRETER = re.compile(r"^python[0-9.]*$")
_FIND_MODULE = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec(sys.argv[1]) else 3)"


@dataclass(frozen=True)
class PreflightProblem:
    source: str  # the SIS file, or mission.toml for the setup
    task_id: str
    command: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: task {self.task_id}" if self.task_id else self.source
        # One line, no control characters: commands and setup output come from the mission.
        return "".join(ch if ch.isprintable() else " " for ch in f"{where}: {self.message}")


def preflight(mission: Any, base_branch: str | None = None) -> list[PreflightProblem]:
    """Every environment problem of ``mission`` (a loaded :class:`~hybrid_tui.spec.loader.Mission`),
    one per task and command; ``[]`` when its commands can run."""
    workspace = mission.config.workspace
    with tempfile.TemporaryDirectory(prefix="hybrid-tui-preflight-") as scratch:
        root = Path(scratch) / "worktree"
        base = base_branch or mission.config.mission.base_branch
        if problem := base_branch_problem(Path(mission.repo_path), base):
            # Named as such: the scratch worktree's failing `git rev-parse` said only "failed".
            return [PreflightProblem("mission.toml", "", "", f"mission.base_branch: {problem}")]
        try:
            _scratch_worktree(Path(mission.repo_path), root, base_branch or mission.config.mission.base_branch)
        except _ScratchError as exc:
            return [PreflightProblem("mission.toml", "", "", f"mission.repo: {exc}")]
        if workspace.setup:
            try:
                run_setup(workspace, root, Path(scratch) / "setup.log", what="preflight")
            except SetupFailed as exc:
                lines = (Path(scratch) / "setup.log").read_text(errors="replace").strip().splitlines()
                starts = [i for i, line in enumerate(lines) if line.startswith("$ ")]
                log = [line.strip() for line in lines[starts[-1] + 1 if starts else 0:][-3:] if line.strip()]
                tail = f" (last output: {' | '.join(log)})" if log else ""
                message = str(exc).split(" (log: ")[0]
                return [PreflightProblem("mission.toml", "", "", f"workspace.setup: {message}{tail}")]
        env = child_environment(workspace_environment(root, workspace.path, workspace.env))
        declared = set(mission.declared_files)
        checker = _Checker(root, env, declared)
        problems: list[PreflightProblem] = []
        sources = {task.task_id: _display(path, mission.root) for path, sis in mission.sis for task in sis.tasks}
        for task in mission.tasks:
            source = sources.get(task.task_id, "sis")
            for command in [*task.validation.commands, *task.validation.security_checks]:
                for message in checker.check(command):
                    problems.append(PreflightProblem(source, task.task_id, command, message))
        return problems


class _ScratchError(Exception):
    pass


def _display(path: Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=_CHECK_TIMEOUT_SECONDS,
                          check=False)
    if done.returncode != 0:
        raise _ScratchError(f"git {args[0]}: {done.stderr.strip() or 'failed'}")
    return done.stdout


def _scratch_worktree(repo: Path, root: Path, base_branch: str | None) -> None:
    """The base commit checked out in ``root`` without touching the user's repository."""
    try:
        top = _git(repo, "rev-parse", "--show-toplevel").strip()
    except (_ScratchError, OSError):
        top = ""
    if not top or Path(top).resolve() != repo.resolve():
        # A plain folder: the run imports a copy; so does the preflight.
        shutil.copytree(repo, root, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        return
    base = _git(repo, "rev-parse", "--verify", "-q", f"{base_branch or 'HEAD'}^{{commit}}").strip()
    objects = Path(_git(repo, "rev-parse", "--git-path", "objects").strip())
    objects = (objects if objects.is_absolute() else repo / objects).resolve()
    fmt = _git(repo, "rev-parse", "--show-object-format").strip() or "sha1"
    root.mkdir(parents=True)
    _git(root, "init", "-q", "--template=", f"--object-format={fmt}", str(root))
    info = root / ".git" / "objects" / "info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "alternates").write_text(f"{objects}\n")
    _git(root, "reset", "-q", "--hard", base)


class _Checker:
    """Checks commands' programs, remembering each answer (missions repeat their commands)."""

    def __init__(self, root: Path, env: dict[str, str], declared: Iterable[str]) -> None:
        self.root = root
        self.env = env
        self.declared = set(declared)
        self._programs: dict[str, str | None] = {}
        self._modules: dict[tuple[str, str], str | None] = {}

    def check(self, command: str) -> list[str]:
        problems: list[str] = []
        for words in _simple_commands(command):
            program = words[0]
            problem = self._program(program)
            if problem is None and _INTERPRETER.match(os.path.basename(program)) and "-m" in words[1:]:
                at = words.index("-m", 1)
                if at + 1 < len(words):
                    problem = self._module(program, words[at + 1])
            if problem is not None:
                problems.append(f"validation command {command!r}: {problem}")
        return problems

    def _program(self, program: str) -> str | None:
        if program not in self._programs:
            self._programs[program] = self._find_program(program)
        return self._programs[program]

    def _find_program(self, program: str) -> str | None:
        if "/" in program:
            relative = os.path.normpath(program)
            if not os.path.isabs(program) and relative in self.declared:
                return None  # a task creates it
            path = Path(program) if os.path.isabs(program) else self.root / program
            if not path.exists():
                return f"program {program!r} was not found (exit 127 when run)"
            if not os.access(path, os.X_OK):
                return f"program {program!r} is not executable (exit 126 when run)"
            return None
        done = subprocess.run(["bash", "-c", 'type -t -- "$1"', "preflight", program], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=_CHECK_TIMEOUT_SECONDS)
        if done.returncode != 0 or not done.stdout.strip():
            return f"program {program!r} was not found on PATH (exit 127 when run)"
        return None

    def _module(self, interpreter: str, module: str) -> str | None:
        key = (interpreter, module)
        if key not in self._modules:
            top = module.split(".")[0]
            if any(f == f"{top}.py" or f.startswith(f"{top}/") for f in self.declared):
                self._modules[key] = None  # a task creates it
            else:
                done = subprocess.run([interpreter, "-c", _FIND_MODULE, module], cwd=self.root, env=self.env,
                                      capture_output=True, text=True, timeout=_CHECK_TIMEOUT_SECONDS)
                self._modules[key] = None if done.returncode == 0 else (
                    f"{interpreter} has no module {module!r} (declare it in [workspace] setup)"
                )
        return self._modules[key]


def _simple_commands(command: str) -> list[list[str]]:
    """The word lists of the simple commands in a shell line, env assignments and keywords
    dropped (a best effort: what cannot be parsed is left to the run)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError:
        return []
    commands: list[list[str]] = []
    current: list[str] = []
    for token in [*tokens, ";"]:
        if token in _SEPARATORS or set(token) <= set(";&|()"):
            if current:
                commands.append(current)
            current = []
            continue
        if not current and (token in _KEYWORDS or _ASSIGNMENT.match(token)):
            continue
        if "$" in token or "`" in token:
            if not current:
                current = ["$"]  # a program named by a variable: cannot be checked here
            continue
        current.append(token)
    return [words for words in commands if words[0] != "$"]
