"""The MLflow file store (``./mlruns``), written and read by mlproj itself.

Layout (section 11 of the behaviour reference), readable by MLflow 2.x and 3.x::

    <root>/.mlproj.lock               experiment creation lock (a file: MLflow only lists folders)
    <root>/<experiment_id>/meta.yaml
    <root>/<experiment_id>/tags/<key>
    <root>/<experiment_id>/<run_id>/meta.yaml
    <root>/<experiment_id>/<run_id>/{params,metrics,tags}/<key>   keys with '/' nest folders
    <root>/<experiment_id>/<run_id>/artifacts/
    <root>/.trash/<experiment_id>/    deleted experiments (read, never written)

Concurrency: a run is built in a hidden folder and renamed into place, so readers see all of it
or nothing; every later write is atomic (see :mod:`mlproj.fsutil`); experiments are
created under a lock at the root, so concurrent creators never duplicate a name; meta.yaml
updates (status, rename) hold a per-run lock.

Speed: ``meta.yaml`` is read by the fast codec of :mod:`mlproj.tracking.meta_yaml`; a search
decodes just the fields it filters and sorts on, and reads params, tags and metrics only for the
runs it returns. What may be logged at all is :mod:`mlproj.tracking.limits` (MLflow's rules).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import os
import posixpath
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from mlproj.errors import ExecutionException, StoreUnreachable
from mlproj.fsutil import (
    append_bytes,
    copy_into,
    create_once,
    exclusive_lock,
    write_atomic,
)
from mlproj.hashing import sha1_hex
from mlproj.locations import local_store_root
from mlproj.statuses import STATUS_TO_INT, TERMINAL_STATUSES, RunStatus
from mlproj.tags import MLFLOW_RUN_NAME, TAG_RUN_KEY
from mlproj.tracking.base import CreatesRunWithParams
from mlproj.tracking.common import local_folder, now_ms, run_artifact_uri, run_not_found
from mlproj.tracking.entities import (
    DEFAULT_EXPERIMENT_ID,
    DEFAULT_EXPERIMENT_NAME,
    Experiment,
    Metric,
    Run,
    RunInfo,
)
from mlproj.tracking.limits import (
    check_metric,
    check_param,
    check_tag,
    param_conflict,
    validate_key,
)
from mlproj.tracking.meta_yaml import (
    as_int,
    as_str,
    dump_meta,
    parse_meta,
    select_fields,
    status_name,
)
from mlproj.tracking.run_names import random_run_name

__all__ = ["FileStore"]

META = "meta.yaml"
TRASH = ".trash"
LOCK = ".mlproj.lock"
RUN_NAME_TAG = MLFLOW_RUN_NAME
# Folders inside an experiment that are not runs (MLflow keeps datasets, traces, models there).
# Tags only mlproj writes, looked up by value (run reuse): each experiment keeps a hidden
# index ``.mlproj-index/<tag>/<sha1 of value>`` listing the ids of runs that got that value, so a
# lookup reads a few files instead of every run. Entries are hints, checked against the run.
INDEXED_TAGS = frozenset({TAG_RUN_KEY})
TAG_INDEX = ".mlproj-index"
RESERVED_EXPERIMENT_FOLDERS = frozenset({"tags", "datasets", "traces", "models"})
RUN_SUBFOLDERS = ("params", "metrics", "tags", "artifacts")

_RUN_ID = re.compile(r"[a-zA-Z0-9][\w\-]{0,255}")
_EXPERIMENT_ID = re.compile(r"[a-zA-Z0-9][\w\-]{0,63}")


# The fields a search filters and sorts on, and those a RunInfo needs.
_SCAN_KEYS = ("experiment_id", "lifecycle_stage", "status", "start_time")
_RUN_INFO_KEYS = (
    "artifact_uri",
    "end_time",
    "lifecycle_stage",
    "run_name",
    "start_time",
    "status",
    "user_id",
)


def _as_value(value: object) -> str:
    return "" if value is None else str(value)


# -- small file helpers ------------------------------------------------------------------------
_CHUNK = 16384


def _read_text(path: str | Path) -> str:
    # os.open/os.read make half the system calls of open().read(); listing runs reads about
    # fifteen small files per run, and system calls are what it spends its time on.
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, _CHUNK)
        if len(data) == _CHUNK:  # a short read is the end of a regular file
            chunks = [data]
            while chunk := os.read(fd, _CHUNK):
                chunks.append(chunk)
            data = b"".join(chunks)
    finally:
        os.close(fd)
    return data.decode("utf-8", errors="replace")


_GONE = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


def _read_text_or_none(path: str | Path) -> str | None:
    try:
        return _read_text(path)
    except _GONE:
        return None


def _read_files(folder: str) -> dict[str, str]:
    """Key -> content of every file under ``folder``; files in sub-folders give ``a/b`` keys."""
    values: dict[str, str] = {}
    stack = [(folder, "")]
    while stack:
        path, prefix = stack.pop()
        try:
            with os.scandir(path) as entries:
                found = [(e.name, e.path, e.is_dir()) for e in entries]
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name, entry_path, is_dir in found:
            if is_dir:
                stack.append((entry_path, f"{prefix}{name}/"))
                continue
            try:  # noqa: SIM105 - contextlib.suppress costs more in this hot loop
                values[prefix + name] = _read_text(entry_path)
            except _GONE:  # removed while we listed
                pass
    return values


def _metric_points(
    text: str, damaged: Callable[[], None] | None = None
) -> Iterator[tuple[int, float, int]]:
    """(timestamp, value, step) per line; 2-, 3- and 5-field lines. Malformed ones (a write cut
    short by a power cut or a full disk) are skipped, and ``damaged`` is told once."""
    told = False
    for line in text.splitlines():
        parts = line.split()
        try:
            if len(parts) not in (2, 3, 5):
                raise ValueError(line)
            timestamp = int(parts[0]) if parts[0].isdigit() else int(float(parts[0]))
            value = float(parts[1])
            step = int(parts[2]) if len(parts) > 2 else 0
        except ValueError:
            if damaged is not None and not told and line.strip():
                damaged()
                told = True
            continue
        yield timestamp, value, step


def _latest_metrics(folder: str, report: Callable[[str], None]) -> dict[str, float]:
    latest: dict[str, float] = {}
    for key, text in _read_files(folder).items():
        best: tuple[int, int, float] | None = None
        damaged = functools.partial(report, f"{folder}/{key}: malformed metric lines skipped")
        for timestamp, value, step in _metric_points(text, damaged):
            point = (step, timestamp, value)
            if best is None or point > best:
                best = point
        if best is not None:
            latest[key] = best[2]
    return latest


def _new_run_id() -> str:
    """A uuid4 as 32 hex digits, without importing :mod:`uuid` on the hot path."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


def _new_experiment_id() -> str:
    """18 random digits, no leading zero, like the ids MLflow's file store makes."""
    return str(10**17 + int.from_bytes(os.urandom(8), "big") % (9 * 10**17))


# -- the store ---------------------------------------------------------------------------------
class FileStore(CreatesRunWithParams):
    """An MLflow-compatible file store rooted at an absolute ``file:///...`` URI."""

    def __init__(self, uri: str) -> None:
        root = local_store_root(uri)
        if root is None:
            raise ExecutionException(f"Tracking URI {uri!r} is not a file store URI (file:///...)")
        if root.exists() and not root.is_dir():
            raise ExecutionException(
                f"Tracking store {root} is a file, not a folder; point --tracking-uri or "
                "MLFLOW_TRACKING_URI at a folder (it is created when missing)"
            )
        self.tracking_uri = uri
        self.root = root
        self._root_uri = root.as_uri()
        self._run_dirs: dict[str, Path] = {}  # run id -> run folder, filled as runs are seen
        # Damaged files skipped while reading (truncated or corrupt after a power cut or a full
        # disk), one message each: the CLI shows them as warnings, naming the file.
        self.damaged: list[str] = []

    def _report_damage(self, message: str) -> None:
        if message not in self.damaged:
            self.damaged.append(message)

    # -- experiments -------------------------------------------------------------------------
    def _experiment_folders(self, *, deleted: bool = True) -> list[Path]:
        """Folders that may hold an experiment: active ones, then those in ``.trash``."""
        found: list[Path] = []
        parents = [self.root, self.root / TRASH] if deleted else [self.root]
        for parent in parents:
            try:
                entries = os.scandir(parent)
            except (FileNotFoundError, NotADirectoryError):
                continue
            with entries:
                found.extend(
                    Path(e.path)
                    for e in entries
                    if e.name[0] != "." and e.name != "models" and e.is_dir()
                )
        return found

    def _experiment_dir(self, experiment_id: str) -> Path | None:
        if not _EXPERIMENT_ID.fullmatch(experiment_id):
            return None
        for folder in (self.root / experiment_id, self.root / TRASH / experiment_id):
            if (folder / META).is_file():
                return folder
        return None

    def _read_experiment(self, folder: Path, *, with_tags: bool = True) -> Experiment | None:
        text = _read_text_or_none(folder / META)
        if text is None:
            return None
        try:
            meta = parse_meta(text)
        except ValueError:
            return None
        experiment_id = folder.name
        return Experiment(
            experiment_id=experiment_id,
            name=as_str(meta.get("name")),
            artifact_location=as_str(
                meta.get("artifact_location"), f"{self._root_uri}/{experiment_id}"
            ),
            lifecycle_stage=as_str(meta.get("lifecycle_stage"), "active"),
            creation_time=as_int(meta.get("creation_time")),
            tags=_read_files(str(folder / "tags")) if with_tags else {},
        )

    def get_experiment(self, experiment_id: str) -> Experiment | None:
        experiment_id = str(experiment_id)
        folder = self._experiment_dir(experiment_id)
        if folder is None and experiment_id == DEFAULT_EXPERIMENT_ID:
            self._ensure_default_experiment()
            folder = self._experiment_dir(experiment_id)
        return None if folder is None else self._read_experiment(folder)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        deleted: Experiment | None = None
        for folder in self._experiment_folders():
            experiment = self._read_experiment(folder, with_tags=False)
            if experiment is None or experiment.name != name:
                continue
            if experiment.lifecycle_stage == "active":
                return self._read_experiment(folder)
            deleted = deleted or experiment
        return None if deleted is None else self._read_experiment(self._require_dir(deleted))

    def _require_dir(self, experiment: Experiment) -> Path:
        folder = self._experiment_dir(experiment.experiment_id)
        assert folder is not None
        return folder

    def list_experiments(self) -> list[Experiment]:
        found = [self._read_experiment(f) for f in self._experiment_folders(deleted=False)]
        active = [e for e in found if e is not None and e.lifecycle_stage == "active"]
        # MLflow's order: newest first, then by id.
        active.sort(key=lambda e: e.experiment_id)
        active.sort(key=lambda e: e.creation_time or 0, reverse=True)
        return active

    def create_experiment(self, name: str) -> str:
        if not isinstance(name, str) or not name.strip():
            raise ExecutionException(
                f"Invalid experiment name {name!r}: give a non-empty name (--experiment-name)."
            )
        try:
            return self._create_experiment(name)
        except OSError as exc:
            raise _write_error(f"Cannot create experiment {name!r} in {self.root}", exc) from exc

    def _create_experiment(self, name: str) -> str:
        from filelock import FileLock

        self.root.mkdir(parents=True, exist_ok=True)
        # One creator at a time per store: two processes never create the same name twice.
        with FileLock(str(self.root / LOCK)):
            existing = self.get_experiment_by_name(name)
            if existing is not None:
                if existing.lifecycle_stage != "active":
                    raise ExecutionException(
                        f"Experiment {name!r} (id {existing.experiment_id}) is deleted in "
                        f"tracking store {self.tracking_uri}. Restore it (mlflow experiments "
                        "restore --experiment-id ID) or choose another name."
                    )
                return existing.experiment_id
            folder = self._new_experiment_folder(name)
            now = now_ms()
            meta = {
                "artifact_location": f"{self._root_uri}/{folder.name}",
                "creation_time": now,
                "experiment_id": folder.name,
                "last_update_time": now,
                "lifecycle_stage": "active",
                "name": name,
            }
            write_atomic(folder / META, dump_meta(meta))
        return folder.name

    def _new_experiment_folder(self, name: str) -> Path:
        """Make an empty, unused experiment folder (called under the root lock)."""
        candidates: Iterable[str] = (_new_experiment_id() for _ in range(100))
        if name == DEFAULT_EXPERIMENT_NAME:
            candidates = itertools.chain([DEFAULT_EXPERIMENT_ID], candidates)
        for experiment_id in candidates:
            if not self._experiment_id_free(experiment_id):
                continue
            folder = self.root / experiment_id
            try:
                folder.mkdir()
            except FileExistsError:
                # A folder without meta.yaml: a creator that died half-way; reuse it if empty.
                if any(folder.iterdir()):
                    continue
            return folder
        raise ExecutionException(f"Could not allocate an experiment id in {self.root}")

    def _experiment_id_free(self, experiment_id: str) -> bool:
        return (
            not (self.root / experiment_id / META).exists()
            and not (self.root / TRASH / experiment_id).exists()
        )

    def _ensure_default_experiment(self) -> None:
        if self._experiment_dir(DEFAULT_EXPERIMENT_ID) is None:
            self.create_experiment(DEFAULT_EXPERIMENT_NAME)

    # -- runs --------------------------------------------------------------------------------
    def _not_found(self, run_id: str) -> ExecutionException:
        return run_not_found(run_id, self.tracking_uri)

    def _run_dir(self, run_id: str) -> Path:
        if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
            raise self._not_found(str(run_id))
        cached = self._run_dirs.get(run_id)
        if cached is not None and (cached / META).is_file():
            return cached
        for experiment_folder in self._experiment_folders():
            candidate = experiment_folder / run_id
            if (candidate / META).is_file():
                self._run_dirs[run_id] = candidate
                return candidate
        raise self._not_found(run_id)

    def _read_run_meta(self, run_dir: Path, *, whole: bool = False) -> dict[str, object]:
        """The run's meta.yaml; ``whole`` waits out a half-written file before a rewrite.

        MLflow rewrites meta.yaml in place (truncate, then write), so a reader can catch it
        empty or cut short for an instant. Retry briefly; before a read-modify-write, also wait
        for ``user_id``, the last key every writer puts in the file, so no key is lost.
        """
        meta: dict[str, object] = {}
        for attempt in range(5):
            text = _read_text_or_none(run_dir / META)
            if text is None:
                raise self._not_found(run_dir.name)
            try:
                meta = parse_meta(text)
            except ValueError:
                meta = {}
            if meta and (not whole or "user_id" in meta):
                return meta
            time.sleep(0.01 * (attempt + 1))
        if meta:
            return meta  # an old or hand-written file without user_id
        raise ExecutionException(
            f"Run '{run_dir.name}': {run_dir / META} is empty or not valid YAML. Repair or "
            "remove that run folder."
        )

    def _run_info(self, meta: Mapping[str, object], run_dir: Path) -> RunInfo:
        run_id = run_dir.name
        experiment_id = run_dir.parent.name
        run_name = as_str(meta.get("run_name"))
        if not run_name:  # MLflow 1.x kept the name only in the tag
            run_name = _read_text_or_none(run_dir / "tags" / RUN_NAME_TAG) or ""
        return RunInfo(
            run_id=run_id,
            experiment_id=experiment_id,
            run_name=run_name,
            status=status_name(meta.get("status")),
            start_time=as_int(meta.get("start_time")) or 0,
            end_time=as_int(meta.get("end_time")),
            artifact_uri=as_str(meta.get("artifact_uri"))
            or f"{self._root_uri}/{experiment_id}/{run_id}/artifacts",
            user_id=as_str(meta.get("user_id")),
            lifecycle_stage=as_str(meta.get("lifecycle_stage"), "active"),
        )

    def _load_run(self, run_dir: Path, meta: Mapping[str, object]) -> Run:
        folder = str(run_dir)
        return Run(
            info=self._run_info(meta, run_dir),
            params=_read_files(f"{folder}/params"),
            tags=_read_files(f"{folder}/tags"),
            metrics=_latest_metrics(f"{folder}/metrics", self._report_damage),
        )

    def _create_run(
        self,
        experiment_id: str,
        run_name: str | None,
        tags: Mapping[str, str],
        user_id: str,
        start_time: int | None,
        params: Mapping[str, str],
    ) -> RunInfo:
        all_params = {str(k): _as_value(v) for k, v in params.items()}
        for key, value in all_params.items():
            check_param(key, value)
        experiment_id = str(experiment_id)
        experiment_folder = self._experiment_dir(experiment_id)
        if experiment_folder is None and experiment_id == DEFAULT_EXPERIMENT_ID:
            self._ensure_default_experiment()
            experiment_folder = self._experiment_dir(experiment_id)
        experiment = (
            None
            if experiment_folder is None
            else self._read_experiment(experiment_folder, with_tags=False)
        )
        if experiment_folder is None or experiment is None:
            raise ExecutionException(
                f"Cannot create a run in experiment '{experiment_id}': no such experiment in "
                f"tracking store {self.tracking_uri}. Pass an existing id or an experiment name."
            )
        if experiment.lifecycle_stage != "active" or experiment_folder.parent.name == TRASH:
            raise ExecutionException(
                f"Cannot create a run in experiment '{experiment_id}' ({experiment.name}): it is "
                "deleted. Restore it or choose another experiment."
            )
        all_tags = {str(k): _as_value(v) for k, v in tags.items()}
        tagged_name = all_tags.get(RUN_NAME_TAG)
        if run_name and tagged_name is not None and tagged_name != run_name:
            raise ExecutionException(
                f"Run name {run_name!r} and tag {RUN_NAME_TAG}={tagged_name!r} disagree; "
                "give the name once."
            )
        name = run_name or tagged_name or random_run_name()
        all_tags[RUN_NAME_TAG] = name
        for key, value in all_tags.items():
            check_tag(key, value)

        run_id = _new_run_id()
        artifact_uri = run_artifact_uri(experiment.artifact_location, run_id)
        info = RunInfo(
            run_id=run_id,
            experiment_id=experiment_id,
            run_name=name,
            status=RunStatus.RUNNING,
            start_time=now_ms() if start_time is None else int(start_time),
            end_time=None,
            artifact_uri=artifact_uri,
            user_id=user_id,
        )
        # Build the whole run in a hidden folder, then rename it into place: readers see a
        # complete run or none. MLflow skips the hidden folder (no meta.yaml) at debug level.
        staging = experiment_folder / f".tmp-{run_id}"
        final = experiment_folder / run_id
        try:
            staging.mkdir()
            for sub in RUN_SUBFOLDERS:
                (staging / sub).mkdir()
            for key, value in all_tags.items():
                target = staging / "tags" / key
                if "/" in key:
                    target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(value.encode("utf-8"))
            for key, value in all_params.items():
                target = staging / "params" / key
                if "/" in key:
                    target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(value.encode("utf-8"))
            (staging / META).write_bytes(dump_meta(_run_meta(info)))
            staging.rename(final)
        except OSError as exc:
            import shutil  # here: shutil imports bz2 and lzma; a run rarely needs it

            shutil.rmtree(staging, ignore_errors=True)
            raise _write_error(f"Cannot create a run in {experiment_folder}", exc) from exc
        self._run_dirs[run_id] = final
        self._index_tags(experiment_folder, run_id, all_tags)
        return info

    def get_run(self, run_id: str) -> Run:
        run_dir = self._run_dir(run_id)
        return self._load_run(run_dir, self._read_run_meta(run_dir))

    def get_run_status(self, run_id: str) -> str:
        # meta.yaml alone: no params, tags or metrics to read on the hot path.
        return status_name(self._read_run_meta(self._run_dir(run_id)).get("status"))

    def log_batch(
        self,
        run_id: str,
        *,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        metrics: Sequence[Metric] = (),
    ) -> None:
        run_dir = self._run_dir(run_id)
        new_params = {str(k): _as_value(v) for k, v in (params or {}).items()}
        new_tags = {str(k): _as_value(v) for k, v in (tags or {}).items()}
        for key, value in new_params.items():
            check_param(key, value)
        for key, value in new_tags.items():
            check_tag(key, value)
        lines = _metric_lines(metrics)
        if not (new_params or new_tags or lines):
            return
        meta = self._read_run_meta(run_dir)
        if as_str(meta.get("lifecycle_stage"), "active") != "active":
            raise ExecutionException(f"Run '{run_id}' is deleted; it cannot be logged to.")
        # Check every param before writing anything, so a conflict leaves the run unchanged.
        for key, value in new_params.items():
            existing = _read_text_or_none(run_dir / "params" / key)
            if existing is not None and existing != value:
                raise param_conflict(run_id, key, existing, value)
        run_name = new_tags.pop(RUN_NAME_TAG, None)
        try:
            for key, value in new_params.items():
                self._write_param(run_dir, run_id, key, value)
            for key, value in new_tags.items():
                target = self._key_path(run_dir, "tags", key)
                write_atomic(target, value.encode("utf-8"), tmp_dir=run_dir)
            for key, data in lines.items():
                append_bytes(self._key_path(run_dir, "metrics", key), data)
            self._index_tags(run_dir.parent, run_id, new_tags)
            if run_name is not None:
                # The tag and meta.yaml's run_name change together under the run's lock, so
                # concurrent renames cannot leave them disagreeing.
                with exclusive_lock(run_dir / LOCK):
                    target = run_dir / "tags" / RUN_NAME_TAG
                    write_atomic(target, run_name.encode("utf-8"), tmp_dir=run_dir)
                    self._rewrite_run_meta(run_dir, run_name=run_name)
        except OSError as exc:
            raise _write_error(f"Cannot write to run '{run_id}'", exc) from exc

    @staticmethod
    def _key_path(run_dir: Path, kind: str, key: str) -> Path:
        target = run_dir / kind / key
        if "/" in key:
            target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def _write_param(self, run_dir: Path, run_id: str, key: str, value: str) -> None:
        target = self._key_path(run_dir, "params", key)
        if create_once(target, value.encode("utf-8"), tmp_dir=run_dir):
            return
        if target.is_dir():
            raise _write_error(
                f"Cannot write to run '{run_id}'", IsADirectoryError(errno.EISDIR, "", str(target))
            )
        existing = _read_text_or_none(target)
        if existing != value:  # another process logged a different value first
            raise param_conflict(run_id, key, existing or "", value)

    def _update_run_meta(self, run_dir: Path, **changes: object) -> None:
        """Read-modify-write meta.yaml under the run's lock."""
        with exclusive_lock(run_dir / LOCK):
            self._rewrite_run_meta(run_dir, **changes)

    def _rewrite_run_meta(self, run_dir: Path, **changes: object) -> None:
        """Apply ``changes``, keeping keys mlproj does not know (call with the run's lock)."""
        meta = self._read_run_meta(run_dir, whole=True)
        meta.update(changes)
        write_atomic(run_dir / META, dump_meta(meta), tmp_dir=run_dir)

    def set_terminated(self, run_id: str, status: str, end_time: int | None = None) -> None:
        wanted = str(status).upper()
        if wanted not in TERMINAL_STATUSES:
            raise ExecutionException(
                f"Invalid final status {status!r} for run '{run_id}': use one of "
                f"{', '.join(sorted(TERMINAL_STATUSES))}."
            )
        run_dir = self._run_dir(run_id)
        try:
            self._update_run_meta(
                run_dir,
                status=STATUS_TO_INT[wanted],
                end_time=now_ms() if end_time is None else int(end_time),
            )
        except OSError as exc:
            raise _write_error(f"Cannot set the status of run '{run_id}'", exc) from exc

    def reopen_run(self, run_id: str) -> None:
        run_dir = self._run_dir(run_id)
        try:
            self._update_run_meta(run_dir, status=STATUS_TO_INT[RunStatus.RUNNING], end_time=None)
        except OSError as exc:
            raise _write_error(f"Cannot reopen run '{run_id}'", exc) from exc

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        *,
        status: str | None = None,
        params: Mapping[str, str] | None = None,
        max_results: int = 1000,
    ) -> list[Run]:
        wanted_params = {str(k): _as_value(v) for k, v in (params or {}).items()}
        for key in wanted_params:
            validate_key("param", key)
        runs: list[Run] = []
        # Params, tags and metrics are read only for the runs returned, newest first.
        for run_id, run_folder, text in self._newest_runs(experiment_ids, status):
            if len(runs) >= max_results:
                break
            if wanted_params and any(
                _read_text_or_none(f"{run_folder}/params/{k}") != v
                for k, v in wanted_params.items()
            ):
                continue
            try:
                meta = select_fields(text, _RUN_INFO_KEYS)
            except ValueError as exc:
                self._report_damage(f"{run_folder}/{META}: not a valid run record ({exc})")
                continue
            run_dir = Path(run_folder)
            self._run_dirs[run_id] = run_dir
            runs.append(self._load_run(run_dir, meta))
        return runs

    def find_runs_by_tag(
        self,
        experiment_ids: Sequence[str],
        key: str,
        value: str,
        *,
        status: str | None = None,
        max_results: int = 1000,
    ) -> list[Run]:
        # Indexed tags: the runs the index names. Others: one small file per run (the tag).
        # Either way meta.yaml is read only for the runs that match.
        validate_key("tag", key)
        wanted_status = None if status is None else str(status).upper()
        matches: list[tuple[int, str, str, str]] = []
        for experiment_id in dict.fromkeys(str(e) for e in experiment_ids):
            folder = self._experiment_dir(experiment_id)
            if folder is None:
                continue
            for name, path in self._tag_candidates(folder, key, value):
                if name[0] == "." or name in RESERVED_EXPERIMENT_FOLDERS:
                    continue
                if _read_text_or_none(f"{path}/tags/{key}") != value:
                    continue
                text = _read_text_or_none(f"{path}/{META}")
                if not text:
                    continue
                try:
                    meta = select_fields(text, _SCAN_KEYS)
                except ValueError:
                    continue
                if as_str(meta.get("lifecycle_stage"), "active") != "active":
                    continue
                if wanted_status and status_name(meta.get("status")) != wanted_status:
                    continue
                matches.append((as_int(meta.get("start_time")) or 0, name, path, text))
        matches.sort(key=lambda item: (-item[0], item[1]))
        runs: list[Run] = []
        for _, run_id, run_folder, text in matches[:max_results]:
            run_dir = Path(run_folder)
            self._run_dirs[run_id] = run_dir
            runs.append(self._load_run(run_dir, select_fields(text, _RUN_INFO_KEYS)))
        return runs

    @staticmethod
    def _index_file(experiment_folder: Path, key: str, value: str) -> Path:
        digest = sha1_hex(value.encode("utf-8"))
        return experiment_folder / TAG_INDEX / key / digest

    def _index_tags(self, experiment_folder: Path, run_id: str, tags: Mapping[str, str]) -> None:
        for key in INDEXED_TAGS.intersection(tags):
            target = self._index_file(experiment_folder, key, tags[key])
            # A lost entry only costs a reuse miss, never a wrong hit: not worth failing for.
            with contextlib.suppress(OSError):
                target.parent.mkdir(parents=True, exist_ok=True)
                append_bytes(target, f"{run_id}\n".encode("ascii"))

    def _tag_candidates(self, folder: Path, key: str, value: str) -> Iterator[tuple[str, str]]:
        """(run id, run folder) of the runs that may have tag ``key`` = ``value``."""
        if key in INDEXED_TAGS:
            listed = _read_text_or_none(self._index_file(folder, key, value)) or ""
            for run_id in dict.fromkeys(listed.split()):
                if _RUN_ID.fullmatch(run_id):
                    yield run_id, f"{folder}/{run_id}"
            return
        with os.scandir(folder) as entries:
            for entry in entries:
                yield entry.name, entry.path

    def search_run_infos(
        self, experiment_ids: Sequence[str], *, status: str | None = None, max_results: int = 1000
    ) -> list[RunInfo]:
        """Like :meth:`search_runs` without params, tags and metrics: one file read per run.

        ``mlproj runs list`` uses it for its table when the store offers it.
        """
        infos: list[RunInfo] = []
        for _, run_folder, text in self._newest_runs(experiment_ids, status):
            if len(infos) >= max_results:
                break
            try:
                meta = select_fields(text, _RUN_INFO_KEYS)
            except ValueError as exc:
                self._report_damage(f"{run_folder}/{META}: not a valid run record ({exc})")
                continue
            infos.append(self._run_info(meta, Path(run_folder)))
        return infos

    def _newest_runs(
        self, experiment_ids: Sequence[str], status: str | None
    ) -> list[tuple[str, str, str]]:
        """(run id, run folder, meta.yaml text) of the active runs, newest first."""
        wanted_status: str | None = None
        if status is not None:
            wanted_status = str(status).upper()
            if wanted_status not in STATUS_TO_INT:
                raise ExecutionException(
                    f"Invalid run status {status!r}: use one of {', '.join(STATUS_TO_INT)}."
                )
        found: list[tuple[int, str, str, str]] = []
        for experiment_id in dict.fromkeys(str(e) for e in experiment_ids):
            folder = self._experiment_dir(experiment_id)
            if folder is not None:
                found.extend(self._scan_runs(folder, wanted_status, self._report_damage))
        found.sort(key=lambda item: (-item[0], item[1]))
        return [(run_id, run_folder, text) for _, run_id, run_folder, text in found]

    @staticmethod
    def _scan_runs(
        folder: Path, wanted_status: str | None, report: Callable[[str], None]
    ) -> Iterator[tuple[int, str, str, str]]:
        """(start_time, run_id, run folder, meta.yaml text) of the active runs in ``folder``.

        Only the four fields needed to filter and sort are decoded here; the full record is
        read later for the runs actually returned.
        """
        experiment_id = folder.name
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if name[0] == "." or name in RESERVED_EXPERIMENT_FOLDERS or not entry.is_dir():
                    continue
                meta_path = f"{entry.path}/{META}"
                text = _read_text_or_none(meta_path)
                if not text:
                    # MLflow rewrites meta.yaml in place: empty for an instant is normal.
                    time.sleep(0.02)
                    text = _read_text_or_none(meta_path)
                if not text:
                    if text == "" or os.path.isdir(f"{entry.path}/params"):  # noqa: PTH112
                        report(f"{meta_path}: {'empty' if text == '' else 'missing'}; run skipped")
                    continue
                try:
                    meta = select_fields(text, _SCAN_KEYS)
                except ValueError as exc:
                    report(f"{meta_path}: not a valid run record ({exc})")
                    continue
                # MLflow ignores a run whose meta names another experiment; so do we.
                if as_str(meta.get("experiment_id"), experiment_id) != experiment_id:
                    continue
                if as_str(meta.get("lifecycle_stage"), "active") != "active":
                    continue
                if wanted_status is not None and status_name(meta.get("status")) != wanted_status:
                    continue
                yield as_int(meta.get("start_time")) or 0, name, entry.path, text

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        validate_key("metric", key)
        text = _read_text_or_none(self._run_dir(run_id) / "metrics" / key)
        if text is None:
            return []
        return [
            Metric(key=key, value=value, timestamp=timestamp, step=step)
            for timestamp, value, step in _metric_points(text)
        ]

    # -- artifacts ---------------------------------------------------------------------------
    def local_artifact_dir(self, run_id: str) -> Path | None:
        run_dir = self._run_dir(run_id)
        info = self._run_info(self._read_run_meta(run_dir), run_dir)
        return local_folder(info.artifact_uri)

    def log_artifact(self, run_id: str, local_path: Path, artifact_path: str | None = None) -> None:
        destination = self.local_artifact_dir(run_id)
        if destination is None:
            raise ExecutionException(
                f"Run '{run_id}' keeps its artifacts at a remote location; the file store copies "
                "artifacts only into local folders."
            )
        source = Path(local_path)
        if not source.exists():
            raise ExecutionException(f"Cannot log artifact {source}: no such file or folder.")
        if artifact_path:
            norm = posixpath.normpath(artifact_path)
            if norm.startswith(("..", "/")) or norm == ".":
                raise ExecutionException(
                    f"Invalid artifact path {artifact_path!r}: give a relative path inside the "
                    "run's artifacts, without '..'."
                )
            destination = destination / norm
        try:
            copy_into(source, destination)
        except OSError as exc:
            raise ExecutionException(
                f"Cannot copy artifact {source} into {destination}: {exc.strerror or exc}."
            ) from exc


def _run_meta(info: RunInfo) -> dict[str, object]:
    """The 14 keys MLflow 3 writes, plus ``run_uuid`` that MLflow 2.x requires."""
    return {
        "artifact_uri": info.artifact_uri,
        "end_time": info.end_time,
        "entry_point_name": "",
        "experiment_id": info.experiment_id,
        "lifecycle_stage": info.lifecycle_stage,
        "run_id": info.run_id,
        "run_name": info.run_name,
        "run_uuid": info.run_id,
        "source_name": "",
        "source_type": 4,
        "source_version": "",
        "start_time": info.start_time,
        "status": STATUS_TO_INT[info.status],
        "tags": [],
        "user_id": info.user_id,
    }


def _write_error(what: str, exc: OSError) -> ExecutionException:
    if isinstance(exc, (IsADirectoryError, NotADirectoryError, FileExistsError)):
        return ExecutionException(
            f"{what}: {exc.filename} is both a key and the folder of nested keys ('a' and "
            "'a/b'); use a different key."
        )
    message = (
        f"{what}: {exc.strerror or exc} ({exc.filename}). Check that the tracking store folder "
        "is writable and the disk is not full."
    )
    if exc.errno in _TRANSIENT_WRITE_ERRORS:
        # A full disk frees up: the end of a run can wait in the journal for it.
        return StoreUnreachable(message)
    return ExecutionException(message)


_TRANSIENT_WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO})


def _metric_lines(metrics: Sequence[Metric]) -> dict[str, bytes]:
    """Validated metric points as ``<timestamp_ms> <value> <step>`` lines, grouped by key."""
    lines: dict[str, list[str]] = {}
    for metric in metrics:
        check_metric(metric)
        line = f"{metric.timestamp} {float(metric.value)} {metric.step}\n"
        lines.setdefault(metric.key, []).append(line)
    return {key: "".join(points).encode("ascii") for key, points in lines.items()}
