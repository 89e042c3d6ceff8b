"""The one engine: child runs under a parent run, at most N at a time.

Sweeps and pipelines are *plans* that say which child to start next and learn how each ended;
the :class:`Scheduler` starts children through :func:`mlproj.api.submit` (any backend, each child
an ordinary run tagged ``mlflow.parentRunId``), keeps at most ``max_parallel`` running, retries
a failed child with exponential backoff, pins one GPU per running child, and on Ctrl-C,
SIGTERM or ``mlproj runs cancel <parent>`` stops every running child (KILLED) before the
parent. Its state is the tracking store: the parent carries this process's identity tags, so
``runs cancel`` reaches it and ``runs reap`` settles it if this process dies.

Local children whose output goes to their log only (sweep trials) are awaited by this thread
alone: their output pipes and pidfds sit in one selector, so a trial's end is an event, not a
poll, and no thread or process is added to its command. Other children (remote backends,
pipeline steps whose output is shown) are supervised by worker threads (synchronous
submits), which wake the same selector when they end. Every command runs in its own process
group, as for ``mlproj run``.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import os
import selectors
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from mlproj.errors import ExecutionException
from mlproj.local_run.supervisor import signals_cancel
from mlproj.orchestration.retry import RetryPolicy
from mlproj.records import field, record, replace
from mlproj.settings import output_linger
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
    from concurrent.futures import Future, ThreadPoolExecutor

    from mlproj.api import Prepared, RunOptions, Started
    from mlproj.local_run.supervisor import Supervisor
    from mlproj.submitted import SubmittedRun
    from mlproj.tracking.base import TrackingStore
    from mlproj.tracking.entities import Run

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@record
class Child:
    """One child run to start: what to run (``options``) and how it is tagged."""

    label: str  # "trial 3", "step train": for messages
    options: RunOptions
    tags: dict[str, str] = field(default_factory=dict)
    reuse: bool = False
    retry_of: str | None = None  # a dead or killed run this child replaces (resume)
    # The command's output goes to its run's log only, not this console: a local child is
    # then awaited in the scheduler's own loop, without a thread.
    log_only: bool = False


@record
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


class Foreseeing(Plan, Protocol):
    """A plan that can tell its next child before a slot is free."""

    def upcoming(self) -> Child | None:
        """The child :meth:`next_children` will hand out first, the same object, if it is
        known now; asking changes nothing the plan shows or counts."""


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
        self._gpus = tuple(gpus)
        self._uri = store.tracking_uri
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
        every running child first, waits until each is recorded, then propagates."""
        self._outcomes: list[Outcome] = []
        self._plan = plan
        self._threads: dict[Future[Outcome], Child] = {}
        self._watched: set[_Watched] = set()
        # Watched children whose command has exited while processes it left running still
        # hold its output: given output_linger() seconds, then ended without them.
        self._lingering: set[_Watched] = set()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        # Threads only for children the loop cannot await itself (remote backends, timeouts):
        # made on first use, so a local sweep imports no concurrent.futures.
        self._executor: ThreadPoolExecutor | None = None
        # The plan's next child, prepared while every slot was busy (see _prepare_upcoming).
        self._ahead: _Ahead | None = None
        upcoming = getattr(plan, "upcoming", None)
        self._upcoming: Callable[[], Child | None] | None = None if self._gpus else upcoming
        # SIGTERM, SIGHUP and SIGQUIT cancel the tree here too (the Python API's sweeps): held
        # once for the whole loop, so no trial swaps handlers (the CLI holds them already).
        with signals_cancel():
            try:
                while True:
                    if not self.cancelled:
                        self._start_ready()
                    if not self._busy():
                        break  # nothing runs and nothing more could start
                    self._step()
                    self._changed()
            except BaseException:
                self.cancel()
                self._drain()
                raise
            finally:
                if self._executor is not None:
                    self._executor.shutdown(wait=True)
                self._selector.close()
                os.close(self._wake_r)
                os.close(self._wake_w)
        return self._outcomes

    def _threads_pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(
                self.max_parallel, thread_name_prefix="mlproj-child"
            )
        return self._executor

    def _busy(self) -> int:
        return len(self._threads) + len(self._watched) + len(self._timers)

    def _step(self) -> None:
        """Wait for the next event (output, a command's end, a thread's end, a retry due) and
        handle every event that is ready."""
        dues = [w.output_deadline for w in self._lingering]
        if self._timers:
            dues.append(self._timers[0][0])
        timeout = max(0.0, min(dues) - time.monotonic()) if dues else None
        events = self._selector.select(0) if self._may_prepare() else []
        if not events:
            if self._may_prepare():
                self._prepare_upcoming()
            events = self._selector.select(timeout)
        for key, _ in events:
            if key.data is None:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_r, 512):
                        pass
            else:
                watched, is_output = key.data
                self._on_event(watched, is_output)
        for future in [f for f in self._threads if f.done()]:
            self._threads.pop(future)
            self._ended(future.result())
        now = time.monotonic()
        for watched in [w for w in self._lingering if w.output_deadline <= now]:
            self._without_output(watched)
        while self._timers and self._timers[0][0] <= now:
            heapq.heappop(self._timers)[2]()

    def _without_output(self, watched: _Watched) -> None:
        """A child's command exited a while ago, and what it left running still holds its
        output: the child ends now, with its command (as ``mlflow run`` would)."""
        self._lingering.discard(watched)
        if watched.output_fd is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(watched.output_fd)
            watched.output_fd = None
        watched.supervisor.runner.abandon_output()
        if watched.pidfd is None:
            self._watched.discard(watched)
            self._settle(watched)

    def _on_event(self, watched: _Watched, is_output: bool) -> None:
        runner = watched.supervisor.runner
        if is_output and watched.output_fd is not None:
            fd = watched.output_fd
            if runner.read_output():
                return
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(fd)
            watched.output_fd = None
            self._lingering.discard(watched)
        elif not is_output and watched.pidfd is not None:
            self._selector.unregister(watched.pidfd)
            os.close(watched.pidfd)
            watched.pidfd = None
            runner.note_exit()
            if watched.output_fd is not None and runner.output_fd is None:
                # Stopped in this thread (a cancel while it was starting): the stop read the
                # pipe to its end and closed it already.
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(watched.output_fd)
                watched.output_fd = None
            elif watched.output_fd is not None:  # the output may be held by what it left
                watched.output_deadline = time.monotonic() + output_linger()
                self._lingering.add(watched)
        if watched.output_fd is None and watched.pidfd is None:
            self._watched.discard(watched)
            self._settle(watched)

    def _settle(self, watched: _Watched) -> None:
        """A watched child's command has ended and its output is read: record it."""
        try:
            watched.started.finish()
        except Exception as exc:  # noqa: BLE001 - one child's failure, whatever it is, is its own
            outcome = self._failed_outcome(watched.child, watched.gpu, watched.attempt, exc,
                                           watched.started.handle.run_id)  # fmt: skip
        else:
            outcome = Outcome(
                watched.child, watched.started.handle.run_id, RunStatus.FINISHED,
                attempts=watched.attempt, gpu=watched.gpu,
            )  # fmt: skip
        finally:
            self._unregister(watched.started.handle)
        self._after_attempt(outcome)

    def _start_ready(self) -> None:
        free = self.max_parallel - len(self._threads) - len(self._watched) - len(self._timers)
        if free <= 0:
            return
        for child in self._plan.next_children(free):
            gpu = self._take_gpu()
            if child.log_only and child.options.backend == "local" and _watchable(child):
                self._launch(child, gpu, 1, child.retry_of)
            else:
                future = self._threads_pool().submit(self._run_child, child, gpu)
                future.add_done_callback(self._wake)
                self._threads[future] = child
        self._changed()

    def _may_prepare(self) -> bool:
        return self._upcoming is not None and self._ahead is None and not self.cancelled

    def _prepare_upcoming(self) -> None:
        """While every slot is busy and nothing has happened yet, prepare the plan's next
        child (resolve and check what its run needs; nothing is written or started), so the
        slot that frees next only opens its run and starts its command."""
        from mlproj.api import prepare

        assert self._upcoming is not None
        child = self._upcoming()
        if child is None:
            return
        if not (child.log_only and child.options.backend == "local" and _watchable(child)):
            self._ahead = _Ahead(child, None, [], [])  # not awaited here: started as usual
            return
        options, opened = self._attempt_options(child, None, 1, child.retry_of)
        handles: list[SubmittedRun] = []
        prepared: Prepared | None = None
        # A failure is not kept: the child is prepared again at its start, and fails (or not:
        # a file it needs may exist by then) as it would have without this.
        with contextlib.suppress(Exception):
            prepared = prepare(
                replace(options, caller_reads=True, on_submitted=self._registering(handles))
            )
        self._ahead = _Ahead(child, prepared, opened, handles)

    def _launch(self, child: Child, gpu: str | None, attempt: int, previous: str | None) -> None:
        """Start one attempt of a child awaited in this loop (no thread)."""
        from mlproj.api import prepare
        from mlproj.local_run.handle import LocalSubmittedRun

        ahead = self._ahead
        prepared: Prepared | None = None
        if ahead is not None and ahead.child is child and attempt == 1 and gpu is None:
            self._ahead = None
            prepared, opened, handles = ahead.prepared, ahead.opened, ahead.handles
        if prepared is None:
            options, opened = self._attempt_options(child, gpu, attempt, previous)
            handles = []
        if self.cancelled:
            outcome = Outcome(child, None, RunStatus.KILLED, "cancelled before it started", gpu=gpu)
            self._after_attempt(outcome)
            return
        try:
            if prepared is None:
                on_submitted = self._registering(handles)
                prepared = prepare(replace(options, caller_reads=True, on_submitted=on_submitted))
            started = prepared.start()
        except Exception as exc:  # noqa: BLE001 - one child's failure, whatever it is, is its own
            if handles:
                self._unregister(handles[0])
            run_id = opened[0] if opened else None
            self._after_attempt(self._failed_outcome(child, gpu, attempt, exc, run_id))
            return
        handle = started.handle
        supervisor = handle.supervisor if isinstance(handle, LocalSubmittedRun) else None
        if supervisor is None:  # reused: nothing runs
            from mlproj.orchestration.run_key import ReusedRun

            reused = isinstance(handle, ReusedRun)
            outcome = Outcome(child, handle.run_id, RunStatus.FINISHED, reused=reused,
                              attempts=attempt, gpu=gpu)  # fmt: skip
            self._after_attempt(outcome)
            return
        watched = _Watched(child, gpu, attempt, previous, started, supervisor)
        with contextlib.suppress(ProcessLookupError):  # already stopped and collected (cancel)
            watched.pidfd = os.pidfd_open(supervisor.runner.pid)
            self._selector.register(watched.pidfd, selectors.EVENT_READ, (watched, False))
        watched.output_fd = supervisor.runner.output_fd
        if watched.output_fd is not None:
            self._selector.register(watched.output_fd, selectors.EVENT_READ, (watched, True))
        if watched.pidfd is None and watched.output_fd is None:
            self._settle(watched)
            return
        self._watched.add(watched)

    def _after_attempt(self, outcome: Outcome) -> None:
        """An attempt of a loop-awaited child ended: try again after the backoff, or it ended."""
        if self._should_retry(outcome):
            attempt = outcome.attempts + 1
            delay = self.retry.wait_before(attempt)
            child, gpu, failed = outcome.child, outcome.gpu, outcome.run_id
            self._log_retry(child, failed, attempt, delay)

            def again() -> None:
                if self.cancelled:
                    self._ended(outcome)
                else:
                    self._launch(child, gpu, attempt, failed)

            due = time.monotonic() + delay
            heapq.heappush(self._timers, (due, next(self._order), again))
            return
        self._ended(outcome)

    def _ended(self, outcome: Outcome) -> None:
        self._release_gpu(outcome.gpu)
        self._outcomes.append(outcome)
        self._plan.child_done(outcome)

    def _wake(self, _: object = None) -> None:
        with contextlib.suppress(OSError):  # full (a wake is pending anyway) or closed
            os.write(self._wake_w, b"x")

    def _drain(self) -> None:
        """Wait for the children being stopped; a second Ctrl-C does not skip recording."""
        self._timers.clear()  # retries not started: their last attempt's outcome stands
        while self._threads or self._watched:
            # A second Ctrl-C must not skip the wait: every child has to end recorded.
            with contextlib.suppress(BaseException):
                self._step()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # -- cancel -----------------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop every running child (they end KILLED) and start no more."""
        self._cancelled.set()
        if hasattr(self, "_wake_w"):
            self._wake()  # a loop waiting for a retry's backoff sees it at once
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
        """One child in a worker thread, with its retries."""
        previous = child.retry_of
        attempt = 1
        while True:
            outcome = self._attempt(child, gpu, attempt, previous)
            if not self._should_retry(outcome):
                return outcome
            attempt += 1
            delay = self.retry.wait_before(attempt)
            self._log_retry(child, outcome.run_id, attempt, delay)
            if self._cancelled.wait(delay):
                return outcome
            previous = outcome.run_id

    def _should_retry(self, outcome: Outcome) -> bool:
        return (
            outcome.status == RunStatus.FAILED
            and outcome.run_id is not None  # no run: bad input, a retry cannot help
            and outcome.attempts <= self.retry.retries
            and not self.cancelled
        )

    def _log_retry(self, child: Child, run_id: str | None, attempt: int, delay: float) -> None:
        self.log(
            f"{child.label}: run {run_id} failed; retry {attempt - 1} of "
            f"{self.retry.retries} in {delay:g} s"
        )

    def _attempt_options(
        self, child: Child, gpu: str | None, attempt: int, previous: str | None
    ) -> tuple[RunOptions, list[str]]:
        """The options of one attempt of a child, and the list its run id is put in once the
        run is opened."""
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
        options = replace(
            child.options,
            synchronous=True,
            tags={**(child.options.tags or {}), **tags},
            extra_env=extra_env,
            reuse=child.reuse and attempt == 1,
            on_opened=opened.append,
            # One open store for every child (one database connection, caches kept), when
            # the child writes where the parent does.
            store=self.store if child.options.tracking_uri in (None, self._uri) else None,
        )
        return options, opened

    def _registering(self, handles: list[SubmittedRun]) -> Callable[[SubmittedRun], None]:
        def submitted(handle: SubmittedRun) -> None:
            handles.append(handle)
            self._register(handle)

        return submitted

    def _failed_outcome(
        self, child: Child, gpu: str | None, attempt: int, exc: Exception, run_id: str | None
    ) -> Outcome:
        status = self._recorded_status(run_id)
        message = str(exc) if isinstance(exc, ExecutionException) else repr(exc)
        return Outcome(child, run_id, status, message, attempts=attempt, gpu=gpu)

    def _attempt(
        self, child: Child, gpu: str | None, attempt: int, previous: str | None
    ) -> Outcome:
        from mlproj.api import submit
        from mlproj.orchestration.run_key import ReusedRun

        options, opened = self._attempt_options(child, gpu, attempt, previous)
        handles: list[SubmittedRun] = []
        options = replace(options, on_submitted=self._registering(handles))
        if self.cancelled:
            return Outcome(child, None, RunStatus.KILLED, "cancelled before it started", gpu=gpu)
        try:
            handle = submit(options)
        except Exception as exc:  # noqa: BLE001 - one child's failure, whatever it is, is its own
            return self._failed_outcome(child, gpu, attempt, exc, opened[0] if opened else None)
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


@record
class _Watched:
    """An attempt of a child awaited in the scheduler's loop: ended once its command has
    exited (pidfd) and its output pipe is read to the end."""

    # Compared and hashed as itself (selector data, dict keys), not by its fields.
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    child: Child
    gpu: str | None
    attempt: int
    previous: str | None  # the run this attempt retries, if any
    started: Started
    supervisor: Supervisor
    pidfd: int | None = None
    output_fd: int | None = None
    output_deadline: float = 0.0  # its command exited: when to stop waiting for its output


@record
class _Ahead:
    """The plan's next child, prepared before its slot freed (``_prepare_upcoming``)."""

    child: Child
    prepared: Prepared | None  # None: preparing it failed (it is tried again at its start)
    opened: list[str]  # its run id once opened
    handles: list[SubmittedRun]  # its handle once submitted


def _watchable(child: Child) -> bool:
    """A local child the loop can await: pidfds exist here, and no time limit is asked (the
    in-process supervisor's wait enforces that one)."""
    if not _PIDFDS:
        return False
    config = child.options.backend_config
    return not config or (isinstance(config, Mapping) and "timeout" not in config)


def _pidfds_work() -> bool:
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):  # not Linux >= 5.3
        return False
    return True


_PIDFDS = _pidfds_work()


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
