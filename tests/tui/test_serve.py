"""``hybrid-tui serve``: the console in a browser, read-only unless ``--control``.

A real run (the CLI in a subprocess), a real ``serve`` process (textual-serve on a loopback
port), plain HTTP for the page, and Debian's chromium (through Playwright) for what a person
with a browser sees.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from reliability.helpers import cli, explain, task, write_mission

from hybrid_tui.store import models as m
from hybrid_tui.store.db import open_store
from hybrid_tui.tui import HybridApp

from .conftest import FIXED, RUN_ID
from .test_pilot import controls, screen_text

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
VISIBLE_TASK = "served-task-alpha"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("serve")
    mission = write_mission(base / "m", [task(VISIBLE_TASK), task("served-task-bravo")])
    proc = cli("run", str(mission), "--headless", "--runs-dir", str(base / "runs"), cwd=base)
    assert proc.returncode == 0, explain(proc)
    return next((base / "runs").iterdir())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(finished_run: Path, request):
    """``hybrid-tui serve RUN`` on a free loopback port; yields its base URL."""
    extra = getattr(request, "param", ())
    port = free_port()
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-serve-SECRET-777"}
    proc = subprocess.Popen([sys.executable, "-m", "hybrid_tui", "serve", str(finished_run), "--port", str(port), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(300):  # safety net while it imports and binds, not a timing assertion
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError(f"serve exited {proc.returncode}: {proc.stdout.read().decode()}")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_serve_answers_http_with_the_consoles_page(served: str, finished_run: Path):
    with urllib.request.urlopen(served, timeout=10) as response:
        assert response.status == 200
        page = response.read().decode()
    run_id = finished_run.name
    assert f"hybrid-tui · {run_id}" in page
    assert "textual.js" in page and "/ws" in page  # the terminal that talks to the console


def test_serve_of_an_unknown_run_is_one_line_and_exit_2(tmp_path: Path):
    proc = cli("serve", "no-such-run", "--runs-dir", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "no-such-run" in proc.stderr


def test_serve_on_a_port_in_use_is_one_line_and_exit_2(finished_run: Path, tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = cli("serve", str(finished_run), "--port", str(port), cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, explain(proc)
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by ./dev's set-up (Debian package)")
def test_a_browser_sees_the_task_table_and_cannot_act_on_a_read_only_console(served: str, finished_run: Path):
    from playwright.sync_api import sync_playwright

    received: list[bytes] = []

    def on_websocket(ws) -> None:
        ws.on("framereceived", lambda payload: received.append(payload if isinstance(payload, bytes) else payload.encode()))

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("websocket", on_websocket)
            page.goto(served)
            for _ in range(600):  # until the console has drawn (safety net, not a timing check)
                drawn_so_far = b"".join(received)
                if VISIBLE_TASK.encode() in drawn_so_far and b"read-only console" in drawn_so_far:
                    break
                page.wait_for_timeout(100)
            screen = b"".join(received).decode("utf-8", "replace")
            assert VISIBLE_TASK in screen and "served-task-bravo" in screen
            assert "sk-ant-serve-SECRET-777" not in screen
            assert "read-only console" in screen
            page.locator("textarea.xterm-helper-textarea").focus()  # where xterm.js takes keys
            drawn = len(received)
            for key in ("r", "+", "b", "Enter"):  # retry, grow the pool, roll back: dimmed; enter: detail
                page.keyboard.press(key)
            for _ in range(100):
                if b"Attempts" in b"".join(received[drawn:]):
                    break
                page.wait_for_timeout(100)
            assert b"Attempts" in b"".join(received[drawn:])  # the keys reached the console: detail opened
        finally:
            browser.close()
    store = open_store(finished_run / "state.db", create=False)
    try:
        assert m.Control.select().count() == 0
    finally:
        store.close()


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_a_read_only_console_queues_no_control_and_offers_none(demo_store):
    app = HybridApp(demo_store, RUN_ID, clock=lambda: FIXED, read_only=True)
    app.animation_level = "none"
    async with app.run_test(size=(160, 48), notifications=True) as pilot:
        await pilot.pause()
        assert "read-only console" in screen_text(app)
        for key in ("p", "r", "c", "b", "plus", "minus"):
            await pilot.press(key)
        await pilot.pause()
        assert controls() == []
        app.action_retry()  # an action reached some other way still sends nothing
        await pilot.pause()
        assert controls() == []
        assert "not sent, this console is read-only" in screen_text(app)
        palette = [c.title for c in app._console_commands()]
        offered = [c.title for c in app.get_system_commands(app.screen)]
        assert "Task detail" in offered and "Retry selected task" in palette
        assert not {"Retry selected task", "Pause mission", "Roll back selected task", "Stop mission"} & set(offered)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by ./dev's set-up (Debian package)")
@pytest.mark.parametrize("served", [("--control",)], indirect=True)
def test_a_browser_on_a_control_console_queues_what_its_keys_ask(served: str, finished_run: Path):
    from playwright.sync_api import sync_playwright

    received: list[bytes] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("websocket", lambda ws: ws.on(
                "framereceived", lambda p: received.append(p if isinstance(p, bytes) else p.encode())))
            page.goto(served)
            for _ in range(600):
                if VISIBLE_TASK.encode() in b"".join(received):
                    break
                page.wait_for_timeout(100)
            page.locator("textarea.xterm-helper-textarea").focus()
            page.keyboard.press("r")  # retry the selected task
            store = open_store(finished_run / "state.db", create=False)
            try:
                for _ in range(100):
                    if m.Control.select().count():
                        break
                    page.wait_for_timeout(100)
                assert [(c.command, c.source) for c in m.Control.select()] == [("retry", "tui")]
                with store.write():
                    m.Control.delete().execute()  # the module's run stays as it was for the other tests
            finally:
                store.close()
        finally:
            browser.close()
