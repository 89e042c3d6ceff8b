"""The handle every backend returns for a submitted run: the thin public side of execution."""

from __future__ import annotations

from abc import ABC, abstractmethod


class SubmittedRun(ABC):
    """A project run that has been started on some backend.

    ``get_status()`` is always one of the strings RUNNING, FINISHED, FAILED, KILLED
    (SCHEDULED while a remote backend has not started it yet).
    """

    @property
    @abstractmethod
    def run_id(self) -> str:
        """The MLflow run id of this run."""

    @abstractmethod
    def wait(self) -> bool:
        """Block until the run ends; True when it finished successfully."""

    @abstractmethod
    def get_status(self) -> str:
        """The current status as a string."""

    @abstractmethod
    def cancel(self) -> None:
        """Stop the run, wait until it has stopped, and record it as KILLED."""
