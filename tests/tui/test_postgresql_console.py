"""The console on a PostgreSQL store hears of another process's commit by LISTEN/NOTIFY:
with a poll interval far longer than the test, the change still shows within moments."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hybrid_tui.store import models as m
from hybrid_tui.store.db import open_store

from .conftest import RUN_ID, fill_store, make_app

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


WRITER = r"""
import sys
from hybrid_tui.store import models as m, open_store
store = open_store(sys.argv[1], create=False)
with store.write(sys.argv[2]) as version:
    m.Task.update(status="done", version=version).where(
        (m.Task.run == sys.argv[2]) & (m.Task.task_id == sys.argv[3])).execute()
print(version)
"""


async def test_a_commit_from_another_process_reaches_the_console_by_notify(postgres_server, tmp_path: Path):
    url = postgres_server.new_database("console")
    store = fill_store(open_store(url), tmp_path)
    try:
        task_id = m.Task.select(m.Task.task_id).where(m.Task.status != "done").order_by(m.Task.id).first().task_id
        app = make_app(store, poll_interval=600)  # the regular poll would come long after the test's timeout
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause(0.3)
            seen = app.view.last_run_version
            assert app.change_feed is not None and app.change_feed.listening
            env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
            writer = subprocess.run([sys.executable, "-c", WRITER, url, RUN_ID, task_id], capture_output=True,
                                    text=True, env=env, timeout=120)
            assert writer.returncode == 0, writer.stderr
            written = int(writer.stdout.strip())
            assert written > seen
            deadline = time.monotonic() + 30  # a hang guard: the notification arrives in well under a second
            while app.view.last_run_version < written:
                assert time.monotonic() < deadline, "the console never heard of the commit"
                await pilot.pause(0.05)
            assert app.view.last_run_version == written
    finally:
        store.close()
        postgres_server.drop_database(url)
