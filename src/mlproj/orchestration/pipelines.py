"""Pipelines declared in the MLproject, run as steps under a parent run.

MLflow ignores top-level keys it does not know, so ``mlflow run`` still loads the file::

    pipelines:
      train_eval:
        parameters:
          rows: {type: int, default: 100}
        steps:
          prepare:
            entry_point: prepare
            parameters: {rows: "${params.rows}"}
          train:
            entry_point: train
            parameters: {data: "${steps.prepare.artifact_uri}/data/data.csv"}
          evaluate:
            entry_point: evaluate
            parameters: {model_run: "${steps.train.run_id}"}
            depends_on: [prepare]

A step runs an entry point of this project, or of another project (``uri``, ``version``).
Its parameters may use ``${params.NAME}`` (the pipeline's parameters) and
``${steps.STEP.run_id}``, ``${steps.STEP.artifact_uri}`` (the resolved artifact URI) or
``${steps.STEP.runs_uri}`` (``runs:/<run id>``) of an earlier step; ``$$`` is a literal ``$``.
A step depends on the steps it refers to and on those in ``depends_on``. Independent steps
run in parallel; a failed step stops what depends on it, not its siblings. Every step is
reused when a FINISHED run has its key, so running a pipeline again runs only what changed.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
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
from mlproj.statuses import RunStatus
from mlproj.tags import (
    TAG_KIND,
    TAG_PIPELINE_SPEC,
    TAG_PIPELINE_STEP_PREFIX,
    TAG_STEP,
    TAG_UPSTREAM,
)

if TYPE_CHECKING:
    from mlproj.spec.types import Parameter
    from mlproj.tracking.base import TrackingStore
    from mlproj.tracking.entities import Run

PIPELINES_KEY = "pipelines"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")
_REFERENCE = re.compile(r"\$\$|\$\{\s*([^}]*?)\s*\}")
_STEP_FIELDS = ("run_id", "artifact_uri", "runs_uri")
Log = Callable[[str], None]


def _stderr(line: str) -> None:
    from mlproj import report

    report.log(line)


@dataclass(frozen=True)
class Step:
    name: str
    entry_point: str
    parameters: dict[str, str]  # templates
    depends_on: tuple[str, ...]  # explicit and inferred from the references
    uri: str | None = None  # another project; None: the pipeline's own
    version: str | None = None


@dataclass(frozen=True)
class Pipeline:
    name: str
    parameters: dict[str, Parameter]
    steps: dict[str, Step]  # in declaration order
    source: Path  # the MLproject file

    def order(self) -> list[str]:
        """Steps in an order where each comes after what it depends on."""
        placed: list[str] = []
        seen: set[str] = set()
        for name in self.steps:
            self._place(name, placed, seen, ())
        return placed

    def _place(self, name: str, placed: list[str], seen: set[str], path: tuple[str, ...]) -> None:
        if name in seen:
            return
        if name in path:
            cycle = " -> ".join((*path[path.index(name) :], name))
            raise ExecutionException(
                f"{self.source}: pipelines.{self.name}: the steps depend on each other in a "
                f"cycle: {cycle}"
            )
        for dependency in self.steps[name].depends_on:
            self._place(dependency, placed, seen, (*path, name))
        seen.add(name)
        placed.append(name)

    def downstream(self, start: str) -> set[str]:
        """``start`` and every step that depends on it, directly or not."""
        found = {start}
        for name in self.order():
            if found.intersection(self.steps[name].depends_on):
                found.add(name)
        return found

    def resolve_parameters(self, given: Mapping[str, object]) -> dict[str, str]:
        from mlproj.spec.types import InvalidValue, check_value

        unknown = sorted(set(given) - set(self.parameters))
        if unknown:
            from mlproj.report import closest

            match = closest(unknown[0], self.parameters)
            raise ExecutionException(
                f"Pipeline {self.name!r} ({self.source}) has no parameter {unknown[0]!r}"
                + (f" (did you mean {match!r}?)" if match else "")
                + f"; its parameters: {', '.join(self.parameters) or 'none'}"
            )
        values: dict[str, str] = {}
        for name, declared in self.parameters.items():
            value = given.get(name, declared.default)
            if value is None:
                raise ExecutionException(
                    f"Pipeline {self.name!r} ({self.source}) needs parameter {name!r}: "
                    f"-P {name}=VALUE"
                )
            try:
                values[name] = check_value(declared, value)
            except InvalidValue as exc:
                raise ExecutionException(
                    f"Pipeline {self.name!r} ({self.source}): parameter {name!r}: {exc}"
                ) from None
        return values

    def describe(self) -> str:
        """The DAG as text, one line per step in run order."""
        params = ", ".join(
            f"{n}={p.default}" if p.default is not None else n for n, p in self.parameters.items()
        )
        lines = [f"pipeline {self.name}" + (f" (parameters: {params})" if params else "")]
        order = self.order()
        width = max((len(n) for n in order), default=0)
        for name in order:
            step = self.steps[name]
            target = f"{step.uri}@{step.version}" if step.version else (step.uri or "")
            what = f"entry point {step.entry_point}" + (f" of {target}" if target else "")
            after = f"  <- {', '.join(step.depends_on)}" if step.depends_on else ""
            lines.append(f"  {name:<{width}}  {what}{after}")
        return "\n".join(lines)


# -- loading ------------------------------------------------------------------------------------
def load_pipelines(project_dir: Path) -> dict[str, Pipeline]:
    """Every pipeline of the project's MLproject (none when the key is absent)."""
    from mlproj.spec import project as spec_project

    spec_path = spec_project.load_project(project_dir).spec_path
    if spec_path is None:
        return {}
    # The loader's YAML reading and parameter parsing, for the same error messages.
    spec, data = spec_project._parse_yaml(spec_path)
    raw = data.get(PIPELINES_KEY)
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise spec.error((PIPELINES_KEY,), "expected a mapping of pipeline names to pipelines")
    return {
        str(name): _parse_pipeline(spec, spec_path, str(name), decl) for name, decl in raw.items()
    }


def _parse_pipeline(spec: Any, source: Path, name: str, decl: object) -> Pipeline:

    keys: tuple[str, ...] = (PIPELINES_KEY, name)
    if not _NAME.match(name):
        raise spec.error(keys, "pipeline names use letters, digits, _ and -")
    if not isinstance(decl, Mapping):
        raise spec.error(keys, "expected a mapping with parameters and steps")
    for key in decl:
        if key not in ("parameters", "steps", "description"):
            raise spec.error((*keys, str(key)), "unknown key; use parameters and steps")
    parameters = _pipeline_parameters(spec, keys, decl.get("parameters") or {})
    raw_steps = decl.get("steps")
    if not isinstance(raw_steps, Mapping) or not raw_steps:
        raise spec.error((*keys, "steps"), "expected a mapping of step names to steps")
    steps = {
        str(sname): _parse_step(spec, (*keys, "steps", str(sname)), str(sname), sdecl)
        for sname, sdecl in raw_steps.items()
    }
    _check_references(spec, keys, parameters, steps)
    pipeline = Pipeline(name, parameters, steps, source)
    pipeline.order()  # a cycle is an error now, before any run
    return pipeline


def _check_references(
    spec: Any, keys: tuple[str, ...], parameters: Mapping[str, Parameter], steps: dict[str, Step]
) -> None:
    for step in steps.values():
        skeys = (*keys, "steps", step.name)
        for dependency in step.depends_on:
            if dependency not in steps:
                raise spec.error(skeys, f"refers to step {dependency!r}, which is not declared")
            if dependency == step.name:
                raise spec.error(skeys, "a step cannot depend on itself")
        for pname, template in step.parameters.items():
            for kind, ref, _ in references(template):
                if kind == "params" and ref not in parameters:
                    raise spec.error(
                        (*skeys, "parameters", pname),
                        f"${{params.{ref}}}: the pipeline has no parameter {ref!r}",
                    )


def _pipeline_parameters(spec: Any, keys: tuple[str, ...], raw: object) -> dict[str, Parameter]:
    from mlproj.spec import project as spec_project

    if not isinstance(raw, Mapping):
        raise spec.error((*keys, "parameters"), "expected a mapping")
    parameters: dict[str, Parameter] = {}
    reader = spec_project._Reader(spec, strict=True)  # the loader's own parameter rules
    for pname, pdecl in raw.items():
        pkeys = (*keys, "parameters", str(pname))
        # `rows: 100` is a default (of a string parameter); `rows: int` a type, as in MLflow.
        decl = pdecl if isinstance(pdecl, (Mapping, str)) else {"default": pdecl}
        parameters[str(pname)] = reader.parse_parameter(pkeys, str(pname), decl, "")
    return parameters


def _parse_step(spec: Any, keys: tuple[str, ...], name: str, decl: object) -> Step:
    if not _NAME.match(name):
        raise spec.error(keys, "step names use letters, digits, _ and -")
    if not isinstance(decl, Mapping):
        raise spec.error(keys, "expected a mapping with entry_point and parameters")
    for key in decl:
        if key not in ("entry_point", "parameters", "depends_on", "uri", "version"):
            raise spec.error(
                (*keys, str(key)),
                "unknown key; use entry_point, parameters, depends_on, uri, version",
            )
    entry_point = decl.get("entry_point", "main")
    if not isinstance(entry_point, str) or not entry_point:
        raise spec.error((*keys, "entry_point"), "expected an entry point name")
    raw_params = decl.get("parameters") or {}
    if not isinstance(raw_params, Mapping):
        raise spec.error((*keys, "parameters"), "expected a mapping")
    from mlproj.orchestration.space import value_text

    parameters = {str(k): value_text(v) for k, v in raw_params.items()}
    depends = decl.get("depends_on") or []
    if isinstance(depends, str):
        depends = [depends]
    if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
        raise spec.error((*keys, "depends_on"), "expected a list of step names")
    inferred: list[str] = []
    for pname, template in parameters.items():
        try:
            found = list(references(template))
        except ExecutionException as exc:
            raise spec.error((*keys, "parameters", pname), str(exc)) from None
        inferred += [ref for kind, ref, _ in found if kind == "steps"]
    uri, version = decl.get("uri"), decl.get("version")
    for key, value in (("uri", uri), ("version", version)):
        if value is not None and not isinstance(value, str):
            raise spec.error((*keys, key), "expected a string")
    return Step(
        name=name,
        entry_point=entry_point,
        parameters=parameters,
        depends_on=tuple(dict.fromkeys([*depends, *inferred])),
        uri=uri,
        version=version,
    )


def references(template: str) -> Iterable[tuple[str, str, str]]:
    """(``params`` | ``steps``, name, field) of every ``${...}`` in ``template``."""
    for match in _REFERENCE.finditer(template):
        if match.group(0) == "$$":
            continue
        parts = match.group(1).split(".")
        if len(parts) == 2 and parts[0] == "params":
            yield "params", parts[1], ""
        elif len(parts) == 3 and parts[0] == "steps" and parts[2] in _STEP_FIELDS:
            yield "steps", parts[1], parts[2]
        else:
            raise ExecutionException(
                f"unknown reference ${{{match.group(1)}}}; use ${{params.NAME}} or "
                f"${{steps.STEP.run_id|artifact_uri|runs_uri}}"
            )


def render(template: str, params: Mapping[str, str], outputs: Mapping[str, Run]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        parts = match.group(1).split(".")
        if parts[0] == "params":
            return params[parts[1]]
        run = outputs[parts[1]]
        if parts[2] == "run_id":
            return run.run_id
        if parts[2] == "artifact_uri":
            return run.info.artifact_uri
        return f"runs:/{run.run_id}"

    return _REFERENCE.sub(substitute, template)


# -- running ------------------------------------------------------------------------------------
@dataclass
class PipelineSpec:
    """What a pipeline run is: stored on the parent run, so resume needs only the store."""

    uri: str
    name: str
    parameters: dict[str, str] = field(default_factory=dict)
    version: str | None = None
    from_step: str | None = None
    force: bool = False
    max_parallel: int = 1
    retries: int = 0
    retry_delay: float = 1.0
    backend: str = "local"
    backend_config: dict[str, Any] | None = None
    env_manager: str | None = None

    def to_json(self) -> str:
        data = {**self.__dict__, "uri": stored_uri(self.uri)}
        data["backend_config"] = stored_config(self.backend_config)
        return json.dumps({"v": 1, **data}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PipelineSpec:
        data = json.loads(text)
        data.pop("v", None)
        return cls(**data)


@dataclass
class StepState:
    status: str = "PENDING"  # PENDING, RUNNING, FINISHED, FAILED, KILLED, NOT RUN
    run: Run | None = None
    reused: bool = False
    error: str | None = None


class PipelineRun(BackgroundRun):
    """A pipeline being run under its parent run: ``run()``/``wait()``, ``cancel()``, ``steps``."""

    _thread_name = "mlproj-pipeline"

    def __init__(
        self,
        spec: PipelineSpec,
        pipeline: Pipeline,
        store: TrackingStore,
        parent_run_id: str,
        experiment_id: str,
        *,
        tracking_uri: str | None,
        kept: Mapping[str, Run] | None = None,
        log: Log = _stderr,
    ) -> None:
        self.spec = spec
        self.pipeline = pipeline
        self.store = store
        self.parent_run_id = parent_run_id
        self.experiment_id = experiment_id
        self.tracking_uri = tracking_uri
        self.log = log
        self.params = pipeline.resolve_parameters(spec.parameters)
        self.steps: dict[str, StepState] = {name: StepState() for name in pipeline.order()}
        for name, run in (kept or {}).items():
            if name in self.steps:
                self.steps[name] = StepState(RunStatus.FINISHED, run, reused=True)
        forced = set(pipeline.steps) if spec.force else set()
        if spec.from_step:
            forced |= pipeline.downstream(spec.from_step)
        self.forced = forced
        self.status: str = RunStatus.RUNNING
        self.error: str | None = None
        super().__init__()
        self.scheduler = Scheduler(
            store,
            parent_run_id,
            max_parallel=spec.max_parallel,
            retry=RetryPolicy(spec.retries, spec.retry_delay),
            log=log,
        )

    # -- the plan ----------------------------------------------------------------------------
    def next_children(self, slots: int) -> list[Child]:
        children: list[Child] = []
        for name, state in self.steps.items():
            if len(children) >= slots:
                break
            if state.status != "PENDING":
                continue
            dependencies = [self.steps[d] for d in self.pipeline.steps[name].depends_on]
            if any(d.status in ("FAILED", "KILLED", "NOT RUN") for d in dependencies):
                state.status = "NOT RUN"
                continue
            if all(d.status == RunStatus.FINISHED for d in dependencies):
                state.status = RunStatus.RUNNING
                children.append(self._child(name))
        return children

    def _child(self, name: str) -> Child:
        from mlproj.api import RunOptions

        step = self.pipeline.steps[name]
        outputs = {d: self.steps[d].run for d in step.depends_on}
        finished = {d: run for d, run in outputs.items() if run is not None}
        params = {k: render(v, self.params, finished) for k, v in step.parameters.items()}
        upstream = ",".join(sorted(run.run_id for run in finished.values()))
        this_project = step.uri is None
        options = RunOptions(
            uri=self.spec.uri if this_project else str(step.uri),
            entry_point=step.entry_point,
            version=self.spec.version if this_project else step.version,
            parameters=params,
            experiment_id=self.experiment_id,
            backend=self.spec.backend,
            backend_config=self.spec.backend_config,
            env_manager=self.spec.env_manager,
            run_name=name,
            tracking_uri=self.tracking_uri,
            # Few steps, often long: their status lines (environment builds) are worth seeing.
            log=lambda line: self.log(f"step {name}: {line}"),
        )
        return Child(
            label=f"step {name}",
            options=options,
            tags={TAG_KIND: "step", TAG_STEP: name, TAG_UPSTREAM: upstream},
            reuse=name not in self.forced,
        )

    def child_done(self, outcome: Outcome) -> None:
        name = outcome.child.tags[TAG_STEP]
        state = self.steps[name]
        state.status, state.reused, state.error = outcome.status, outcome.reused, outcome.error
        if outcome.run_id is not None:
            state.run = self.store.get_run(outcome.run_id)
        if outcome.status == RunStatus.FINISHED and outcome.run_id:
            self.store.set_tag(self.parent_run_id, TAG_PIPELINE_STEP_PREFIX + name, outcome.run_id)
            how = "reused" if outcome.reused else "finished"
            self.log(f"step {name}: {how} (run {outcome.run_id})")
        else:
            self.log(f"step {name}: {outcome.status}: {outcome.error or 'see its run'}")

    # -- running -----------------------------------------------------------------------------
    def run(self) -> str:
        with parent_closed_on_error(self.store, self.parent_run_id):
            self.scheduler.run(self)
            for state in self.steps.values():
                if state.status == "PENDING":
                    state.status = "NOT RUN"
            self.status, self.error = self._final_status()
            close_parent(self.store, self.parent_run_id, self.status, self.error)
        return self.status

    def _final_status(self) -> tuple[str, str | None]:
        if self.scheduler.cancelled:
            return RunStatus.KILLED, "cancelled"
        failed = [n for n, s in self.steps.items() if s.status in ("FAILED", "KILLED")]
        if not failed:
            return RunStatus.FINISHED, None
        not_run = [n for n, s in self.steps.items() if s.status == "NOT RUN"]
        message = f"step {', '.join(failed)} failed"
        if not_run:
            message += f"; not run: {', '.join(not_run)}"
        return RunStatus.FAILED, message

    def cancel(self) -> None:
        self.scheduler.cancel()
        if self._thread is not None:
            self._thread.join()

    @property
    def runs(self) -> dict[str, Run]:
        """Step name -> the run it ended with (reused runs included)."""
        return {n: s.run for n, s in self.steps.items() if s.run is not None}

    def summary_rows(self) -> list[tuple[str, ...]]:
        rows: list[tuple[str, ...]] = []
        for name, state in self.steps.items():
            status = f"{state.status} (reused)" if state.reused else str(state.status)
            rows.append((name, state.run.run_id if state.run else "-", status))
        return rows


def _load(uri: str, version: str | None, name: str | None) -> tuple[Pipeline, Path]:
    from mlproj.sources import fetch_project

    fetched = fetch_project(uri, version)
    pipelines = load_pipelines(fetched.directory)
    if not pipelines:
        raise ExecutionException(
            f"{fetched.directory}: the MLproject declares no pipelines (key `{PIPELINES_KEY}:`)"
        )
    if name is None:
        if len(pipelines) > 1:
            raise ExecutionException(
                f"The MLproject declares several pipelines ({', '.join(pipelines)}); name one"
            )
        name = next(iter(pipelines))
    if name not in pipelines:
        raise ExecutionException(
            f"No pipeline {name!r} in {fetched.directory}; declared: {', '.join(pipelines)}"
        )
    return pipelines[name], fetched.directory


def show_pipeline(uri: str = ".", name: str | None = None, version: str | None = None) -> str:
    """``mlproj pipeline show``: the DAG as text (every pipeline when ``name`` is None)."""
    from mlproj.sources import fetch_project

    if name is not None:
        return _load(uri, version, name)[0].describe()
    pipelines = load_pipelines(fetch_project(uri, version).directory)
    if not pipelines:
        raise ExecutionException(f"The MLproject of {uri} declares no pipelines")
    return "\n\n".join(p.describe() for p in pipelines.values())


def start_pipeline(
    spec: PipelineSpec,
    *,
    experiment_name: str | None = None,
    experiment_id: str | None = None,
    tracking_uri: str | None = None,
    run_name: str | None = None,
    log: Log = _stderr,
) -> PipelineRun:
    """Check the pipeline and its parameters, open the parent run, return the run (not started)."""
    from mlproj.tracking import get_store

    spec.uri = absolute_uri(spec.uri)
    pipeline, _ = _load(spec.uri, spec.version, spec.name or None)
    spec.name = pipeline.name
    pipeline.resolve_parameters(spec.parameters)
    if spec.from_step is not None and spec.from_step not in pipeline.steps:
        raise ExecutionException(
            f"--from {spec.from_step}: pipeline {pipeline.name!r} has steps "
            f"{', '.join(pipeline.steps)}"
        )
    store = get_store(tracking_uri)
    experiment = store.resolve_experiment(experiment_name, experiment_id)
    parent = open_parent(
        store,
        experiment,
        kind="pipeline",
        run_name=run_name or f"pipeline-{pipeline.name}",
        tags={TAG_PIPELINE_SPEC: spec.to_json()},
    )
    with parent_closed_on_error(store, parent):
        with tempfile.TemporaryDirectory() as tmp:
            dag = Path(tmp, "pipeline.txt")
            dag.write_text(pipeline.describe() + "\n")
            store.log_artifact(parent, dag)
        log(f"pipeline {pipeline.name}: parent run {parent}, {len(pipeline.steps)} steps")
        return PipelineRun(
            spec, pipeline, store, parent, experiment, tracking_uri=tracking_uri, log=log
        )


def resume_pipeline(
    parent_run_id: str,
    *,
    tracking_uri: str | None = None,
    max_parallel: int | None = None,
    backend_config: Mapping[str, Any] | None = None,
    log: Log = _stderr,
) -> PipelineRun:
    """Run again, under the same parent, only the steps that did not finish."""
    from mlproj.tracking import get_store

    store = get_store(tracking_uri)
    parent = store.get_run(parent_run_id)
    text = parent.tags.get(TAG_PIPELINE_SPEC)
    if parent.tags.get(TAG_KIND) != "pipeline" or not text:
        raise ExecutionException(f"Run '{parent_run_id}' is not the parent run of a pipeline")
    spec = PipelineSpec.from_json(text)
    spec.from_step, spec.force = None, False  # what finished is kept, whatever forced it then
    if max_parallel is not None:
        spec.max_parallel = max_parallel
    if backend_config is not None:
        spec.backend_config = dict(backend_config)
    check_resumable_config(spec.backend_config, parent_run_id)
    pipeline, _ = _load(spec.uri, spec.version, spec.name)
    settle_dead_children(store, children_of(store, parent))
    adopt_parent(store, parent)
    kept: dict[str, Run] = {}
    for key, run_id in parent.tags.items():
        if key.startswith(TAG_PIPELINE_STEP_PREFIX):
            run = store.get_run(run_id)
            if run.info.status == RunStatus.FINISHED:
                kept[key[len(TAG_PIPELINE_STEP_PREFIX) :]] = run
    log(f"resuming pipeline {pipeline.name} ({parent_run_id}): kept {', '.join(kept) or 'no step'}")
    return PipelineRun(
        spec,
        pipeline,
        store,
        parent_run_id,
        parent.info.experiment_id,
        tracking_uri=tracking_uri,
        kept=kept,
        log=log,
    )


def pipeline(
    uri: str = ".",
    name: str | None = None,
    parameters: Mapping[str, object] | None = None,
    *,
    version: str | None = None,
    from_step: str | None = None,
    force: bool = False,
    max_parallel: int = 1,
    retries: int = 0,
    retry_delay: float = 1.0,
    backend: str = "local",
    backend_config: Mapping[str, Any] | None = None,
    env_manager: str | None = None,
    experiment_name: str | None = None,
    experiment_id: str | None = None,
    tracking_uri: str | None = None,
    run_name: str | None = None,
    synchronous: bool = True,
) -> PipelineRun:
    """Run pipeline ``name`` of the project at ``uri``; see ``mlproj pipeline run --help``.

    Returns a :class:`PipelineRun` (``wait()``, ``cancel()``, ``runs``, ``status``); when
    ``synchronous`` (the default) it has ended."""
    from mlproj.orchestration.space import value_text

    spec = PipelineSpec(
        uri=uri,
        name=name or "",
        parameters={k: value_text(v) for k, v in (parameters or {}).items()},
        version=version,
        from_step=from_step,
        force=force,
        max_parallel=max_parallel,
        retries=retries,
        retry_delay=retry_delay,
        backend=backend,
        backend_config=dict(backend_config) if backend_config else None,
        env_manager=env_manager,
    )
    running = start_pipeline(
        spec,
        experiment_name=experiment_name,
        experiment_id=experiment_id,
        tracking_uri=tracking_uri,
        run_name=run_name,
        log=lambda line: None,
    )
    return running.launch(synchronous)
