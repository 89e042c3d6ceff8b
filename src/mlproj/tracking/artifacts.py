"""Artifact files of a run on any store: upload and read back one file.

The server's artifact proxy (``mlflow-artifacts:``) is handled by the REST store itself; every
other location (``file:``, ``s3:``, ``gs:``, ...) goes through fsspec, imported only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlproj.errors import ExecutionException
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.entities import Run


def fsspec_upload(artifact_uri: str, local_path: Path, dest: str) -> None:
    """Copy ``local_path`` to ``<artifact_uri>/<dest>``."""
    fs, root = _filesystem(artifact_uri)
    target = f"{root.rstrip('/')}/{dest}"
    try:
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(local_path), target)
    except OSError as exc:
        raise ExecutionException(
            f"Cannot upload {local_path} to artifact location {artifact_uri}/{dest}: {exc}"
        ) from None


def fsspec_read(artifact_uri: str, path: str) -> bytes | None:
    """The bytes of ``<artifact_uri>/<path>``, or None when there is no such file."""
    fs, root = _filesystem(artifact_uri)
    target = f"{root.rstrip('/')}/{path}"
    try:
        data = fs.cat_file(target)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - fsspec backends raise their own (auth) errors
        # An auth or network failure is not a missing file: say what happened.
        first = str(exc).strip().splitlines()
        detail = f": {first[0]}" if first else ""
        raise ExecutionException(
            f"Cannot read artifact {path} from {artifact_uri}: {type(exc).__name__}{detail}"
        ) from None
    return bytes(data)


def read_artifact(store: TrackingStore, run: Run, path: str) -> bytes | None:
    """One artifact file of ``run`` from wherever the store keeps it; None when missing."""
    local = store.local_artifact_dir(run.run_id)
    if local is not None:
        file = local / path
        try:
            return file.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as exc:  # permissions, I/O: not a missing file
            raise ExecutionException(
                f"Cannot read artifact {path} of run {run.run_id} at {file}: {exc.strerror}"
            ) from None
    reader = getattr(store, "read_artifact", None)
    if callable(reader):
        data = reader(run, path)
        assert data is None or isinstance(data, bytes)
        return data
    return fsspec_read(run.info.artifact_uri, path)


def _filesystem(artifact_uri: str) -> tuple[Any, str]:
    try:
        from fsspec.core import url_to_fs
    except ImportError:  # pragma: no cover - fsspec is a core dependency
        raise ExecutionException("Artifact locations need fsspec: pip install fsspec") from None
    try:
        fs, root = url_to_fs(artifact_uri)
    except (ImportError, ValueError) as exc:
        raise ExecutionException(
            f"Artifact location {artifact_uri}: no filesystem for it ({exc}); install the "
            "matching extra, e.g. pip install 'mlproj[s3]' or 'mlproj[gcs]'"
        ) from None
    return fs, str(root)
