"""HTTP calls to an MLflow tracking server: auth, TLS, timeouts, bounded retries, clear errors.

Settings are MLflow's own environment variables, so a user's existing setup keeps working:
``MLFLOW_TRACKING_TOKEN`` (Bearer), ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``
(basic), ``MLFLOW_TRACKING_INSECURE_TLS``, ``MLFLOW_TRACKING_SERVER_CERT_PATH``,
``MLFLOW_TRACKING_CLIENT_CERT_PATH``, ``MLFLOW_HTTP_REQUEST_TIMEOUT``,
``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` and ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR``.
``requests`` is imported only when a client is built.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlproj.errors import ExecutionException, StoreUnreachable
from mlproj.records import record
from mlproj.redaction import Redactor, redact_url, secrets_from_env

if TYPE_CHECKING:
    import requests

# Statuses worth another try: throttling and transient server-side failures.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# MLflow's server answers HTTP 400 BAD_REQUEST when its own database is busy (its SQLAlchemy
# pool ran dry, SQLite was locked). Nothing was written then, so the request is safe to repeat;
# these are the messages that say so, as SQLAlchemy, SQLite, PostgreSQL and MySQL word them.
BUSY_DATABASE_MARKERS = (
    "QueuePool limit",
    "database is locked",
    "could not obtain lock",
    "deadlock detected",
    "Deadlock found",
    "too many connections",
    "Lock wait timeout exceeded",
)
# A server asking for a long Retry-After must not stall a run for minutes.
MAX_SLEEP_S = 30.0
_TRUE = ("true", "1", "yes")


@record(frozen=True)
class HttpSettings:
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_factor: float = 0.5

    @classmethod
    def from_env(cls) -> HttpSettings:
        return cls(
            timeout_s=_env_float("MLFLOW_HTTP_REQUEST_TIMEOUT", cls.timeout_s),
            max_retries=int(_env_float("MLFLOW_HTTP_REQUEST_MAX_RETRIES", cls.max_retries)),
            backoff_factor=_env_float("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", cls.backoff_factor),
        )


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ExecutionException(
            f"Environment variable {name}={raw!r} is not a number; set it to a number or unset it"
        ) from None
    if value < 0:
        raise ExecutionException(f"Environment variable {name}={raw!r} must not be negative")
    return value


class HttpClient:
    """One ``requests.Session`` per tracking server, with MLflow's auth and TLS settings."""

    def __init__(self, base_url: str, settings: HttpSettings | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.display_url = redact_url(self.base_url)
        self.settings = settings or HttpSettings.from_env()
        # The configured token and password, and the URL's own, never reach a message.
        self.redact = Redactor(
            secrets_from_env(("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD")),
            [self.base_url],
        )
        self._session: requests.Session | None = None

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = _new_session()
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    # -- JSON API ------------------------------------------------------------------------------
    def call(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Mapping[str, Any] | None = None,
        allow_status: frozenset[int] = frozenset(),
    ) -> dict[str, Any] | None:
        """Call ``/api/2.0/mlflow/<endpoint>`` and return its JSON body.

        A status in ``allow_status`` with MLflow's JSON error body returns None instead of
        raising (for "not found" lookups).
        """
        response = self.request(method, self.api_url(endpoint), params=params, json=json)
        if response.status_code in allow_status and _is_mlflow_error(response):
            return None
        if response.status_code != 200:
            raise self.error(method, endpoint, response)
        try:
            body = response.json()
        except ValueError:
            raise ExecutionException(
                f"MLflow tracking server {self.display_url} answered {endpoint} with a body that "
                "is not JSON; check that the tracking URI points at an MLflow server"
            ) from None
        if not isinstance(body, dict):
            raise ExecutionException(
                f"MLflow tracking server {self.display_url} answered {endpoint} with unexpected "
                f"JSON ({type(body).__name__}); check the tracking URI"
            )
        return body

    def api_url(self, endpoint: str) -> str:
        return f"{self.base_url}/api/2.0/mlflow/{endpoint}"

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """Send a request, retrying connection errors, 429 and 5xx with exponential backoff."""
        import requests

        attempt = 0
        while True:
            try:
                response = self._send(method, url, **kwargs)
            except requests.exceptions.SSLError:
                # Not transient: retrying cannot fix a certificate the client does not trust.
                raise ExecutionException(
                    f"TLS verification of MLflow tracking server {self.display_url} failed; "
                    "set MLFLOW_TRACKING_SERVER_CERT_PATH to its CA bundle (PEM), or "
                    "MLFLOW_TRACKING_INSECURE_TLS=true to skip verification"
                ) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt >= self.settings.max_retries:
                    raise StoreUnreachable(
                        f"Cannot reach MLflow tracking server {self.display_url} "
                        f"({type(exc).__name__}) after {attempt + 1} attempts; check that it is "
                        "running and that MLFLOW_TRACKING_URI is right"
                    ) from None
                self._sleep(attempt, None)
                attempt += 1
                _rewind(kwargs)
                continue
            if _is_transient(response) and attempt < self.settings.max_retries:
                self._sleep(attempt, response.headers.get("Retry-After"))
                attempt += 1
                _rewind(kwargs)
                continue
            return response

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        session = self.session
        # Passed per request: requests lets REQUESTS_CA_BUNDLE override the session's setting.
        kwargs = {**kwargs, "timeout": self.settings.timeout_s, "verify": session.verify}
        if session.verify is not False:
            return session.request(method, url, **kwargs)
        # The user asked for no verification (MLFLOW_TRACKING_INSECURE_TLS): do not warn on
        # every request about it.
        from urllib3.exceptions import InsecureRequestWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureRequestWarning)
            return session.request(method, url, **kwargs)

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = self.settings.backoff_factor * (2**attempt)
        if retry_after is not None:
            # An HTTP-date Retry-After is not a number: keep our own backoff then.
            with contextlib.suppress(ValueError):
                delay = max(delay, float(retry_after))
        # Jitter spreads out many clients retrying against one recovering server.
        delay = min(delay, MAX_SLEEP_S) * (1.0 + random.random() * 0.1)  # noqa: S311
        time.sleep(delay)

    # -- errors --------------------------------------------------------------------------------
    def error(self, method: str, what: str, response: requests.Response) -> ExecutionException:
        """An ExecutionException with the server's error code and message, secrets removed."""
        code = ""
        message = ""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            code = str(body.get("error_code") or "")
            message = str(body.get("message") or "")
        if not message:
            text = (response.text or "").strip()
            # An HTML page (a proxy, a login page, another web app) says little in one line.
            html = text[:1].startswith("<") or "html" in response.headers.get("Content-Type", "")
            message = (response.reason or "").strip() if html or not text else text
        # Server messages can carry a whole SQL statement; the first line says what went wrong.
        message = message.splitlines()[0].strip() if message else "no details"
        if len(message) > 300:
            message = message[:300] + "..."
        hint = ""
        if response.status_code in (401, 403):
            hint = (
                "; check MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME / "
                "MLFLOW_TRACKING_PASSWORD"
            )
        elif not code and response.status_code in (404, 405):
            hint = "; is the tracking URI an MLflow tracking server (without a /api path)?"
        label = f"{code}: " if code else ""
        text = (
            f"MLflow tracking server {self.display_url} rejected {method} {what} "
            f"(HTTP {response.status_code}): {label}{message}{hint}"
        )
        if _is_transient(response):  # still failing after the retries
            return StoreUnreachable(self.redact(text))
        return ExecutionException(self.redact(text))


def _is_transient(response: requests.Response) -> bool:
    """True when repeating the request later can succeed: throttling, 5xx, a busy database."""
    if response.status_code in RETRY_STATUSES:
        return True
    if response.status_code != 400:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    message = str(body.get("message") or "") if isinstance(body, dict) else ""
    lowered = message.lower()
    return any(marker.lower() in lowered for marker in BUSY_DATABASE_MARKERS)


def _is_mlflow_error(response: requests.Response) -> bool:
    """True for MLflow's JSON error body, not a proxy's or another web app's page."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and "error_code" in body


def _rewind(kwargs: dict[str, Any]) -> None:
    """A file body must be read again from its start on a retry."""
    data = kwargs.get("data")
    if data is not None and hasattr(data, "seek"):
        data.seek(0)


def _new_session() -> requests.Session:
    import requests

    session = requests.Session()
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    elif user is not None or password is not None:
        if not (user and password):
            raise ExecutionException(
                "Set both MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD for basic auth "
                "(only one of them is set)"
            )
        session.auth = (user, password)
    insecure = os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in _TRUE
    server_cert = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None
    if insecure and server_cert:
        raise ExecutionException(
            "MLFLOW_TRACKING_INSECURE_TLS and MLFLOW_TRACKING_SERVER_CERT_PATH are both set; "
            "unset one of them"
        )
    if insecure:
        session.verify = False
    elif server_cert:
        if not os.path.isfile(server_cert):  # noqa: PTH113 - a str path from the environment
            raise ExecutionException(
                f"MLFLOW_TRACKING_SERVER_CERT_PATH={server_cert!r}: no such file; point it at "
                "the server's CA bundle (PEM)"
            )
        session.verify = server_cert
    client_cert = os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH") or None
    if client_cert:
        session.cert = client_cert
    session.headers["User-Agent"] = "mlproj"
    return session
