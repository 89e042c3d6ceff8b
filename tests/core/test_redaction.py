"""Credential redaction (mlproj.redaction): URLs, query strings, free text, configured secrets."""

from __future__ import annotations

import pytest

from mlproj.redaction import (
    Redactor,
    mask_userinfo,
    redact_url,
    scrub_text,
    secrets_from_env,
    strip_credentials,
)


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


@pytest.mark.parametrize(
    ("url", "keep_user", "clean"),
    [
        ("https://u:pw@h:5000/p?token=abc", False, "https://h:5000/p?token=***"),
        ("postgresql://scott:tiger@db/mlflow", True, "postgresql://scott@db/mlflow"),
        ("https://tok@h/", False, "https://h/"),
        ("https://h/p", False, "https://h/p"),
    ],
)
def test_redact_url(url: str, keep_user: bool, clean: str) -> None:
    assert redact_url(url, keep_user=keep_user) == clean


def test_mask_userinfo_keeps_a_trace_of_the_credentials() -> None:
    assert mask_userinfo("'https://u:pw@host/x'") == "'https://***@host/x'"


def test_redactor_masks_configured_secrets_url_secrets_and_unknown_userinfo() -> None:
    redact = Redactor(["s3cr3t-token", "abc"], ["https://alice:hunter22@git.example/r.git"])
    text = (
        "auth s3cr3t-token failed for hunter22 at https://alice:hunter22@git.example/r.git; "
        "see https://bob:other@elsewhere/ (abc is too short to be masked)"
    )
    clean = redact(text)
    assert "s3cr3t-token" not in clean and "hunter22" not in clean and "other" not in clean
    assert "abc is too short" in clean
    assert "https://elsewhere/" in clean


def test_redactor_min_length_and_later_additions() -> None:
    redact = Redactor(min_length=1)
    assert redact("pw=xy") == "pw=xy"
    redact.add("xy")
    redact.add("")
    assert redact("pw=xy") == "pw=***"


def test_secrets_from_env_skips_unset_and_short_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "long-enough")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "abc")
    monkeypatch.delenv("DATABRICKS_TOKEN", raising=False)
    monkeypatch.delenv("DATABRICKS_CLIENT_SECRET", raising=False)
    assert secrets_from_env() == ["long-enough"]
