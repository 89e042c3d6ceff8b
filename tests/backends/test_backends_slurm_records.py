"""What Slurm's answers mean, on the texts Slurm 22.05 writes (taken from the real
job-completion file and squeue of the CI cluster; no cluster needed here)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from mlproj.backends.slurm.commands import JobState, normalise_state, read_jobcomp
from mlproj.statuses import RunStatus

LINE = (
    "JobId={id} UserId=root(0) GroupId=root(0) Name=my job WorkDir=/tmp/a b "
    "JobState={state} Partition=debug TimeLimit=UNLIMITED StartTime={t} EndTime={t} "
    "NodeList=localhost NodeCnt=1 ProcCnt=1 SubmitTime={t} EligibleTime={t} "
    "DerivedExitCode=0:0 ExitCode={code} \n"
)


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("PENDING", RunStatus.SCHEDULED),
        ("REQUEUED", RunStatus.SCHEDULED),
        ("RUNNING", RunStatus.RUNNING),
        ("COMPLETING", RunStatus.RUNNING),
        ("COMPLETED", RunStatus.FINISHED),
        ("CANCELLED", RunStatus.KILLED),
        ("FAILED", RunStatus.FAILED),
        ("TIMEOUT", RunStatus.FAILED),
        ("OUT_OF_MEMORY", RunStatus.FAILED),
        ("NODE_FAIL", RunStatus.FAILED),
        ("PREEMPTED", RunStatus.FAILED),
        ("SOMETHING_NEW", RunStatus.RUNNING),  # never an end, never a success
    ],
)
def test_slurm_states_map_to_run_statuses(state: str, status: RunStatus) -> None:
    assert JobState(state).status == status


def test_sacct_state_suffixes_are_dropped() -> None:
    assert normalise_state("CANCELLED by 0") == "CANCELLED"
    assert normalise_state("COMPLETED+") == "COMPLETED"


def test_the_job_completion_file_is_read_by_key_and_a_reused_id_is_not_ours(
    tmp_path: Path,
) -> None:
    old = "2026-01-01T10:00:00"
    new = "2026-12-02T13:22:47"
    comp = tmp_path / "jobcomp.log"
    comp.write_text(
        LINE.format(id=7, state="COMPLETED", t=old, code="0:0")  # before a state wipe
        + LINE.format(id=8, state="CANCELLED", t=new, code="0:0")
        + LINE.format(id=7, state="FAILED", t=new, code="3:0")
        + LINE.format(id=77, state="COMPLETED", t=new, code="0:0")
    )
    submitted = datetime.fromisoformat(new).timestamp() - 1
    found = read_jobcomp(comp, ["7", "8", "99"], submitted)
    assert found == {
        "7": JobState("FAILED", "", "3:0"),  # the stale line of an earlier job 7 is skipped
        "8": JobState("CANCELLED", "", "0:0"),
    }
    assert read_jobcomp(tmp_path / "missing.log", ["7"], submitted) == {}
    # Our job 7 has not ended yet: the earlier job 7's line must not be taken for it.
    comp.write_text(LINE.format(id=7, state="COMPLETED", t=old, code="0:0"))
    assert read_jobcomp(comp, ["7"], submitted) == {}
