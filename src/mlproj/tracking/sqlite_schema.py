"""The schema side of the SQLite store: check an existing ``mlflow.db``, create a new one.

An existing database (made by MLflow 3.0 or later, or by mlproj) is written as it is, once the
tables and columns mlproj writes are found. A new one must open in the user's MLflow without an
"out-of-date schema" message, so it is made at the schema revision of that MLflow:

* no MLflow that can open SQL stores here (none importable, none on PATH, or mlflow-skinny:
  it ships the migration files but not SQLAlchemy and Alembic), or one whose newest revision is
  the one mlproj pins: from ``sqlite_schema.sql``, MLflow's schema at the pinned revision, in a
  few milliseconds;
* an MLflow at another revision: ``mlflow db upgrade`` by that MLflow, once (seconds).

Either way the database is built in a hidden file beside the target and hard-linked into place,
so no reader ever sees a half-made database and two creators never both win.

WAL (readers never wait for writers, commits without fsync) is turned on only for a database on
a local filesystem: SQLite's WAL needs shared memory between the processes, which network
filesystems (NFS on Slurm clusters, SMB, Lustre, ...) do not give.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from mlproj.errors import ExecutionException
from mlproj.records import record

__all__ = [
    "PINNED_REVISION",
    "REQUIRED_COLUMNS",
    "MlflowInstall",
    "SchemaInfo",
    "check_schema",
    "create_database",
    "filesystem_type",
    "find_mlflow",
    "initialize_in_place",
    "wal_allowed",
]

SCHEMA_FILE = Path(__file__).with_name("sqlite_schema.sql")

# The tables and columns mlproj reads and writes, present in every MLflow schema since 3.0.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "alembic_version": ("version_num",),
    "experiments": (
        "experiment_id",
        "name",
        "artifact_location",
        "lifecycle_stage",
        "creation_time",
        "last_update_time",
    ),
    "experiment_tags": ("key", "value", "experiment_id"),
    "runs": (
        "run_uuid",
        "name",
        "source_type",
        "source_name",
        "entry_point_name",
        "user_id",
        "status",
        "start_time",
        "end_time",
        "source_version",
        "lifecycle_stage",
        "artifact_uri",
        "experiment_id",
    ),
    "tags": ("key", "value", "run_uuid"),
    "params": ("key", "value", "run_uuid"),
    "metrics": ("key", "value", "timestamp", "run_uuid", "step", "is_nan"),
    "latest_metrics": ("key", "value", "timestamp", "step", "is_nan", "run_uuid"),
}

# Filesystems where SQLite's WAL shared memory works between processes. Anything else (nfs,
# nfs4, cifs, smb3, lustre, gpfs, beegfs, ceph, fuse.*, 9p, ...) keeps the rollback journal.
LOCAL_FILESYSTEMS = frozenset(
    {
        "ext2",
        "ext3",
        "ext4",
        "xfs",
        "btrfs",
        "bcachefs",
        "f2fs",
        "jfs",
        "reiserfs",
        "nilfs2",
        "zfs",
        "tmpfs",
        "ramfs",
        "overlay",
    }
)


def _pinned_revision() -> str:
    with SCHEMA_FILE.open(encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("-- revision: "):
                return line.split(":", 1)[1].strip()
    raise RuntimeError(f"{SCHEMA_FILE} names no revision")  # pragma: no cover - shipped file


PINNED_REVISION = _pinned_revision()


# -- existing databases --------------------------------------------------------------------------
@record(frozen=True)
class SchemaInfo:
    """What differs between the MLflow schemas mlproj can write."""

    revision: str
    experiment_workspace: bool  # experiments.workspace (MLflow >= 3.7's multi-workspace column)


_PLACEHOLDERS = ", ".join("?" * len(REQUIRED_COLUMNS))
_COLUMNS_QUERY = (  # only placeholders are joined in
    "SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_info(m.name) AS p "  # noqa: S608
    f"WHERE m.type = 'table' AND m.name IN ({_PLACEHOLDERS})"
)


def check_schema(conn: sqlite3.Connection, uri: str) -> SchemaInfo | None:
    """The schema of an existing database; None when it has no tables at all (a new file).

    Raises a one-line ExecutionException naming what is missing and how to fix it.
    """
    # The columns of the tables mlproj uses only (all ~30 tables cost 4x as much, every start).
    rows = conn.execute(_COLUMNS_QUERY, tuple(REQUIRED_COLUMNS)).fetchall()
    if not rows and conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is None:
        return None
    columns: dict[str, set[str]] = {}
    for table, column in rows:
        columns.setdefault(table, set()).add(column)
    missing = [
        f"{table}.{column}" if table in columns else f"table {table}"
        for table, wanted in REQUIRED_COLUMNS.items()
        for column in (wanted if table in columns else wanted[:1])
        if table not in columns or column not in columns[table]
    ]
    if missing:
        shown = ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
        raise ExecutionException(
            f"Tracking database {uri} is not an MLflow tracking database mlproj can write "
            f"({shown} missing). If MLflow made it, upgrade it first: mlflow db upgrade {uri}"
        )
    found = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return SchemaInfo(
        revision=str(found[0]) if found else "",
        experiment_workspace="workspace" in columns["experiments"],
    )


# -- filesystems and WAL -------------------------------------------------------------------------
def filesystem_type(path: Path, mounts: Path = Path("/proc/mounts")) -> str | None:
    """The filesystem type of the mount holding ``path`` (Linux), or None when unknown."""
    try:
        text = mounts.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    target = os.path.realpath(path)
    best, best_type = "", None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        # /proc/mounts escapes space, tab, newline and backslash as octal.
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):  # the last of equal mounts is the visible one
            best, best_type = point, fields[2]
    return best_type


def wal_allowed(path: Path, mounts: Path = Path("/proc/mounts")) -> bool:
    """True when the database at ``path`` sits on a local filesystem known to support WAL."""
    from mlproj.settings import SQLITE_WAL

    if not SQLITE_WAL.get():
        return False
    return filesystem_type(path.parent, mounts) in LOCAL_FILESYSTEMS


# -- finding the user's MLflow -------------------------------------------------------------------
@record(frozen=True)
class MlflowInstall:
    """An MLflow that can create databases: how to run it and its newest schema revision."""

    python: str  # the interpreter that imports this mlflow
    version: str
    head_revision: str | None  # None when its migrations could not be read


# MLflow's SQL store needs both; mlflow-skinny ships MLflow's migration files without them.
_SQL_MODULES = ("sqlalchemy", "alembic")
_FIND_SPEC = (
    "import importlib.util as u; s = u.find_spec('mlflow'); "
    f"sql = all(u.find_spec(m) for m in {_SQL_MODULES!r}); "
    "print(s.submodule_search_locations[0] if sql and s and s.submodule_search_locations else '')"
)


def find_mlflow() -> MlflowInstall | None:
    """The MLflow a user would open the database with: the ``mlflow`` CLI on PATH (what
    ``mlflow ui`` runs), else one importable here. None when neither can open SQL stores (an
    mlflow-skinny has MLflow's migrations but not SQLAlchemy, so it could not create one)."""
    import shutil  # here: it imports bz2 and lzma; only a new database needs it

    cli = shutil.which("mlflow")
    if cli is not None:
        python = _script_interpreter(Path(cli))
        package = _package_dir(python) if python else None
        if package is not None:
            found = _install(package, python or cli)
            if found is not None:
                return found
    package = _own_package_dir()
    return _install(package, sys.executable) if package is not None else None


def _own_package_dir() -> Path | None:
    """This interpreter's ``mlflow`` package, if it can open SQL stores (found, not imported)."""
    spec = importlib.util.find_spec("mlflow")
    if spec is None or not spec.submodule_search_locations:
        return None
    if not all(importlib.util.find_spec(name) for name in _SQL_MODULES):
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _script_interpreter(script: Path) -> str | None:
    """The interpreter of a console script (its ``#!`` line), if it is a Python one."""
    try:
        with script.open("rb") as handle:
            first = handle.readline(512).decode("utf-8", errors="replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    parts = first[2:].split()
    if not parts:
        return None
    if Path(parts[0]).name == "env" and len(parts) > 1:
        import shutil

        return shutil.which(parts[1])
    return parts[0] if "python" in Path(parts[0]).name else None


def _package_dir(python: str) -> Path | None:
    # Not realpath: every virtualenv's python links to the same interpreter binary.
    if Path(python).absolute() == Path(sys.executable).absolute():
        return _own_package_dir()
    try:
        done = subprocess.run(
            [python, "-c", _FIND_SPEC], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = done.stdout.strip()
    return Path(out) if done.returncode == 0 and out else None


_VERSION = re.compile(r"""^VERSION\s*=\s*["']([^"']+)["']""", re.MULTILINE)
_REVISION = re.compile(r"""^revision\s*=\s*["']([0-9a-f]+)["']""", re.MULTILINE)
_DOWN = re.compile(r"""^down_revision\s*=\s*(.+)$""", re.MULTILINE)


def _install(package: Path, python: str) -> MlflowInstall | None:
    versions = package / "store" / "db_migrations" / "versions"
    if not versions.is_dir():
        return None  # no migration files: nothing to build a database with
    try:
        match = _VERSION.search((package / "version.py").read_text(encoding="utf-8"))
    except OSError:
        match = None
    return MlflowInstall(
        python=python,
        version=match.group(1) if match else "unknown",
        head_revision=migration_head(versions.glob("*.py")),
    )


def migration_head(files: Iterable[Path]) -> str | None:
    """The one revision no other migration builds on, read from alembic migration files."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError:
            return None
        revision = _REVISION.search(text)
        if revision is None:
            continue
        revisions.add(revision.group(1))
        down = _DOWN.search(text)
        if down is not None:
            parents.update(re.findall(r"[0-9a-f]{6,}", down.group(1)))
    heads = revisions - parents
    return next(iter(heads)) if len(heads) == 1 else None


# -- new databases -------------------------------------------------------------------------------
_AUTO = object()


def create_database(
    path: Path,
    *,
    log: Callable[[str], None],
    mlflow: MlflowInstall | object | None = _AUTO,
) -> None:
    """Create the MLflow database at ``path`` unless another process made it first.

    ``mlflow`` is the MLflow to build it with (default: :func:`find_mlflow`); None uses the
    pinned schema.
    """
    install = find_mlflow() if mlflow is _AUTO else mlflow
    assert install is None or isinstance(install, MlflowInstall)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.mlproj-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        if install is None or install.head_revision == PINNED_REVISION:
            _write_pinned(staging)
        else:
            started = time.monotonic()
            _mlflow_upgrade(install, staging)
            log(
                f"created tracking database {path} with MLflow {install.version}'s schema "
                f"({time.monotonic() - started:.1f} s, once)"
            )
        if wal_allowed(path):
            conn = sqlite3.connect(staging, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode = WAL")
            finally:
                conn.close()
        _publish(staging, path)
    finally:
        for leftover in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{staging}{leftover}").unlink()


def _pinned_statements() -> list[str]:
    """The statements of ``sqlite_schema.sql`` (a trigger body holds ``;`` of its own)."""
    statements: list[str] = []
    pending = ""
    for line in SCHEMA_FILE.read_text(encoding="utf-8").splitlines(keepends=True):
        if not pending and line.startswith("--"):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    return statements


def _write_pinned(target: Path) -> None:
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        _fill_empty(conn)
    finally:
        conn.close()


def _fill_empty(conn: sqlite3.Connection) -> None:
    """Create the pinned schema in one exclusive transaction, if the database is still empty."""
    conn.execute("BEGIN EXCLUSIVE")
    try:
        if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
            for statement in _pinned_statements():
                conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def initialize_in_place(
    conn: sqlite3.Connection, path: Path, *, log: Callable[[str], None]
) -> None:
    """Make an existing empty file (``touch mlflow.db``) an MLflow database, as MLflow does."""
    install = find_mlflow()
    if install is not None and install.head_revision != PINNED_REVISION:
        started = time.monotonic()
        _mlflow_upgrade(install, path)  # MLflow initialises an empty database itself
        log(
            f"created tracking database {path} with MLflow {install.version}'s schema "
            f"({time.monotonic() - started:.1f} s, once)"
        )
        return
    _fill_empty(conn)


# MLflow's own store, opened once, creates every table, runs every migration and adds the
# Default experiment, in every 3.x (`mlflow db upgrade` cannot start from an empty file before
# 3.7 or so).
_MLFLOW_CREATE = (
    "import sys; from mlflow.tracking import MlflowClient; "
    "MlflowClient(tracking_uri=sys.argv[1]).search_experiments(max_results=1)"
)


def _mlflow_upgrade(install: MlflowInstall, target: Path) -> None:
    uri = f"sqlite:///{target}"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    try:
        done = subprocess.run(
            [install.python, "-c", _MLFLOW_CREATE, uri],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ExecutionException(
            f"Creating the tracking database with MLflow {install.version} failed: {exc}"
        ) from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no output"]
        errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception)\b", line)]
        raise ExecutionException(
            f"Creating the tracking database with MLflow {install.version} "
            f"({install.python}) failed: {(errors or lines)[-1]}"
        )


def _publish(staging: Path, path: Path) -> None:
    """Put the finished database in place, never over one another process made meanwhile."""
    try:
        os.link(staging, path)
    except FileExistsError:
        return  # made by another process first: that one is used
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise ExecutionException(
                f"Cannot create tracking database {path}: {exc.strerror or exc}"
            ) from None
        # Filesystems without hard links: a rename, which a creator racing us could overwrite
        # only in the instant between the check and the rename (both made the same schema).
        if not path.exists():
            staging.replace(path)
