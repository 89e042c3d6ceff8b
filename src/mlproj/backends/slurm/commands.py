"""Slurm's own CLI, and what its answers mean for a run.

Only the commands every Slurm version has: ``sbatch --parsable``, ``squeue``, ``scontrol``,
``sacct -P``, ``scancel``. The facts this relies on (measured on Slurm 22.05, see
``docs/backends/engines-notes.md``): ``squeue -t all`` also lists finished jobs until
slurmctld purges them (MinJobAge, a few seconds); after that only accounting (``sacct``) or,
without an accounting database, the job-completion file (``JobCompLoc``) know how a job ended;
``scancel`` exits 0 even for a job that does not exist, so only the queue proves a job gone.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mlproj.errors import ExecutionException
from mlproj.statuses import RunStatus

COMMAND_TIMEOUT_SECONDS = 60.0
SUBMIT_SLACK_SECONDS = 120.0  # clock skew between this host and slurmctld

# Slurm job states -> MLflow statuses. A state not listed (a newer Slurm) counts as running:
# never as an end, and never as success.
_SCHEDULED = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED"}
_SCHEDULED |= {"RESV_DEL_HOLD"}
_FINISHED = {"COMPLETED"}
_KILLED = {"CANCELLED"}
_FAILED = {"FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE"}
_FAILED |= {"PREEMPTED", "SPECIAL_EXIT", "REVOKED"}


@dataclass(frozen=True)
class JobState:
    """What Slurm says about one job."""

    state: str  # Slurm's name, e.g. COMPLETED, without suffixes ("CANCELLED by 0" -> CANCELLED)
    reason: str = ""  # squeue/scontrol Reason ("None" dropped); jobcomp has none
    exit_code: str = ""  # "exit:signal"

    @property
    def status(self) -> RunStatus:
        if self.state in _FINISHED:
            return RunStatus.FINISHED
        if self.state in _KILLED:
            return RunStatus.KILLED
        if self.state in _FAILED:
            return RunStatus.FAILED
        if self.state in _SCHEDULED:
            return RunStatus.SCHEDULED
        return RunStatus.RUNNING  # RUNNING, COMPLETING, SUSPENDED, STAGE_OUT, ...


def normalise_state(text: str) -> str:
    words = text.strip().split()
    return words[0].rstrip("+").upper() if words else ""


def _reason(text: str) -> str:
    text = text.strip()
    return "" if text in ("None", "(null)") else text


# -- running the commands ---------------------------------------------------------------------
def run(argv: Sequence[str], *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """One Slurm command; ExecutionException when it is not installed or hangs."""
    try:
        return subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError:
        raise ExecutionException(
            f"Slurm's {argv[0]!r} is not on PATH: the slurm backend runs on a host with the "
            "Slurm client commands (sbatch, squeue, scontrol, scancel) and a reachable slurmctld"
        ) from None
    except subprocess.TimeoutExpired:
        raise ExecutionException(
            f"`{' '.join(argv[:2])}` did not answer within {COMMAND_TIMEOUT_SECONDS:.0f} s; is "
            "slurmctld up?"
        ) from None


def check_installed() -> None:
    missing = [c for c in ("sbatch", "squeue", "scontrol", "scancel") if shutil.which(c) is None]
    if missing:
        raise ExecutionException(
            f"The slurm backend needs Slurm's client commands on PATH; missing: "
            f"{', '.join(missing)}"
        )


def _errors(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return "; ".join(lines[-3:]) or "no message"


def sbatch(script: str, options: Sequence[str]) -> tuple[str, str]:
    """Submit ``script`` (read by sbatch from stdin: no script file with credentials on disk);
    returns (job id, cluster or "")."""
    done = run(["sbatch", "--parsable", *options], stdin=script)
    if done.returncode != 0:
        raise ExecutionException(f"sbatch refused the job: {_errors(done.stderr)}")
    answer = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    job_id, _, cluster = answer.partition(";")
    if not job_id.isdigit():
        raise ExecutionException(f"sbatch printed no job id: {done.stdout.strip()!r}")
    return job_id, cluster


def scancel(job_id: str) -> None:
    done = run(["scancel", job_id])
    if done.returncode != 0:
        raise ExecutionException(f"scancel {job_id} failed: {_errors(done.stderr)}")


def scontrol_job(job_id: str) -> dict[str, str] | None:
    """``scontrol show job -o`` as fields; None once slurmctld has purged the job."""
    done = run(["scontrol", "show", "job", "-o", job_id])
    if done.returncode != 0:
        if "Invalid job id" in done.stderr:
            return None
        raise ExecutionException(f"scontrol show job {job_id} failed: {_errors(done.stderr)}")
    fields: dict[str, str] = {}
    for item in done.stdout.split():
        key, sep, value = item.partition("=")
        if sep and key not in fields:
            fields[key] = value
    return fields


def squeue_all() -> dict[str, JobState]:
    """Every job slurmctld knows, finished ones included, in one query."""
    done = run(["squeue", "-h", "-t", "all", "-o", "%i|%T|%r"])
    if done.returncode != 0:
        raise ExecutionException(f"squeue failed: {_errors(done.stderr)}")
    states: dict[str, JobState] = {}
    for line in done.stdout.splitlines():
        parts = line.strip().split("|", 2)
        if len(parts) == 3:
            states[parts[0]] = JobState(normalise_state(parts[1]), _reason(parts[2]))
    return states


# -- the shared poller ------------------------------------------------------------------------
def queue_snapshot(cache: Path, max_age: float, newer_than: float = 0.0) -> dict[str, JobState]:
    """The queue as one ``squeue`` call saw it at most ``max_age`` seconds ago (and after
    ``newer_than``, an epoch time), shared by every watcher on this host through ``cache``:
    a sweep of 200 runs costs one queue query per poll, not 200. The lock is a plain
    ``flock`` (Slurm hosts are POSIX): importing filelock would cost the first poll ~15 ms."""
    import fcntl

    with cache.with_name(cache.name + ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        now = time.time()
        try:
            saved = json.loads(cache.read_text(encoding="utf-8"))
            taken = float(saved["time"])
            if now - taken <= max_age and taken >= newer_than:
                return {k: JobState(*v) for k, v in saved["jobs"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no snapshot yet, or a damaged one: take a new one
        taken = time.time()
        states = squeue_all()
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        data = {
            "time": taken,
            "jobs": {k: [s.state, s.reason, s.exit_code] for k, s in states.items()},
        }
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(cache)
        return states


# -- after the queue: accounting or the job-completion file -----------------------------------
@functools.cache
def cluster_config() -> dict[str, str]:
    """``scontrol show config`` as a mapping (read once per process)."""
    done = run(["scontrol", "show", "config"])
    if done.returncode != 0:
        raise ExecutionException(f"scontrol show config failed: {_errors(done.stderr)}")
    config: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            config[key.strip()] = value.strip()
    return config


def where_ends_are_kept() -> str:
    """How this cluster remembers finished jobs, for messages."""
    config = cluster_config()
    if config.get("AccountingStorageType", "accounting_storage/none") != "accounting_storage/none":
        return "sacct"
    if config.get("JobCompType") == "jobcomp/filetxt" and config.get("JobCompLoc"):
        return f"the job-completion file {config['JobCompLoc']}"
    return ""


def finished_jobs(job_ids: Iterable[str], submitted_after: float) -> dict[str, JobState]:
    """How jobs that left the queue ended: from ``sacct`` when the cluster has accounting,
    else from the ``jobcomp/filetxt`` file; jobs neither knows are missing from the answer."""
    ids = [i for i in job_ids if i]
    if not ids:
        return {}
    config = cluster_config()
    if config.get("AccountingStorageType", "accounting_storage/none") != "accounting_storage/none":
        return _sacct(ids)
    location = config.get("JobCompLoc", "")
    if config.get("JobCompType") == "jobcomp/filetxt" and location:
        return read_jobcomp(Path(location), ids, submitted_after)
    return {}


def _sacct(ids: list[str]) -> dict[str, JobState]:
    # No Reason: sacct says "None" even for a failed job (Slurm 22.05).
    done = run(["sacct", "-P", "-n", "-X", "-j", ",".join(ids), "-o", "JobIDRaw,State,ExitCode"])
    if done.returncode != 0:
        raise ExecutionException(f"sacct failed: {_errors(done.stderr)}")
    states: dict[str, JobState] = {}
    for line in done.stdout.splitlines():
        parts = line.split("|")
        if len(parts) >= 3 and parts[0] in ids:
            states[parts[0]] = JobState(normalise_state(parts[1]), "", parts[2].strip())
    return states


_JOBCOMP_ID = re.compile(r"JobId=(\d+) ")
_JOBCOMP_FIELD = {
    name: re.compile(rf"\b{name}=(\S+)") for name in ("JobState", "ExitCode", "SubmitTime")
}


def read_jobcomp(path: Path, ids: list[str], submitted_after: float) -> dict[str, JobState]:
    """The last line of each job in slurmctld's job-completion file.

    Values there are not quoted (a name with spaces breaks naive splitting), so fields are
    found by key. Job ids restart at 1 when slurmctld's state is wiped while the file is
    kept: a line submitted before our submission is someone else's job and skipped."""
    wanted = set(ids)
    found: dict[str, JobState] = {}
    try:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                match = _JOBCOMP_ID.match(line)
                if match is None or match.group(1) not in wanted:
                    continue
                fields = {k: p.search(line) for k, p in _JOBCOMP_FIELD.items()}
                submit = fields["SubmitTime"]
                if (
                    submit is not None
                    and _epoch(submit.group(1)) < submitted_after - SUBMIT_SLACK_SECONDS
                ):
                    continue
                state, exit_code = fields["JobState"], fields["ExitCode"]
                if state is not None:
                    found[match.group(1)] = JobState(
                        normalise_state(state.group(1)),
                        "",
                        exit_code.group(1) if exit_code else "",
                    )
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ExecutionException(f"Cannot read Slurm's job-completion file {path}: {exc}") from exc
    return found


def _epoch(text: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()  # slurmctld's local time
    except ValueError:
        return float("inf")  # unreadable: do not skip the line because of it
