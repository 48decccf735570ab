"""Sandbox: every agent file access stays inside the worktree; hostile paths are refused."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hybrid_tui.spec.models import CreateOp, DeleteOp, EditOp, IntentOp, PatchOp
from hybrid_tui.workspace.sandbox import EditError, FileLockedError, Sandbox, SandboxError


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "wt"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    (root / "src").mkdir()
    (root / "src" / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (root / "README.md").write_text("line one\nline two\nline three\n")
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "secret.txt").write_text("top secret\n")
    return secret


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "path, reason",
    [
        ("../escape.txt", "'..'"),
        ("src/../../escape.txt", "'..'"),
        ("/etc/passwd", "absolute"),
        ("C:\\Windows\\x", "absolute"),
        ("bad\x00name", "NUL"),
        (".git/config", ".git/"),
        ("./.git/hooks/pre-commit", ".git/"),
        ("x" * 300, "longer than"),
        ("", "empty"),
    ],
)
def test_lexically_unsafe_paths_are_refused_for_read_and_write(root: Path, path: str, reason: str) -> None:
    sandbox = Sandbox(root)
    before = snapshot(root.parent)
    with pytest.raises(SandboxError, match=reason):
        sandbox.write_text(path, "pwned")
    with pytest.raises(SandboxError, match=reason):
        sandbox.read_text(path)
    assert snapshot(root.parent) == before
    assert sandbox.touched == set()


def test_symlink_inside_repo_pointing_outside_is_refused(root: Path, outside: Path) -> None:
    (root / "link.txt").symlink_to(outside / "secret.txt")
    (root / "linkdir").symlink_to(outside)
    sandbox = Sandbox(root)
    with pytest.raises(SandboxError, match="link.txt.*outside the repository"):
        sandbox.read_text("link.txt")
    with pytest.raises(SandboxError, match="outside the repository"):
        sandbox.write_text("link.txt", "overwritten")
    # A file that does not exist yet, below a symlinked folder: the parent chain is checked.
    with pytest.raises(SandboxError, match="outside the repository"):
        sandbox.write_text("linkdir/new.txt", "planted")
    with pytest.raises(SandboxError, match="outside the repository"):
        sandbox.edit("linkdir/secret.txt", "top", "bottom")
    assert (outside / "secret.txt").read_text() == "top secret\n"
    assert not (outside / "new.txt").exists()
    # Listing and searching do not follow the links out either.
    assert "top secret" not in str(sandbox.search("secret"))
    assert not any(p.startswith("linkdir/") for p in sandbox.list_files())


def test_symlink_into_git_dir_is_refused(root: Path) -> None:
    (root / "cfg").symlink_to(root / ".git" / "config")
    with pytest.raises(SandboxError, match=r"\.git/"):
        Sandbox(root).write_text("cfg", "[core]\n")


def test_deleting_a_symlink_removes_the_link_not_its_target(root: Path, outside: Path) -> None:
    (root / "link.txt").symlink_to(outside / "secret.txt")
    sandbox = Sandbox(root)
    sandbox.delete("link.txt")
    assert not (root / "link.txt").is_symlink()
    assert (outside / "secret.txt").read_text() == "top secret\n"
    assert sandbox.touched == {"link.txt"}


@pytest.mark.parametrize("name", ["we ird$(touch pwned).txt", "semi;colon|pipe&amp`tick`.py", "q'uote\"s *?.md"])
def test_shell_metacharacters_are_ordinary_names(root: Path, name: str) -> None:
    sandbox = Sandbox(root)
    sandbox.write_text(f"src/{name}", "content\n")
    assert (root / "src" / name).read_text() == "content\n"
    assert sandbox.read_text(f"src/{name}") == "content\n"
    assert f"src/{name}" in sandbox.list_files()
    assert not (root / "pwned").exists() and not Path("pwned").exists()
    sandbox.delete(f"src/{name}")
    assert not (root / "src" / name).exists()


def test_read_line_ranges_missing_binary_and_size_cap(root: Path) -> None:
    sandbox = Sandbox(root, max_read_bytes=100)
    assert sandbox.read_text("README.md", 2, 3) == "line two\nline three\n"
    assert sandbox.read_text("README.md", start_line=3) == "line three\n"
    with pytest.raises(SandboxError, match="missing.py: no such file"):
        sandbox.read_text("missing.py")
    (root / "blob.bin").write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(SandboxError, match="blob.bin: binary"):
        sandbox.read_text("blob.bin")
    (root / "big.txt").write_text("x" * 50 + "\n" + "y" * 500 + "\n")
    with pytest.raises(SandboxError, match="big.txt: file is 552 bytes, over the read limit of 100"):
        sandbox.read_text("big.txt")
    assert sandbox.read_text("big.txt", 1, 1) == "x" * 50 + "\n"
    with pytest.raises(SandboxError, match="over the read limit"):
        sandbox.read_text("big.txt", 2, 2)
    with pytest.raises(SandboxError, match="is a directory"):
        sandbox.read_text("src")


def test_list_files_skips_git_and_honours_limit(root: Path) -> None:
    sandbox = Sandbox(root)
    assert sandbox.list_files() == ["README.md", "src/calc.py"]
    assert sandbox.list_files("src") == ["src/calc.py"]
    assert sandbox.list_files(limit=1) == ["README.md"]
    with pytest.raises(SandboxError, match=r"\.git/"):
        sandbox.list_files(".git")


def test_search_finds_lines_and_rejects_bad_regex(root: Path) -> None:
    sandbox = Sandbox(root)
    assert sandbox.search(r"return a \+ b") == [("src/calc.py", 2, "    return a + b")]
    assert sandbox.search("line", limit=2) == [("README.md", 1, "line one"), ("README.md", 2, "line two")]
    with pytest.raises(SandboxError, match="not a valid regular expression"):
        sandbox.search("([unclosed")


def test_edit_missing_and_not_unique(root: Path) -> None:
    sandbox = Sandbox(root)
    with pytest.raises(EditError, match="src/calc.py: old text not found"):
        sandbox.edit("src/calc.py", "return a - b", "x")
    with pytest.raises(EditError, match="README.md: old text occurs 3 times"):
        sandbox.edit("README.md", "line", "row")
    assert (root / "README.md").read_text() == "line one\nline two\nline three\n"
    sandbox.edit("README.md", "line two", "row two")
    assert (root / "README.md").read_text() == "line one\nrow two\nline three\n"
    assert sandbox.touched == {"README.md"}


def test_an_edit_of_a_file_over_the_read_limit_applies(root: Path) -> None:
    big = "x = 1\n" * 400_000 + "TARGET = 'old'\n"  # 2.4 MB: over the 1 MB a model may read at once
    (root / "big.py").write_text(big)
    sandbox = Sandbox(root)
    with pytest.raises(SandboxError, match="over the read limit"):
        sandbox.read_text("big.py")
    sandbox.edit("big.py", "TARGET = 'old'", "TARGET = 'new'")
    assert (root / "big.py").read_text() == big.replace("'old'", "'new'")


def test_undeclared_write_claims_the_lock_once(root: Path) -> None:
    claims: list[str] = []

    def claim(path: str) -> bool:
        claims.append(path)
        return path != "held.py"

    sandbox = Sandbox(root, declared=["src/calc.py"], claim=claim)
    sandbox.write_text("src/calc.py", "declared\n")
    sandbox.write_text("./new.py", "one\n")
    sandbox.write_text("new.py", "two\n")
    assert claims == ["new.py"]
    with pytest.raises(FileLockedError, match="file_locked: held.py is held by another task"):
        sandbox.write_text("held.py", "x")
    assert not (root / "held.py").exists()
    assert sandbox.touched == {"src/calc.py", "new.py"}


def test_apply_sis_operations(root: Path) -> None:
    sandbox = Sandbox(root)
    sandbox.apply(CreateOp(op="create", path="pkg/new.py", content="X = 1\n"))
    sandbox.apply(EditOp(op="edit", path="src/calc.py", old_string="a + b", new_string="b + a"))
    sandbox.apply(DeleteOp(op="delete", path="README.md"))
    assert (root / "pkg" / "new.py").read_text() == "X = 1\n"
    assert "b + a" in (root / "src" / "calc.py").read_text()
    assert not (root / "README.md").exists()
    with pytest.raises(SandboxError, match="needs an LLM implementer"):
        sandbox.apply(IntentOp(op="intent", path="x.py", intent="make it fast"))
    assert sandbox.touched == {"pkg/new.py", "src/calc.py", "README.md"}


PATCH_CALC = """\
--- a/src/calc.py
+++ b/src/calc.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a + b
+    return b + a
"""


def test_patch_applies_inside(root: Path) -> None:
    sandbox = Sandbox(root)
    sandbox.apply(PatchOp(op="patch", path="src/calc.py", diff=PATCH_CALC))
    assert (root / "src" / "calc.py").read_text() == "def add(a, b):\n    return b + a\n"
    assert sandbox.touched == {"src/calc.py"}


@pytest.mark.parametrize(
    "diff, reason",
    [
        ("--- a/../escape.txt\n+++ b/../escape.txt\n@@ -0,0 +1 @@\n+pwned\n", "patch"),
        (
            "diff --git a/evil b/evil\nnew file mode 120000\n--- /dev/null\n+++ b/evil\n@@ -0,0 +1 @@\n+/etc/passwd\n\\ No newline at end of file\n",
            "symbolic link",
        ),
        ("--- a/.git/config\n+++ b/.git/config\n@@ -0,0 +1 @@\n+x\n", "patch"),
        ("this is not a diff\n", "patch"),
    ],
)
def test_patch_touching_outside_is_refused(root: Path, outside: Path, diff: str, reason: str) -> None:
    before = snapshot(root.parent)
    with pytest.raises(SandboxError, match=reason):
        Sandbox(root).apply(PatchOp(op="patch", path="src/calc.py", diff=diff))
    assert snapshot(root.parent) == before


def test_patch_through_symlinked_folder_is_refused(root: Path, outside: Path) -> None:
    (root / "linkdir").symlink_to(outside)
    diff = "--- a/linkdir/secret.txt\n+++ b/linkdir/secret.txt\n@@ -1 +1 @@\n-top secret\n+pwned\n"
    with pytest.raises(SandboxError, match="outside the repository"):
        Sandbox(root).apply(PatchOp(op="patch", path="linkdir/secret.txt", diff=diff))
    assert (outside / "secret.txt").read_text() == "top secret\n"


def test_patch_to_undeclared_file_claims_lock(root: Path) -> None:
    sandbox = Sandbox(root, declared=["other.py"], claim=lambda path: False)
    with pytest.raises(FileLockedError, match="src/calc.py is held by another task"):
        sandbox.apply(PatchOp(op="patch", path="other.py", diff=PATCH_CALC))
    assert "return a + b" in (root / "src" / "calc.py").read_text()


def test_root_must_exist(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        Sandbox(tmp_path / "nope")
    assert os.path.exists(tmp_path)


def test_no_path_string_writes_outside_the_root(tmp_path: Path) -> None:
    """Property: any string either is refused with SandboxError or lands inside the root."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    root = tmp_path / "wt"
    root.mkdir()
    (root / "out").symlink_to(tmp_path)  # a tempting link to the parent
    pieces = st.sampled_from(["..", ".", ".git", "out", "a", "/", "\\", "\x00", "C:", "x" * 256, "é", "$(id)", " "])
    paths = st.one_of(st.text(max_size=40), st.lists(pieces, max_size=6).map("".join), st.lists(pieces, max_size=6).map("/".join))

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(paths)
    def check(path: str) -> None:
        sandbox = Sandbox(root)
        try:
            sandbox.write_text(path, "x")
        except SandboxError:
            return
        (name,) = sandbox.touched
        written = (root / name).resolve()
        assert written.is_relative_to(root.resolve()) and not written.is_relative_to(root.resolve() / ".git")

    check()
    outside = {p.name for p in tmp_path.iterdir()}
    assert outside == {"wt"}


def test_fifo_is_refused_not_blocking(root: Path) -> None:
    os.mkfifo(root / "pipe")
    sandbox = Sandbox(root)
    with pytest.raises(SandboxError, match="pipe: not a regular file"):
        sandbox.read_text("pipe")
    with pytest.raises(SandboxError, match="pipe: not a regular file"):
        sandbox.write_text("pipe", "x")
    assert sandbox.search("anything") == []
    assert "pipe" in sandbox.list_files()
