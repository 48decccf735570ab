"""Fixtures for the agents tests: a scripted Messages API server and the real SDK pointed at it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fakes.messages_server import MessagesServer  # noqa: E402

from hybrid_tui.agents.anthropic.client import make_client  # noqa: E402
from hybrid_tui.spec.models import Usage  # noqa: E402

SECRET_KEY = "sk-ant-test-SECRET-7f3a9c1e5b"

# Test prices (USD per million tokens) so costs are exact and easy to check.
PRICES = {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75}


def cost_of(model: str, usage: Usage) -> float:
    return (
        usage.input_tokens * PRICES["input"]
        + usage.output_tokens * PRICES["output"]
        + usage.cache_read_tokens * PRICES["cache_read"]
        + usage.cache_write_tokens * PRICES["cache_write"]
    ) / 1_000_000


@pytest.fixture
def server():
    """The strict stand-in; a test fails when the code under test sent a request the API refuses."""
    with MessagesServer() as srv:
        yield srv
    if not srv.expect_rejections:
        assert srv.rejected == [], f"requests the API would refuse: {srv.rejected}"


@pytest.fixture
def api_env(server, monkeypatch):
    """Credentials and base URL in the environment, as a user would set them."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET_KEY)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    return server


@pytest.fixture
def client_factory(api_env):
    return lambda: make_client(timeout=5.0)


CALC = "def add(a, b):\n    return a + b\n"
TEST_CALC = "import calc\n\n\ndef test_sub():\n    assert calc.sub(5, 3) == 2\n"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    """A git repository with calc.py and its test, and an agent worktree on its own branch."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "calc.py").write_text(CALC)
    (repo / "test_calc.py").write_text(TEST_CALC)
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    tree = tmp_path / "worktrees" / "agent-1"
    git(repo, "worktree", "add", "-q", "-b", "agent-1", str(tree))
    (tmp_path / "outside").write_text("TOP SECRET OUTSIDE THE REPO\n")
    return tree


