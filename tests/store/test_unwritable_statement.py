"""A statement outside ``Store.write``/``Store.read`` (the coordinator's heartbeat is a plain
update) checks the store's files like a transaction does: a ``-shm`` made immutable is a
PermissionError naming it, not a write into the mapped file (SIGBUS, the process dead with
no word)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("chattr") is None, reason="needs chattr (e2fsprogs) on an ext4-like fs")

SCRIPT = r'''
import os, sys
from hybrid_tui.store import models as m
from hybrid_tui.store.db import open_store
from hybrid_tui.store import writes
store = open_store(sys.argv[1], create=True)
with store.write():
    m.Run.create(id="r", mission_name="demo", mission_path="/m", run_dir="/runs/r", repo_path="/r",
                 source_repo="/r", base_branch="main", mission_branch="m", config_json="{}",
                 mission_budget_usd=10, retry_budget_usd=2, pool_min=1, pool_max=2, pool_target=1,
                 created_at=1.0, updated_at=1.0)
writes.set_run_heartbeat("r", 1.0)  # the mapped -shm is in use
print("frozen?", flush=True)
sys.stdin.readline()
try:
    writes.set_run_heartbeat("r", 2.0)
except PermissionError as exc:
    print("refused:", exc.filename, flush=True)
    os._exit(0)  # closing would checkpoint through the frozen -shm (see stores_unsafe_to_close)
print("written", flush=True)
os._exit(1)
'''


def test_a_plain_update_outside_a_transaction_is_refused_when_the_shm_is_immutable(tmp_path: Path):
    db = tmp_path / "state.db"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    shm = Path(f"{db}-shm")
    try:
        if proc.stdout.readline().strip() != "frozen?":
            proc.kill()
            pytest.fail(proc.stderr.read())
        subprocess.run(["chattr", "+i", str(shm)], check=True)
        out, err = proc.communicate("go\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        subprocess.run(["chattr", "-i", str(shm)], check=False)
    assert proc.returncode == 0, f"rc {proc.returncode}: {out}{err}"
    assert out.strip() == f"refused: {shm}"
