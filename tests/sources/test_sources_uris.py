"""URI parsing, classification and credential scrubbing (pure functions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlproj.errors import ExecutionException
from mlproj.sources.uris import parse_project_uri, scrub_text, strip_credentials


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        ("https://user:tok@host/org/r.git", "https://host/org/r.git"),
        ("https://ghp_token@github.com/org/r.git#sub", "https://github.com/org/r.git#sub"),
        ("ssh://git@host/org/r.git", "ssh://git@host/org/r.git"),  # account name, not secret
        ("ssh://git:pw@host/org/r.git", "ssh://host/org/r.git"),
        ("git@github.com:org/r.git", "git@github.com:org/r.git"),
        ("https://h/a.zip?X-Amz-Signature=abc&v=2", "https://h/a.zip?X-Amz-Signature=***&v=2"),
        ("https://h/a.zip?sig=abc&sv=2020", "https://h/a.zip?sig=***&sv=2020"),
        ("/plain/path", "/plain/path"),
    ],
)
def test_strip_credentials(url: str, clean: str) -> None:
    assert strip_credentials(url) == clean


def test_scrub_text_removes_userinfo_and_literal_secrets() -> None:
    url = "https://al%40ice:p%2Fss@host/r.git?token=qwerty123"
    text = (
        "fatal: unable to access 'https://al%40ice:p%2Fss@host/r.git/': auth for p/ss failed; "
        "GET /r.git?token=qwerty123"
    )
    scrubbed = scrub_text(text, url)
    assert "p%2Fss" not in scrubbed and "p/ss" not in scrubbed and "qwerty123" not in scrubbed
    assert "https://host/r.git/" in scrubbed


def test_classification(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    folder.mkdir()
    (tmp_path / "p.tar.gz").write_bytes(b"")
    assert parse_project_uri(str(folder)).kind == "local"
    assert parse_project_uri(f'"{folder}"').kind == "local"
    assert parse_project_uri(folder.as_uri()).kind == "local"
    assert parse_project_uri(str(tmp_path / "p.tar.gz")).kind == "archive"
    assert parse_project_uri((tmp_path / "p.tar.gz").as_uri()).kind == "archive"
    assert parse_project_uri("https://h/x/p.ZIP").kind == "archive"
    assert parse_project_uri("https://h/org/repo").kind == "git"
    assert parse_project_uri("git@github.com:org/repo.git#a/b").kind == "git"
    assert parse_project_uri("file:///no/such/repo.git").kind == "git"
    parsed = parse_project_uri("https://h/org/repo.git#models/v1.2/./")
    assert parsed.base == "https://h/org/repo.git"
    assert parsed.subdir == "models/v1.2"


def test_rejections(tmp_path: Path) -> None:
    with pytest.raises(ExecutionException, match="does not exist"):
        parse_project_uri(str(tmp_path / "nothing"))
    with pytest.raises(ExecutionException, match="is empty"):
        parse_project_uri("  ")
    with pytest.raises(ExecutionException, match="points outside"):
        parse_project_uri("https://h/r.git#a/../../b")
    with pytest.raises(ExecutionException, match="must point to this machine"):
        parse_project_uri("file://otherhost/share/proj")
