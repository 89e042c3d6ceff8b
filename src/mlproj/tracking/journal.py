"""Writes a tracking store could not take, kept on disk and sent again later.

When a tracking server is down (or a database stays locked) past the client's retries, the end
of a run must not be lost and the command must not wait for the store: its status, tags and
output log go into a journal under ``MLPROJ_HOME/journal`` instead, one file per run, and any
later mlproj command (or ``mlproj runs sync``) replays them once the store answers again.

Replaying is idempotent: tags, params, the end status with its original end time and the log
upload all give the same result when sent twice, so a journal is replayed whole and removed only
when every write went through. Runs are never created from a journal (the run existed before the
outage), so a replay can never duplicate a run. URIs are kept without credentials; the replay
takes them from the current environment, as every other store access does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from mlproj.errors import ExecutionException, StoreUnreachable
from mlproj.home import home_subdir
from mlproj.records import asdict
from mlproj.redaction import redact_url
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.common import now_ms
from mlproj.tracking.entities import Experiment, Metric, Run, RunInfo

T = TypeVar("T")

JOURNAL_VERSION = 1
JOURNAL_DIR = "journal"


def journal_root() -> Path:
    return home_subdir(JOURNAL_DIR)


def _key(tracking_uri: str, run_id: str) -> str:
    from mlproj.hashing import sha256

    digest = sha256(redact_url(tracking_uri).encode()).hexdigest()[:16]
    return f"{digest}-{run_id}"


class RunJournal:
    """The pending writes of one run to one store: ``<key>.jsonl`` plus ``<key>.files/``."""

    def __init__(self, tracking_uri: str, run_id: str, root: Path | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.run_id = run_id
        base = (root or journal_root()) / _key(tracking_uri, run_id)
        self.path = base.with_suffix(".jsonl")
        self.files = base.with_suffix(".files")

    def exists(self) -> bool:
        return self.path.exists()

    def append(self, op: Mapping[str, Any]) -> None:
        """Add one write, durably (fsync): the journal is what survives a crash."""
        fresh = not self.path.exists()
        lines = []
        if fresh:
            header = {
                "version": JOURNAL_VERSION,
                "tracking_uri": redact_url(self.tracking_uri),
                "run_id": self.run_id,
                "created": now_ms(),
            }
            lines.append(json.dumps(header))
        lines.append(json.dumps(op))
        data = ("\n".join(lines) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def keep_file(self, local_path: Path) -> Path:
        """A copy of ``local_path`` owned by the journal (the original may be deleted)."""
        self.files.mkdir(mode=0o700, exist_ok=True)
        # One folder per copy keeps the file's own name: the artifact is uploaded under it.
        slot = self.files / str(len(list(self.files.iterdir())))
        slot.mkdir()
        kept = slot / local_path.name
        import shutil

        shutil.copyfile(local_path, kept)
        return kept

    def ops(self) -> list[dict[str, Any]]:
        """The journaled writes in order; a torn last line (a crash mid-append) is skipped."""
        ops: list[dict[str, Any]] = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines()):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if number == 0:
                if entry.get("version") != JOURNAL_VERSION:
                    raise ExecutionException(
                        f"Journal {self.path} has version {entry.get('version')!r}; this mlproj "
                        f"reads version {JOURNAL_VERSION}"
                    )
                continue
            ops.append(entry)
        return ops

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        import shutil

        shutil.rmtree(self.files, ignore_errors=True)


def _apply(store: TrackingStore, run_id: str, op: Mapping[str, Any]) -> None:
    kind = op.get("op")
    if kind == "log_batch":
        metrics = [Metric(**m) for m in op.get("metrics", [])]
        store.log_batch(
            run_id, params=op.get("params") or None, tags=op.get("tags") or None, metrics=metrics
        )
    elif kind == "set_terminated":
        store.set_terminated(run_id, str(op["status"]), int(op["end_time"]))
    elif kind == "log_params_at_end":
        _log_params_at_end(store, run_id, op.get("params") or {})
    elif kind == "log_artifact":
        path = Path(op["file"])
        if path.is_file():  # a copy removed by hand is not worth failing the rest for
            store.log_artifact(run_id, path, op.get("artifact_path"))
    else:
        raise ExecutionException(f"Unknown journal entry {kind!r} for run {run_id}")


def _log_params_at_end(store: TrackingStore, run_id: str, deferred: Mapping[str, str]) -> None:
    """Log the params kept for the run's end that the project did not log itself (the rule of
    ``spec.params.logged_at_end``, which tracking may not import): decided when they are sent,
    so a replay reads what the project logged before the outage."""
    logged = store.get_run(run_id).params
    params = {k: v for k, v in deferred.items() if k not in logged}
    if params:
        store.log_batch(run_id, params=params)


class JournaledStore(TrackingStore):
    """A store whose writes to a run survive the store being unreachable.

    A write that fails with :class:`StoreUnreachable` is journaled and reported through
    ``warn`` instead of raised, and so is every later write of that run, so their order holds.
    Reads and run creation go straight to the store (they cannot be deferred); a read that
    finds the store unreachable defers the run's later writes too, and a read of a deferred
    run fails at once: one retry budget per run's end, not one per call.
    """

    def __init__(
        self,
        store: TrackingStore,
        warn: Callable[[str], None] | None = None,
        root: Path | None = None,
    ) -> None:
        self.inner = store
        self.tracking_uri = store.tracking_uri
        self._warn = warn or (lambda _message: None)
        self._root = root
        self._journals: dict[str, RunJournal] = {}

    def deferred(self, run_id: str) -> bool:
        """True once a write of ``run_id`` went to the journal."""
        return run_id in self._journals

    def _defer(self, run_id: str, reason: StoreUnreachable) -> RunJournal:
        journal = RunJournal(self.tracking_uri, run_id, self._root)
        self._journals[run_id] = journal
        self._warn(
            f"the tracking store is unreachable ({reason}); run {run_id}'s remaining updates "
            f"are kept in {journal.path} and sent by the next mlproj command "
            "(or `mlproj runs sync`)"
        )
        return journal

    def _send_or_defer(self, run_id: str, send: Callable[[], None]) -> RunJournal | None:
        """Send now unless the run is deferred already; the journal to use when not sent."""
        journal = self._journals.get(run_id)
        if journal is not None:
            return journal
        try:
            send()
        except StoreUnreachable as exc:
            return self._defer(run_id, exc)
        return None

    def _write(self, run_id: str, op: dict[str, Any], send: Callable[[], None]) -> None:
        journal = self._send_or_defer(run_id, send)
        if journal is not None:
            journal.append(op)

    # -- writes --------------------------------------------------------------------------------
    def log_batch(
        self,
        run_id: str,
        *,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        metrics: Sequence[Metric] = (),
    ) -> None:
        op = {
            "op": "log_batch",
            "params": dict(params or {}),
            "tags": dict(tags or {}),
            "metrics": [asdict(m) for m in metrics],
        }
        self._write(
            run_id,
            op,
            lambda: self.inner.log_batch(run_id, params=params, tags=tags, metrics=metrics),
        )

    def set_terminated(self, run_id: str, status: str, end_time: int | None = None) -> None:
        end = end_time if end_time is not None else now_ms()  # the real end, not the replay's
        op = {"op": "set_terminated", "status": str(status), "end_time": end}
        self._write(run_id, op, lambda: self.inner.set_terminated(run_id, status, end))

    def log_artifact(self, run_id: str, local_path: Path, artifact_path: str | None = None) -> None:
        journal = self._send_or_defer(
            run_id, lambda: self.inner.log_artifact(run_id, local_path, artifact_path)
        )
        if journal is not None:
            kept = journal.keep_file(local_path)
            journal.append(
                {"op": "log_artifact", "file": str(kept), "artifact_path": artifact_path}
            )

    def log_params_at_end(self, run_id: str, deferred: Mapping[str, str]) -> None:
        """Log the params kept for the run's end unless the project logged them itself."""
        op = {"op": "log_params_at_end", "params": dict(deferred)}
        self._write(run_id, op, lambda: _log_params_at_end(self.inner, run_id, deferred))

    def _read(self, run_id: str, read: Callable[[], T]) -> T:
        journal = self._journals.get(run_id)
        if journal is not None:
            raise StoreUnreachable(
                f"the tracking store was unreachable a moment ago; run {run_id}'s updates "
                f"wait in {journal.path}"
            )
        try:
            return read()
        except StoreUnreachable as exc:
            self._defer(run_id, exc)
            raise

    # -- everything else goes straight to the store ----------------------------------------
    def get_experiment(self, experiment_id: str) -> Experiment | None:
        return self.inner.get_experiment(experiment_id)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return self.inner.get_experiment_by_name(name)

    def create_experiment(self, name: str) -> str:
        return self.inner.create_experiment(name)

    def list_experiments(self) -> list[Experiment]:
        return self.inner.list_experiments()

    def create_run(
        self,
        experiment_id: str,
        *,
        run_name: str | None,
        tags: Mapping[str, str],
        user_id: str,
        start_time: int | None = None,
    ) -> RunInfo:
        return self.inner.create_run(
            experiment_id, run_name=run_name, tags=tags, user_id=user_id, start_time=start_time
        )

    def get_run(self, run_id: str) -> Run:
        return self._read(run_id, lambda: self.inner.get_run(run_id))

    def get_run_status(self, run_id: str) -> str:
        return self._read(run_id, lambda: self.inner.get_run_status(run_id))

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        *,
        status: str | None = None,
        params: Mapping[str, str] | None = None,
        max_results: int = 1000,
    ) -> list[Run]:
        return self.inner.search_runs(
            experiment_ids, status=status, params=params, max_results=max_results
        )

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        return self.inner.get_metric_history(run_id, key)

    def local_artifact_dir(self, run_id: str) -> Path | None:
        return self.inner.local_artifact_dir(run_id)


def pending_journals(root: Path | None = None) -> list[Path]:
    """The journal files waiting to be replayed, oldest first (cheap: one folder listing)."""
    folder = root or journal_root()
    try:
        found = [p for p in folder.iterdir() if p.suffix == ".jsonl"]
    except FileNotFoundError:
        return []
    return sorted(found, key=lambda p: p.stat().st_mtime)


def _open_for_replay(journaled_uri: str, *, quick: bool) -> TrackingStore:
    """The store a journal was written for, with the credentials of the current environment
    when its tracking URI names the same store. ``quick``: one try, short timeout (the replay
    at a command's start must not hold the command up while the server is still down)."""
    from mlproj.tracking import get_store, resolve_tracking_uri

    uri = journaled_uri
    configured = os.environ.get("MLFLOW_TRACKING_URI")
    if configured:
        current = resolve_tracking_uri(configured)
        if redact_url(current) == journaled_uri:
            uri = current
    if quick and uri.startswith(("http://", "https://")):
        from mlproj.tracking.http_client import HttpSettings
        from mlproj.tracking.rest_store import RestStore

        return RestStore(uri, HttpSettings(timeout_s=10.0, max_retries=0))
    return get_store(uri)


def replay(
    root: Path | None = None, *, quick: bool = False
) -> tuple[list[str], list[tuple[str, str]]]:
    """Send every journaled write. Returns (run ids fully synced, [(run id, why not)]).

    Each journal is locked while it is replayed, so two mlproj commands never send one twice
    at the same time; a journal that another process holds is left for it.
    """
    from filelock import FileLock, Timeout

    synced: list[str] = []
    failed: list[tuple[str, str]] = []
    # A store found unreachable is not tried again for its other journals: one retry budget
    # per store, not one per journal (a hundred runs ended during an outage).
    unreachable: dict[str, str] = {}
    for path in pending_journals(root):
        lock = FileLock(str(path.with_suffix(".lock")))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        try:
            if not path.exists():  # replayed by another process a moment ago
                continue
            header = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
            run_id, uri = str(header["run_id"]), str(header["tracking_uri"])
            journal = RunJournal(uri, run_id, path.parent)
            journal.path, journal.files = path, path.with_suffix(".files")
            if uri in unreachable:
                failed.append((run_id, unreachable[uri]))
                continue
            try:
                store = _open_for_replay(uri, quick=quick)
                for op in journal.ops():
                    _apply(store, run_id, op)
            except ExecutionException as exc:
                if isinstance(exc, StoreUnreachable):
                    unreachable[uri] = str(exc)
                failed.append((run_id, str(exc)))
                continue
            journal.remove()
            synced.append(run_id)
        except (OSError, ValueError, KeyError, IndexError) as exc:
            failed.append((path.stem, f"unreadable journal {path}: {exc}"))
        finally:
            lock.release()
            path.with_suffix(".lock").unlink(missing_ok=True)
    return synced, failed
