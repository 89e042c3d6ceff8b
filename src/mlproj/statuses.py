"""Run statuses: MLflow's names, in one place.

``RunStatus`` members are ``str`` values, so they compare equal to the strings that stores and
MLflow return and can be written anywhere a status string is expected.
"""

from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    # Printed and formatted as the bare name, as MLflow shows it.
    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, format_spec: str) -> str:
        return format(str(self.value), format_spec)


TERMINAL_STATUSES: frozenset[str] = frozenset(
    {RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED}
)

# MLflow's integer codes, used by the file store's meta.yaml.
STATUS_TO_INT: dict[str, int] = {
    RunStatus.RUNNING: 1,
    RunStatus.SCHEDULED: 2,
    RunStatus.FINISHED: 3,
    RunStatus.FAILED: 4,
    RunStatus.KILLED: 5,
}
INT_TO_STATUS: dict[int, RunStatus] = {v: RunStatus(k) for k, v in STATUS_TO_INT.items()}
