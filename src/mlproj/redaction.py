"""Hiding credentials in URLs and free text: the one home for redaction.

Every message, tag and log line that can carry a URL, a token or a password passes through one
of these functions before a user or a tracking store sees it. Depends on nothing in mlproj, so
any subsystem may use it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
# Environment variables whose values are secrets that MLflow clients and backends read.
SECRET_ENV_VARS = (
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "DATABRICKS_TOKEN",
    "DATABRICKS_CLIENT_SECRET",
)
# A configured secret shorter than this would blank out ordinary words of a message.
MIN_SECRET_LENGTH = 4

# scheme://userinfo@ inside any text (git stderr, exception messages).
_USERINFO_IN_TEXT = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s'\"]+)@"
)
# The userinfo of a URL inside a repr() (no scheme group needed: the mask keeps the '@').
_USERINFO_AFTER_SCHEME = re.compile(r"(?<=://)[^/@\s]+@")
_SSH_SCHEMES = frozenset({"ssh", "git+ssh", "ssh+git"})
_SECRET_QUERY_KEY = re.compile(
    r"token|secret|passw|sig|signature|credential|auth|key|session|x-amz-|x-goog-", re.IGNORECASE
)


def _is_account_name(scheme: str, userinfo: str) -> bool:
    """A bare ssh user (``ssh://git@host/...``) names an account, it is not a secret."""
    return scheme.lower() in _SSH_SCHEMES and ":" not in userinfo


def strip_credentials(url: str) -> str:
    """``url`` without a password or token in its userinfo or its query string.

    A bare ssh user is kept. Secret-looking query values (``token=``, ``sig=``,
    ``X-Amz-Signature=``...) become ``***``. Text that is not a URL comes back unchanged.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return scrub_text(url)
    if not parts.scheme:
        return url
    if parts.query:
        parts = parts._replace(query=redact_query(parts.query))
    if "@" in parts.netloc:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        if not _is_account_name(parts.scheme, userinfo):
            parts = parts._replace(netloc=hostport)
    return urlunsplit(parts)


def redact_query(query: str) -> str:
    """A query string with secret-looking values replaced by ``***``."""
    fields = []
    for field in query.split("&"):
        key, eq, _value = field.partition("=")
        fields.append(f"{key}={MASK}" if eq and _SECRET_QUERY_KEY.search(key) else field)
    return "&".join(fields)


def redact_url(url: str, *, keep_user: bool = False) -> str:
    """The URL without its password (and user name, unless ``keep_user``), safe for messages.

    HTTP URLs may carry a token as the user name; SQL URLs name a database user worth showing.
    """
    parts = urlsplit(url)
    if parts.query:
        # Tokens also travel as query values (`?token=...`).
        parts = parts._replace(query=redact_query(parts.query))
        url = urlunsplit(parts)
    if parts.password is None and (keep_user or parts.username is None):
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}@" if keep_user and parts.username else ""
    return urlunsplit((parts.scheme, f"{user}{host}", parts.path, parts.query, parts.fragment))


def scrub_text(text: str, secret_url: str | None = None) -> str:
    """Remove URL userinfo from free text, plus the literal secrets of ``secret_url``.

    The literal pass catches what a tool printed after decoding the URL (``p%2Fss`` as ``p/ss``).
    """
    if secret_url:
        text = replace_literals(text, secrets_of_url(secret_url))

    def _drop(match: re.Match[str]) -> str:
        scheme = match.group("scheme")
        if _is_account_name(scheme[:-3], match.group("userinfo")):
            return match.group(0)
        return scheme

    return _USERINFO_IN_TEXT.sub(_drop, text)


def mask_userinfo(text: str) -> str:
    """``scheme://user:pw@host`` -> ``scheme://***@host`` in ``text`` (shows a URL had one)."""
    return _USERINFO_AFTER_SCHEME.sub(f"{MASK}@", text)


def secrets_of_url(url: str) -> list[str]:
    """The literal secrets a URL carries (userinfo pieces, secret query values), longest first."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    if not parts.scheme:
        return []
    pieces: set[str] = set()
    for field in parts.query.split("&") if parts.query else ():
        key, eq, value = field.partition("=")
        if eq and _SECRET_QUERY_KEY.search(key):
            pieces.update((value, unquote(value)))
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo and not _is_account_name(parts.scheme, userinfo):
        pieces.update((userinfo, unquote(userinfo), *userinfo.split(":")))
        pieces.update(unquote(userinfo).split(":"))
    # Skip tiny pieces: a one-letter user name would blank out every such letter.
    return _longest_first(p for p in pieces if len(p) >= 3)


def replace_literals(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` replaced by ``***``, longest first.

    Longest first so a password is not half-replaced via a shorter piece of it."""
    for secret in _longest_first(secrets):
        if secret:
            text = text.replace(secret, MASK)
    return text


def secrets_from_env(names: Iterable[str] = SECRET_ENV_VARS) -> list[str]:
    """The values of the secret environment variables that are set and long enough to mask."""
    return [v for v in map(os.environ.get, names) if v and len(v) >= MIN_SECRET_LENGTH]


class Redactor:
    """Removes a known set of secrets from text: literal values plus the credentials of URLs.

    Calling it applies, in order, the literal secrets (longest first), then the userinfo rule of
    :func:`scrub_text`, so a URL the redactor was not told about loses its password too.
    """

    def __init__(
        self,
        secrets: Iterable[str] = (),
        urls: Iterable[str | None] = (),
        *,
        min_length: int = MIN_SECRET_LENGTH,
    ) -> None:
        self._min_length = min_length
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)
        for url in urls:
            if url:
                # A URL's own pieces are masked from 3 characters: they are known to be secret.
                self._secrets.update(secrets_of_url(url))

    def add(self, secret: str | None) -> None:
        """Mask ``secret`` from now on (ignored when empty or shorter than ``min_length``)."""
        if secret and len(secret) >= self._min_length:
            self._secrets.add(secret)

    def __call__(self, text: str) -> str:
        return scrub_text(replace_literals(text, self._secrets))


def _longest_first(pieces: Iterable[str]) -> list[str]:
    return sorted(set(pieces), key=lambda piece: (-len(piece), piece))
