"""Downloads: the one place mlproj fetches bytes over the network for a run.

:func:`http_download` streams an http(s) URL into a file (project archives and ``path``
parameters both use it). :func:`fetch_remote_path` fetches a remote ``path`` parameter value
(s3://, gs://, http(s)://, file://host/...): http(s) through requests (a core dependency, no
aiohttp needed); MLflow artifact URIs (runs:/, models:/, mlflow-artifacts:/, dbfs:/) through the
mlflow package when installed; every other scheme through fsspec, whose cloud backends are
optional extras: ``mlproj[s3]`` (s3fs), ``mlproj[gcs]`` (gcsfs).
"""

from __future__ import annotations

import hashlib
import posixpath
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mlproj.errors import ExecutionException
from mlproj.locations import file_uri_to_path
from mlproj.redaction import scrub_text, strip_credentials

HTTP_TIMEOUT_S = 60.0  # per read of the response, not for the whole download
_CHUNK = 1 << 20

# MLflow's own artifact URIs, resolved by the mlflow package against MLFLOW_TRACKING_URI.
_MLFLOW_SCHEMES = {"runs", "models", "mlflow-artifacts", "dbfs"}

# scheme -> the mlproj extra that installs its fsspec backend
_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}


def fetch_remote_path(uri: str, dest: Path) -> Path:
    """Download the file or folder at ``uri`` into the folder ``dest``; return its local path."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
        return _fetch_into(uri, dest)
    except OSError as err:  # disk full, permissions: say where, without credentials
        raise ExecutionException(
            f"Could not download {strip_credentials(uri)} into {dest}: "
            f"{scrub_text(err.strerror or str(err), uri)}"
        ) from None


def _fetch_into(uri: str, dest: Path) -> Path:
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    name = _leaf_name(parts.path)
    if scheme in ("http", "https"):
        http_download(uri, dest / name)
        return dest / name
    if scheme == "file":
        return _copy_file_uri(uri, dest / name)
    if scheme in _MLFLOW_SCHEMES:
        return _download_mlflow(uri, dest)
    return _download_fsspec(uri, scheme, dest / name)


def _leaf_name(path: str) -> str:
    leaf = posixpath.basename(unquote(path).rstrip("/"))
    return leaf if leaf not in ("", ".", "..") else "download"


def http_download(uri: str, target: Path, *, what: str = "") -> str:
    """Stream ``uri`` into the file ``target``; return the SHA-256 of its bytes (hex).

    Errors are one line naming the URL without credentials; ``what`` (e.g. ``"archive "``) says
    what was being downloaded.
    """
    import requests

    public = strip_credentials(uri)
    digest = hashlib.sha256()
    try:
        with requests.get(uri, stream=True, timeout=HTTP_TIMEOUT_S) as reply:
            if not reply.ok:
                raise ExecutionException(
                    f"Could not download {what}{public}: HTTP {reply.status_code} "
                    f"{reply.reason}. Check the URL and your access to it."
                )
            with target.open("wb") as handle:
                for chunk in reply.iter_content(_CHUNK):
                    digest.update(chunk)
                    handle.write(chunk)
    except requests.RequestException as err:
        raise ExecutionException(
            f"Could not download {what}{public}: {scrub_text(str(err), uri)}"
        ) from None
    return digest.hexdigest()


def _copy_file_uri(uri: str, target: Path) -> Path:
    source = file_uri_to_path(uri)
    if source is None:
        raise ExecutionException(
            f"Could not read {strip_credentials(uri)}: its host is not this machine; mount the "
            "share and pass a local path instead."
        )
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True)
    elif source.is_file():
        shutil.copy2(source, target)
    else:
        raise ExecutionException(
            f"Could not read {strip_credentials(uri)}: no such file or folder ({source})."
        )
    return target


def _download_mlflow(uri: str, dest: Path) -> Path:
    public = strip_credentials(uri)
    try:
        from mlflow.artifacts import download_artifacts
    except ImportError:
        raise ExecutionException(
            f"Cannot download {public}: MLflow artifact URIs need the mlflow package; "
            "pip install 'mlproj[mlflow]'."
        ) from None
    try:
        local = download_artifacts(artifact_uri=uri, dst_path=str(dest))
    except Exception as err:  # noqa: BLE001 - MLflow raises many types (MlflowException, OSError)
        raise ExecutionException(
            f"Could not download {public}: {scrub_text(str(err) or type(err).__name__, uri)}"
        ) from None
    return Path(local)


def _download_fsspec(uri: str, scheme: str, target: Path) -> Path:
    import fsspec

    public = strip_credentials(uri)
    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except ImportError as err:
        extra = _EXTRAS.get(scheme)
        hint = (
            f"pip install 'mlproj[{extra}]'"
            if extra
            else f"install the fsspec backend for '{scheme}://' ({err})"
        )
        raise ExecutionException(
            f"Cannot download {public}: the '{scheme}' filesystem is not installed; {hint}."
        ) from None
    except ValueError as err:  # unknown protocol
        raise ExecutionException(
            f"Cannot download {public}: {scrub_text(str(err), uri)}. Supported: s3://, gs://, "
            "http(s)://, file:// and other fsspec filesystems."
        ) from None
    try:
        if fs.isdir(path):
            fs.get(path.rstrip("/") + "/", str(target) + "/", recursive=True)
        elif fs.isfile(path):
            fs.get(path, str(target))
        else:
            raise ExecutionException(f"Could not download {public}: no such file or folder.")
    except ExecutionException:
        raise
    except Exception as err:  # noqa: BLE001 - fsspec backends raise their own error types
        raise ExecutionException(
            f"Could not download {public}: {scrub_text(str(err) or type(err).__name__, uri)}"
        ) from None
    return target
