"""``mlproj runs`` / ``mlproj experiments`` over a real file store and a real MLflow server."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mlproj.cli.main import cli
from mlproj.errors import ExecutionException
from mlproj.local_run.identity import boot_id, identity_tags
from mlproj.tracking import get_store
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import Metric


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def invoke_raw(*args: str) -> Result:
    """Like ``invoke``, but an escaping exception is kept in the result (a traceback to see)."""
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def store(tmp_path: Path) -> TrackingStore:
    return get_store((tmp_path / "mlruns").as_uri())


@pytest.fixture
def seeded(store: TrackingStore) -> dict[str, Any]:
    """Three runs in two experiments, started one second apart, oldest first."""
    base = int(time.time() * 1000) - 60_000
    train = store.create_experiment("train")
    other = store.create_experiment("other")
    ids = []
    for i, (exp, lr, status) in enumerate(
        [(train, "0.1", "FINISHED"), (train, "0.2", "FAILED"), (other, "0.1", None)]
    ):
        info = store.create_run(
            exp,
            run_name=f"run-{i}",
            tags={
                "mlflow.source.name": "/work/projects/demo",
                "mlflow.project.entryPoint": "main",
                "mlflow.source.git.commit": f"{i}" * 40,
                "mlflow.project.env": "uv",
            },
            user_id="alice",
            start_time=base + i * 1000,
        )
        store.log_batch(info.run_id, params={"lr": lr}, metrics=[Metric("acc", 0.5 + i, 1, 0)])
        if status:
            store.set_terminated(info.run_id, status, end_time=base + i * 1000 + 65_000)
        ids.append(info.run_id)
    return {"ids": ids, "train": train, "other": other}


def test_list_newest_first_with_filters(store: TrackingStore, seeded: dict[str, Any]) -> None:
    ids = seeded["ids"]
    done = invoke("runs", "list", "--json")
    assert done.exit_code == 0, done.output
    records = json.loads(done.stdout)
    assert [r["run_id"] for r in records] == ids[::-1]
    assert records[2]["experiment_name"] == "train" and records[2]["params"] == {"lr": "0.1"}
    assert records[2]["duration_s"] == 65.0 and records[2]["metrics"] == {"acc": 0.5}

    def listed(*args: str) -> list[str]:
        done = invoke("runs", "list", "--json", *args)
        assert done.exit_code == 0, done.output
        return [r["run_id"] for r in json.loads(done.stdout)]

    assert listed("--experiment-name", "train") == [ids[1], ids[0]]
    assert listed("--experiment-id", seeded["other"]) == [ids[2]]
    assert listed("--status", "failed") == [ids[1]]
    assert listed("--param", "lr=0.1") == [ids[2], ids[0]]
    assert listed("--param", "lr=0.1", "--status", "FINISHED") == [ids[0]]
    assert listed("--max-results", "2") == [ids[2], ids[1]]
    assert listed("--param", "lr=9") == []


def test_list_table_is_readable_plain_text(seeded: dict[str, Any]) -> None:
    done = invoke("runs", "list")
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "RUN",
        "ID",
        "EXPERIMENT",
        "NAME",
        "STATUS",
        "STARTED",
        "DURATION",
        "USER",
    ]
    assert lines[1].startswith(seeded["ids"][2]) and "RUNNING" in lines[1]
    assert lines[1].endswith("alice")
    assert "FAILED" in lines[2] and "1m05s" in lines[2]
    assert "\x1b[" not in done.stdout  # no colour codes when not on a terminal


def test_show_text_and_json(store: TrackingStore, seeded: dict[str, Any]) -> None:
    run_id = seeded["ids"][0]
    store.set_tag(run_id, "mlproj.error", "none really")
    done = invoke("runs", "show", run_id, "--json")
    assert done.exit_code == 0, done.output
    record = json.loads(done.stdout)
    assert record["status"] == "FINISHED" and record["orphaned"] is False
    assert record["source"] == "/work/projects/demo" and record["version"] == "0" * 40
    assert record["environment"] == "uv" and record["entry_point"] == "main"
    assert record["duration_s"] == 65.0 and record["experiment_name"] == "train"

    text = invoke("runs", "show", run_id).stdout
    assert f"Run          {run_id} (run-0)" in text
    for expected in (
        "Status       FINISHED",
        "Duration     1m05s",
        "Version      " + "0" * 40,
        "Environment  uv",
        "Error        none really",
        "  lr = 0.1",
        "  acc = 0.5",
    ):
        assert expected in text, expected


def test_user_errors_are_one_line(seeded: dict[str, Any]) -> None:
    done = invoke("runs", "show", "0" * 32)
    assert done.exit_code == 1
    assert done.stderr.strip() == (
        f"mlproj: error: Run '{'0' * 32}' not found in tracking store "
        f"{os.environ['MLFLOW_TRACKING_URI']}"
    )
    done = invoke("runs", "list", "--experiment-name", "nope")
    assert done.exit_code == 1 and "Experiment 'nope' not found" in done.stderr
    done = invoke("runs", "list", "--experiment-name", "a", "--experiment-id", "1")
    assert done.exit_code == 2 and "only one of" in done.stderr
    done = invoke("runs", "list", "--param", "novalue")
    assert done.exit_code == 2 and "KEY=VALUE" in done.stderr
    done = invoke("runs", "cancel", seeded["ids"][0])
    assert done.exit_code == 1 and "already FINISHED" in done.stderr

    # The real process: exit status, one stderr line, no traceback.
    proc = subprocess.run(
        [sys.executable, "-m", "mlproj", "runs", "logs", "0" * 32],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_experiments_list(seeded: dict[str, Any]) -> None:
    records = json.loads(invoke("experiments", "list", "--json").stdout)
    assert {"train", "other"} <= {r["name"] for r in records}
    table = invoke("experiments", "list").stdout
    assert table.splitlines()[0].split() == ["ID", "NAME", "CREATED", "ARTIFACT", "LOCATION"]
    assert "train" in table


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_orphans_are_shown_and_reaped_other_hosts_are_not(store: TrackingStore) -> None:
    exp = store.create_experiment("orphans")
    mine = identity_tags()  # this process: alive, so not orphaned
    dead = {**identity_tags(), "mlproj.supervisor.pid": str(_dead_pid())}
    elsewhere = {**dead, "mlproj.host": socket.gethostname() + "-other"}
    rebooted = {**identity_tags(), "mlproj.boot_id": "not-" + boot_id()}
    runs = {}
    for name, tags in [
        ("alive", mine),
        ("dead", dead),
        ("elsewhere", elsewhere),
        ("rebooted", rebooted),
        ("untagged", {}),
    ]:
        runs[name] = store.create_run(exp, run_name=name, tags=tags, user_id="u").run_id

    # `--status orphaned` shows them as they are; `reap --dry-run` says what it would do.
    only = json.loads(invoke("runs", "list", "--json", "--status", "orphaned").stdout)
    assert {r["run_name"] for r in only} == {"dead", "rebooted"}
    assert all(r["status"] == "RUNNING" and r["orphaned"] for r in only)
    done = invoke("runs", "reap", "--dry-run")
    assert done.exit_code == 0 and runs["dead"] in done.stdout and runs["rebooted"] in done.stdout
    assert store.get_run(runs["dead"]).info.status == "RUNNING"

    # Any other look at the runs settles them: no command to know about.
    listed = invoke("runs", "list", "--json")
    records = {r["run_name"]: r for r in json.loads(listed.stdout)}
    assert not any(r["orphaned"] for r in records.values())
    assert {n for n, r in records.items() if r["status"] == "FAILED"} == {"dead", "rebooted"}
    assert listed.stderr.count("was left RUNNING by an mlproj process that is gone") == 2
    for name in ("dead", "rebooted"):
        run = store.get_run(runs[name])
        assert run.info.status == "FAILED" and "supervisor" in run.tags["mlproj.error"]
    for name in ("alive", "elsewhere", "untagged"):
        assert store.get_run(runs[name]).info.status == "RUNNING"
    assert "FAILED" in invoke("runs", "list").stdout
    assert invoke("runs", "reap").stdout.strip() == "No orphaned runs."

    done = invoke("runs", "cancel", runs["elsewhere"])
    assert done.exit_code == 1 and "cancel it there" in done.stderr


def test_logs_local_file_then_artifact(store: TrackingStore, tmp_path: Path) -> None:
    exp = store.create_experiment("logs")
    log = tmp_path / "output.log"
    log.write_text("hello from the run\n")
    local = store.create_run(
        exp,
        run_name="l",
        tags={"mlproj.log": str(log), "mlproj.host": socket.gethostname()},
        user_id="u",
    ).run_id
    assert invoke("runs", "logs", local).stdout == "hello from the run\n"

    # Another host's path is not read, even if the same path exists here.
    remote = store.create_run(
        exp, run_name="r", tags={"mlproj.log": str(log), "mlproj.host": "elsewhere"}, user_id="u"
    ).run_id
    done = invoke("runs", "logs", remote)
    assert done.exit_code == 1 and "no output log" in done.stderr and "--follow" in done.stderr
    uploaded = tmp_path / "up" / "output.log"
    uploaded.parent.mkdir()
    uploaded.write_text("from the artifact\n")
    store.log_artifact(remote, uploaded, "mlproj")
    assert invoke("runs", "logs", remote).stdout == "from the artifact\n"


def test_logs_follow_until_the_run_ends(store: TrackingStore, tmp_path: Path) -> None:
    exp = store.create_experiment("follow")
    log = tmp_path / "output.log"
    log.write_text("first\n")
    run_id = store.create_run(exp, run_name="f", tags={"mlproj.log": str(log)}, user_id="u").run_id

    def writer() -> None:
        time.sleep(0.5)
        with log.open("a") as out:
            out.write("second\n")
        time.sleep(1.0)
        with log.open("a") as out:
            out.write("last\n")
        store.set_terminated(run_id, "FINISHED")

    thread = threading.Thread(target=writer)
    started = time.monotonic()
    thread.start()
    done = invoke("runs", "logs", run_id, "--follow")
    thread.join()
    assert done.exit_code == 0
    assert done.stdout == "first\nsecond\nlast\n"
    assert 1.4 < time.monotonic() - started < 10


def test_cli_over_a_real_server(mlflow_server: Any, tmp_path: Path) -> None:
    rest = get_store(mlflow_server.url)
    exp = rest.create_experiment("cli-over-rest")
    run_id = rest.create_run(exp, run_name="srv", tags={}, user_id="u").run_id
    rest.log_batch(run_id, params={"k": "v w"})
    log = tmp_path / "output.log"
    log.write_text("served log\n")
    rest.log_artifact(run_id, log, "mlproj")
    rest.set_terminated(run_id, "FINISHED")

    url = mlflow_server.url
    records = json.loads(
        invoke(
            "runs", "list", "--tracking-uri", url, "--experiment-name", "cli-over-rest", "--json"
        ).stdout
    )
    assert [(r["run_id"], r["status"], r["params"]) for r in records] == [
        (run_id, "FINISHED", {"k": "v w"})
    ]
    found = invoke("runs", "list", "--tracking-uri", url, "--param", "k=v w", "--json").stdout
    assert [r["run_id"] for r in json.loads(found)] == [run_id]
    assert invoke("runs", "logs", run_id, "--tracking-uri", url).stdout == "served log\n"
    names = [
        r["name"]
        for r in json.loads(invoke("experiments", "list", "--tracking-uri", url, "--json").stdout)
    ]
    assert "cli-over-rest" in names


def test_table_and_json_listings_agree_on_awkward_names(store: TrackingStore) -> None:
    """The table reads run records only (a faster path); it must show what the full read shows."""
    exp = store.create_experiment("names")
    names = ["it's", "true", "a: b", "#hash", "x" * 120, "ünï", "- dash", "123", "null", "plain"]
    for i, name in enumerate(names):
        info = store.create_run(exp, run_name=name, tags={}, user_id="u", start_time=1000 + i)
        if i % 3 == 0:
            store.set_terminated(info.run_id, "FAILED", end_time=5000 + i)
    records = json.loads(invoke("runs", "list", "--json", "--experiment-name", "names").stdout)
    assert [r["run_name"] for r in records] == names[::-1]
    table = invoke("runs", "list", "--experiment-name", "names").stdout.splitlines()[1:]
    for record, line in zip(records, table, strict=True):
        assert line.startswith(record["run_id"]) and f"  {record['run_name']}  " in line
        assert f"  {record['status']}  " in line
    failed = invoke("runs", "list", "--status", "FAILED", "--max-results", "2").stdout
    assert [line.split()[0] for line in failed.splitlines()[1:]] == [
        r["run_id"] for r in records if r["status"] == "FAILED"
    ][:2]


def test_terminal_tables_use_rich(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlproj.report import print_table

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("COLUMNS", "120")
    print_table(("RUN ID", "STATUS"), [("abc", "RUNNING (orphaned)"), ("defgh", "FINISHED")])
    out = capsys.readouterr().out
    assert "\x1b[1m" in out  # rich's bold header: the terminal path
    lines = re.sub(r"\x1b\[[0-9;]*m", "", out).splitlines()
    assert lines[0].split() == ["RUN", "ID", "STATUS"]
    assert lines[1].split() == ["abc", "RUNNING", "(orphaned)"]
    assert lines[2].split() == ["defgh", "FINISHED"]


class _ArtifactServer(BaseHTTPRequestHandler):
    """An artifact store over HTTP: 403 for paths naming ``denied`` (bad or expired
    credentials); otherwise 404 for a plain file, an empty listing for MLflow's artifact API."""

    def do_GET(self) -> None:
        if "denied" in self.path:
            code, body = 403, b"Forbidden: invalid credentials"
        elif "noapi" in self.path:  # a web server (or proxy) without MLflow's artifact API
            code, body = 404, b"Not Found"
        elif self.path.startswith("/api/2.0/mlflow-artifacts/"):
            code, body = 200, b"{}"
        else:
            code, body = 404, b"Not Found"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def artifact_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ArtifactServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _with_artifact_uri(store: TrackingStore, tmp_path: Path, run_id: str, uri: str) -> None:
    """Point the run's artifacts at ``uri``, as MLflow's file store records a remote store."""
    (meta,) = (tmp_path / "mlruns").glob(f"*/{run_id}/meta.yaml")
    text = re.sub(r"(?m)^artifact_uri: .*$", f"artifact_uri: {uri}", meta.read_text())
    meta.write_text(text)
    assert store.get_run(run_id).info.artifact_uri == uri


def test_logs_report_an_artifact_store_that_refuses_access(
    store: TrackingStore, tmp_path: Path, artifact_server: str
) -> None:
    exp = store.create_experiment("denied")
    denied = store.create_run(exp, run_name="d", tags={}, user_id="u").run_id
    _with_artifact_uri(store, tmp_path, denied, f"{artifact_server}/denied/{denied}/artifacts")
    done = invoke_raw("runs", "logs", denied)
    assert done.exit_code == 1
    # Said as what it is, not as a run without output.
    assert "no output log" not in done.stderr
    assert "Cannot read artifact mlproj/output.log" in done.stderr
    assert "403" in done.stderr
    assert "Traceback" not in done.stderr

    missing = store.create_run(exp, run_name="m", tags={}, user_id="u").run_id
    _with_artifact_uri(store, tmp_path, missing, f"{artifact_server}/gone/{missing}/artifacts")
    done = invoke_raw("runs", "logs", missing)
    assert done.exit_code == 1
    assert "has no output log" in done.stderr


def test_mlflow_delegated_store_reports_an_artifact_store_it_cannot_read(
    tmp_path: Path, artifact_server: str
) -> None:
    """Through the ``mlflow`` package (the store of postgresql:/mysql: URIs): a failure to read
    the artifact store is an error that says why, a missing file is None. Here the failure is
    a real misconfiguration MLflow refuses: proxied artifacts with a non-HTTP tracking URI."""
    from mlproj.tracking.artifacts import read_artifact
    from mlproj.tracking.mlflow_store import MlflowStore

    store = MlflowStore(f"sqlite:///{tmp_path / 'mlflow.db'}")
    proxy = artifact_server.replace("http://", "mlflow-artifacts://")
    exp = store.client.create_experiment("proxied", artifact_location=f"{proxy}/x")
    run_id = store.create_run(exp, run_name="r", tags={}, user_id="u").run_id
    with pytest.raises(ExecutionException) as caught:
        read_artifact(store, store.get_run(run_id), "mlproj/output.log")
    assert caught.value.message.startswith(f"Reading artifact mlproj/output.log of run {run_id}: ")
    assert "the tracking URI must be a valid http or https URI" in caught.value.message
    exp = store.client.create_experiment("local", artifact_location=(tmp_path / "art").as_uri())
    run_id = store.create_run(exp, run_name="r", tags={}, user_id="u").run_id
    assert read_artifact(store, store.get_run(run_id), "mlproj/output.log") is None
    log = tmp_path / "output.log"
    log.write_text("kept\n")
    store.log_artifact(run_id, log, "mlproj")
    assert read_artifact(store, store.get_run(run_id), "mlproj/output.log") == b"kept\n"


def test_rest_store_tells_a_missing_log_from_an_artifact_api_it_cannot_reach(
    mlflow_server: Any, artifact_server: str
) -> None:
    from mlproj.tracking.artifacts import read_artifact

    rest = get_store(mlflow_server.url)
    exp = rest.create_experiment("rest-missing-log")
    run_id = rest.create_run(exp, run_name="m", tags={}, user_id="u").run_id
    assert read_artifact(rest, rest.get_run(run_id), "mlproj/output.log") is None  # truly absent
    done = invoke_raw("runs", "logs", run_id, "--tracking-uri", mlflow_server.url)
    assert done.exit_code == 1 and "has no output log" in done.stderr

    # The same run read through a URL that reaches a web server without MLflow's API (a
    # wrong path prefix behind a proxy): every request is a bare 404, which is not "no log".
    from mlproj.tracking.rest_store import RestStore

    wrong_prefix = RestStore(f"{artifact_server}/noapi")
    with pytest.raises(
        ExecutionException, match=r"rejected GET artifact listing of .*\(HTTP 404\)"
    ):
        read_artifact(wrong_prefix, rest.get_run(run_id), "mlproj/output.log")
