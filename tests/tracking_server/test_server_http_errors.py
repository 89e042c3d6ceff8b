"""Retries, auth headers and error messages of the REST store against a scripted HTTP server.

A real MLflow server cannot be told to fail on cue, so these tests use a tiny ``http.server`` on
loopback that answers from a script of (status, headers, body) replies and records each request.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mlproj.errors import ExecutionException
from mlproj.tracking.rest_store import RestStore

EXPERIMENT = {"experiment": {"experiment_id": "7", "name": "e", "artifact_location": "x"}}
Reply = tuple[int, dict[str, str], dict[str, Any]]


class Scripted:
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[tuple[str, str, dict[str, str], float]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                outer.requests.append(
                    (self.command, self.path, dict(self.headers), time.monotonic())
                )
                status, headers, body = outer.replies.pop(0) if outer.replies else (200, {}, {})
                if "X-Test-Sleep" in headers:  # a slow server, for timeouts
                    time.sleep(float(headers["X-Test-Sleep"]))
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Scripted]:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0.01")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    server = Scripted()
    yield server
    server.close()


def test_500_then_200_is_retried(scripted: Scripted) -> None:
    scripted.replies = [(500, {}, {"error_code": "INTERNAL_ERROR", "message": "boom"})]
    scripted.replies.append((200, {}, EXPERIMENT))
    found = RestStore(scripted.url).get_experiment("7")
    assert found is not None and found.name == "e"
    assert len(scripted.requests) == 2


def test_429_waits_for_retry_after(scripted: Scripted) -> None:
    scripted.replies = [(429, {"Retry-After": "1"}, {"error_code": "REQUEST_LIMIT_EXCEEDED"})]
    scripted.replies.append((200, {}, EXPERIMENT))
    started = time.monotonic()
    assert RestStore(scripted.url).get_experiment("7") is not None
    assert len(scripted.requests) == 2
    gap = scripted.requests[1][3] - scripted.requests[0][3]
    assert gap >= 0.95, gap  # the server's Retry-After beat our 0.01 s backoff
    assert time.monotonic() - started < 10


def test_persistent_5xx_gives_up_with_the_servers_message(scripted: Scripted) -> None:
    body = {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "db down\nSQL: SELECT ..."}
    scripted.replies = [(503, {}, body)] * 10
    with pytest.raises(ExecutionException) as caught:
        RestStore(scripted.url).create_run("0", run_name="r", tags={}, user_id="u")
    assert len(scripted.requests) == 4  # one try + MLFLOW_HTTP_REQUEST_MAX_RETRIES=3
    message = str(caught.value)
    assert "HTTP 503" in message and "TEMPORARILY_UNAVAILABLE: db down" in message
    assert "SELECT" not in message and "\n" not in message
    assert scripted.url in message and "runs/create" in message


def test_a_busy_server_database_is_retried(scripted: Scripted) -> None:
    # What MLflow's server answered under 200 concurrent runs in CI: its pool ran dry.
    busy = (
        "QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 30.00 "
        "(Background on this error at: https://sqlalche.me/e/21/3o7r)"
    )
    scripted.replies = [(400, {}, {"error_code": "BAD_REQUEST", "message": busy})] * 2
    scripted.replies.append((200, {}, EXPERIMENT))
    assert RestStore(scripted.url).get_experiment("7") is not None
    assert len(scripted.requests) == 3


def test_a_real_bad_request_is_not_retried(scripted: Scripted) -> None:
    body = {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid value 'x' for 'run_id'"}
    scripted.replies = [(400, {}, body)] * 5
    with pytest.raises(ExecutionException) as caught:
        RestStore(scripted.url).create_run("0", run_name="r", tags={}, user_id="u")
    assert len(scripted.requests) == 1
    assert "INVALID_PARAMETER_VALUE: Invalid value 'x'" in str(caught.value)


def test_bad_token_is_not_retried_and_never_shown(
    scripted: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "s3cr3t-token-value-42"
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    # A careless server echoing the credential must not leak it through our message either.
    scripted.replies = [(401, {}, {"error_code": "UNAUTHENTICATED", "message": f"bad {token}"})]
    with pytest.raises(ExecutionException) as caught:
        RestStore(scripted.url).get_run("abc")
    assert len(scripted.requests) == 1
    assert scripted.requests[0][2]["Authorization"] == f"Bearer {token}"
    message = str(caught.value)
    assert token not in message and "UNAUTHENTICATED" in message and "HTTP 401" in message
    assert "MLFLOW_TRACKING_TOKEN" in message  # says what to check


def test_basic_auth_and_password_redaction(
    scripted: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pa55word-xyz")
    scripted.replies = [(403, {}, {"error_code": "PERMISSION_DENIED", "message": "pa55word-xyz"})]
    with pytest.raises(ExecutionException) as caught:
        RestStore(scripted.url).list_experiments()
    assert scripted.requests[0][2]["Authorization"].startswith("Basic ")
    assert "pa55word-xyz" not in str(caught.value)


def test_userinfo_in_the_uri_is_not_shown(scripted: Scripted) -> None:
    scripted.replies = [(400, {}, {"error_code": "INVALID_PARAMETER_VALUE", "message": "no"})]
    url = scripted.url.replace("http://", "http://bob:hunter2-pw@")
    with pytest.raises(ExecutionException) as caught:
        RestStore(url).set_terminated("abc", "FINISHED")
    assert "hunter2-pw" not in str(caught.value) and "bob" not in str(caught.value)
    assert scripted.requests[0][2]["Authorization"].startswith("Basic ")


def test_unreachable_server_is_a_clear_bounded_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0.01")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    started = time.monotonic()
    with pytest.raises(ExecutionException, match=r"Cannot reach MLflow tracking server .* 3 att"):
        RestStore(f"http://127.0.0.1:{port}").get_experiment("0")
    assert time.monotonic() - started < 5


def test_tls_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", "/nonexistent/ca.pem")
    with pytest.raises(ExecutionException, match="MLFLOW_TRACKING_SERVER_CERT_PATH"):
        RestStore("https://127.0.0.1:1").get_experiment("0")
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")
    with pytest.raises(ExecutionException, match="both set"):
        RestStore("https://127.0.0.1:1").get_experiment("0")


def test_non_numeric_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "soon")
    with pytest.raises(ExecutionException, match="MLFLOW_HTTP_REQUEST_TIMEOUT='soon'"):
        RestStore("http://127.0.0.1:1")


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The scripted server behind real TLS with a self-signed certificate made by openssl."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    server = Scripted()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.server.socket = context.wrap_socket(server.server.socket, server_side=True)
    server.replies = [(200, {}, EXPERIMENT)] * 10
    yield server.url.replace("http://", "https://"), cert
    server.close()


def test_tls_verification_and_its_settings(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cert = tls_server
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    started = time.monotonic()
    with pytest.raises(ExecutionException, match="TLS verification .* failed; set MLFLOW_TRACK"):
        RestStore(url).get_experiment("7")
    assert time.monotonic() - started < 5  # not retried

    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(cert))
    assert RestStore(url).get_experiment("7") is not None

    monkeypatch.delenv("MLFLOW_TRACKING_SERVER_CERT_PATH")
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")
    assert RestStore(url).get_experiment("7") is not None  # and no warning (warnings are errors)


def test_a_web_page_instead_of_mlflow_is_explained(scripted: Scripted) -> None:
    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html>\n<html><body>Not Found</body></html>"
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    scripted.server.RequestHandlerClass = Page
    # A 404 page is not "no such experiment": the URI is wrong, and the message says so.
    with pytest.raises(ExecutionException) as caught:
        RestStore(scripted.url).get_experiment_by_name("x")
    message = str(caught.value)
    assert "HTTP 404" in message and "is the tracking URI an MLflow tracking server" in message
    assert "<html" not in message


def test_slow_server_times_out_with_bounded_retries(
    scripted: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "0.3")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    scripted.replies = [(200, {"X-Test-Sleep": "1.5"}, EXPERIMENT)] * 2
    started = time.monotonic()
    with pytest.raises(ExecutionException, match=r"Cannot reach .*ReadTimeout.* 2 attempts"):
        RestStore(scripted.url).get_experiment("7")
    assert len(scripted.requests) == 2
    assert time.monotonic() - started < 1.5
