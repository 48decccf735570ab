"""Issue 17: the quickstart works after a plain ``pip install`` of the package (no test
extra, no editable install of the source tree).

The wheel is built from the source as ``pip install`` builds it, and its files alone are the
package the run imports (the test's venv supplies the dependencies, not its pytest: the
quickstart's validation finds pytest through its own ``[workspace]`` venv). A wheel without
the console's themes refused every ``run``, headless too: "--theme: unknown theme 'dark';
available: none".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from runtime.helpers import copy_quickstart, only_run_dir

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package as a plain ``pip install`` lays it out: the wheel's files, unpacked."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy: pip builds in the tree it is given (build/, *.egg-info)
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for folder in ("hybrid_tui", "themes"):
        shutil.copytree(REPO / folder, source / folder, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(root / "dist"),
                            str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    wheel, = (root / "dist").glob("hybrid_tui-*.whl")
    site = root / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def cli(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HYBRID_TUI_CRASH_AT", "HYBRID_TUI_THEMES")}
    env["PYTHONPATH"] = str(site)  # ahead of the editable install's finder
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if Path(p).resolve() != Path(sys.executable).parent.resolve())
    return subprocess.run([sys.executable, "-m", "hybrid_tui", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_installed_package_is_the_wheels(installed: Path, tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": str(installed)}
    env.pop("HYBRID_TUI_THEMES", None)
    found = subprocess.run([sys.executable, "-c", "import hybrid_tui.tui.themes as t; print(t.__file__); "
                            "print(' '.join(t.available_themes()))"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert found.returncode == 0, found.stderr
    module, themes = found.stdout.splitlines()
    assert Path(module).is_relative_to(installed)
    assert themes.split()[:3] == ["dark", "light", "high-contrast"]


def test_the_quickstart_runs_headless_from_the_wheel(installed: Path, tmp_path: Path):
    mission = copy_quickstart(tmp_path / "quickstart")
    runs = tmp_path / "runs"
    proc = cli(installed, "run", str(mission), "--headless", "--agents", "2", "--runs-dir", str(runs), cwd=tmp_path)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    run_dir = only_run_dir(runs)
    assert "finished (exit 0): done 8" in proc.stdout
    assert all((slot / ".venv" / "bin" / "python").exists()
               for slot in (run_dir / "worktrees").iterdir() if slot.is_dir())
