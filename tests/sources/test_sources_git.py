"""Git project URIs against real repositories served by `git daemon` and a dumb-HTTP server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sources_git_cli import git

from mlproj.errors import ExecutionException
from mlproj.sources import fetch_project
from mlproj.sources.git_cache import cache_key
from shared_servers import QuietHandler, free_port, serve_folder


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


class Repos:
    """Bare repositories `proj.git` (branches, tags, submodule, dotted subdir) and `sub.git`."""

    def __init__(self, base: Path) -> None:
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        leaf = base.parent / "work-leaf"
        git("init", "-q", str(leaf))
        (leaf / "leaf.txt").write_text("nested\n")
        git("add", ".", cwd=leaf)
        git("commit", "-qm", "leaf", cwd=leaf)
        git("clone", "-q", "--bare", str(leaf), str(base / "leaf.git"))
        work = base.parent / "work-sub"
        git("init", "-q", str(work))
        git("remote", "add", "origin", str(base / "sub.git"), cwd=work)
        (work / "lib.txt").write_text("from the submodule\n")
        git("submodule", "add", "-q", "../leaf.git", "deep", cwd=work)  # nested submodule
        git("add", ".", cwd=work)
        git("commit", "-qm", "sub", cwd=work)
        git("clone", "-q", "--bare", str(work), str(base / "sub.git"))

        self.work = base.parent / "work-proj"
        w = self.work
        git("init", "-q", str(w))
        git("remote", "add", "origin", str(base / "proj.git"), cwd=w)
        git("init", "-q", "--bare", str(base / "proj.git"))
        (w / "MLproject").write_text("name: root\nentry_points:\n  main:\n    command: 'true'\n")
        git("add", ".", cwd=w)
        git("commit", "-qm", "first", cwd=w)
        self.first = git("rev-parse", "HEAD", cwd=w)
        git("tag", "-a", "v1.0", "-m", "release", cwd=w)
        (w / "sub.dir").mkdir()
        (w / "sub.dir" / "MLproject").write_text("name: dotted\n")
        git("submodule", "add", "-q", "../sub.git", "vendor", cwd=w)
        git("add", ".", cwd=w)
        git("commit", "-qm", "second", cwd=w)
        self.second = git("rev-parse", "HEAD", cwd=w)
        git("checkout", "-qb", "feature", cwd=w)
        (w / "feature.txt").write_text("feature\n")
        git("add", ".", cwd=w)
        git("commit", "-qm", "feature", cwd=w)
        self.feature = git("rev-parse", "HEAD", cwd=w)
        git("checkout", "-q", "main", cwd=w)
        git("push", "-q", "origin", "main", "feature", "--tags", cwd=w)
        self.main = self.second
        self.refresh()

    def push_new_main_commit(self, name: str) -> str:
        (self.work / name).write_text(name)
        git("add", ".", cwd=self.work)
        git("commit", "-qm", name, cwd=self.work)
        git("push", "-q", "origin", "main", cwd=self.work)
        self.refresh()
        self.main = git("rev-parse", "HEAD", cwd=self.work)
        return self.main

    def refresh(self) -> None:
        for bare in ("proj.git", "sub.git", "leaf.git"):
            git("--git-dir", str(self.base / bare), "update-server-info")


class GitDaemon:
    def __init__(self, base: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                "git",
                "daemon",
                "--export-all",
                "--reuseaddr",
                f"--base-path={base}",
                "--listen=127.0.0.1",
                f"--port={self.port}",
                str(base),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> Repos:
    return Repos(tmp_path_factory.mktemp("served") / "repos")


@pytest.fixture(scope="module")
def daemon(repos: Repos) -> Iterator[GitDaemon]:
    served = GitDaemon(repos.base)
    yield served
    served.stop()


@pytest.fixture(scope="module")
def dumb_http(repos: Repos) -> Iterator[int]:
    """Git's dumb HTTP protocol: plain files under the bare repos (after update-server-info)."""
    with serve_folder(repos.base) as base:
        yield _port(base)


@pytest.fixture(scope="module")
def private_http(repos: Repos) -> Iterator[int]:
    """Dumb HTTP that answers 401 unless Basic auth is alice:s3cr3tTOKENvalue (a private repo)."""
    import base64

    expected = "Basic " + base64.b64encode(b"alice:s3cr3tTOKENvalue").decode()

    class Private(QuietHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="private"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_GET()

    with serve_folder(repos.base, Private) as base:
        yield _port(base)


def _port(base_url: str) -> int:
    return int(base_url.rsplit(":", 1)[1])


def home() -> Path:
    return Path(os.environ["MLPROJ_HOME"])


def test_default_branch_with_submodule(daemon: GitDaemon, repos: Repos) -> None:
    url = daemon.url("proj.git")
    fetched = fetch_project(url)
    assert (fetched.directory / "MLproject").read_text().startswith("name: root")
    assert (fetched.directory / "vendor" / "lib.txt").read_text() == "from the submodule\n"
    assert (fetched.directory / "vendor" / "deep" / "leaf.txt").read_text() == "nested\n"
    vendor_origin = git("remote", "get-url", "origin", cwd=fetched.directory / "vendor")
    assert vendor_origin == daemon.url("sub.git")
    assert len(list((home() / "git" / "mirrors").glob("*.git"))) == 3  # proj, sub, leaf
    assert not (fetched.directory / "feature.txt").exists()
    assert fetched.git_commit == repos.main
    assert fetched.source_name == url
    assert fetched.git_repo_url == url
    assert fetched.git_branch is None
    assert str(fetched.directory).startswith(str(home() / "git" / "checkouts"))


def test_branch_tag_full_and_short_sha(daemon: GitDaemon, repos: Repos) -> None:
    url = daemon.url("proj.git")
    branch = fetch_project(url, version="feature")
    assert (branch.directory / "feature.txt").is_file()
    assert branch.git_commit == repos.feature
    assert branch.git_branch == "feature"
    assert branch.source_tags()["mlflow.source.git.branch"] == "feature"

    tag = fetch_project(url, version="v1.0")
    assert tag.git_commit == repos.first  # annotated tag peeled to its commit
    assert tag.git_branch is None
    assert not (tag.directory / "sub.dir").exists()

    full = fetch_project(url, version=repos.first)
    assert full.git_commit == repos.first
    assert full.directory == tag.directory  # content-addressed by commit: shared

    short = fetch_project(url, version=repos.feature[:7])
    assert short.git_commit == repos.feature
    assert short.directory == branch.directory


def test_unknown_version_says_how_to_list_refs(daemon: GitDaemon) -> None:
    url = daemon.url("proj.git")
    with pytest.raises(ExecutionException) as info:
        fetch_project(url, version="no-such-branch")
    assert "'no-such-branch' not found" in str(info.value)
    assert f"git ls-remote {url}" in str(info.value)


def test_subdirectory_rules(daemon: GitDaemon) -> None:
    url = daemon.url("proj.git")
    with pytest.raises(ExecutionException) as info:
        fetch_project(url + "#sub.dir/missing", version="feature")
    assert "Could not find subdirectory 'sub.dir/missing'" in str(info.value)
    assert "Folders in 'sub.dir': none" in str(info.value)
    assert not (home() / "git" / "checkouts").exists()  # failed before any checkout
    with pytest.raises(ExecutionException, match="Folders in '/': sub.dir, vendor"):
        fetch_project(url + "#missing")

    dotted = fetch_project(url + "#sub.dir")
    assert dotted.directory.name == "sub.dir"
    assert (dotted.directory / "MLproject").read_text() == "name: dotted\n"
    assert dotted.source_name == url + "#sub.dir"
    inside_submodule = fetch_project(url + "#vendor/deep")
    assert (inside_submodule.directory / "leaf.txt").is_file()
    with pytest.raises(ExecutionException, match="Could not find subdirectory 'vendor/nope'"):
        fetch_project(url + "#vendor/nope")
    with pytest.raises(ExecutionException, match="points outside the project"):
        fetch_project(url + "#../other")


def test_cached_full_sha_needs_no_network(repos: Repos) -> None:
    served = GitDaemon(repos.base)
    url = served.url("proj.git")
    first = fetch_project(url, version=repos.second)
    served.stop()  # the server is gone: only the cache can answer now
    again = fetch_project(url, version=repos.second)
    assert again.directory == first.directory
    assert again.git_commit == repos.second
    with pytest.raises(ExecutionException, match="Cannot reach Git repository"):
        fetch_project(url)  # a branch needs ls-remote, which now fails clearly


def test_second_run_reuses_mirror_and_checkout(daemon: GitDaemon, repos: Repos) -> None:
    url = daemon.url("proj.git")
    lines: list[str] = []
    first = fetch_project(url, log=lines.append)
    assert lines[0] == f"Fetching {url} into the Git cache"
    assert lines[1].startswith(f"Checking out {repos.main[:12]} of {url}")
    fetch_head = home() / "git" / "mirrors" / f"{cache_key(url)}.git" / "FETCH_HEAD"
    stamp = fetch_head.stat().st_mtime_ns
    inode = first.directory.stat().st_ino
    lines.clear()
    again = fetch_project(url, log=lines.append)
    assert lines == []  # answered from the cache
    assert again.directory == first.directory
    assert again.directory.stat().st_ino == inode  # not rebuilt
    assert fetch_head.stat().st_mtime_ns == stamp  # commit already mirrored: no fetch


def test_new_commit_fetched_incrementally(tmp_path: Path) -> None:
    repos = Repos(tmp_path / "own-repos")
    served = GitDaemon(repos.base)
    try:
        url = served.url("proj.git")
        old = fetch_project(url)
        sub_fetch_head = home() / "git" / "mirrors" / f"{cache_key(served.url('sub.git'))}.git"
        stamp = (sub_fetch_head / "FETCH_HEAD").stat().st_mtime_ns
        new_sha = repos.push_new_main_commit("later.txt")
        new = fetch_project(url)
        assert (new.directory / "vendor" / "deep" / "leaf.txt").is_file()
        # the submodule commit is unchanged: its mirror is not fetched again
        assert (sub_fetch_head / "FETCH_HEAD").stat().st_mtime_ns == stamp
        assert new.git_commit == new_sha != old.git_commit
        assert (new.directory / "later.txt").is_file()
        assert not (old.directory / "later.txt").exists()  # old checkout never mutated
    finally:
        served.stop()


def test_concurrent_processes_share_one_checkout(daemon: GitDaemon, repos: Repos) -> None:
    url = daemon.url("proj.git")
    code = (
        "import sys; from mlproj.sources import fetch_project; "
        "f = fetch_project(sys.argv[1], 'feature'); print(f.directory, f.git_commit)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        results.append(out.decode().strip())
    assert len(set(results)) == 1
    directory, commit = results[0].split()
    assert commit == repos.feature
    assert (Path(directory) / "feature.txt").is_file()
    leftovers = [p.name for p in Path(directory).parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no half-built temporary checkouts left behind


def test_local_repo_with_version_leaves_working_copy_alone(repos: Repos, tmp_path: Path) -> None:
    user = tmp_path / "user-clone"
    git("clone", "-q", "--recurse-submodules", str(repos.base / "proj.git"), str(user))
    git(
        "remote",
        "set-url",
        "origin",
        "https://bob:hunter2secret@example.com/org/proj.git",
        cwd=user,
    )
    (user / "MLproject").write_text("edited but not committed\n")
    (user / "scratch.txt").write_text("untracked\n")
    status_before = git("status", "--porcelain", cwd=user)
    head_before = (user / ".git" / "HEAD").read_text()

    fetched = fetch_project(str(user), version="feature")
    assert (fetched.directory / "feature.txt").is_file()
    assert (fetched.directory / "vendor" / "lib.txt").is_file()  # from the user's own clone
    assert (fetched.directory / "vendor" / "deep" / "leaf.txt").is_file()
    assert not list((home() / "git" / "mirrors").glob("*.git"))[1:]  # only the user's repo
    assert fetched.git_commit == repos.feature
    assert fetched.git_branch == "feature"
    assert fetched.source_name == f"file://{user.resolve()}"
    assert fetched.git_repo_url == "https://example.com/org/proj.git"
    assert not str(fetched.directory).startswith(str(user))

    assert (user / ".git" / "HEAD").read_text() == head_before
    assert git("status", "--porcelain", cwd=user) == status_before
    assert (user / "MLproject").read_text() == "edited but not committed\n"
    assert not (user / "feature.txt").exists()

    dotted = fetch_project(f"{user}#sub.dir", version="main")
    assert dotted.directory.name == "sub.dir"
    assert dotted.source_name == f"file://{user.resolve()}#sub.dir"


def test_credentials_never_leak(dumb_http: int, repos: Repos) -> None:
    secret = "s3cr3tTOKENvalue"
    url = f"http://alice:{secret}@127.0.0.1:{dumb_http}/proj.git"
    fetched = fetch_project(url + "#sub.dir", version="main")
    assert fetched.git_commit == repos.main
    clean = f"http://127.0.0.1:{dumb_http}/proj.git"
    assert fetched.source_name == clean + "#sub.dir"
    assert fetched.git_repo_url == clean
    assert all(secret not in value for value in fetched.source_tags().values())
    for path in home().rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_unreachable_host_fails_fast_without_secret() -> None:
    port = free_port()  # nothing listens there
    url = f"https://bob:t0kenSECRET@127.0.0.1:{port}/org/repo.git"
    started = time.monotonic()
    with pytest.raises(ExecutionException) as info:
        fetch_project(url)
    assert time.monotonic() - started < 30
    message = str(info.value)
    assert "t0kenSECRET" not in message
    assert "bob" not in message
    assert f"https://127.0.0.1:{port}/org/repo.git" in message


def test_missing_repository_over_daemon(daemon: GitDaemon) -> None:
    with pytest.raises(ExecutionException, match="Cannot reach Git repository"):
        fetch_project(daemon.url("nope.git"))


def test_bare_local_repository_goes_through_the_cache(repos: Repos) -> None:
    bare = repos.base / "proj.git"
    fetched = fetch_project(str(bare), version="feature")
    assert fetched.git_commit == repos.feature
    assert (fetched.directory / "vendor" / "lib.txt").is_file()  # ../sub.git beside it
    assert fetched.git_repo_url == str(bare)
    by_uri = fetch_project(bare.as_uri() + "#sub.dir")
    assert by_uri.git_commit == repos.main
    assert by_uri.git_repo_url == bare.as_uri()
    assert by_uri.source_name == bare.as_uri() + "#sub.dir"


def test_sources_cli_lists_and_clears(daemon: GitDaemon) -> None:
    from click.testing import CliRunner

    from mlproj.cli.sources import sources_group

    url = daemon.url("proj.git")
    fetch_project(url)
    runner = CliRunner()
    listed = runner.invoke(sources_group, ["list"])
    assert listed.exit_code == 0, listed.output
    assert url in listed.output and "1 checkouts" in listed.output
    cleared = runner.invoke(sources_group, ["clear", "--url", url, "--yes"])
    assert cleared.exit_code == 0, cleared.output
    mirrors = home() / "git" / "mirrors"
    assert not (mirrors / f"{cache_key(url)}.git").exists()
    assert (mirrors / f"{cache_key(daemon.url('sub.git'))}.git").exists()  # only that URL
    assert runner.invoke(sources_group, ["clear", "--yes"]).exit_code == 0
    assert "No cached sources" in runner.invoke(sources_group, ["list"]).output


def test_private_repository_never_prompts(
    private_http: int, repos: Repos, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A credential helper that would save tokens: it must not be handed the URL's token.
    saved = tmp_path / "saved-credentials"
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    (tmp_path / "gitconfig").write_text(f"[credential]\n\thelper = store --file {saved}\n")
    base = f"127.0.0.1:{private_http}/proj.git"
    started = time.monotonic()
    with pytest.raises(ExecutionException) as info:
        fetch_project(f"http://{base}")  # no credentials at all: git would normally prompt
    assert time.monotonic() - started < 30
    assert "Cannot reach Git repository" in str(info.value)
    assert "never prompts" in str(info.value)

    with pytest.raises(ExecutionException) as info:
        fetch_project(f"http://alice:wrongTOKEN99@{base}")
    assert "wrongTOKEN99" not in str(info.value)
    assert f"http://{base}" in str(info.value)

    fetched = fetch_project(f"http://alice:s3cr3tTOKENvalue@{base}", version="feature")
    assert fetched.git_commit == repos.feature
    assert fetched.git_repo_url == f"http://{base}"
    # private submodules on the same server got the token too (command line only)
    assert (fetched.directory / "vendor" / "deep" / "leaf.txt").is_file()
    assert not saved.exists() or "s3cr3t" not in saved.read_text()
    for path in home().rglob("*"):
        if path.is_file():
            assert b"s3cr3tTOKEN" not in path.read_bytes(), path
