import pytest


@pytest.mark.parametrize(
    "path, heading",
    [("/", "Mission dashboard"), ("/settings", "Settings"), ("/profile", "Ada Operator"), ("/docs", "Knowledge base")],
)
def test_pages_render_inside_the_layout(client, path, heading):
    response = client(path)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert f"<h1>{heading}</h1>" in response.text
    assert '<nav class="main-nav"' in response.text
    assert "$" not in response.text  # every placeholder was substituted


def test_dashboard_lists_every_agent(client):
    page = client("/").text
    assert page.count("<tr><td>L3.") == 8
    assert 'aria-valuenow="38"' in page  # 3 of 8 agents running


def test_document_page_shows_the_text_escaped(client):
    page = client("/docs/retry-policy").text
    assert "A git\nconflict is never retried" in page


def test_unknown_page_and_document_are_404(client):
    assert client("/nope").status == 404
    assert client("/docs/nope").status == 404


def test_search_finds_documents(client):
    page = client("/search", "q=conflict").text
    assert '<a href="/docs/retry-policy">' in page
    assert "1 documents found" in page


def test_search_escapes_the_query(client):
    page = client("/search", "q=%3Cscript%3E").text
    assert "<script>" not in page and "&lt;script&gt;" in page
