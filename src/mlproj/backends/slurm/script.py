"""The batch script of a run: modules, setup lines, the run's variables, then the command.

Every value that reaches the shell is quoted (``shlex``); only the user's own ``setup`` lines
are shell by design. The script is handed to sbatch on stdin, so the credentials it exports
are never written to a file of ours (Slurm keeps its own copy in its state folder).

The command is not ``exec``-ed: the script writes its exit code to the end marker (beside the
output file, on the shared filesystem) as its last action, so whoever watches the run sees the
end at once instead of at its next queue poll. Slurm's record stays the status's source: the
marker only says when to look (a job killed by scancel or its time limit writes none).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlproj.backends.slurm.config import SlurmConfig


def job_script(
    *,
    run_id: str,
    config: SlurmConfig,
    exports: Mapping[str, str],
    unset: Sequence[str],
    cwd: Path,
    argv: Sequence[str],
    end_marker: Path,
) -> str:
    lines = [
        "#!/bin/bash",
        f"# mlproj run {run_id}",
        "set -e  # a failing module load or setup line fails the job before the command",
    ]
    lines += [f"module load {shlex.join(shlex.split(module))}" for module in config.modules]
    lines += list(config.setup)
    lines += [f"unset {shlex.quote(name)}" for name in unset]
    lines += [f"export {name}={_value(name, value)}" for name, value in exports.items()]
    lines += [f"cd {shlex.quote(str(cwd))}", "set +e", shlex.join(argv), "code=$?"]
    lines += [f"{{ echo $code > {shlex.quote(str(end_marker))}; }} 2>/dev/null", "exit $code", ""]
    return "\n".join(lines)


def _value(name: str, value: str) -> str:
    # PATH keeps the node's own entries after ours (a shared filesystem has our prefix only).
    host_path = os.environ.get("PATH", "")
    if name == "PATH" and host_path and value.endswith(os.pathsep + host_path):
        prefix = value[: -len(host_path) - 1]
        return shlex.quote(prefix) + '"${PATH:+:$PATH}"'
    return shlex.quote(value)


def environment_changes(
    env: Mapping[str, str], host_env: Mapping[str, str], always: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """What the job must export (``always``, then what the environment manager changed) and
    unset (what it removed); the rest is inherited as on this host."""
    exports = dict(always)
    for name, value in env.items():
        if name not in exports and host_env.get(name) != value and name.isidentifier():
            exports[name] = value
    removed = sorted(n for n in host_env if n not in env and n.isidentifier())
    return exports, removed
