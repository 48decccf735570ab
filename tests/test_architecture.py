"""The house stays as DESIGN.md draws it: the rooms contract of pyproject.toml holds, no
module of the package takes part in an import cycle (imports inside functions and under
TYPE_CHECKING count).
Only the store importing peewee is a contract of its own in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

from hybrid_tui.spec.loader import find_cycles  # the cycle finder the mission DAG check uses

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_linter_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_no_module_is_part_of_an_import_cycle():
    graph = grimp.build_graph("hybrid_tui", include_external_packages=False)
    # A package's __init__ importing its own modules is not a cycle a reader has to follow.
    for module in list(graph.modules):
        for child in graph.find_children(module):
            if graph.direct_import_exists(importer=module, imported=child):
                graph.remove_import(importer=module, imported=child)
    imports = {module: sorted(graph.find_modules_directly_imported_by(module)) for module in sorted(graph.modules)}
    assert find_cycles(imports) == []

