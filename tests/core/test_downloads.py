"""Remote `path` parameter values downloaded into the run's storage folder."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import fsspec
import pytest

from mlproj.downloads import fetch_remote_path
from mlproj.errors import ExecutionException


def test_http_file(http_folder: tuple[Path, str], tmp_path: Path) -> None:
    root, base = http_folder
    (root / "data.csv").write_text("a,b\n1,2\n")
    dest = tmp_path / "storage" / "param_0"
    local = fetch_remote_path(f"{base}/data.csv", dest)
    assert local == dest / "data.csv"
    assert local.read_text() == "a,b\n1,2\n"


def test_http_errors_name_the_uri_without_credentials(
    http_folder: tuple[Path, str], tmp_path: Path
) -> None:
    _, base = http_folder
    uri = base.replace("http://", "http://ann:t0pSECRET@") + "/missing.csv"
    with pytest.raises(ExecutionException) as info:
        fetch_remote_path(uri, tmp_path / "p")
    assert f"{base}/missing.csv" in str(info.value)
    assert "HTTP 404" in str(info.value)
    assert "t0pSECRET" not in str(info.value)


def test_file_uri_file_and_folder(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "nested").mkdir(parents=True)
    (src / "nested" / "x.txt").write_text("x")
    (src / "top.txt").write_text("top")
    folder = fetch_remote_path(f"file://localhost{src}", tmp_path / "d1")
    assert (folder / "nested" / "x.txt").read_text() == "x"
    single = fetch_remote_path((src / "top.txt").as_uri(), tmp_path / "d2")
    assert single == tmp_path / "d2" / "top.txt" and single.read_text() == "top"
    with pytest.raises(ExecutionException, match="no such file or folder"):
        fetch_remote_path((src / "gone.txt").as_uri(), tmp_path / "d3")


def test_fsspec_filesystem_folder_and_file(tmp_path: Path) -> None:
    """fsspec's in-memory filesystem: the same code path as s3:// or gs://, with no cloud."""
    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/models/weights.bin", b"\x00\x01")
    fs.pipe("/bucket/models/cfg/params.json", b"{}")
    folder = fetch_remote_path("memory://bucket/models", tmp_path / "m1")
    assert folder == tmp_path / "m1" / "models"
    assert (folder / "weights.bin").read_bytes() == b"\x00\x01"
    assert (folder / "cfg" / "params.json").read_text() == "{}"
    single = fetch_remote_path("memory://bucket/models/weights.bin", tmp_path / "m2")
    assert single.read_bytes() == b"\x00\x01"
    with pytest.raises(ExecutionException, match="no such file or folder"):
        fetch_remote_path("memory://bucket/none", tmp_path / "m3")
    fs.rm("/bucket", recursive=True)


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_missing_cloud_backend_names_the_extra(tmp_path: Path) -> None:
    with pytest.raises(ExecutionException) as info:
        fetch_remote_path("s3://bucket/data.csv", tmp_path / "s")
    assert "pip install 'mlproj[s3]'" in str(info.value)
    assert "s3://bucket/data.csv" in str(info.value)


@pytest.mark.skipif(importlib.util.find_spec("gcsfs") is not None, reason="gcsfs is installed")
def test_missing_gcs_backend_names_the_extra(tmp_path: Path) -> None:
    with pytest.raises(ExecutionException, match=r"pip install 'mlproj\[gcs\]'"):
        fetch_remote_path("gs://bucket/data.csv", tmp_path / "g")


def test_unknown_scheme(tmp_path: Path) -> None:
    with pytest.raises(ExecutionException, match="Cannot download nosuch://x/y"):
        fetch_remote_path("nosuch://x/y", tmp_path / "u")


def test_mlflow_runs_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `runs:/` artifact URI resolved by the real mlflow package against a file store."""
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    artifact = tmp_path / "weights.txt"
    artifact.write_text("w=1")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(artifact), artifact_path="model")
    local = fetch_remote_path(f"runs:/{run.info.run_id}/model/weights.txt", tmp_path / "r")
    assert local.read_text() == "w=1"
    assert tmp_path / "r" in local.parents
    with pytest.raises(ExecutionException, match="Could not download runs:/"):
        fetch_remote_path(f"runs:/{run.info.run_id}/nothing.txt", tmp_path / "r2")
