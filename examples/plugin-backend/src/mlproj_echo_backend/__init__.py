"""An example mlproj backend plugin: ``echo``.

It runs nothing. It shows the whole contract a backend has with mlproj: the core has already
validated the project, opened the tracking run and logged its parameters; the backend gets a
``SubmitRequest``, does its work, records what it needs in the run and returns a
``SubmittedRun`` whose status is one of RUNNING / FINISHED / FAILED / KILLED. Here the "work" is
keeping the command that would run as tag ``echo.command`` and artifact ``echo/command.txt``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from mlproj.backends.base import Backend, SubmitRequest
from mlproj.errors import ExecutionException
from mlproj.spec.project import Project
from mlproj.submitted import SubmittedRun


class EchoSubmittedRun(SubmittedRun):
    """A run that ended the moment it was submitted."""

    def __init__(self, run_id: str) -> None:
        self._run_id = run_id

    @property
    def run_id(self) -> str:
        return self._run_id

    def wait(self) -> bool:
        return True

    def get_status(self) -> str:
        return "FINISHED"

    def cancel(self) -> None:
        return None  # nothing is running


class EchoBackend(Backend):
    name: ClassVar[str] = "echo"

    def validate(self, project: Project, backend_config: Mapping[str, Any]) -> None:
        # Runs before any tracking run is opened: reject bad config here.
        unknown = set(backend_config) - {"prefix"}
        if unknown:
            raise ExecutionException(
                f"backend_config: unknown key(s) {sorted(unknown)} for the echo backend "
                "(it accepts 'prefix')"
            )

    def submit(self, request: SubmitRequest) -> EchoSubmittedRun:
        prefix = str(request.backend_config.get("prefix", ""))
        command = prefix + request.command
        request.log(f"echo backend: would run {command!r} in {request.project.directory}")
        request.store.set_tag(request.run_id, "echo.command", command)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "command.txt"
            path.write_text(command + "\n", encoding="utf-8")
            request.store.log_artifact(request.run_id, path, "echo")
        request.store.set_terminated(request.run_id, "FINISHED")
        return EchoSubmittedRun(request.run_id)
