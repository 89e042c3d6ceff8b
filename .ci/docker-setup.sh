#!/usr/bin/env bash
# Make a Docker daemon and mlproj's base test images available on this machine.
#
# Idempotent and safe to run many times, also concurrently (one flock around everything).
# Docker Hub is not reachable from CI, so the base images are built locally:
#   mlproj-ci/busybox:1       busybox-static root filesystem, `docker import`ed (seconds)
#   mlproj-ci/python:3.11     Debian bookworm minbase + python3 + mlflow-skinny (debootstrap,
#                             about a minute the first time; the root tarball is cached in
#                             /var/cache/mlproj-ci so later machines/runs only `docker import` it)
# Environment:
#   MLPROJ_CI_DOCKER_DATA_ROOT  dockerd --data-root (default /dev/shm/mlproj-docker, a tmpfs)
#   MLPROJ_CI_PYTHON_IMAGE=0  skip the Python image (tests that need it are skipped)
#   MLPROJ_CI_MLFLOW_VERSION  mlflow-skinny version in the Python image (default: the host's mlflow)
set -euo pipefail

CACHE_DIR=/var/cache/mlproj-ci
LOCK_FILE=/tmp/mlproj-docker-setup.lock
DOCKERD_LOG=/tmp/dockerd.log
# vfs copies the whole image root for every container: on this VM's disk that costs ~3.5 s per
# 200 MB, on tmpfs ~0.4 s. Images are cheap to re-import from the cached tarballs.
DATA_ROOT=${MLPROJ_CI_DOCKER_DATA_ROOT:-/dev/shm/mlproj-docker}
BUSYBOX_IMAGE=mlproj-ci/busybox:1
PYTHON_IMAGE=mlproj-ci/python:3.11
ROOTFS_VERSION=v2  # bump when the image root changes

log() { echo "docker-setup: $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

apt_install() {
    log "installing $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q "$@" >/dev/null \
        || { as_root apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null && \
             as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q "$@" >/dev/null; }
}

ensure_tools() {
    command -v dockerd >/dev/null || apt_install docker.io
    command -v busybox >/dev/null || apt_install busybox-static
    # The registry and htpasswd serve the docker_auth tests (a real registry on loopback).
    command -v docker-registry >/dev/null || apt_install docker-registry || log "no docker-registry"
    command -v htpasswd >/dev/null || apt_install apache2-utils || log "no htpasswd"
}

ensure_daemon() {
    if docker info >/dev/null 2>&1; then
        return 0
    fi
    if [ -n "${DOCKER_HOST:-}" ]; then
        log "DOCKER_HOST=$DOCKER_HOST is set but not reachable; not starting a local daemon"
        return 1
    fi
    log "starting dockerd (log: $DOCKERD_LOG)"
    # setsid + nohup: the daemon outlives the caller (a pytest session, a CI step).
    as_root setsid nohup dockerd --storage-driver=vfs --iptables=false --bridge=none \
        --data-root "$DATA_ROOT" \
        >"$DOCKERD_LOG" 2>&1 </dev/null 9>&- &  # 9>&-: the daemon must not hold our lock
    for _ in $(seq 1 120); do
        if docker info >/dev/null 2>&1; then
            log "dockerd is ready"
            return 0
        fi
        sleep 0.5
    done
    log "dockerd did not become ready in 60 s; last lines of $DOCKERD_LOG:"
    tail -n 20 "$DOCKERD_LOG" >&2 || true
    return 1
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

build_busybox_image() {
    image_exists "$BUSYBOX_IMAGE" && return 0
    log "building $BUSYBOX_IMAGE"
    local root
    root=$(mktemp -d)
    mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/root"
    chmod 1777 "$root/tmp"
    cp "$(command -v busybox)" "$root/bin/busybox"
    # One symlink per applet (what `busybox --install -s` does, without needing chroot/root).
    for applet in $(busybox --list); do
        [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
    done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
    echo 'root:x:0:' >"$root/etc/group"
    tar -C "$root" -c . | docker import \
        --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' - "$BUSYBOX_IMAGE" >/dev/null
    rm -rf "$root"
}

make_python_rootfs() {  # $1: output tarball
    local out=$1 root mlflow_version
    mlflow_version=${MLPROJ_CI_MLFLOW_VERSION:-$(python3 -c 'import mlflow; print(mlflow.__version__)' 2>/dev/null || echo 3.17.2)}
    command -v debootstrap >/dev/null || apt_install debootstrap
    command -v uv >/dev/null || { log "uv is not on PATH (it comes with mlproj's venv)"; return 1; }
    root=$(mktemp -d /tmp/mlproj-ci-rootfs.XXXXXX)
    log "debootstrap bookworm + python3 into $root (about a minute)"
    as_root debootstrap --variant=minbase --include=python3,ca-certificates \
        bookworm "$root" http://deb.debian.org/debian >/tmp/mlproj-ci-debootstrap.log 2>&1
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/locale "$root"/usr/share/info
    # Same Python minor version (3.11) on host and image: the host's uv resolves the wheels.
    log "installing mlflow-skinny==$mlflow_version into the image root"
    uv pip install --quiet --target "$root/usr/local/lib/python3.11/dist-packages" \
        --python "$(command -v python3.11 || command -v python3)" "mlflow-skinny==$mlflow_version"
    # A root without mlflow would be cached and break every later run: check before keeping it.
    [ -d "$root/usr/local/lib/python3.11/dist-packages/mlflow" ] \
        || { log "mlflow-skinny did not install into the image root"; return 1; }
    tar -C "$root" -cf "$out.tmp.$$" .
    mv "$out.tmp.$$" "$out"
    rm -rf "$root"
}

build_python_image() {
    [ "${MLPROJ_CI_PYTHON_IMAGE:-1}" = 0 ] && return 0
    # The label says which root the image came from: an image of an older root is replaced.
    local label
    label=$(docker image inspect -f '{{index .Config.Labels "mlproj.ci.rootfs"}}' "$PYTHON_IMAGE" 2>/dev/null || true)
    [ "$label" = "$ROOTFS_VERSION" ] && return 0
    # Versioned name: a root cached by an older script (or without mlflow) is never reused.
    local tarball=$CACHE_DIR/python3.11-mlflow-rootfs-$ROOTFS_VERSION.tar
    as_root mkdir -p "$CACHE_DIR"
    if [ ! -s "$tarball" ]; then
        make_python_rootfs "$tarball" || { log "could not build the Python image root"; return 1; }
    fi
    log "importing $PYTHON_IMAGE from $tarball"
    docker import --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' \
        --change "LABEL mlproj.ci.rootfs=$ROOTFS_VERSION" \
        "$tarball" "$PYTHON_IMAGE" >/dev/null
}

main() {
    exec 9>"$LOCK_FILE"
    flock 9
    ensure_tools
    ensure_daemon
    build_busybox_image
    build_python_image
    log "ready: $(docker version --format 'daemon {{.Server.Version}}'); images:" \
        "$(docker image ls --format '{{.Repository}}:{{.Tag}}' 'mlproj-ci/*' | tr '\n' ' ')"
}

main "$@"
