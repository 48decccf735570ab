import pytest

from webapp.knowledge import DocumentNotFound, KnowledgeBase


@pytest.fixture
def kb(tmp_path):
    (tmp_path / "alpha.md").write_text("# Alpha\nFile locks keep agents apart.\n")
    (tmp_path / "beta.md").write_text("# Beta\nRetries.\n")
    (tmp_path / "notes.txt").write_text("not a document")
    return KnowledgeBase(tmp_path)


def test_names_are_markdown_stems(kb):
    assert kb.names() == ["alpha", "beta"]


def test_read_with_or_without_suffix(kb):
    assert kb.read("alpha") == kb.read("alpha.md")
    assert kb.read("beta").startswith("# Beta")


def test_missing_document(kb):
    with pytest.raises(DocumentNotFound):
        kb.read("gamma")


def test_search_ignores_case(kb):
    assert kb.search("file LOCKS") == ["alpha"]
    assert kb.search("zebra") == []
