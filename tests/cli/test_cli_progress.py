"""Long work shows progress on one updating line in a real terminal (tmux), and plain lines or
nothing in a pipe or with --quiet. The long work here: a `path` parameter downloaded from a
loopback server that sends its bytes slowly, a Git fetch from such a server (Git's own HTTP
client, "dumb" protocol), the example's environment build, and a Docker image build."""

from __future__ import annotations

import functools
import http.server
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from tests.cli.cli_support import Tmux

SIZE = 400_000
CHUNKS = 50
PAUSE_S = 0.08  # a download of about 4 s; mlproj reads 64 KiB at a time: 6 updates


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(SIZE))
        self.end_headers()
        for _ in range(CHUNKS):
            self.wfile.write(b"x" * (SIZE // CHUNKS))
            self.wfile.flush()
            time.sleep(PAUSE_S)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def slow_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/data.bin"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "MLproject").write_text(
        "name: slow\nentry_points:\n  main:\n    parameters: {data: path}\n"
        '    command: "wc -c < {data}"\n'
    )
    return folder


def _command(project: Path, url: str, *extra: str) -> str:
    return f"{sys.executable} -m mlproj run {project} -P data={url} {' '.join(extra)}"


def _wait_done(tmux: Tmux) -> str:
    return tmux.wait_for(lambda s: "FINISHED" in s or "error" in s or "DONE" in s, timeout=90)


def test_download_progress_updates_one_line_in_a_terminal(
    tmux: Tmux, project: Path, slow_url: str
) -> None:
    tmux.type_line("clear")
    tmux.type_line(_command(project, slow_url))
    pattern = re.compile(
        rf"^. Downloading {re.escape(slow_url)}: (\d+\.\d) KB of 390\.6 KB \((\d+\.\d)s\)$"
    )
    seen: list[tuple[float, float]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len({kb for kb, _ in seen}) < 3:
        lines = [m for line in tmux.screen().splitlines() if (m := pattern.match(line))]
        assert len(lines) <= 1  # one line, updated in place, never a new line per update
        seen.extend((float(m.group(1)), float(m.group(2))) for m in lines)
        time.sleep(0.05)
    kbs = [kb for kb, _ in seen]
    assert len(set(kbs)) >= 3, seen  # the same line showed at least three different amounts
    assert kbs == sorted(kbs) and [s for _, s in seen] == sorted(s for _, s in seen)
    screen = _wait_done(tmux)
    assert "FINISHED" in screen
    assert not any(pattern.match(line) for line in screen.splitlines())  # cleared at the end
    assert f"{SIZE}" in screen  # the command read the whole download


def test_plain_line_in_a_pipe_and_nothing_with_quiet(
    tmux: Tmux, project: Path, slow_url: str
) -> None:
    tmux.type_line("clear")
    tmux.type_line(_command(project, slow_url) + " 2>&1 | cat; echo DONE")
    screen = _wait_done(tmux)
    tmux.wait_for(lambda s: "DONE" in s.replace("echo DONE", ""))
    screen = tmux.screen()
    assert f"mlproj: Downloading {slow_url}" in screen.splitlines()
    assert "KB of" not in screen  # no updates in a pipe, just the one line

    tmux.type_line("clear")
    # The first command's DONE must be gone before looking for the second's (a race under load).
    tmux.wait_for(lambda s: "DONE" not in s)
    tmux.type_line(_command(project, slow_url, "--quiet") + "; echo DONE")
    screen = tmux.wait_for(lambda s: "DONE" in s.replace("echo DONE", ""), timeout=90)
    assert "Downloading" not in screen and "mlproj:" not in screen
    assert f"{SIZE}" in screen


def test_environment_build_progress_in_a_terminal(tmux: Tmux, tmp_path: Path) -> None:
    """The example's first run builds its uv environment: one updating line, then the result."""
    from tests.cli.cli_support import EXAMPLE

    tmux.type_line("clear")
    tmux.type_line(f"{sys.executable} -m mlproj run {EXAMPLE} -P alpha=0.3")
    building = re.compile(r"^. Building the uv environment \(Python [\d.]+\): (.+) \((\d+\.\d)s\)$")
    screen = tmux.wait_for(lambda s: any(building.match(line) for line in s.splitlines()), 300)
    assert len([line for line in screen.splitlines() if building.match(line)]) == 1
    screen = _wait_done(tmux)
    assert "FINISHED" in screen
    lines = screen.splitlines()
    assert not any(building.match(line) for line in lines)  # cleared once the build is done
    assert any(re.match(r"^mlproj: Environment uv-\w+ ready in \d+\.\ds$", line) for line in lines)
    # No step lines on a terminal: the updating line said them.
    assert not any(line.startswith("mlproj: Building the uv environment") for line in lines)


class _SlowFiles(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, 16 KiB per 0.1 s: a 400 KB Git pack takes about 2.5 s."""

    def copyfile(self, source: BinaryIO, outputfile: BinaryIO) -> None:  # type: ignore[override]
        while chunk := source.read(16384):
            outputfile.write(chunk)
            outputfile.flush()
            time.sleep(0.1)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def slow_git_url(tmp_path: Path) -> Iterator[str]:
    """A bare repository (an MLproject and 400 KB of random bytes) served slowly over HTTP."""
    work, www = tmp_path / "work", tmp_path / "www"
    work.mkdir()
    (work / "MLproject").write_text('name: g\nentry_points:\n  main: {command: "echo fetched"}\n')
    (work / "blob.bin").write_bytes(random.randbytes(400_000))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "one"]):
        subprocess.run([*git, *args], cwd=work, check=True)
    bare = www / "repo.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    subprocess.run(["git", "update-server-info"], cwd=bare, check=True)  # the dumb protocol
    handler = functools.partial(_SlowFiles, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/repo.git"
    finally:
        server.shutdown()
        server.server_close()


def test_git_fetch_progress_updates_one_line_in_a_terminal(tmux: Tmux, slow_git_url: str) -> None:
    tmux.type_line("clear")
    tmux.type_line(f"{sys.executable} -m mlproj run {slow_git_url}")
    pattern = re.compile(rf"^. Fetching {re.escape(slow_git_url)} \((\d+\.\d)s\)$")
    seen: list[float] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(set(seen)) < 3:
        lines = [m for line in tmux.screen().splitlines() if (m := pattern.match(line))]
        assert len(lines) <= 1  # one line, updated in place
        seen.extend(float(m.group(1)) for m in lines)
        time.sleep(0.05)
    assert len(set(seen)) >= 3 and seen == sorted(seen), seen  # the time on it went up
    screen = _wait_done(tmux)
    assert "FINISHED" in screen and "fetched" in screen.splitlines()
    assert not any(pattern.match(line) for line in screen.splitlines())  # cleared at the end


def _docker_ready(image: str) -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    done = subprocess.run([docker, "image", "inspect", image], capture_output=True, check=False)
    return done.returncode == 0


BUSYBOX = "mlproj-ci/busybox:1"  # made locally by .ci/docker-setup.sh


@pytest.mark.docker
@pytest.mark.skipif(not _docker_ready(BUSYBOX), reason="Docker and its base images: .ci/run")
def test_image_build_progress_updates_one_line_in_a_terminal(tmux: Tmux, tmp_path: Path) -> None:
    name = f"cliprogress{random.randrange(16**8):08x}"
    project = tmp_path / "dk"
    project.mkdir()
    (project / "MLproject").write_text(
        f'name: {name}\ndocker_env: {{image: "{BUSYBOX}"}}\n'
        'entry_points:\n  main: {command: "echo built"}\n'
    )
    (project / "blob.bin").write_bytes(random.randbytes(2_000_000))  # a build of a second or so
    tmux.type_line("clear")
    tmux.type_line(f"{sys.executable} -m mlproj run {project} --build-image")
    pattern = re.compile(rf"^. Building ({name}:[0-9a-f]+) \((\d+\.\d)s\)$")
    seen: list[float] = []
    tags: set[str] = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(set(seen)) < 3:
            lines = [m for line in tmux.screen().splitlines() if (m := pattern.match(line))]
            assert len(lines) <= 1  # one line, updated in place
            seen.extend(float(m.group(2)) for m in lines)
            tags.update(m.group(1) for m in lines)
            time.sleep(0.05)
        assert len(set(seen)) >= 3 and seen == sorted(seen), seen
        screen = _wait_done(tmux)
        assert "FINISHED" in screen and "built" in screen.splitlines()
        assert not any(pattern.match(line) for line in screen.splitlines())  # cleared
    finally:
        for tag in tags:
            subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)
