"""Tag names mlproj writes on runs, and where a run's output log is kept.

MLflow's own tags (``mlflow.*``) are spelled as MLflow spells them, so the MLflow UI and client
read them; mlproj's (``mlproj.*``) let any process on the host find a run's processes again and
say why a run failed. Renaming one breaks runs recorded before: never do it.
"""

from __future__ import annotations

# -- MLflow's tags ---------------------------------------------------------------------------
MLFLOW_USER = "mlflow.user"
MLFLOW_RUN_NAME = "mlflow.runName"
MLFLOW_PARENT_RUN_ID = "mlflow.parentRunId"
MLFLOW_SOURCE_TYPE = "mlflow.source.type"
MLFLOW_SOURCE_NAME = "mlflow.source.name"
MLFLOW_GIT_COMMIT = "mlflow.source.git.commit"
MLFLOW_GIT_REPO_URL = "mlflow.source.git.repoURL"
MLFLOW_GIT_BRANCH = "mlflow.source.git.branch"
MLFLOW_ENTRY_POINT = "mlflow.project.entryPoint"
MLFLOW_BACKEND = "mlflow.project.backend"
MLFLOW_ENV = "mlflow.project.env"
MLFLOW_DOCKER_IMAGE_URI = "mlflow.docker.image.uri"
MLFLOW_DOCKER_IMAGE_ID = "mlflow.docker.image.id"

# -- mlproj's tags ---------------------------------------------------------------------------
TAG_ERROR = "mlproj.error"  # why a run failed, first line shown by `runs list`
# The backend that submitted the run: ``mlflow run --run-id`` on a cluster (Databricks) rewrites
# mlflow.project.backend to "local" while it runs; this one only mlproj writes.
TAG_BACKEND = "mlproj.backend"
TAG_LOG_ERROR = "mlproj.log.error"  # why the output log could not be kept
# The run's final status as mlproj decided it from how the command ended: a terminal status in
# the store without it was written by someone else (the project's own MLflow client, whose exit
# hook writes FINISHED even after a crash) and is overridden.
TAG_OUTCOME = "mlproj.outcome"
# Remote runs: the number params logged when the run ends unless the project logged them
# (JSON name -> text; mlproj.spec.params.logged_at_end, MLflow issues 3536 and 2820).
TAG_PARAMS_AT_END = "mlproj.params.at_end"
# The process that waits for a remote run and records its end (detached watcher or `mlproj run`).
TAG_WATCHER_HOST = "mlproj.watcher.host"
TAG_WATCHER_BOOT_ID = "mlproj.watcher.boot_id"
TAG_WATCHER_PID = "mlproj.watcher.pid"
TAG_WATCHER_START = "mlproj.watcher.start"
TAG_LOG = "mlproj.log"  # local path of the output log while the run is going
TAG_HOST = "mlproj.host"
TAG_BOOT_ID = "mlproj.boot_id"
TAG_PID = "mlproj.supervisor.pid"
TAG_START = "mlproj.supervisor.start"
TAG_CHILD_PID = "mlproj.child.pid"  # leader of the command's process group
TAG_CHILD_START = "mlproj.child.start"
# `mlproj runs cancel` stopped this run's command alone (its supervisor, a sweep or pipeline
# process, runs other children too): the supervisor records the run KILLED, not FAILED.
TAG_CANCEL = "mlproj.cancel"
TAG_ENV_KEY = "mlproj.env"  # the environment cache entry the run used
TAG_DOCKER_CONTAINER = "mlproj.docker.container"
LABEL_RUN_ID = "mlproj.run_id"  # docker label on a run's containers

# -- orchestration: sweeps, pipelines, retries, reuse ------------------------------------------
TAG_RUN_KEY = "mlproj.key"  # what determines the run's result; equal keys may be reused
TAG_KIND = "mlproj.kind"  # sweep | pipeline on a parent run; trial | step on its children
TAG_RETRY_OF = "mlproj.retry_of"  # the failed run this run tries again
TAG_ATTEMPT = "mlproj.attempt"  # 1 for the first try, 2 for the first retry, ...
TAG_UPSTREAM = "mlproj.upstream"  # pipeline step: run ids of the steps it depends on
TAG_TRIAL = "mlproj.trial"  # sweep trial number, from 0
TAG_STEP = "mlproj.step"  # pipeline step name
TAG_GPU = "mlproj.gpu"  # the device given to the run in CUDA_VISIBLE_DEVICES
TAG_SWEEP_SPEC = "mlproj.sweep.spec"  # the sweep as JSON, so --resume needs only the store
TAG_PIPELINE_SPEC = "mlproj.pipeline.spec"  # the pipeline run's plan as JSON, for resume
TAG_PIPELINE_STEP_PREFIX = "mlproj.pipeline.step."  # + step name: the run the step ended with
TAG_BEST_RUN = "mlproj.best.run_id"
TAG_BEST_METRIC = "mlproj.best.metric"

# -- the output log artifact ------------------------------------------------------------------
LOG_ARTIFACT_DIR = "mlproj"
LOG_ARTIFACT_NAME = "output.log"
LOG_ARTIFACT_PATH = f"{LOG_ARTIFACT_DIR}/{LOG_ARTIFACT_NAME}"
