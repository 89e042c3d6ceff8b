"""A run's key (what determines its result) and the lookup of a FINISHED run to reuse.

The key hashes the project's code state (Git commit, plus a hash of uncommitted changes in a
local work tree; for a folder outside Git, a fingerprint of its files), the entry point, every
parameter as logged (defaults included, types normalised), the environment spec, and for a
pipeline step the run ids of the steps it depends on, and a hash of the contents behind
every ``path`` parameter that names a local file or folder. It is stored on every run as tag
``mlproj.key``; two runs with equal keys are expected to produce the same result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from mlproj.hashing import sha256
from mlproj.statuses import RunStatus
from mlproj.submitted import SubmittedRun
from mlproj.tags import TAG_RUN_KEY

if TYPE_CHECKING:
    from mlproj.envs.base import EnvironmentManager
    from mlproj.sources.base import FetchedProject
    from mlproj.spec.params import ResolvedParameters
    from mlproj.spec.project import Project
    from mlproj.tracking.base import TrackingStore
    from mlproj.tracking.entities import Run

KEY_VERSION = 1
# What runs write into a project folder by default: never part of the code.
_NOT_CODE = frozenset({"mlruns", "mlartifacts", "mlflow.db", "__pycache__", ".git"})


def run_key(
    fetched: FetchedProject,
    project: Project,
    entry_point: str,
    params: ResolvedParameters,
    manager: EnvironmentManager,
    upstream: str = "",
    *,
    code: str | None = None,
) -> str:
    """The key of a run of ``entry_point`` with ``params`` (see the module docstring);
    ``code``: the code state when already known (a sweep takes it once)."""
    material: dict[str, object] = {
        "v": KEY_VERSION,
        "code": code_state(fetched) if code is None else code,
        "entry_point": entry_point,
        "params": _normalised(project, entry_point, params),
        "env": environment_state(project, manager),
        "upstream": upstream,
    }
    data = local_path_contents(params)
    if data:  # only then: keys of runs without local path params stay as they were
        material["data"] = data
    encoded = json.dumps(material, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return sha256(encoded).hexdigest()


def _normalised(project: Project, entry_point: str, params: ResolvedParameters) -> dict[str, str]:
    """Every param as logged, numbers of float and int params in one form (``0.50`` and
    ``0.5`` are one value: the command may get the text as written, the result is the same)."""
    declared = project.entry_points.get(entry_point)
    types = {n: p.type for n, p in declared.parameters.items()} if declared else {}
    values = params.as_logged()
    for name, text in values.items():
        try:
            if types.get(name) == "float":
                values[name] = repr(float(text))
            elif types.get(name) == "int":
                number = float(text)
                values[name] = str(int(number)) if number.is_integer() else text
        except ValueError:
            continue  # not a number: keep the text
    return values


def local_path_contents(params: ResolvedParameters) -> dict[str, str]:
    """A hash of the contents behind every ``path`` param that names a local file or folder
    (its value is then the absolute path): the same path holding other data is another key.
    Downloaded ``path`` values (remote URIs) are keyed by their URI, as given."""
    return {
        name: path_digest(path)
        for name, path in params.local_paths.items()
        if params.declared.get(name) == str(path)
    }


# (path, size, mtime, inode, ctime) -> digest: a sweep's 200 trials over one data file read
# it once; any change to the file changes its stat, so a stale digest is never used.
_digests: dict[tuple[str, int, int, int, int], str] = {}


def path_digest(path: Path) -> str:
    """sha256 of a file's bytes; of a folder, of each file's relative path and bytes (every
    file, hidden ones too: data is data). Unreadable: a value matching nothing."""
    try:
        if not path.is_dir():
            return _file_digest(path)
        digest = sha256()
        for folder, subfolders, files in os.walk(path):
            subfolders.sort()
            for name in sorted(files):
                file = Path(folder, name)
                relative = file.relative_to(path).as_posix()
                digest.update(f"{relative}\0{_file_digest(file)}\n".encode())
        return digest.hexdigest()
    except OSError:
        return f"unreadable:{os.urandom(8).hex()}"  # no reuse is better than a wrong one


def _file_digest(path: Path) -> str:
    stat = path.stat()
    memo = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns)
    found = _digests.get(memo)
    if found is None:
        import hashlib  # data files can be large: OpenSSL's SHA-256, loaded only for them

        digest = hashlib.sha256()
        with path.open("rb") as source:
            while chunk := source.read(1 << 20):
                digest.update(chunk)
        if len(_digests) > 100_000:  # a long-lived process: keep the memo bounded
            _digests.clear()
        found = _digests[memo] = digest.hexdigest()
    return found


def code_state(fetched: FetchedProject) -> str:
    """``<commit>`` or ``<commit>+<hash of changes>`` in Git, ``files:<fingerprint>`` outside."""
    from mlproj.sources.local import find_git_root

    directory = fetched.directory
    root = find_git_root(directory)
    if fetched.git_commit and root is not None:
        changes = _uncommitted_changes(root, directory)
        return f"{fetched.git_commit}+{changes}" if changes else fetched.git_commit
    return f"files:{_folder_fingerprint(directory)}"


def _uncommitted_changes(root: Path, directory: Path) -> str:
    """A hash of the project folder's changed and untracked files (path and content), or ''.

    One ``git status`` call, then the changed files are read here: cheaper than ``git diff``
    and it sees untracked files too."""
    from mlproj.sources.gitcmd import GitError, run_git

    try:
        out = run_git(
            ["status", "--porcelain=v1", "-z", "--untracked-files=all", "--", "."],
            cwd=directory,
        )
    except GitError:
        return "unknown"  # no reuse is better than a wrong one
    paths = sorted(_status_paths(out))
    digest = sha256()
    for relative in paths:
        if _NOT_CODE.intersection(Path(relative).parts):
            continue
        digest.update(relative.encode("utf-8", "surrogateescape") + b"\0")
        try:
            digest.update(sha256((root / relative).read_bytes()).digest())
        except OSError:
            digest.update(b"<missing>")
    return digest.hexdigest()[:16] if paths else ""


def _status_paths(porcelain: str) -> Iterator[str]:
    """Paths of ``git status --porcelain -z`` (a rename's entry is followed by its old path)."""
    fields = porcelain.split("\0")
    index = 0
    while index < len(fields):
        entry = fields[index]
        index += 1
        if len(entry) < 4:
            continue
        yield entry[3:]
        if entry[0] in "RC":
            index += 1  # the old path of a rename or copy


def _folder_fingerprint(directory: Path) -> str:
    """Paths, sizes and modification times of the folder's files (hidden ones and run output
    left out): a change to any file changes it, and nothing is read but metadata."""
    digest = sha256()
    for folder, subfolders, files in os.walk(directory):
        subfolders[:] = sorted(d for d in subfolders if d[0] != "." and d not in _NOT_CODE)
        for name in sorted(files):
            if name[0] == "." or name in _NOT_CODE:
                continue
            path = Path(folder, name)
            try:
                stat = path.stat()
            except OSError:
                continue
            relative = path.relative_to(directory).as_posix()
            digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def environment_state(project: Project, manager: EnvironmentManager) -> dict[str, object]:
    """The environment manager and a hash of the spec it builds from."""
    state: dict[str, object] = {"manager": manager.name, "type": project.env_type}
    if project.env_file is not None:
        try:
            state["spec"] = sha256(project.env_file.read_bytes()).hexdigest()
        except OSError:
            state["spec"] = "unreadable"
    if project.docker_env is not None:
        docker = project.docker_env
        state["docker"] = [docker.image, list(docker.volumes), [str(e) for e in docker.environment]]
    return state


def find_reusable(store: TrackingStore, experiment_id: str, key: str) -> Run | None:
    """The newest FINISHED run of the experiment with this key, if any."""
    found = store.find_runs_by_tag(
        [experiment_id], TAG_RUN_KEY, key, status=RunStatus.FINISHED, max_results=1
    )
    return found[0] if found else None


class ReusedRun(SubmittedRun):
    """The handle of a FINISHED run returned instead of running again (``--reuse``)."""

    def __init__(self, run: Run) -> None:
        self.run = run

    @property
    def run_id(self) -> str:
        return self.run.run_id

    def wait(self) -> bool:
        return True

    def get_status(self) -> str:
        return RunStatus.FINISHED

    def cancel(self) -> None:
        """Nothing runs: nothing to stop."""


def describe_params(params: Mapping[str, str]) -> str:
    """``a=1 b=x`` for one-line messages."""
    return " ".join(f"{k}={v}" for k, v in params.items())
