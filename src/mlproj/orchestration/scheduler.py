"""The one engine: child runs under a parent run, at most N at a time.

Sweeps and pipelines are *plans* that say which child to start next and learn how each ended;
the :class:`Scheduler` starts children through :func:`mlproj.api.submit` (any backend, each child
an ordinary run tagged ``mlflow.parentRunId``), keeps at most ``max_parallel`` running, retries
a failed child with exponential backoff, pins one GPU per running child, and on Ctrl-C,
SIGTERM or ``mlproj runs cancel <parent>`` stops every running child (KILLED) before the
parent. Its state is the tracking store: the parent carries this process's identity tags, so
``runs cancel`` reaches it and ``runs reap`` settles it if this process dies.

Children are supervised by threads of this process (synchronous submits), which keeps the
overhead per child to a few milliseconds; their command processes run in their own process
groups, as for ``mlproj run``.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from mlproj.errors import ExecutionException
from mlproj.orchestration.retry import RetryPolicy
from mlproj.records import replace
from mlproj.statuses import TERMINAL_STATUSES, RunStatus
from mlproj.tags import (
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_SOURCE_TYPE,
    MLFLOW_USER,
    TAG_ATTEMPT,
    TAG_ERROR,
    TAG_GPU,
    TAG_KIND,
    TAG_RETRY_OF,
)

if TYPE_CHECKING:
    from mlproj.api import RunOptions
    from mlproj.submitted import SubmittedRun
    from mlproj.tracking.base import TrackingStore
    from mlproj.tracking.entities import Run

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass
class Child:
    """One child run to start: what to run (``options``) and how it is tagged."""

    label: str  # "trial 3", "step train": for messages
    options: RunOptions
    tags: dict[str, str] = field(default_factory=dict)
    reuse: bool = False
    retry_of: str | None = None  # a dead or killed run this child replaces (resume)


@dataclass
class Outcome:
    """How a child ended: its last run (None when no run could be opened) and status."""

    child: Child
    run_id: str | None
    status: str
    error: str | None = None
    reused: bool = False
    attempts: int = 1
    gpu: str | None = None


class Plan(Protocol):
    """What a sweep or a pipeline tells the scheduler."""

    def next_children(self, slots: int) -> list[Child]:
        """Up to ``slots`` children that may start now (fewer, or none, is fine)."""

    def child_done(self, outcome: Outcome) -> None:
        """A child ended (finished, failed, killed or reused)."""


class Scheduler:
    """Runs the children of one parent run; see the module docstring."""

    def __init__(
        self,
        store: TrackingStore,
        parent_run_id: str | None,
        *,
        max_parallel: int = 1,
        retry: RetryPolicy | None = None,
        gpus: Sequence[str] = (),
        log: Log = _quiet,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        if max_parallel < 1:
            raise ExecutionException(f"--max-parallel must be at least 1, got {max_parallel}")
        self.store = store
        self.parent_run_id = parent_run_id
        # One GPU per running child: never more children than devices.
        self.max_parallel = min(max_parallel, len(gpus)) if gpus else max_parallel
        self.retry = retry or RetryPolicy()
        self.log = log
        self.on_change = on_change
        self._free_gpus = list(gpus)
        self._handles: dict[int, SubmittedRun] = {}
        self._lock = threading.Lock()
        self._cancelled = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    # -- the loop ---------------------------------------------------------------------------
    def run(self, plan: Plan) -> list[Outcome]:
        """Start children until the plan is exhausted and every child has ended.

        Any exception in the calling thread (Ctrl-C, :class:`Cancelled` from SIGTERM) cancels
        every running child first, then propagates."""
        outcomes: list[Outcome] = []
        running: dict[Future[Outcome], Child] = {}
        executor = ThreadPoolExecutor(self.max_parallel, thread_name_prefix="mlproj-child")
        try:
            while True:
                if not self.cancelled:
                    self._start_ready(plan, executor, running)
                if not running:
                    break  # nothing runs and nothing more could start
                done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    running.pop(future)
                    outcome = future.result()
                    self._release_gpu(outcome.gpu)
                    outcomes.append(outcome)
                    plan.child_done(outcome)
                self._changed()
        except BaseException:
            self.cancel()
            self._drain(running)
            raise
        finally:
            executor.shutdown(wait=True)
        return outcomes

    def _start_ready(
        self, plan: Plan, executor: ThreadPoolExecutor, running: dict[Future[Outcome], Child]
    ) -> None:
        free = self.max_parallel - len(running)
        if free <= 0:
            return
        for child in plan.next_children(free):
            gpu = self._take_gpu()
            running[executor.submit(self._run_child, child, gpu)] = child
        self._changed()

    def _drain(self, running: dict[Future[Outcome], Child]) -> None:
        """Wait for the children being stopped; a second Ctrl-C does not skip recording."""
        while running:
            done: set[Future[Outcome]] = set()
            # A second Ctrl-C must not skip the wait: every child has to end recorded.
            with contextlib.suppress(BaseException):
                done, _ = wait(list(running), timeout=0.5)
            for future in done:
                running.pop(future)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # -- cancel -----------------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop every running child (they end KILLED) and start no more."""
        self._cancelled.set()
        with self._lock:
            handles = list(self._handles.values())
        # In parallel: each may wait out its grace period before SIGKILL.
        stoppers = [threading.Thread(target=_cancel_quietly, args=(h,)) for h in handles]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()

    def _register(self, handle: SubmittedRun) -> None:
        with self._lock:
            self._handles[id(handle)] = handle
        if self.cancelled:  # cancelled while this child was being prepared
            handle.cancel()

    def _unregister(self, handle: SubmittedRun | None) -> None:
        if handle is not None:
            with self._lock:
                self._handles.pop(id(handle), None)

    # -- GPUs ---------------------------------------------------------------------------------
    def _take_gpu(self) -> str | None:
        with self._lock:
            return self._free_gpus.pop(0) if self._free_gpus else None

    def _release_gpu(self, gpu: str | None) -> None:
        if gpu is not None:
            with self._lock:
                self._free_gpus.append(gpu)

    # -- one child, with its retries -----------------------------------------------------------
    def _run_child(self, child: Child, gpu: str | None) -> Outcome:
        previous = child.retry_of
        attempt = 1
        while True:
            outcome = self._attempt(child, gpu, attempt, previous)
            retry = (
                outcome.status == RunStatus.FAILED
                and outcome.run_id is not None  # no run: bad input, a retry cannot help
                and attempt <= self.retry.retries
                and not self.cancelled
            )
            if not retry:
                return outcome
            attempt += 1
            delay = self.retry.wait_before(attempt)
            self.log(
                f"{child.label}: run {outcome.run_id} failed; retry {attempt - 1} of "
                f"{self.retry.retries} in {delay:g} s"
            )
            if self._cancelled.wait(delay):
                return outcome
            previous = outcome.run_id

    def _attempt(
        self, child: Child, gpu: str | None, attempt: int, previous: str | None
    ) -> Outcome:
        from mlproj.api import submit
        from mlproj.orchestration.run_key import ReusedRun

        tags = dict(child.tags)
        if self.parent_run_id:
            tags[MLFLOW_PARENT_RUN_ID] = self.parent_run_id
        if self.retry.retries:  # one file less per child when nothing is retried
            tags[TAG_ATTEMPT] = str(attempt)
        if previous:
            tags[TAG_RETRY_OF] = previous
        extra_env = dict(child.options.extra_env or {})
        if gpu is not None:
            tags[TAG_GPU] = gpu
            extra_env["CUDA_VISIBLE_DEVICES"] = gpu
        opened: list[str] = []
        handles: list[SubmittedRun] = []

        def submitted(handle: SubmittedRun) -> None:
            handles.append(handle)
            self._register(handle)

        options = replace(
            child.options,
            synchronous=True,
            tags={**(child.options.tags or {}), **tags},
            extra_env=extra_env,
            reuse=child.reuse and attempt == 1,
            on_opened=opened.append,
            on_submitted=submitted,
        )
        if self.cancelled:
            return Outcome(child, None, RunStatus.KILLED, "cancelled before it started", gpu=gpu)
        try:
            handle = submit(options)
        except Exception as exc:  # noqa: BLE001 - one child's failure, whatever it is, is its own
            run_id = opened[0] if opened else None
            status = self._recorded_status(run_id)
            message = str(exc) if isinstance(exc, ExecutionException) else repr(exc)
            return Outcome(child, run_id, status, message, attempts=attempt, gpu=gpu)
        finally:
            self._unregister(handles[0] if handles else None)
        reused = isinstance(handle, ReusedRun)
        return Outcome(
            child, handle.run_id, RunStatus.FINISHED, reused=reused, attempts=attempt, gpu=gpu
        )

    def _recorded_status(self, run_id: str | None) -> str:
        if run_id is None:
            return RunStatus.FAILED
        try:
            status = self.store.get_run_status(run_id)
        except ExecutionException:
            return RunStatus.FAILED
        return status if status in TERMINAL_STATUSES else RunStatus.FAILED


def _cancel_quietly(handle: SubmittedRun) -> None:
    with contextlib.suppress(Exception):  # one child failing to stop must not spare the others
        handle.cancel()


# -- the parent run ---------------------------------------------------------------------------
def open_parent(
    store: TrackingStore,
    experiment_id: str,
    *,
    kind: str,
    run_name: str | None,
    tags: Mapping[str, str],
) -> str:
    """Create the parent run, supervised by this process (so ``runs cancel`` reaches it)."""
    from mlproj.api import _parent_run_id, _user
    from mlproj.local_run.identity import identity_tags

    user = _user()
    all_tags = {
        MLFLOW_USER: user,
        MLFLOW_SOURCE_TYPE: "PROJECT",
        TAG_KIND: kind,
        **identity_tags(),
        **tags,
    }
    outer = _parent_run_id()  # started from inside a run (a driver entry point): nest under it
    if outer:
        all_tags[MLFLOW_PARENT_RUN_ID] = outer
    return store.create_run(experiment_id, run_name=run_name, tags=all_tags, user_id=user).run_id


def adopt_parent(store: TrackingStore, parent: Run) -> None:
    """Resume: this process becomes the parent's supervisor and the parent RUNNING again."""
    from mlproj.local_run.identity import identity_tags, supervisor_alive

    if parent.info.status == RunStatus.RUNNING and supervisor_alive(parent):
        raise ExecutionException(
            f"Run '{parent.run_id}' is still being run by mlproj process "
            f"{parent.tags.get('mlproj.supervisor.pid')}; stop it with "
            f"`mlproj runs cancel {parent.run_id}` before resuming"
        )
    store.set_tags(parent.run_id, identity_tags())
    if parent.info.status != RunStatus.RUNNING:
        store.reopen_run(parent.run_id)


def close_parent(store: TrackingStore, run_id: str, status: str, error: str | None = None) -> None:
    if error:
        store.set_tag(run_id, TAG_ERROR, error[:8000])
    store.set_terminated(run_id, status)


@contextlib.contextmanager
def parent_closed_on_error(store: TrackingStore, run_id: str) -> Iterator[None]:
    """Any way out of the block but a normal one ends the parent KILLED (Ctrl-C, SIGTERM) or
    FAILED (an error), so it is never left RUNNING."""
    from mlproj.local_run.supervisor import Cancelled

    try:
        yield
    except BaseException as exc:
        killed = isinstance(exc, (KeyboardInterrupt, Cancelled))
        with contextlib.suppress(Exception):
            if store.get_run_status(run_id) not in TERMINAL_STATUSES:
                close_parent(
                    store,
                    run_id,
                    RunStatus.KILLED if killed else RunStatus.FAILED,
                    "cancelled" if killed else str(exc) or type(exc).__name__,
                )
        raise


def children_of(store: TrackingStore, parent: Run) -> list[Run]:
    """The parent's child runs, oldest first."""
    found = store.find_runs_by_tag(
        [parent.info.experiment_id], MLFLOW_PARENT_RUN_ID, parent.run_id, max_results=10**9
    )
    return sorted(found, key=lambda r: (r.info.start_time, r.run_id))


def settle_dead_children(store: TrackingStore, children: Sequence[Run]) -> set[str]:
    """Children whose supervisor (a scheduler that died) is gone: those still RUNNING are
    stopped and marked FAILED here, those ``runs reap`` settled already are found by its
    error tag. Returns their ids: resume runs them again."""
    from mlproj.local_run.identity import is_orphaned, reap

    dead: set[str] = set()
    for run in children:
        if run.info.status == RunStatus.RUNNING and is_orphaned(run):
            reap(store, run)
            dead.add(run.run_id)
        elif run.info.status == RunStatus.FAILED and run.tags.get(TAG_ERROR, "").endswith(
            "; reaped"
        ):
            dead.add(run.run_id)
    return dead


REDACTED = "***"


def stored_uri(uri: str) -> str:
    """The project URI as a parent run may keep it: without credentials (resume then fetches
    with the machine's own Git credentials)."""
    from mlproj.redaction import strip_credentials

    return strip_credentials(uri)


def stored_config(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A backend config as a parent run may keep it: secret-looking values become ``***``."""
    from mlproj.redaction import is_secret_name

    def clean(value: Any, key: str = "") -> Any:
        if key and is_secret_name(key) and isinstance(value, str):
            return REDACTED
        if isinstance(value, Mapping):
            return {k: clean(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return None if config is None else clean(dict(config))


def check_resumable_config(config: Mapping[str, Any] | None, run_id: str) -> None:
    if config is not None and REDACTED in json.dumps(config):
        raise ExecutionException(
            f"Run '{run_id}' was started with a backend config holding secrets, which were not "
            "stored; pass it again with -c/--backend-config"
        )


def absolute_uri(uri: str) -> str:
    """A local folder as an absolute path (a stored sweep or pipeline resumes from anywhere);
    any other URI as it is."""
    from pathlib import Path

    from mlproj.sources.uris import parse_project_uri

    try:
        local = parse_project_uri(uri).kind == "local"
    except ExecutionException:
        return uri
    return str(Path(uri).expanduser().absolute()) if local and Path(uri).exists() else uri


class BackgroundRun:
    """``start()`` / ``wait()`` shared by sweeps and pipelines: ``run()`` in a thread, its
    exception handed to ``wait()``, and Ctrl-C while waiting cancels the whole tree."""

    status: str
    _thread_name = "mlproj-orchestration"

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._exception: BaseException | None = None

    def run(self) -> str:
        """Run to the end; the parent run's final status."""
        raise NotImplementedError

    def cancel(self) -> None:
        raise NotImplementedError

    def start(self: BackgroundT) -> BackgroundT:
        """Run in a background thread; ``wait()`` for the end."""

        def target() -> None:
            try:
                self.run()
            except BaseException as exc:  # noqa: BLE001 - handed to wait()
                self._exception = exc

        self._thread = threading.Thread(target=target, name=self._thread_name, daemon=True)
        self._thread.start()
        return self

    def launch(self: BackgroundT, synchronous: bool) -> BackgroundT:
        """Run to the end here (``synchronous``), or start in the background."""
        if synchronous:
            self.run()
            return self
        return self.start()

    def wait(self) -> bool:
        """Block until the end; True when the parent run FINISHED. Ctrl-C cancels."""
        if self._thread is None:
            if self.status == RunStatus.RUNNING:  # not run yet (or run synchronously: ended)
                self.run()
            return self.status == RunStatus.FINISHED
        try:
            while self._thread.is_alive():
                self._thread.join(0.2)
        except BaseException:
            self.cancel()
            raise
        if self._exception is not None:
            raise self._exception
        return self.status == RunStatus.FINISHED


BackgroundT = TypeVar("BackgroundT", bound=BackgroundRun)
