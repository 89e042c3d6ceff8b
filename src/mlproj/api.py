"""``mlproj.run``: the pipeline as one readable list of steps.

source -> spec -> entry point and parameters -> environment manager and backend checks ->
tracking run -> backend submit -> (synchronous) wait. Everything a user can get wrong is found
before the tracking run is opened; anything failing after that marks the run FAILED.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlproj import report
from mlproj.backends.base import SubmitRequest
from mlproj.errors import ExecutionException
from mlproj.local_run.identity import identity_tags, supervisor_alive
from mlproj.local_run.supervisor import Cancelled, raise_held, signals_deferred, stop_started
from mlproj.records import record
from mlproj.settings import ENV_MANAGER
from mlproj.statuses import TERMINAL_STATUSES, RunStatus
from mlproj.submitted import SubmittedRun
from mlproj.tags import (
    MLFLOW_BACKEND,
    MLFLOW_ENTRY_POINT,
    MLFLOW_ENV,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_RUN_NAME,
    MLFLOW_SOURCE_TYPE,
    MLFLOW_USER,
    TAG_BACKEND,
    TAG_ERROR,
    TAG_PARAMS_AT_END,
    TAG_PID,
    TAG_RUN_KEY,
    TAG_UPSTREAM,
)
from mlproj.tracking.base import TrackingStore

if TYPE_CHECKING:
    from mlproj.backends.base import Backend
    from mlproj.envs.base import EnvironmentManager
    from mlproj.sources.base import FetchedProject
    from mlproj.spec.params import ResolvedParameters
    from mlproj.spec.project import EntryPoint, Project

ENV_MANAGER_VAR = ENV_MANAGER.name


def run(
    uri: str,
    entry_point: str = "main",
    version: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    docker_args: Mapping[str, Any] | None = None,
    experiment_name: str | None = None,
    experiment_id: str | None = None,
    backend: str = "local",
    backend_config: Mapping[str, Any] | str | None = None,
    storage_dir: str | None = None,
    synchronous: bool = True,
    run_id: str | None = None,
    run_name: str | None = None,
    env_manager: str | None = None,
    build_image: bool = False,
    docker_auth: Mapping[str, str] | None = None,
) -> SubmittedRun:
    """Run an MLflow project from a local folder, a Git repository or an archive.

    Same signature and meaning as ``mlflow.projects.run``. Returns a :class:`SubmittedRun`;
    when ``synchronous`` (the default) the run has ended, and a failed run raises
    :class:`ExecutionException` ``Run (ID '...') failed``.
    """
    return submit(
        RunOptions(
            uri=uri,
            entry_point=entry_point,
            version=version,
            parameters=parameters,
            docker_args=docker_args,
            experiment_name=experiment_name,
            experiment_id=experiment_id,
            backend=backend,
            backend_config=backend_config,
            storage_dir=storage_dir,
            synchronous=synchronous,
            run_id=run_id,
            run_name=run_name,
            env_manager=env_manager,
            build_image=build_image,
            docker_auth=docker_auth,
        )
    )


@record
class RunOptions:
    """Everything ``run`` accepts, plus what only the CLI sets."""

    uri: str
    entry_point: str = "main"
    version: str | None = None
    parameters: Mapping[str, Any] | None = None
    docker_args: Mapping[str, Any] | None = None
    experiment_name: str | None = None
    experiment_id: str | None = None
    backend: str = "local"
    backend_config: Mapping[str, Any] | str | None = None
    storage_dir: str | None = None
    synchronous: bool = True
    run_id: str | None = None
    run_name: str | None = None
    env_manager: str | None = None
    build_image: bool = False
    docker_auth: Mapping[str, str] | None = None
    tracking_uri: str | None = None
    log: Callable[[str], None] | None = None
    # Orchestration (mlproj.orchestration): extra run tags (parent, trial, step), extra
    # variables for the command (GPU pinning), reuse of a FINISHED run with the same key, and
    # hooks that give the scheduler the run id and the handle while the run goes on.
    tags: Mapping[str, str] | None = None
    extra_env: Mapping[str, str] | None = None
    reuse: bool = False
    on_opened: Callable[[str], None] = lambda _run_id: None
    on_submitted: Callable[[SubmittedRun], None] = lambda _handle: None
    # An open store to use (one connection for all of a sweep's children, its experiment_id
    # resolved already) instead of one opened from tracking_uri; and, for a local
    # synchronous run, the caller's event loop reads the output and awaits the end (start()).
    store: TrackingStore | None = None
    caller_reads: bool = False
    # A sweep's trials share one snapshot of the project (see ProjectSnapshot).
    snapshot: ProjectSnapshot | None = None


class ProjectSnapshot:
    """The project as a sweep's trials see it: fetched, loaded and its code state (Git
    commit and uncommitted changes, or the folder's fingerprint) taken once, at the first
    trial, instead of once per trial (``git status`` would be a second process per trial).
    Every trial of one sweep thus runs, and is keyed as, one version of the project. Its
    commands start from the environment variables the sweep started with (reading
    ``os.environ`` item by item cost every trial more than its own store writes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fetched: dict[tuple[str, str | None], tuple[FetchedProject, Project]] = {}
        self._code: dict[Path, str] = {}
        self.environment: dict[str, str] = dict(os.environ)

    def project(
        self, uri: str, version: str | None, log: Callable[[str], None]
    ) -> tuple[FetchedProject, Project]:
        from mlproj.sources import fetch_project
        from mlproj.spec.project import load_project

        with self._lock:
            found = self._fetched.get((uri, version))
            if found is None:
                fetched = fetch_project(uri, version, log=log)
                found = self._fetched[(uri, version)] = (fetched, load_project(fetched.directory))
            return found

    def code_state(self, fetched: FetchedProject) -> str:
        from mlproj.orchestration.run_key import code_state

        with self._lock:
            state = self._code.get(fetched.directory)
            if state is None:
                state = self._code[fetched.directory] = code_state(fetched)
            return state


@record
class Started:
    """A run whose command has been started (or a reused run): :meth:`finish` waits for it
    (for a synchronous run) and raises as :func:`submit` does if it did not finish."""

    handle: SubmittedRun
    store: TrackingStore
    backend: str
    synchronous: bool
    scrub: Callable[[str], str]
    finished: bool | None = None  # waited for already (start(wait=True)): did it finish

    def finish(self) -> SubmittedRun:
        with _scrubbed(self.scrub):
            return _finish(self)


def submit(options: RunOptions) -> SubmittedRun:
    """The pipeline behind :func:`run`.

    Error messages (and the run's error tag) never carry the credentials of the project URI,
    the tracking URI or the tracking/Databricks tokens, whichever layer wrote them."""
    return prepare(options).start(wait=True).finish()


def start(options: RunOptions) -> Started:
    """:func:`submit` up to the command's start: the run is open and its command started
    (a reused run: nothing started). ``finish()`` does the rest. With ``caller_reads`` the
    caller reads the output (``handle.output_fd``) until it ends, then calls ``finish()``."""
    return prepare(options).start()


def prepare(options: RunOptions) -> Prepared:
    """:func:`start` up to opening the run: the project, parameters, command, environment,
    backend settings and tags are resolved and checked, and nothing is written or started.
    Errors are those :func:`start` raises for the same options."""
    scrub = _scrubber(options)
    with _scrubbed(scrub):
        return _prepare(options, scrub)


@record
class Prepared:
    """A run ready to open (:func:`prepare`); :meth:`start` opens it and starts its command.
    Orchestration prepares a child while every slot is busy, so a freed slot only opens and
    starts it."""

    options: RunOptions
    scrub: Callable[[str], str]
    log: Callable[[str], None]
    backend: Backend[Any]
    fetched: FetchedProject
    project: Project
    entry_point: EntryPoint
    params: ResolvedParameters
    command: str
    manager: EnvironmentManager
    env_manager: str | None
    backend_config: Any
    store: TrackingStore
    tags: dict[str, str]

    def start(self, *, wait: bool = False) -> Started:
        """``wait``: a synchronous run is also awaited, under the guard that covers its start,
        so an interrupt at any instant between the two stops its command."""
        with _scrubbed(self.scrub):
            return _open_and_submit(self, wait)


@contextmanager
def _scrubbed(scrub: Callable[[str], str]) -> Iterator[None]:
    try:
        yield
    except ExecutionException as exc:
        clean = scrub(exc.message)
        if clean != exc.message:
            exc.message, exc.args = clean, (clean,)
        raise


def _scrubber(options: RunOptions) -> Callable[[str], str]:
    from mlproj.redaction import Redactor, secrets_from_env

    # str(): callers may pass a pathlib.Path as the URI despite the annotation.
    urls = [str(options.uri), options.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")]
    return Redactor(secrets_from_env(), urls)


def _prepare(options: RunOptions, scrub: Callable[[str], str]) -> Prepared:
    from mlproj.backends.registry import get_backend
    from mlproj.envs import choose_manager
    from mlproj.sources import fetch_project
    from mlproj.spec.params import render_command, resolve_parameters
    from mlproj.spec.project import load_project
    from mlproj.tracking import get_store

    log = options.log or report.log
    raw_backend_config = load_backend_config(options.backend_config)
    backend = get_backend(options.backend)
    if options.snapshot is not None:
        fetched, project = options.snapshot.project(_uri_text(options.uri), options.version, log)
    else:
        fetched = fetch_project(_uri_text(options.uri), options.version, log=log)
        project = load_project(fetched.directory)
    entry_point = project.get_entry_point(options.entry_point)
    for warning in project.warnings_for(options.entry_point):
        log(f"warning: {warning}")
    params = resolve_parameters(
        entry_point,
        options.parameters,
        project_dir=project.directory,
        spec_path=project.spec_path,
        storage_dir=options.storage_dir,
    )
    command = render_command(entry_point, params)
    if params.extra and options.entry_point in project.entry_points:
        log("warning: " + undeclared_parameters_message(entry_point, params.extra))
    _check_loggable(params, options.entry_point, project.spec_path or project.directory)
    # A manager the user chose also applies to runs the project starts itself (nested
    # mlproj.run calls in a multistep workflow: MLflow issue 6611).
    env_manager = options.env_manager or ENV_MANAGER.get()
    manager = choose_manager(project, env_manager)
    if project.docker_env is None and (options.docker_args or options.build_image):
        log(
            f"warning: docker_args/-A and build_image apply only to projects with a docker_env; "
            f"{project.spec_path or project.directory} has none, so they are ignored"
        )
    manager.validate(project)
    backend_config = backend.parse_config(raw_backend_config, project)
    backend.validate(project, backend_config)
    store = options.store or get_store(options.tracking_uri)
    backend.validate_tracking_uri(store.tracking_uri)

    tags = {
        MLFLOW_USER: _user(),
        MLFLOW_SOURCE_TYPE: "PROJECT",
        MLFLOW_ENTRY_POINT: options.entry_point,
        MLFLOW_BACKEND: backend.name,
        TAG_BACKEND: backend.name,
        **fetched.source_tags(),
        **(options.tags or {}),  # orchestration: parent, trial, step (a parent given wins)
    }
    if manager.tag_value:
        tags[MLFLOW_ENV] = manager.tag_value
    tags.update(_waiter_tags(backend.name, options.synchronous))
    parent = _parent_run_id()
    if parent:
        tags.setdefault(MLFLOW_PARENT_RUN_ID, parent)
    tags[TAG_RUN_KEY] = _run_key(options, tags, (fetched, project, params, manager))
    return Prepared(
        options, scrub, log, backend, fetched, project, entry_point, params, command, manager,
        env_manager, backend_config, store, tags,
    )  # fmt: skip


def _open_and_submit(prepared: Prepared, wait: bool) -> Started:
    options, store, backend, params = (
        prepared.options, prepared.store, prepared.backend, prepared.params
    )  # fmt: skip
    tags, scrub, log, env_manager = (
        dict(prepared.tags), prepared.scrub, prepared.log, prepared.env_manager
    )  # fmt: skip
    if reused := _reusable(store, options, tags[TAG_RUN_KEY], log):
        return Started(reused, store, backend.name, False, scrub)
    # Number params whose text is not Python's form of it are logged when the run ends: by
    # the local supervisor, or for a remote run by whoever records its end (read from a tag).
    at_start = params.logged_at_start()
    if backend.name != "local" and (deferred := params.deferred()):
        tags[TAG_PARAMS_AT_END] = json.dumps(deferred, sort_keys=True)
    opened: list[str] = []
    with _fail_run_on_error(store, opened, scrub):
        # The guard knows the run the instant it is open: a signal waits for that.
        with signals_deferred() as pending:
            run_id, experiment_id, artifact_uri, logged = _open_run(store, options, tags, at_start)
            opened.append(run_id)
        raise_held(pending)
        options.on_opened(run_id)
        if options.run_id is None and not logged:
            store.log_batch(run_id, params=at_start)
        submitted = backend.submit(
            SubmitRequest(
                project=prepared.project,
                fetched=prepared.fetched,
                entry_point=prepared.entry_point,
                params=params,
                command=prepared.command,
                run_id=run_id,
                experiment_id=experiment_id,
                store=store,
                env_manager=prepared.manager,
                backend_config=prepared.backend_config,
                docker_args=dict(options.docker_args or {}),
                build_image=options.build_image,
                docker_auth=options.docker_auth,
                synchronous=options.synchronous,
                storage_dir=Path(options.storage_dir) if options.storage_dir else None,
                log=log,
                artifact_uri=artifact_uri,
                extra_env={
                    **({ENV_MANAGER_VAR: env_manager} if env_manager else {}),
                    **(options.extra_env or {}),
                },
                base_env=options.snapshot.environment if options.snapshot is not None else None,
                caller_reads=options.caller_reads and options.synchronous,
            )
        )
        options.on_submitted(submitted)
        finished = _wait(backend.name, store, submitted) if wait and options.synchronous else None
    return Started(submitted, store, backend.name, options.synchronous, scrub, finished)


def _finish(started: Started) -> SubmittedRun:
    submitted, store, run_id = started.handle, started.store, started.handle.run_id
    if not started.synchronous:
        return submitted
    finished = started.finished
    if finished is None:
        # Waiting can fail too (a store or cluster API error): the run must not stay RUNNING.
        with _fail_run_on_error(store, [run_id], started.scrub):
            finished = _wait(started.backend, store, submitted)
    if not finished:
        reason = getattr(submitted, "error", None)  # known here: no need to read the run back
        detail = f": {reason}" if reason else _failure_reason(store, run_id)
        raise ExecutionException(f"Run (ID '{run_id}') failed{detail}")
    return submitted


def _waiter_tags(backend: str, synchronous: bool) -> dict[str, str]:
    """Who waits for the run, so `runs cancel` / `runs reap` can tell when nobody does."""
    if backend == "local":
        # This process supervises the run (an asynchronous one until its detached supervisor
        # takes over), so a crash of it at any moment leaves an orphan `runs list` settles.
        return identity_tags()
    from mlproj.backends.remote.watcher import watcher_tags

    return watcher_tags()  # this process watches it until a detached watcher takes over


def _wait(backend: str, store: TrackingStore, submitted: SubmittedRun) -> bool:
    if backend == "local":
        return submitted.wait()
    from mlproj.backends.remote.reattach import wait_for_outcome

    # The job's end decides the stored status, whatever the handle or the project recorded.
    return wait_for_outcome(store, submitted)


def _run_key(
    options: RunOptions,
    tags: Mapping[str, str],
    inputs: tuple[FetchedProject, Project, ResolvedParameters, EnvironmentManager],
) -> str:
    """The new run's key (its ``mlproj.key`` tag)."""
    from mlproj.orchestration.run_key import run_key

    fetched, project, params, manager = inputs
    code = options.snapshot.code_state(fetched) if options.snapshot is not None else None
    return run_key(
        fetched,
        project,
        options.entry_point,
        params,
        manager,
        tags.get(TAG_UPSTREAM, ""),
        code=code,
    )


def _reusable(
    store: TrackingStore, options: RunOptions, key: str, log: Callable[[str], None]
) -> SubmittedRun | None:
    """With ``--reuse``, the newest FINISHED run of the experiment that has ``key``, if any."""
    from mlproj.orchestration.run_key import ReusedRun, find_reusable

    if not options.reuse or options.run_id is not None:
        return None
    experiment_id = store.resolve_experiment(options.experiment_name, options.experiment_id)
    found = find_reusable(store, experiment_id, key)
    if found is None:
        return None
    log(f"reusing run {found.run_id} ({found.info.run_name}): same code, parameters and env")
    return ReusedRun(found)


def undeclared_parameters_message(entry_point: EntryPoint, given: Mapping[str, str]) -> str:
    """The warning for ``-P`` names an entry point does not declare: they are still passed on
    as ``--name value`` (MLflow does so), but a typo is the likelier cause."""
    from mlproj.shell import show_command

    declared = list(entry_point.parameters)
    where = f" of {entry_point.spec_path}" if entry_point.spec_path else ""
    names = ", ".join(repr(name) for name in given)
    hints = [
        f"Did you mean {match!r}?" if len(given) == 1 else f"Did you mean {match!r} for {name!r}?"
        for name in given
        if (match := report.closest(name, declared)) is not None
    ]
    appended = show_command(
        [part for name, value in given.items() for part in (f"--{name}", value)]
    )
    plural = "s" if len(given) > 1 else ""
    return (
        f"entry point {entry_point.name!r}{where} declares no parameter{plural} {names} "
        f"(declared: {', '.join(declared) or 'none'}). "
        + (f"{' '.join(hints)} " if hints else "")
        + f"Passing on `{appended}`, as MLflow does"
    )


def _check_loggable(params: ResolvedParameters, entry_point: str, where: Path) -> None:
    """MLflow's key and length rules hold for every store: say so before any run exists."""
    from mlproj.tracking.limits import MAX_PARAM_VALUE_LENGTH, validate_key

    for key, value in params.as_logged().items():
        try:
            validate_key("param", key)
        except ExecutionException as exc:
            declared = f"{where}: entry_points.{entry_point}.parameters"
            origin = declared if key in params.declared else f"Parameter given for {where}"
            raise ExecutionException(f"{origin}: {exc}") from None
        if len(value) > MAX_PARAM_VALUE_LENGTH:
            raise ExecutionException(
                f"Parameter {key!r} of entry point {entry_point!r} ({where}) is "
                f"{len(value)} characters long, the limit is {MAX_PARAM_VALUE_LENGTH}; "
                "pass a file path instead"
            )


def _uri_text(uri: object) -> str:
    if isinstance(uri, os.PathLike):
        return str(os.fspath(uri))
    if not isinstance(uri, str):
        raise ExecutionException(
            f"The project uri must be a string or a path, got {type(uri).__name__} {uri!r}"
        )
    return uri


def _failure_reason(store: TrackingStore, run_id: str) -> str:
    """': <reason>' from the run's error tag (first line), so the user sees why at once."""
    try:
        reason = store.get_run(run_id).tags.get(TAG_ERROR, "")
    except Exception:  # noqa: BLE001 - the failure itself is what must be reported
        return ""
    first = reason.strip().splitlines()[0] if reason.strip() else ""
    return f": {first}" if first else ""


def _open_run(
    store: TrackingStore, options: RunOptions, tags: dict[str, str], params: Mapping[str, str]
) -> tuple[str, str, str, bool]:
    """Create the tracking run, or re-enter an existing RUNNING one (``run_id=``).

    Returns the run id, its experiment id, its artifact URI, and whether ``params`` were
    logged with the new run (in the same write, where the store can)."""
    if options.run_id is not None:
        existing = store.get_run(options.run_id)
        if existing.info.status in TERMINAL_STATUSES:
            raise ExecutionException(
                f"Run '{options.run_id}' is already {existing.info.status}; "
                "run_id= only re-enters a RUNNING run"
            )
        supervisor = existing.tags.get(TAG_PID)
        if supervisor and supervisor != str(os.getpid()) and supervisor_alive(existing):
            # Taking it over would end it under its running command and lose that command.
            raise ExecutionException(
                f"Run '{options.run_id}' is being run by mlproj process {supervisor} on this "
                "host; wait for it to end or stop it with "
                f"`mlproj runs cancel {options.run_id}`, then start a new run"
            )
        keep = (MLFLOW_BACKEND, TAG_BACKEND, MLFLOW_ENV, *identity_tags())
        store.set_tags(options.run_id, {k: v for k, v in tags.items() if k in keep})
        if options.run_name:
            store.set_tag(options.run_id, MLFLOW_RUN_NAME, options.run_name)
        return options.run_id, existing.info.experiment_id, existing.info.artifact_uri, False
    if options.store is not None and options.experiment_id and not options.experiment_name:
        # Orchestration resolved it when the parent opened; create_run checks it again.
        experiment_id = str(options.experiment_id)
    else:
        experiment_id = store.resolve_experiment(options.experiment_name, options.experiment_id)
    info = store.create_run_with_params(
        experiment_id, run_name=options.run_name, tags=tags, user_id=tags[MLFLOW_USER],
        params=params,
    )  # fmt: skip
    if info is not None:
        return info.run_id, experiment_id, info.artifact_uri, True
    info = store.create_run(
        experiment_id, run_name=options.run_name, tags=tags, user_id=tags[MLFLOW_USER]
    )
    return info.run_id, experiment_id, info.artifact_uri, False


@contextmanager
def _fail_run_on_error(
    store: TrackingStore, opened: list[str], scrub: Callable[[str], str]
) -> Iterator[None]:
    """Once the run is opened (its id in ``opened``), any failure (or Ctrl-C) closes it with
    the reason recorded."""
    try:
        yield
    except BaseException as exc:
        if not opened:
            raise
        run_id = opened[0]
        killed = isinstance(exc, (KeyboardInterrupt, Cancelled))
        reason = "interrupted" if killed else scrub(str(exc)) or type(exc).__name__
        try:
            # Unwound after the command started but before its wait began: it stops first
            # (a second Ctrl-C meanwhile only skips its grace period).
            with suppress(KeyboardInterrupt, Cancelled):
                stop_started(run_id)
            current = store.get_run(run_id)
            ended = current.info.status in TERMINAL_STATUSES
            if not (ended and TAG_ERROR in current.tags):  # keep the reason already recorded
                store.set_tag(run_id, TAG_ERROR, reason[:8000])
            if not ended:
                store.set_terminated(run_id, RunStatus.KILLED if killed else RunStatus.FAILED)
        except Exception as record_exc:  # noqa: BLE001 - keep the original error, say why
            report.warning(f"could not mark run {run_id} failed: {record_exc}")
        raise


def load_backend_config(config: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """A dict, a path to a JSON file, or a JSON string (as the CLI's ``-c`` accepts)."""
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    if isinstance(config, os.PathLike):
        config = str(os.fspath(config))
    if not isinstance(config, str):
        raise ExecutionException(
            "backend_config must be a dict, a JSON string or the path of a JSON file, got "
            f"{type(config).__name__}"
        )
    text, where = config, "backend_config"
    if config.endswith(".json") or Path(config).is_file():
        try:
            text = Path(config).read_text()
        except OSError as exc:
            raise ExecutionException(
                f"Could not read backend config file {config}: {exc.strerror}"
            ) from exc
        where = f"backend config file {config}"
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExecutionException(f"Invalid JSON in {where}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ExecutionException(f"{where} must be a JSON object, got {type(loaded).__name__}")
    return loaded


@functools.cache
def _user() -> str:
    """Who runs this process (read once: a sweep opens hundreds of runs)."""
    # getpass.getuser's rule, without importing getpass (and termios) on every start.
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if user := os.environ.get(name):
            return user
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


def _parent_run_id() -> str | None:
    """The caller's active MLflow run, if the caller uses mlflow (never imported here)."""
    mlflow = sys.modules.get("mlflow")
    active = getattr(mlflow, "active_run", None)
    if callable(active):
        current = active()
        if current is not None:
            return str(current.info.run_id)
    return os.environ.get("MLFLOW_RUN_ID") or None
