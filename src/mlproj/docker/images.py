"""Docker images for projects: resolve a base image, build a project image, push it.

A project image is ``FROM <base image>`` with the project copied to ``/mlflow/projects/code``.
Its tag is a hash of the build inputs (base image id + every file copied), so an unchanged
project reuses its image without running ``docker build`` at all, and any change makes a new
tag. Also used by the Kubernetes backend (``build_project_image`` + ``push_image``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import re
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from mlproj.docker.cli import DockerCli, logged_in
from mlproj.errors import ExecutionException
from mlproj.fsutil import write_json_atomic
from mlproj.home import home_subdir
from mlproj.spec.project import Project

CODE_DIR = "/mlflow/projects/code"
DEFAULT_REPOSITORY = "docker-project"
# Bump when the generated Dockerfile changes: the tag hash includes it.
_BUILD_FORMAT = "mlproj-docker-build/1"
_DOCKERFILE_NAME = ".mlproj-build.Dockerfile"
# Never copied into an image: VCS data, caches, local environments and tracking stores
# (a ./mlruns written by the previous run must not change the hash and force a rebuild).
EXCLUDED_NAMES = frozenset(
    {".git", ".hg", ".svn", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache",
     ".venv", "mlruns", "mlartifacts", ".ipynb_checkpoints", _DOCKERFILE_NAME}
)  # fmt: skip
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")


def _ignore(_: str) -> None:
    return None


@dataclass(frozen=True)
class ImageRef:
    """A local image: the reference it is run by and its content id (``sha256:...``)."""

    uri: str
    image_id: str


def resolve_image(cli: DockerCli, ref: str, log: Callable[[str], None] = _ignore) -> ImageRef:
    """The local image ``ref``, pulled first when it is not on this machine."""
    image_id = cli.image_id(ref)
    if image_id is None:
        log(f"Pulling Docker image {ref}")
        cli.pull(ref)
        image_id = cli.image_id(ref)
        if image_id is None:
            raise ExecutionException(f"Docker image {ref!r} was pulled but cannot be inspected")
    return ImageRef(ref, image_id)


def repository_for(project: Project) -> str:
    """A valid Docker repository name from the project name (``docker-project`` if none)."""
    name = re.sub(r"[^a-z0-9._-]+", "-", (project.name or "").lower())
    name = re.sub(r"[._-]{2,}", "-", name).strip("._-")
    return name or DEFAULT_REPOSITORY


# -- build context --------------------------------------------------------------------------
def _ignore_patterns(directory: Path) -> list[tuple[bool, str]]:
    """``.dockerignore`` lines as (negated, pattern); ``#`` comments and blanks skipped."""
    try:
        lines = (directory / ".dockerignore").read_text().splitlines()
    except OSError:
        return []
    patterns = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        negated = text.startswith("!")
        text = text.lstrip("!").strip().removeprefix("./").strip("/")
        if text:
            patterns.append((negated, text.replace("**/", "*").replace("/**", "/*")))
    return patterns


def _is_ignored(rel: str, patterns: list[tuple[bool, str]]) -> bool:
    """Docker's rule: the last matching pattern decides; a match on a parent folder counts."""
    parts = rel.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for negated, pattern in patterns:
        if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
            ignored = not negated
    return ignored


def _context_files(directory: Path, exclude: Iterable[Path]) -> Iterator[tuple[str, Path]]:
    """(posix relative path, path) of everything copied into the image, in a stable order."""
    excluded = {p.absolute() for p in exclude}
    patterns = _ignore_patterns(directory)
    can_prune = not any(negated for negated, _ in patterns)
    for root, dirs, files in os.walk(directory):
        root_path = Path(root)
        rel_root = root_path.relative_to(directory).as_posix()
        prefix = "" if rel_root == "." else rel_root + "/"
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in EXCLUDED_NAMES
            and (root_path / d) not in excluded
            and not (can_prune and _is_ignored(prefix + d, patterns))
        )
        for name in dirs:
            # os.walk does not descend into symlinked folders: copy the link itself.
            if (root_path / name).is_symlink() and not _is_ignored(prefix + name, patterns):
                yield prefix + name, root_path / name
        for name in sorted(files):
            path = root_path / name
            if name in EXCLUDED_NAMES or name.endswith(_EXCLUDED_SUFFIXES) or path in excluded:
                continue
            if patterns and _is_ignored(prefix + name, patterns):
                continue
            yield prefix + name, path


def dockerfile_text(base_image: str) -> str:
    return f"FROM {base_image}\nCOPY . {CODE_DIR}/\nWORKDIR {CODE_DIR}/\n"


def content_hash(
    directory: Path, base_image_id: str, *, base_image: str, exclude: Iterable[Path] = ()
) -> str:
    """Hash of every build input: format, base image (name and id), each file's path, mode
    and content. Equal hashes build equal images. File digests are remembered by (size,
    mtime, inode, ctime), so an unchanged large project is not re-read on every run."""
    digest = hashlib.sha256()
    digest.update(f"{_BUILD_FORMAT}\0{base_image}\0{base_image_id}\0".encode())
    cache = _DigestCache(directory)
    for rel, path in _context_files(directory, exclude):
        info = path.lstat()
        digest.update(f"{rel}\0{stat.S_IMODE(info.st_mode) & 0o111:o}\0".encode())
        if stat.S_ISLNK(info.st_mode):
            digest.update(b"L" + str(path.readlink()).encode())
        else:
            digest.update(b"F" + cache.digest(rel, path, info))
    cache.save()
    return digest.hexdigest()


class _DigestCache:
    """Per-project file digests under ``MLPROJ_HOME/docker/digests`` (versioned JSON)."""

    _VERSION = 1

    def __init__(self, directory: Path) -> None:
        name = hashlib.sha256(str(directory).encode()).hexdigest()[:24]
        self.path = home_subdir("docker") / "digests" / f"{name}.json"
        self.entries: dict[str, list[object]] = {}
        self.fresh: dict[str, list[object]] = {}
        try:
            data = json.loads(self.path.read_text())
            if data.get("version") == self._VERSION and isinstance(data.get("files"), dict):
                self.entries = data["files"]
        except (OSError, ValueError, AttributeError):
            pass

    def digest(self, rel: str, path: Path, info: os.stat_result) -> bytes:
        key = [info.st_size, info.st_mtime_ns, info.st_ino, info.st_ctime_ns]
        known = self.entries.get(rel)
        if known is not None and known[:4] == key and isinstance(known[4], str):
            value = bytes.fromhex(known[4])
        else:
            value = _file_digest(path)
        self.fresh[rel] = [*key, value.hex()]
        return value

    def save(self) -> None:
        if self.fresh == self.entries:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, {"version": self._VERSION, "files": self.fresh}, indent=None)


def _file_digest(path: Path) -> bytes:
    file_hash = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            file_hash.update(chunk)
    return file_hash.digest()


def _write_context(
    out: io.BufferedWriter, directory: Path, base_image: str, exclude: Iterable[Path]
) -> None:
    """A reproducible tar build context: project files + the generated Dockerfile."""
    with tarfile.open(fileobj=out, mode="w") as tar:

        def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            return info

        for rel, path in _context_files(directory, exclude):
            tar.add(path, arcname=rel, recursive=False, filter=normalise)
        data = dockerfile_text(base_image).encode()
        info = normalise(tarfile.TarInfo(_DOCKERFILE_NAME))
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


# -- build / push ----------------------------------------------------------------------------
def build_project_image(
    project: Project,
    *,
    repository: str | None,
    base_image: str,
    log: Callable[[str], None] = _ignore,
    auth: Mapping[str, str] | None = None,
    exclude: Iterable[Path] = (),
    cli: DockerCli | None = None,
) -> ImageRef:
    """Build (or reuse) ``<repository>:<content hash>`` FROM ``base_image`` with the project
    copied to ``/mlflow/projects/code`` (the image's WORKDIR).

    ``repository`` defaults to the project name (``docker-project`` when it has none); a
    registry URI such as ``registry.example.com/team/proj`` is used as is. ``exclude`` lists
    extra absolute paths to leave out (e.g. a tracking store inside the project folder).
    ``auth`` (docker-py login keys) is used to pull a private base image.
    """
    image, _base = build_or_reuse(
        cli or DockerCli(),
        project,
        repository=repository,
        base_image=base_image,
        log=log,
        auth=auth,
        exclude=exclude,
    )
    return image


def build_or_reuse(
    cli: DockerCli,
    project: Project,
    *,
    repository: str | None,
    base_image: str,
    log: Callable[[str], None],
    auth: Mapping[str, str] | None,
    exclude: Iterable[Path],
) -> tuple[ImageRef, ImageRef]:
    """:func:`build_project_image`, also returning the resolved base image."""
    exclude = list(exclude)
    repo = repository or repository_for(project)
    with logged_in(cli, auth, base_image):
        base = resolve_image(cli, base_image, log)
    digest = content_hash(project.directory, base.image_id, base_image=base_image, exclude=exclude)
    tag = f"{repo}:{digest[:16]}"
    existing = cli.image_id(tag)
    if existing is not None:
        log(f"Reusing Docker image {tag} (project unchanged)")
        return ImageRef(tag, existing), base
    from filelock import FileLock

    lock_name = hashlib.sha256(tag.encode()).hexdigest()[:24]
    with FileLock(str(home_subdir("docker") / f"build-{lock_name}.lock")):
        existing = cli.image_id(tag)  # built by a concurrent run while we waited
        if existing is not None:
            return ImageRef(tag, existing), base
        log(f"Building Docker image {tag} FROM {base_image}")
        _docker_build(cli, project.directory, base_image, tag, exclude)
    image_id = cli.image_id(tag)
    if image_id is None:
        raise ExecutionException(f"Docker build of {tag} succeeded but the image is missing")
    return ImageRef(tag, image_id), base


def _docker_build(
    cli: DockerCli, directory: Path, base_image: str, tag: str, exclude: list[Path]
) -> None:
    with tempfile.TemporaryFile(prefix="mlproj-build-context-") as context:
        _write_context(context, directory, base_image, exclude)  # type: ignore[arg-type]
        context.seek(0)
        result = subprocess.run(
            [cli.executable, "build", "--quiet", "--force-rm", "-f", _DOCKERFILE_NAME,
             "-t", tag, "-"],
            stdin=context,
            capture_output=True,
            text=True,
            env=cli.env,
            check=False,
        )  # fmt: skip
    if result.returncode != 0:
        raise ExecutionException(
            f"Docker build of image {tag} (FROM {base_image}, project {directory}) failed: "
            f"{cli.error_text(result)}"
        )


def push_image(
    uri: str,
    auth: Mapping[str, str] | None = None,
    *,
    log: Callable[[str], None] = _ignore,
    cli: DockerCli | None = None,
) -> str:
    """Push a local image and return its registry digest (``sha256:...``); pin it with
    ``f"{repository}@{digest}"``. ``auth`` logs in to the image's registry for the push only."""
    cli = cli or DockerCli()
    repository = uri.rsplit(":", 1)[0] if ":" in uri.rsplit("/", 1)[-1] else uri
    log(f"Pushing Docker image {uri}")
    with logged_in(cli, auth, uri):
        result = cli.run(["push", uri], timeout=3600)
    if result.returncode != 0:
        raise ExecutionException(
            f"Pushing Docker image {uri} failed: {cli.error_text(result)}. Check the registry "
            "address and your credentials (docker_auth)."
        )
    match = re.search(r"digest: (sha256:[0-9a-f]{64})", result.stdout)
    if match:
        return match.group(1)
    inspected = cli.run(["image", "inspect", "--format", "{{json .RepoDigests}}", uri])
    for pinned in json.loads(inspected.stdout or "[]") if inspected.returncode == 0 else []:
        name, _, digest = str(pinned).partition("@")
        if name == repository:
            return digest
    raise ExecutionException(f"Pushed Docker image {uri} but could not read its digest")
