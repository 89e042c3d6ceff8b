"""Parameter sweeps: grid, random and Optuna (TPE), as trials under a parent run.

A sweep is a parent run (tag ``mlproj.kind=sweep``, the sweep as JSON in a tag and as the
artifact ``sweep.json``) and one child run per trial (``mlproj.kind=trial``,
``mlproj.trial=<n>``). Trial ``n`` of a grid is the n-th point of the grid; of a random sweep,
a draw seeded by the sweep's seed and ``n``; so ``--resume`` needs nothing but the tracking
store: it keeps the trials that ended, runs again those found killed or dead, and continues
until the run cap counts every trial. Optuna's study is kept next to the tracking data (a
journal file under the experiment's folder for local stores, else under ``MLPROJ_HOME``).
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlproj.errors import ExecutionException
from mlproj.orchestration.retry import RetryPolicy
from mlproj.orchestration.scheduler import (
    BackgroundRun,
    Child,
    Outcome,
    Scheduler,
    absolute_uri,
    adopt_parent,
    check_resumable_config,
    children_of,
    close_parent,
    open_parent,
    parent_closed_on_error,
    settle_dead_children,
    stored_config,
    stored_uri,
)
from mlproj.orchestration.space import (
    Dimension,
    IntRange,
    IntUniform,
    Uniform,
    Values,
    dimension_from_spec,
    grid_values,
    parse_dimension,
    parse_wandb_parameter,
    sample,
    value_text,
)
from mlproj.records import asdict, field, record
from mlproj.statuses import RunStatus
from mlproj.tags import (
    TAG_BEST_METRIC,
    TAG_BEST_RUN,
    TAG_CANCEL,
    TAG_ERROR,
    TAG_KIND,
    TAG_SWEEP_SPEC,
    TAG_TRIAL,
)

if TYPE_CHECKING:
    from mlproj.tracking.base import TrackingStore
    from mlproj.tracking.entities import Run

METHODS = ("grid", "random", "optuna")
GOALS = ("minimize", "maximize")
DEFAULT_RANDOM_RUNS = 10
SPEC_VERSION = 1
Log = Callable[[str], None]


def _stderr(line: str) -> None:
    from mlproj import report

    report.log(line)


@record
class SweepSpec:
    """Everything that defines a sweep; stored on the parent run, so resume needs only it."""

    uri: str
    entry_point: str = "main"
    parameters: dict[str, Dimension] = field(default_factory=dict)
    method: str = "grid"
    max_runs: int | None = None
    seed: int | None = None
    metric: str | None = None
    goal: str = "minimize"
    max_parallel: int = 1
    max_failures: int | None = None
    gpus: tuple[str, ...] = ()
    retries: int = 0
    retry_delay: float = 1.0
    reuse: bool = False
    version: str | None = None
    backend: str = "local"
    backend_config: dict[str, Any] | None = None
    env_manager: str | None = None

    def check(self) -> None:
        if self.method not in METHODS:
            raise ExecutionException(
                f"Sweep method {self.method!r} is not one of {', '.join(METHODS)}"
            )
        if self.goal not in GOALS:
            raise ExecutionException(f"Sweep goal {self.goal!r}: use minimize or maximize")
        if self.method == "optuna" and not self.metric:
            raise ExecutionException("--method optuna needs --metric NAME (the value to optimise)")
        if self.max_runs is not None and self.max_runs < 1:
            raise ExecutionException(f"--max-runs must be at least 1, got {self.max_runs}")
        if self.method == "grid":
            for name, dimension in self.parameters.items():
                grid_values(name, dimension)
        if self.max_parallel < 1:
            raise ExecutionException(f"--max-parallel must be at least 1, got {self.max_parallel}")

    @property
    def total(self) -> int:
        """How many trials the sweep runs in all."""
        if self.method == "grid":
            size = math.prod(len(grid_values(n, d)) for n, d in self.parameters.items())
            return min(size, self.max_runs) if self.max_runs else size
        return self.max_runs or DEFAULT_RANDOM_RUNS

    def to_json(self) -> str:
        data = asdict(self)
        data["v"] = SPEC_VERSION
        data["parameters"] = {n: d.spec() for n, d in self.parameters.items()}
        data["gpus"] = list(self.gpus)
        data["uri"] = stored_uri(self.uri)
        data["backend_config"] = stored_config(self.backend_config)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SweepSpec:
        data = json.loads(text)
        data.pop("v", None)
        data["parameters"] = {
            n: dimension_from_spec(n, d) for n, d in data.get("parameters", {}).items()
        }
        data["gpus"] = tuple(data.get("gpus", ()))
        return cls(**data)


def parse_cli_parameters(pairs: Mapping[str, str]) -> dict[str, Dimension]:
    return {name: parse_dimension(name, text) for name, text in pairs.items()}


def python_parameters(parameters: Mapping[str, object]) -> dict[str, Dimension]:
    """``mlproj.sweep(parameters=...)``: a list is a grid axis, a string a ``-P`` spec, a
    Values/IntRange/Uniform/IntUniform as it is, anything else one fixed value."""
    out: dict[str, Dimension] = {}
    for name, value in parameters.items():
        if isinstance(value, (Values, IntRange, Uniform, IntUniform)):
            out[name] = value
        elif isinstance(value, (list, tuple, range)):
            out[name] = Values(tuple(value_text(v) for v in value))
        elif isinstance(value, str):
            out[name] = parse_dimension(name, value, where="parameters")
        else:
            out[name] = Values((value_text(value),))
    return out


def load_sweep_file(path: str | Path) -> dict[str, Any]:
    """A sweep file in W&B's shape -> SweepSpec fields (the command line may override them).

    Keys: ``method`` (grid, random, bayes = optuna, optuna), ``metric: {name, goal}``,
    ``parameters``, ``run_cap``; mlproj's own: ``entry_point``, ``max_parallel``, ``seed``,
    ``max_failures``."""
    import yaml

    where = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ExecutionException(f"Cannot read sweep file {where}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ExecutionException(f"Sweep file {where} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ExecutionException(f"Sweep file {where}: expected a mapping at the top")
    known = {
        "method",
        "metric",
        "parameters",
        "run_cap",
        "entry_point",
        "max_parallel",
        "seed",
        "max_failures",
        "name",
        "description",
        "program",
        "project",
        "command",
    }
    for key in data:
        if key not in known:
            raise ExecutionException(f"Sweep file {where}: unknown key {key!r}")
    fields: dict[str, Any] = {}
    if "method" in data:
        method = str(data["method"])
        fields["method"] = "optuna" if method == "bayes" else method
    fields.update(_metric_and_parameters(data, where))
    for key, target in (
        ("run_cap", "max_runs"),
        ("max_parallel", "max_parallel"),
        ("seed", "seed"),
        ("max_failures", "max_failures"),
    ):
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ExecutionException(
                    f"Sweep file {where}: {key}: expected an integer, got {value!r}"
                )
            fields[target] = value
    if "entry_point" in data:
        fields["entry_point"] = str(data["entry_point"])
    return fields


def _metric_and_parameters(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    metric = data.get("metric")
    if metric is not None:
        if not isinstance(metric, dict) or "name" not in metric:
            raise ExecutionException(f"Sweep file {where}: metric: expected {{name, goal}}")
        fields["metric"] = str(metric["name"])
        fields["goal"] = str(metric.get("goal", "minimize"))
    params = data.get("parameters") or {}
    if not isinstance(params, dict):
        raise ExecutionException(f"Sweep file {where}: parameters: expected a mapping")
    fields["parameters"] = {
        str(n): parse_wandb_parameter(str(n), d, where) for n, d in params.items()
    }
    return fields


# -- trials -------------------------------------------------------------------------------------
@record
class Trial:
    number: int
    params: dict[str, str]
    run_id: str | None = None
    status: str = RunStatus.SCHEDULED
    value: float | None = None
    error: str | None = None
    reused: bool = False


def trial_params(
    spec: SweepSpec, number: int, axes: Sequence[Sequence[str]] | None = None
) -> dict[str, str]:
    """Trial ``number``'s parameters for grid and random sweeps (deterministic); ``axes``:
    the grid's values per parameter, when already listed."""
    if spec.method == "grid":
        if axes is None:
            axes = [grid_values(n, d) for n, d in spec.parameters.items()]
        point = []
        for values in reversed(axes):  # the number in mixed radix: the last axis runs fastest
            number, index = divmod(number, len(values))
            point.append(values[index])
        return dict(zip(spec.parameters, reversed(point), strict=True))
    import random  # here: a grid sweep never needs it

    rng = random.Random(f"{spec.seed}:{number}")  # noqa: S311 - sampling, not secrets
    return {name: sample(d, rng) for name, d in spec.parameters.items()}


class Sweep(BackgroundRun):
    """A sweep being run: start it, wait for it, cancel it; see the best trial and the runs."""

    _thread_name = "mlproj-sweep"

    def __init__(
        self,
        spec: SweepSpec,
        store: TrackingStore,
        parent_run_id: str,
        experiment_id: str,
        *,
        tracking_uri: str | None,
        done: Mapping[int, Trial] | None = None,
        redo: Mapping[int, str] | None = None,
        log: Log = _stderr,
        progress: bool = False,
    ) -> None:
        self.spec = spec
        self.store = store
        self.parent_run_id = parent_run_id
        self.experiment_id = experiment_id
        self.tracking_uri = tracking_uri
        self.trials: dict[int, Trial] = dict(done or {})
        self._redo = dict(redo or {})  # trial number -> the killed/dead run it replaces
        self.log = log
        # Failed trials, and trials cancelled alone (KILLED, not to run again) count.
        self.failures = sum(
            1
            for n, t in self.trials.items()
            if t.status == RunStatus.FAILED
            or (t.status == RunStatus.KILLED and n not in self._redo)
        )
        self.status: str = RunStatus.RUNNING
        self.error: str | None = None
        self._progress = progress
        super().__init__()
        self.scheduler = Scheduler(
            store,
            parent_run_id,
            max_parallel=spec.max_parallel,
            retry=RetryPolicy(spec.retries, spec.retry_delay),
            gpus=spec.gpus,
            log=log,
            on_change=self._show_progress if progress else None,
        )
        from mlproj.api import ProjectSnapshot

        self._snapshot = ProjectSnapshot()  # one version of the project for every trial
        self._axes: list[list[str]] | None = None
        if spec.method == "grid":
            self._axes = [list(grid_values(n, d)) for n, d in spec.parameters.items()]
        self._pending = self._todo()
        # upcoming(): the next trial's number, parameters and child
        self._foreseen: tuple[int, dict[str, str], Child] | None = None
        self._optuna: _OptunaSampler | None = None
        if spec.method == "optuna":
            self._optuna = _OptunaSampler(self)

    # -- what to run -------------------------------------------------------------------------
    def _todo(self) -> list[int]:
        if self.spec.method == "optuna":
            return sorted(self._redo)
        kept = {n for n, t in self.trials.items() if n not in self._redo}
        return [n for n in range(self.spec.total) if n not in kept]

    def _stopped(self) -> bool:
        limit = self.spec.max_failures
        return limit is not None and self.failures >= limit

    def upcoming(self) -> Child | None:
        """The next grid or random trial, known before a slot frees (an optuna trial is not:
        its parameters are asked once a slot is free, knowing every result so far)."""
        if self._optuna is not None or not self._pending or self._stopped():
            return None
        number = self._pending[0]
        if self._foreseen is None or self._foreseen[0] != number:
            params = trial_params(self.spec, number, self._axes)
            self._foreseen = (number, params, self._child(number, params))
        return self._foreseen[2]

    def next_children(self, slots: int) -> list[Child]:
        children: list[Child] = []
        while len(children) < slots and not self._stopped():
            if self._pending:
                number = self._pending.pop(0)
                if self._foreseen is not None and self._foreseen[0] == number:
                    _, params, child = self._foreseen
                    self._foreseen = None
                    self.trials[number] = Trial(number, params, status=RunStatus.RUNNING)
                    self._redo.pop(number, None)
                    children.append(child)
                    continue
                if self._optuna is not None:  # a killed or dead trial, asked again as it was
                    params = self._optuna.ask_again(number, self.trials[number].params)
                else:
                    params = trial_params(self.spec, number, self._axes)
            elif self._optuna is not None:
                asked = self._optuna.ask()
                if asked is None:
                    break
                number, params = asked
            else:
                break
            self.trials[number] = Trial(number, params, status=RunStatus.RUNNING)
            children.append(self._child(number, params))
            self._redo.pop(number, None)
        return children

    def _child(self, number: int, params: dict[str, str]) -> Child:
        from mlproj.api import RunOptions

        spec = self.spec
        options = RunOptions(
            uri=spec.uri,
            entry_point=spec.entry_point,
            version=spec.version,
            parameters=params,
            experiment_id=self.experiment_id,
            backend=spec.backend,
            backend_config=spec.backend_config,
            env_manager=spec.env_manager,
            run_name=f"trial-{number}",
            tracking_uri=self.tracking_uri,
            log=lambda line: None,
            snapshot=self._snapshot,
        )
        return Child(
            label=f"trial {number}",
            options=options,
            tags={TAG_KIND: "trial", TAG_TRIAL: str(number)},
            reuse=spec.reuse,
            retry_of=self._redo.get(number),
            log_only=True,  # parallel trials' output is kept in their logs, not interleaved here
        )

    def child_done(self, outcome: Outcome) -> None:
        number = int(outcome.child.tags[TAG_TRIAL])
        trial = self.trials[number]
        trial.run_id, trial.status, trial.reused = outcome.run_id, outcome.status, outcome.reused
        trial.error = outcome.error
        if outcome.status == RunStatus.FINISHED and self.spec.metric and outcome.run_id:
            trial.value = self.store.get_run(outcome.run_id).metrics.get(self.spec.metric)
        if outcome.status == RunStatus.FAILED:
            self.failures += 1
            self.log(f"trial {number} failed: {outcome.error or 'see its run'}")
        elif outcome.status == RunStatus.KILLED and not self.scheduler.cancelled:
            # This trial alone was cancelled (`mlproj runs cancel <trial>`): the sweep goes
            # on, the trial is not retried, and it counts towards --max-failures.
            self.failures += 1
            self.log(f"trial {number} cancelled (run {outcome.run_id})")
        if self._optuna is not None:
            self._optuna.tell(number, trial)

    # -- running -----------------------------------------------------------------------------
    def run(self) -> str:
        """Run to the end in this thread; return the parent's final status."""
        with parent_closed_on_error(self.store, self.parent_run_id):
            try:
                self.scheduler.run(self)
            finally:
                self._end_progress()
            self.status, self.error = self._final_status()
            best = self.best_trial
            if best is not None and best.run_id and best.value is not None:
                self.store.set_tags(
                    self.parent_run_id,
                    {TAG_BEST_RUN: best.run_id, TAG_BEST_METRIC: repr(best.value)},
                )
            close_parent(self.store, self.parent_run_id, self.status, self.error)
        return self.status

    def _final_status(self) -> tuple[str, str | None]:
        if self.scheduler.cancelled:
            return RunStatus.KILLED, "cancelled"
        if self._stopped():
            return RunStatus.FAILED, f"{self.failures} trials failed (--max-failures)"
        finished = [t for t in self.trials.values() if t.status == RunStatus.FINISHED]
        if self.trials and not finished:
            return RunStatus.FAILED, "every trial failed"
        return RunStatus.FINISHED, None

    def cancel(self) -> None:
        """Stop every running trial (KILLED); the parent ends KILLED."""
        self.scheduler.cancel()
        if self._thread is not None:
            self._thread.join()
            if self.store.get_run_status(self.parent_run_id) == RunStatus.RUNNING:
                close_parent(self.store, self.parent_run_id, RunStatus.KILLED, "cancelled")
            self.status = RunStatus.KILLED

    # -- results -----------------------------------------------------------------------------
    @property
    def best_trial(self) -> Trial | None:
        scored = [t for t in self.trials.values() if t.value is not None and t.status == "FINISHED"]
        if not scored:
            return None
        pick = min if self.spec.goal == "minimize" else max
        return pick(scored, key=lambda t: t.value if t.value is not None else math.inf)

    @property
    def best_run(self) -> Run | None:
        best = self.best_trial
        return self.store.get_run(best.run_id) if best and best.run_id else None

    @property
    def runs(self) -> list[Run]:
        """Every child run of the parent, oldest first."""
        return children_of(self.store, self.store.get_run(self.parent_run_id))

    def ranked(self) -> list[Trial]:
        """Trials best first: scored ones by the metric, then the others by number."""
        reverse = self.spec.goal == "maximize"
        scored = sorted(
            (t for t in self.trials.values() if t.value is not None),
            key=lambda t: t.value if t.value is not None else 0.0,
            reverse=reverse,
        )
        rest = sorted((t for t in self.trials.values() if t.value is None), key=lambda t: t.number)
        return scored + rest

    def counts(self) -> tuple[int, int, int]:
        """(ended, running, failed)."""
        ended = sum(1 for t in self.trials.values() if t.status in ("FINISHED", "FAILED", "KILLED"))
        running = sum(1 for t in self.trials.values() if t.status == RunStatus.RUNNING)
        return ended, running, self.failures

    def _show_progress(self) -> None:
        ended, running, failed = self.counts()
        line = f"sweep {ended}/{self.spec.total} done, {running} running, {failed} failed"
        best = self.best_trial
        if best is not None:
            line += f"; best {self.spec.metric}={best.value:g} (trial {best.number})"
        sys.stderr.write(f"\r\x1b[2K{line}")
        sys.stderr.flush()

    def _end_progress(self) -> None:
        if self._progress:
            self._show_progress()
            sys.stderr.write("\n")


# -- Optuna -------------------------------------------------------------------------------------
class _OptunaSampler:
    """Ask/tell against a seeded TPE study stored next to the tracking data."""

    def __init__(self, sweep: Sweep) -> None:
        try:
            import optuna
        except ImportError:
            raise ExecutionException(
                "--method optuna needs Optuna: pip install 'mlproj[optuna]'"
            ) from None
        from optuna.storages.journal import JournalFileBackend

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.sweep = sweep
        spec = sweep.spec
        self.fixed = {
            n: d.values[0]
            for n, d in spec.parameters.items()
            if isinstance(d, Values) and len(d.values) == 1
        }
        self.distributions = {
            n: _optuna_distribution(d) for n, d in spec.parameters.items() if n not in self.fixed
        }
        storage = optuna.storages.JournalStorage(JournalFileBackend(str(study_path(sweep))))
        self.study = optuna.create_study(
            study_name=f"mlproj-{sweep.parent_run_id}",
            storage=storage,
            sampler=optuna.samplers.TPESampler(seed=spec.seed),
            direction="maximize" if spec.goal == "maximize" else "minimize",
            load_if_exists=True,
        )
        # A trial asked but never told: its process died with the sweep. Fail it in the study.
        for frozen in self.study.get_trials(deepcopy=False):
            if frozen.state == optuna.trial.TrialState.RUNNING:
                self.study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
        self._asked: dict[int, Any] = {}  # our trial number -> optuna trial
        self._next = max(sweep.trials, default=-1) + 1

    def _counted(self) -> int:
        trials = self.sweep.trials.values()
        return sum(1 for t in trials if t.status in ("FINISHED", "FAILED", "RUNNING"))

    def ask(self) -> tuple[int, dict[str, str]] | None:
        if self._counted() >= self.sweep.spec.total:
            return None
        trial = self.study.ask(self.distributions)
        number = self._next
        self._next += 1
        self._asked[number] = trial
        params = {**self.fixed, **{n: _optuna_text(v) for n, v in trial.params.items()}}
        return number, params

    def ask_again(self, number: int, params: Mapping[str, str]) -> dict[str, str]:
        """A trial to run again with the same values (resume), told to the study as new."""
        self.study.enqueue_trial(
            {
                n: _optuna_value(self.distributions[n], v)
                for n, v in params.items()
                if n in self.distributions
            }
        )
        self._asked[number] = self.study.ask(self.distributions)
        return {**self.fixed, **params}

    def tell(self, number: int, trial: Trial) -> None:
        import optuna

        asked = self._asked.pop(number, None)
        if asked is None:
            return  # a trial re-run on resume: it was told (failed) before
        if trial.status == RunStatus.FINISHED and trial.value is not None:
            self.study.tell(asked, trial.value)
        else:
            if trial.status == RunStatus.FINISHED:
                self.sweep.log(
                    f"trial {number} logged no metric {self.sweep.spec.metric!r}; Optuna counts "
                    "it as failed"
                )
            self.study.tell(asked, state=optuna.trial.TrialState.FAIL)


def _optuna_distribution(dimension: Dimension) -> Any:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if isinstance(dimension, Values):
        return CategoricalDistribution(list(dimension.values))
    if isinstance(dimension, IntRange):
        if dimension.step > 0:
            last = (
                dimension.start
                + (len(range(dimension.start, dimension.stop, dimension.step)) - 1) * dimension.step
            )
            return IntDistribution(dimension.start, last, step=dimension.step)
        return CategoricalDistribution(list(dimension.values))
    if isinstance(dimension, IntUniform):
        return IntDistribution(dimension.low, dimension.high)
    return FloatDistribution(dimension.low, dimension.high, log=dimension.log)


def _optuna_value(distribution: Any, text: str) -> object:
    """A parameter's text as the value type of its Optuna distribution."""
    from optuna.distributions import FloatDistribution, IntDistribution

    if isinstance(distribution, IntDistribution):
        return int(text)
    if isinstance(distribution, FloatDistribution):
        return float(text)
    return text


def _optuna_text(value: object) -> str:
    if isinstance(value, float):
        return repr(value)
    return value_text(value)


def study_path(sweep: Sweep) -> Path:
    """Where the Optuna study of a sweep is kept: beside the runs of its experiment for a
    local file store (a hidden folder MLflow skips), else under ``MLPROJ_HOME``."""
    from mlproj.home import home_subdir

    folder: Path | None = None
    root = getattr(sweep.store, "root", None)
    if isinstance(root, Path):
        folder = root / sweep.experiment_id / ".mlproj-optuna"
    if folder is None:
        folder = home_subdir("optuna")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{sweep.parent_run_id}.journal"


# -- starting and resuming ---------------------------------------------------------------------
def _check_project(spec: SweepSpec, log: Log) -> None:
    """Before the parent opens: the project loads, the entry point exists, and every listed
    value passes the declared parameter's type, choices and bounds. Undeclared names get the
    one warning ``mlproj run`` gives (not one per trial: trials run quietly)."""
    from mlproj.api import undeclared_parameters_message
    from mlproj.sources import fetch_project
    from mlproj.spec.project import load_project
    from mlproj.spec.types import InvalidValue, check_value

    fetched = fetch_project(spec.uri, spec.version)
    project = load_project(fetched.directory)
    entry = project.get_entry_point(spec.entry_point)
    undeclared = {name: "..." for name in spec.parameters if name not in entry.parameters}
    if undeclared and spec.entry_point in project.entry_points:  # a script takes any
        log("warning: " + undeclared_parameters_message(entry, undeclared))
    for name, dimension in spec.parameters.items():
        declared = entry.parameters.get(name)
        if declared is None or not isinstance(dimension, (Values, IntRange)):
            continue
        for value in dimension.values:
            try:
                check_value(declared, value)
            except InvalidValue as exc:
                raise ExecutionException(
                    f"Sweep parameter {name}={value!r} for entry point {spec.entry_point!r} "
                    f"({project.describe()}): {exc}"
                ) from None


def start_sweep(
    spec: SweepSpec,
    *,
    experiment_name: str | None = None,
    experiment_id: str | None = None,
    tracking_uri: str | None = None,
    run_name: str | None = None,
    log: Log = _stderr,
    progress: bool = False,
) -> Sweep:
    """Check the sweep, open its parent run and return the :class:`Sweep` (not yet running)."""
    from mlproj.tracking import get_store

    spec.uri = absolute_uri(spec.uri)
    if spec.method != "grid" and spec.seed is None:
        import random

        spec.seed = random.SystemRandom().randrange(2**31)  # stored: resume draws the same
    spec.check()
    if spec.method == "optuna":
        try:
            import optuna  # noqa: F401 - checked before the parent opens
        except ImportError:
            raise ExecutionException(
                "--method optuna needs Optuna: pip install 'mlproj[optuna]'"
            ) from None
    _check_project(spec, log)
    store = get_store(tracking_uri)
    experiment = store.resolve_experiment(experiment_name, experiment_id)
    text = spec.to_json()
    if len(text) > 8000:
        raise ExecutionException("The sweep spec is longer than 8000 characters; use fewer values")
    parent = open_parent(
        store,
        experiment,
        kind="sweep",
        run_name=run_name or f"sweep-{spec.entry_point}",
        tags={TAG_SWEEP_SPEC: text},
    )
    with parent_closed_on_error(store, parent):
        from mlproj.home import home_subdir

        # Written beside the parent's other local files (not with tempfile, whose import
        # costs a sweep's start more than the write), then copied into the run.
        folder = home_subdir("logs") / parent
        folder.mkdir(exist_ok=True)
        path = folder / "sweep.json"
        path.write_text(json.dumps(json.loads(text), indent=2))
        try:
            store.log_artifact(parent, path)
        finally:
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folder.rmdir()
        log(
            f"sweep {parent}: {spec.total} trials ({spec.method}), up to {spec.max_parallel} "
            "at a time"
        )
        return Sweep(
            spec, store, parent, experiment, tracking_uri=tracking_uri, log=log, progress=progress
        )


def resume_sweep(
    parent_run_id: str,
    *,
    tracking_uri: str | None = None,
    log: Log = _stderr,
    progress: bool = False,
    max_parallel: int | None = None,
    backend_config: Mapping[str, Any] | None = None,
) -> Sweep:
    """Continue a sweep from what the tracking store holds (see the module docstring)."""
    from mlproj.tracking import get_store

    store = get_store(tracking_uri)
    parent = store.get_run(parent_run_id)
    text = parent.tags.get(TAG_SWEEP_SPEC)
    if parent.tags.get(TAG_KIND) != "sweep" or not text:
        raise ExecutionException(f"Run '{parent_run_id}' is not the parent run of a sweep")
    spec = SweepSpec.from_json(text)
    if max_parallel is not None:
        spec.max_parallel = max_parallel
    if backend_config is not None:
        spec.backend_config = dict(backend_config)
    check_resumable_config(spec.backend_config, parent_run_id)
    children = children_of(store, parent)
    dead = settle_dead_children(store, children)
    adopt_parent(store, parent)
    done: dict[int, Trial] = {}
    redo: dict[int, str] = {}
    for run in children:  # oldest first: a later try of a trial replaces an earlier one
        number = int(run.tags.get(TAG_TRIAL, "-1"))
        if number < 0:
            continue
        status = RunStatus.FAILED if run.run_id in dead else run.info.status
        params = {k: run.params[k] for k in spec.parameters if k in run.params}
        trial = Trial(number, params, run.run_id, status, error=run.tags.get(TAG_ERROR))
        if spec.metric and status == RunStatus.FINISHED:
            trial.value = run.metrics.get(spec.metric)
        done[number] = trial
        # KILLED with the whole sweep: run again; KILLED alone (runs cancel <trial>): kept.
        if run.run_id in dead or (status == RunStatus.KILLED and TAG_CANCEL not in run.tags):
            redo[number] = run.run_id
        else:
            redo.pop(number, None)
    kept = sum(1 for n in done if n not in redo)
    log(f"resuming sweep {parent_run_id}: {kept} trials kept, {len(redo)} to run again")
    return Sweep(
        spec,
        store,
        parent_run_id,
        parent.info.experiment_id,
        tracking_uri=tracking_uri,
        done=done,
        redo=redo,
        log=log,
        progress=progress,
    )


def sweep(
    uri: str,
    entry_point: str = "main",
    parameters: Mapping[str, object] | None = None,
    *,
    method: str = "grid",
    max_runs: int | None = None,
    seed: int | None = None,
    metric: str | None = None,
    goal: str = "minimize",
    max_parallel: int = 1,
    max_failures: int | None = None,
    gpus: Sequence[str | int] = (),
    retries: int = 0,
    retry_delay: float = 1.0,
    reuse: bool = False,
    version: str | None = None,
    backend: str = "local",
    backend_config: Mapping[str, Any] | None = None,
    env_manager: str | None = None,
    experiment_name: str | None = None,
    experiment_id: str | None = None,
    tracking_uri: str | None = None,
    run_name: str | None = None,
    synchronous: bool = False,
) -> Sweep:
    """Start a sweep of ``entry_point`` over ``parameters``; see ``mlproj sweep --help``.

    Returns a :class:`Sweep`: ``wait()``, ``best_run``, ``runs``, ``cancel()``. With
    ``synchronous=True`` it returns once the sweep has ended."""
    spec = SweepSpec(
        uri=uri,
        entry_point=entry_point,
        parameters=python_parameters(parameters or {}),
        method=method,
        max_runs=max_runs,
        seed=seed,
        metric=metric,
        goal=goal,
        max_parallel=max_parallel,
        max_failures=max_failures,
        gpus=tuple(str(g) for g in gpus),
        retries=retries,
        retry_delay=retry_delay,
        reuse=reuse,
        version=version,
        backend=backend,
        backend_config=dict(backend_config) if backend_config else None,
        env_manager=env_manager,
    )
    running = start_sweep(
        spec,
        experiment_name=experiment_name,
        experiment_id=experiment_id,
        tracking_uri=tracking_uri,
        run_name=run_name,
        log=lambda line: None,
    )
    return running.launch(synchronous)


def summary_rows(result: Sweep) -> list[tuple[str, ...]]:
    """The end-of-sweep table, best first."""
    rows: list[tuple[str, ...]] = []
    for trial in result.ranked():
        value = "-" if trial.value is None else f"{trial.value:.6g}"
        params = " ".join(f"{k}={v}" for k, v in trial.params.items())
        status = f"{trial.status} (reused)" if trial.reused else str(trial.status)
        rows.append((str(trial.number), trial.run_id or "-", status, value, params))
    return rows
