"""The store for ``sqlite:`` tracking URIs, written with the standard library's ``sqlite3``.

It writes the rows MLflow's SQL store writes (``experiments``, ``runs``, ``tags``, ``params``,
``metrics``, ``latest_metrics``), with MLflow's status strings, lifecycle stages, millisecond
timestamps, autoincremented experiment ids and ``<experiment artifact location>/<run>/artifacts``
artifact URIs, so MLflow's client, UI and ``mlflow gc`` read every run. The schema itself is
MLflow's: see :mod:`mlproj.tracking.sqlite_schema` for how a database is checked or created.

Concurrency: every write is one ``BEGIN IMMEDIATE`` transaction (a process killed in the middle
leaves nothing half-written); a busy database is waited for with SQLite's busy timeout and then
retried with backoff until ``MLPROJ_SQLITE_TIMEOUT`` seconds (default 300) have passed, after
which a one-line error says so: a lock never reaches the user as "database is locked", and
nothing waits forever.
"""

# SQL text here is built only from constant column lists and "?" placeholders; every value is
# bound as a parameter.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import math
import os
import posixpath
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote, urlsplit

from mlproj.errors import ExecutionException, StoreUnreachable
from mlproj.fsutil import copy_into
from mlproj.locations import sqlite_database
from mlproj.statuses import STATUS_TO_INT, TERMINAL_STATUSES
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
from mlproj.tracking.run_names import random_run_name
from mlproj.tracking.sqlite_schema import (
    SchemaInfo,
    check_schema,
    create_database,
    initialize_in_place,
    wal_allowed,
)

__all__ = ["SqliteStore", "default_artifact_root", "sqlite_path"]

T = TypeVar("T")

RUN_NAME_TAG = "mlflow.runName"
DEFAULT_WORKSPACE = "default"  # MLflow's workspace for everything when workspaces are off
# MLflow stores +/-inf as the largest finite doubles and NaN as 0 with is_nan set.
_MAX_FLOAT = 1.7976931348623157e308
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6  # primary result codes (sqlite3 names them from 3.11)
_CHUNK = 500  # keys or ids per IN (...) list: well below SQLite's variable limit
_BUSY_SLICE_S = 2.0  # SQLite's own wait per attempt; the retry loop adds the rest
_RUN_COLUMNS = (
    "run_uuid, experiment_id, name, status, start_time, end_time, artifact_uri, user_id, "
    "lifecycle_stage"
)


def sqlite_path(uri: str) -> Path:
    """The absolute database path of ``sqlite:///rel.db`` or ``sqlite:////abs.db``."""
    path = sqlite_database(uri)
    if path is not None:
        return path
    parts = urlsplit(uri)
    if parts.scheme != "sqlite" or parts.netloc:
        raise ExecutionException(
            f"Tracking URI {uri!r}: a SQLite URI names a file, e.g. sqlite:///mlflow.db"
        )
    raise ExecutionException(
        f"Tracking URI {uri!r}: an in-memory database cannot be shared with the run's "
        "processes; name a file, e.g. sqlite:///mlflow.db"
    )


def default_artifact_root() -> str:
    """MLflow's artifact root for a SQL store without a server: ``./mlruns``, made absolute."""
    return str(Path("mlruns").absolute())


def _lock_timeout() -> float:
    from mlproj.settings import SQLITE_TIMEOUT

    return SQLITE_TIMEOUT.get()


def _busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _value(value: object) -> str:
    return "" if value is None else str(value)


def _metric_row(run_id: str, metric: Metric) -> tuple[str, float, int, str, int, int]:
    """(key, value, timestamp, run_uuid, step, is_nan) as MLflow stores a metric point."""
    check_metric(metric)
    key, value, timestamp, step = metric.key, metric.value, metric.timestamp, metric.step
    number = float(value)
    if math.isnan(number):
        return key, 0.0, timestamp, run_id, step, 1
    if math.isinf(number):
        number = _MAX_FLOAT if number > 0 else -_MAX_FLOAT
    return key, number, timestamp, run_id, step, 0


class SqliteStore(CreatesRunWithParams):
    """An MLflow SQLite tracking database, written natively."""

    def __init__(self, uri: str, *, artifact_root: str | None = None) -> None:
        self.path = sqlite_path(uri)
        self.tracking_uri = f"sqlite:///{quote(str(self.path), safe='/')}"
        self.artifact_root = artifact_root or default_artifact_root()
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._schema: SchemaInfo | None = None
        self._artifact_uris: dict[str, str] = {}
        self._timeout = _lock_timeout()
        if self.path.is_dir():
            raise ExecutionException(
                f"Tracking URI {uri!r} names the folder {self.path}; name a database file in "
                "it, e.g. sqlite:///mlflow.db"
            )
        if self.path.exists():
            # An existing database is checked now: a bad one fails before any run is opened.
            self._read(lambda _conn: None, missing=lambda: None)

    # -- connection and transactions ---------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        """The open connection, creating the database when there is none yet."""
        if self._conn is not None:
            return self._conn
        if not self.path.exists():
            create_database(self.path, log=_warn)
        # mode=rw: a database removed meanwhile is an error, not a new empty file.
        conn = sqlite3.connect(
            f"file:{quote(str(self.path))}?mode=rw",
            uri=True,
            timeout=_BUSY_SLICE_S,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA foreign_keys = ON")  # as MLflow's sessions do
        schema = check_schema(conn, self._display)
        if schema is None:  # an empty file (e.g. `touch mlflow.db`): make it a database
            initialize_in_place(conn, self.path, log=_warn)
            schema = check_schema(conn, self._display)
            assert schema is not None
        self._schema = schema
        mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        if mode != "wal" and wal_allowed(self.path):
            with contextlib.suppress(sqlite3.OperationalError):  # busy: stay in the old mode
                mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        if mode == "wal":
            # Durable against a killed process; only a power cut may lose the last commits.
            conn.execute("PRAGMA synchronous = NORMAL")
            # The last connection to close checkpoints the WAL into the database and deletes
            # it (fsyncs on every `mlproj run`); leave that to SQLite's automatic checkpoints,
            # where Python lets us (3.12+). A WAL left behind is read by the next opener.
            no_checkpoint = getattr(sqlite3, "SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE", None)
            setconfig = getattr(conn, "setconfig", None)
            if no_checkpoint is not None and setconfig is not None:
                setconfig(no_checkpoint, True)

    @property
    def _display(self) -> str:
        return self.tracking_uri

    def _read(self, work: Callable[[sqlite3.Connection], T], *, missing: Callable[[], T]) -> T:
        """``work`` in one read transaction; ``missing()`` when there is no database yet (a
        read never creates one)."""
        if self._conn is None and not self.path.exists():
            return missing()
        return self._transact(work, write=False)

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` in one write transaction (``BEGIN IMMEDIATE``: the write lock is taken at
        the start, so a transaction never fails half-way on a lock upgrade)."""
        return self._transact(work, write=True)

    def _transact(self, work: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        """Run ``work`` in one transaction, retrying the whole of it while the database is
        busy, until the deadline."""
        deadline = time.monotonic() + self._timeout
        delay = 0.01
        with self._lock:
            while True:
                try:
                    conn = self._connection()
                    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                    result = work(conn)
                    conn.execute("COMMIT")
                    return result
                except sqlite3.OperationalError as exc:
                    self._rollback()
                    if not _busy(exc):
                        raise self._error(exc) from None
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        # Unreachable, not refused: the end of a run waits in the journal.
                        raise StoreUnreachable(
                            f"Tracking database {self.path} stayed locked by another process "
                            f"for {self._timeout:g} s; try again when it is free, or set "
                            "MLPROJ_SQLITE_TIMEOUT to wait longer"
                        ) from None
                    import random  # here: only a busy database needs it

                    jitter = random.uniform(0.5, 1.5)  # noqa: S311 - spreads retries, not a secret
                    time.sleep(min(remaining, delay * jitter))
                    delay = min(delay * 2, 0.5)
                except sqlite3.DatabaseError as exc:
                    self._rollback()
                    raise self._error(exc) from None
                except BaseException:
                    self._rollback()
                    raise

    def _rollback(self) -> None:
        if self._conn is not None and self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def _error(self, exc: sqlite3.Error) -> ExecutionException:
        text = str(exc)
        hint = ""
        if "readonly" in text or "unable to open" in text:
            hint = "; check that the file and its folder are writable"
        elif "not a database" in text or "malformed" in text:
            hint = "; it is not a usable SQLite database (point the tracking URI elsewhere)"
        return ExecutionException(f"Tracking database {self.path}: {text}{hint}")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def _workspace_filter(self) -> tuple[str, tuple[str, ...]]:
        if self._schema is not None and self._schema.experiment_workspace:
            return " AND workspace = ?", (DEFAULT_WORKSPACE,)
        return "", ()

    # -- experiments -------------------------------------------------------------------------
    def _experiment_row(
        self, conn: sqlite3.Connection, where: str, args: tuple[object, ...]
    ) -> Experiment | None:
        ws_sql, ws_args = self._workspace_filter()
        row = conn.execute(
            "SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time "
            f"FROM experiments WHERE {where}{ws_sql} ORDER BY lifecycle_stage = 'active' DESC",
            (*args, *ws_args),
        ).fetchone()
        if row is None:
            return None
        tags = dict(
            conn.execute(
                "SELECT key, value FROM experiment_tags WHERE experiment_id = ?", (row[0],)
            ).fetchall()
        )
        return _experiment(row, tags)

    def get_experiment(self, experiment_id: str) -> Experiment | None:
        number = _experiment_number(experiment_id)
        if number is None:
            return None
        if str(experiment_id) == DEFAULT_EXPERIMENT_ID:
            # MLflow makes the Default experiment whenever it opens a store; so do we (a write
            # transaction only the first time).
            found = self._read(
                lambda c: self._experiment_row(c, "experiment_id = 0", ()), missing=_none
            )
            return found if found is not None else self._write(self._ensure_default)
        return self._read(
            lambda c: self._experiment_row(c, "experiment_id = ?", (number,)), missing=_none
        )

    def _ensure_default(self, conn: sqlite3.Connection) -> Experiment | None:
        found = self._experiment_row(conn, "experiment_id = 0", ())
        if found is not None:
            return found
        now = now_ms()
        values: dict[str, object] = {
            "experiment_id": 0,
            "name": DEFAULT_EXPERIMENT_NAME,
            "artifact_location": _join_uri(self.artifact_root, DEFAULT_EXPERIMENT_ID),
            "lifecycle_stage": "active",
            "creation_time": now,
            "last_update_time": now,
        }
        if self._schema is not None and self._schema.experiment_workspace:
            values["workspace"] = DEFAULT_WORKSPACE
        conn.execute(
            f"INSERT OR IGNORE INTO experiments ({', '.join(values)}) "
            f"VALUES ({_marks(len(values))})",
            tuple(values.values()),
        )
        return self._experiment_row(conn, "experiment_id = 0", ())

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return self._read(lambda c: self._experiment_row(c, "name = ?", (name,)), missing=_none)

    def create_experiment(self, name: str) -> str:
        if not isinstance(name, str) or not name.strip():
            raise ExecutionException(
                f"Invalid experiment name {name!r}: give a non-empty name (--experiment-name)."
            )
        return self._write(lambda c: self._create_experiment(c, name))

    def _create_experiment(self, conn: sqlite3.Connection, name: str) -> str:
        existing = self._experiment_row(conn, "name = ?", (name,))
        if existing is not None:
            if existing.lifecycle_stage != "active":
                raise ExecutionException(
                    f"Experiment {name!r} (id {existing.experiment_id}) is deleted in tracking "
                    f"store {self._display}. Restore it (mlflow experiments restore "
                    "--experiment-id ID) or choose another name."
                )
            return existing.experiment_id
        if (
            name == DEFAULT_EXPERIMENT_NAME
            and self._experiment_row(conn, "experiment_id = 0", ()) is None
        ):
            self._ensure_default(conn)
            return DEFAULT_EXPERIMENT_ID
        now = now_ms()
        values: dict[str, object] = {
            "name": name,
            "lifecycle_stage": "active",
            "creation_time": now,
            "last_update_time": now,
        }
        if self._schema is not None and self._schema.experiment_workspace:
            values["workspace"] = DEFAULT_WORKSPACE
        # The id is SQLite's next rowid, as MLflow's autoincrement column gets it; the default
        # artifact location names the id, so it is set in the same transaction.
        cursor = conn.execute(
            f"INSERT INTO experiments ({', '.join(values)}) VALUES ({_marks(len(values))})",
            tuple(values.values()),
        )
        experiment_id = str(cursor.lastrowid)
        conn.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
            (_join_uri(self.artifact_root, experiment_id), int(experiment_id)),
        )
        return experiment_id

    def list_experiments(self) -> list[Experiment]:
        def work(conn: sqlite3.Connection) -> list[Experiment]:
            ws_sql, ws_args = self._workspace_filter()
            rows = conn.execute(
                "SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time "
                f"FROM experiments WHERE lifecycle_stage = 'active'{ws_sql} "
                "ORDER BY creation_time DESC, experiment_id",
                ws_args,
            ).fetchall()
            tags: dict[int, dict[str, str]] = {}
            for exp_id, key, value in conn.execute(
                "SELECT experiment_id, key, value FROM experiment_tags"
            ):
                tags.setdefault(exp_id, {})[key] = value
            return [_experiment(row, tags.get(row[0], {})) for row in rows]

        return self._read(work, missing=list)

    # -- runs --------------------------------------------------------------------------------
    def _create_run(
        self,
        experiment_id: str,
        run_name: str | None,
        tags: Mapping[str, str],
        user_id: str,
        start_time: int | None,
        params: Mapping[str, str],
    ) -> RunInfo:
        all_tags = {str(k): _value(v) for k, v in tags.items()}
        all_params = {str(k): _value(v) for k, v in params.items()}
        for key, value in all_params.items():
            check_param(key, value)
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
        number = _experiment_number(experiment_id)
        run_id = _new_run_id()
        started = now_ms() if start_time is None else int(start_time)

        def work(conn: sqlite3.Connection) -> RunInfo:
            if str(experiment_id) == DEFAULT_EXPERIMENT_ID:
                experiment = self._ensure_default(conn)
            elif number is None:
                experiment = None
            else:
                experiment = self._experiment_row(conn, "experiment_id = ?", (number,))
            if experiment is None:
                raise ExecutionException(
                    f"Cannot create a run in experiment '{experiment_id}': no such experiment "
                    f"in tracking store {self._display}. Pass an existing id or an experiment "
                    "name."
                )
            if experiment.lifecycle_stage != "active":
                raise ExecutionException(
                    f"Cannot create a run in experiment '{experiment_id}' ({experiment.name}): "
                    "it is deleted. Restore it or choose another experiment."
                )
            artifact_uri = run_artifact_uri(experiment.artifact_location, run_id)
            conn.execute(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
                "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
                "artifact_uri, experiment_id) "
                "VALUES (?, ?, 'UNKNOWN', '', '', ?, 'RUNNING', ?, NULL, '', 'active', ?, ?)",
                (run_id, name, user_id, started, artifact_uri, number),
            )
            conn.executemany(
                "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                [(k, v, run_id) for k, v in all_tags.items()],
            )
            if all_params:
                conn.executemany(
                    "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                    [(k, v, run_id) for k, v in all_params.items()],
                )
            return RunInfo(
                run_id=run_id,
                experiment_id=str(number),
                run_name=name,
                status="RUNNING",
                start_time=started,
                end_time=None,
                artifact_uri=artifact_uri,
                user_id=user_id,
            )

        info = self._write(work)
        self._artifact_uris[run_id] = info.artifact_uri
        return info

    def _run_row(self, conn: sqlite3.Connection, run_id: str) -> tuple[object, ...]:
        row = conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_uuid = ?", (run_id,)
        ).fetchone()
        if row is None:
            raise run_not_found(run_id, self._display)
        return tuple(row)

    def _not_found(self, run_id: str) -> NoReturn:
        raise run_not_found(run_id, self._display)

    def _active_run(self, conn: sqlite3.Connection, run_id: str) -> None:
        row = conn.execute(
            "SELECT lifecycle_stage FROM runs WHERE run_uuid = ?", (run_id,)
        ).fetchone()
        if row is None:
            raise run_not_found(run_id, self._display)
        if row[0] != "active":
            raise ExecutionException(f"Run '{run_id}' is deleted; it cannot be logged to.")

    def get_run(self, run_id: str) -> Run:
        def work(conn: sqlite3.Connection) -> Run:
            info = _run_info(self._run_row(conn, run_id))
            return self._load([info], conn)[0]

        run = self._read(work, missing=lambda: self._not_found(run_id))
        self._artifact_uris[run_id] = run.info.artifact_uri
        return run

    def run_ids_with_prefix(self, prefix: str) -> list[str] | None:
        # A range on the primary key: indexed, whatever the number of runs.
        def work(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT run_uuid FROM runs WHERE run_uuid >= ? AND run_uuid < ?",
                (prefix, prefix + "\uffff"),
            )
            return sorted(str(row[0]) for row in rows)

        return self._read(work, missing=_no_ids)

    def get_run_status(self, run_id: str) -> str:
        def work(conn: sqlite3.Connection) -> str:
            row = conn.execute("SELECT status FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
            if row is None:
                raise run_not_found(run_id, self._display)
            return str(row[0])

        return self._read(work, missing=lambda: self._not_found(run_id))

    def _load(self, infos: list[RunInfo], conn: sqlite3.Connection) -> list[Run]:
        """Attach params, tags and latest metrics to ``infos``, a few queries per 500 runs."""
        params: dict[str, dict[str, str]] = {}
        tags: dict[str, dict[str, str]] = {}
        metrics: dict[str, dict[str, float]] = {}
        ids = [info.run_id for info in infos]
        for chunk in _chunks(ids):
            marks = _marks(len(chunk))
            for key, value, run in conn.execute(
                f"SELECT key, value, run_uuid FROM params WHERE run_uuid IN ({marks})", chunk
            ):
                params.setdefault(run, {})[key] = value
            for key, value, run in conn.execute(
                f"SELECT key, value, run_uuid FROM tags WHERE run_uuid IN ({marks})", chunk
            ):
                tags.setdefault(run, {})[key] = "" if value is None else value
            for key, value, is_nan, run in conn.execute(
                "SELECT key, value, is_nan, run_uuid FROM latest_metrics "
                f"WHERE run_uuid IN ({marks})",
                chunk,
            ):
                metrics.setdefault(run, {})[key] = math.nan if is_nan else float(value)
        return [
            Run(
                info=info,
                params=params.get(info.run_id, {}),
                tags=tags.get(info.run_id, {}),
                metrics=metrics.get(info.run_id, {}),
            )
            for info in infos
        ]

    def log_batch(
        self,
        run_id: str,
        *,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        metrics: Sequence[Metric] = (),
    ) -> None:
        new_params = {str(k): _value(v) for k, v in (params or {}).items()}
        new_tags = {str(k): _value(v) for k, v in (tags or {}).items()}
        for key, value in new_params.items():
            check_param(key, value)
        for key, value in new_tags.items():
            check_tag(key, value)
        rows = [_metric_row(run_id, m) for m in metrics]
        if not (new_params or new_tags or rows):
            return

        def work(conn: sqlite3.Connection) -> None:
            self._active_run(conn, run_id)
            if new_params:
                self._write_params(conn, run_id, new_params)
            if new_tags:
                run_name = new_tags.get(RUN_NAME_TAG)
                if run_name is not None:
                    conn.execute("UPDATE runs SET name = ? WHERE run_uuid = ?", (run_name, run_id))
                conn.executemany(
                    "INSERT OR REPLACE INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                    [(k, v, run_id) for k, v in new_tags.items()],
                )
            if rows:
                _write_metrics(conn, run_id, rows)

        self._write(work)

    def _write_params(
        self, conn: sqlite3.Connection, run_id: str, params: Mapping[str, str]
    ) -> None:
        keys = list(params)
        existing: dict[str, str] = {}
        for chunk in _chunks(keys):
            existing.update(
                conn.execute(
                    f"SELECT key, value FROM params WHERE run_uuid = ? AND key IN "
                    f"({_marks(len(chunk))})",
                    (run_id, *chunk),
                ).fetchall()
            )
        for key, old in existing.items():
            if old != params[key]:  # checked before any write: a conflict changes nothing
                raise param_conflict(run_id, key, old, params[key])
        conn.executemany(
            "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
            [(k, v, run_id) for k, v in params.items() if k not in existing],
        )

    def set_terminated(self, run_id: str, status: str, end_time: int | None = None) -> None:
        wanted = str(status).upper()
        if wanted not in TERMINAL_STATUSES:
            raise ExecutionException(
                f"Invalid final status {status!r} for run '{run_id}': use one of "
                f"{', '.join(sorted(TERMINAL_STATUSES))}."
            )
        ended = now_ms() if end_time is None else int(end_time)

        def work(conn: sqlite3.Connection) -> None:
            self._active_run(conn, run_id)
            conn.execute(
                "UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?",
                (wanted, ended, run_id),
            )

        self._write(work)

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        *,
        status: str | None = None,
        params: Mapping[str, str] | None = None,
        max_results: int = 1000,
    ) -> list[Run]:
        query = self._search_query(experiment_ids, status, params, max_results)
        if query is None:
            return []

        def work(conn: sqlite3.Connection) -> list[Run]:
            infos = [_run_info(row) for row in conn.execute(*query)]
            return self._load(infos, conn)

        return self._read(work, missing=list)

    def search_run_infos(
        self, experiment_ids: Sequence[str], *, status: str | None = None, max_results: int = 1000
    ) -> list[RunInfo]:
        """Like :meth:`search_runs` without params, tags and metrics: one query.

        ``mlproj runs list`` uses it for its table.
        """
        query = self._search_query(experiment_ids, status, None, max_results)
        if query is None:
            return []
        return self._read(
            lambda conn: [_run_info(row) for row in conn.execute(*query)], missing=list
        )

    def find_runs_by_tag(
        self,
        experiment_ids: Sequence[str],
        key: str,
        value: str,
        *,
        status: str | None = None,
        max_results: int = 1000,
    ) -> list[Run]:
        validate_key("tag", key)
        query = self._search_query(experiment_ids, status, None, max_results, {key: value})
        if query is None:
            return []

        def work(conn: sqlite3.Connection) -> list[Run]:
            infos = [_run_info(row) for row in conn.execute(*query)]
            return self._load(infos, conn)

        return self._read(work, missing=list)

    def reopen_run(self, run_id: str) -> None:
        def work(conn: sqlite3.Connection) -> None:
            self._active_run(conn, run_id)
            conn.execute(
                "UPDATE runs SET status = 'RUNNING', end_time = NULL WHERE run_uuid = ?", (run_id,)
            )

        self._write(work)

    @staticmethod
    def _search_query(
        experiment_ids: Sequence[str],
        status: str | None,
        params: Mapping[str, str] | None,
        max_results: int,
        tags: Mapping[str, str] | None = None,
    ) -> tuple[str, tuple[object, ...]] | None:
        numbers = sorted({n for n in map(_experiment_number, experiment_ids) if n is not None})
        if not numbers or max_results <= 0:
            return None
        where = [f"experiment_id IN ({_marks(len(numbers))})", "lifecycle_stage = 'active'"]
        args: list[object] = list(numbers)
        if status is not None:
            wanted = str(status).upper()
            if wanted not in STATUS_TO_INT:
                raise ExecutionException(
                    f"Invalid run status {status!r}: use one of {', '.join(STATUS_TO_INT)}."
                )
            where.append("status = ?")
            args.append(wanted)
        for key, value in (params or {}).items():
            validate_key("param", str(key))
            # params' primary key (key, run_uuid) makes this an index lookup per key.
            where.append("run_uuid IN (SELECT run_uuid FROM params WHERE key = ? AND value = ?)")
            args.extend((str(key), _value(value)))
        for key, value in (tags or {}).items():
            # tags' primary key (key, run_uuid) makes this an index lookup too.
            where.append("run_uuid IN (SELECT run_uuid FROM tags WHERE key = ? AND value = ?)")
            args.extend((str(key), str(value)))
        args.append(int(max_results))
        sql = (
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE {' AND '.join(where)} "
            "ORDER BY start_time DESC, run_uuid LIMIT ?"
        )
        return sql, tuple(args)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        validate_key("metric", key)

        def work(conn: sqlite3.Connection) -> list[Metric]:
            self._run_row(conn, run_id)
            return [
                Metric(key=key, value=math.nan if is_nan else float(value), timestamp=ts, step=step)
                for value, ts, step, is_nan in conn.execute(
                    "SELECT value, timestamp, step, is_nan FROM metrics "
                    "WHERE run_uuid = ? AND key = ? ORDER BY timestamp, step",
                    (run_id, key),
                )
            ]

        return self._read(work, missing=lambda: self._not_found(run_id))

    # -- artifacts ---------------------------------------------------------------------------
    def _artifact_uri(self, run_id: str) -> str:
        cached = self._artifact_uris.get(run_id)
        if cached is None:
            cached = self.get_run(run_id).info.artifact_uri
        return cached

    def local_artifact_dir(self, run_id: str) -> Path | None:
        return local_folder(self._artifact_uri(run_id))

    def log_artifact(self, run_id: str, local_path: Path, artifact_path: str | None = None) -> None:
        source = Path(local_path)
        if not source.exists():
            raise ExecutionException(f"Cannot log artifact {source}: no such file or folder.")
        dest = ""
        if artifact_path:
            dest = posixpath.normpath(artifact_path)
            if dest.startswith(("..", "/")) or dest == ".":
                raise ExecutionException(
                    f"Invalid artifact path {artifact_path!r}: give a relative path inside the "
                    "run's artifacts, without '..'."
                )
        root = self.local_artifact_dir(run_id)
        if root is None:
            from mlproj.tracking.artifacts import fsspec_upload

            fsspec_upload(
                self._artifact_uri(run_id), source, "/".join(p for p in (dest, source.name) if p)
            )
            return
        destination = root / dest if dest else root
        try:
            copy_into(source, destination)
        except OSError as exc:
            raise ExecutionException(
                f"Cannot copy artifact {source} into {destination}: {exc.strerror or exc}."
            ) from None


def _new_run_id() -> str:
    """A uuid4 as 32 hex digits, as MLflow makes run ids."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


def _none() -> None:
    return None


def _warn(message: str) -> None:
    import sys

    print(f"mlproj: {message}", file=sys.stderr)


def _experiment_number(experiment_id: object) -> int | None:
    text = str(experiment_id)
    return int(text) if text.isdigit() and len(text) <= 18 else None


def _join_uri(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def _experiment(row: Sequence[object], tags: dict[str, str]) -> Experiment:
    exp_id, name, location, stage, created = row
    return Experiment(
        experiment_id=str(exp_id),
        name=str(name),
        artifact_location=str(location or ""),
        lifecycle_stage=str(stage or "active"),
        creation_time=int(created) if isinstance(created, int) else None,
        tags=tags,
    )


def _run_info(row: Sequence[Any]) -> RunInfo:
    # Column types are fixed by the schema: only NULLs need a default (listings build 10,000s).
    run_id, exp_id, name, status, start, end, artifact_uri, user, stage = row
    return RunInfo(
        run_id,
        str(exp_id),
        name or "",
        status or "RUNNING",
        start or 0,
        end,
        artifact_uri or "",
        user or "",
        stage or "active",
    )


def _write_metrics(
    conn: sqlite3.Connection, run_id: str, rows: Iterable[tuple[str, float, int, str, int, int]]
) -> None:
    """Metric points (duplicates ignored, as MLflow's primary key does) and the latest value per
    key, by (step, timestamp, value) as MLflow orders them."""
    rows = list(rows)
    conn.executemany(
        "INSERT OR IGNORE INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    newest: dict[str, tuple[int, int, float, int]] = {}
    for key, value, timestamp, _, step, is_nan in rows:
        point = (step, timestamp, value, is_nan)
        if key not in newest or point[:3] > newest[key][:3]:
            newest[key] = point
    keys = list(newest)
    for chunk in _chunks(keys):
        for key, step, timestamp, value in conn.execute(
            "SELECT key, step, timestamp, value FROM latest_metrics WHERE run_uuid = ? AND key IN "
            f"({_marks(len(chunk))})",
            (run_id, *chunk),
        ):
            if (step, timestamp, value) >= newest[key][:3]:
                del newest[key]  # the stored point is as recent: keep it
    conn.executemany(
        "INSERT OR REPLACE INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(k, v, ts, step, nan, run_id) for k, (step, ts, v, nan) in newest.items()],
    )


def _no_ids() -> list[str]:
    return []
