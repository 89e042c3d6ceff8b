"""Tracking stores that cannot work: one clear line, no secrets, no run."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.e2e_support import run_cli


def test_store_that_is_a_file(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a store")
    example = Path(__file__).resolve().parents[2] / "examples" / "hello"
    for args in (["run", str(example)], ["runs", "list"]):
        done = run_cli(*args, "--tracking-uri", str(afile))
        assert done.returncode == 1
        assert done.stderr.strip().splitlines() == [
            f"mlproj: error: Tracking store {afile} is a file, not a folder; point --tracking-uri "
            "or MLFLOW_TRACKING_URI at a folder (it is created when missing)"
        ]


def test_unreachable_server_hides_query_token() -> None:
    done = run_cli(
        "runs",
        "list",
        "--tracking-uri",
        "http://127.0.0.1:1/?token=s3cr3t-value",
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
    )
    assert done.returncode == 1
    assert "s3cr3t-value" not in done.stderr + done.stdout
    assert "token=***" in done.stderr


def test_sql_store_without_its_driver_is_one_line() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "hello"
    done = run_cli("run", str(example), "--tracking-uri", "postgresql://me:pa55word@127.0.0.1:1/db")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    # Without psycopg the driver is named; with it, the refused connection is one line too.
    assert len(lines) == 1 and lines[0].startswith("mlproj: error: Opening tracking store")
    assert "pa55word" not in done.stderr
