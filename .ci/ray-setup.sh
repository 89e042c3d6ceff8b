#!/usr/bin/env bash
# Make a real Ray head (with the dashboard's job API) run on this machine, on loopback only.
#
#   .ci/ray-setup.sh VENV_PYTHON          install ray[default] into that venv if missing, start
#                                         the head, wait for the job API, smoke-test it
#   .ci/ray-setup.sh VENV_PYTHON --stop   stop the head (`ray stop`)
#
# Idempotent and safe to run concurrently (one flock around everything): when the job API
# already answers, nothing is started and no job is submitted.
# The head runs with VENV_PYTHON's bin first on PATH, so a job's `python` is that venv's (which
# has mlflow): that is "the cluster's Python" for `--env-manager local`.
# Environment:
#   MLPROJ_CI_RAY_PORT           job API / dashboard port (default 8265)
#   MLPROJ_CI_RAY_NUM_CPUS       logical CPUs of the head (default 2)
#   MLPROJ_CI_RAY_OBJECT_STORE   object store bytes (default 200 MB)
#   MLPROJ_CI_RAY_SMOKE=0        skip the smoke jobs
set -euo pipefail

LOCK_FILE=/tmp/mlproj-ray-setup.lock
PORT=${MLPROJ_CI_RAY_PORT:-8265}
ADDRESS=http://127.0.0.1:$PORT
NUM_CPUS=${MLPROJ_CI_RAY_NUM_CPUS:-2}
OBJECT_STORE=${MLPROJ_CI_RAY_OBJECT_STORE:-200000000}
START_LOG=/tmp/mlproj-ray-start.log
export RAY_USAGE_STATS_ENABLED=0

log() { echo "ray-setup: $*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# The job API answering is not enough: a failed `ray start` can leave the dashboard up with no
# raylet, so the head node must also be ALIVE in the state API.
job_api_up() {
    "$PYTHON" - "$ADDRESS" <<'EOF' >/dev/null 2>&1
import json
import sys
import urllib.request

with urllib.request.urlopen(sys.argv[1] + "/api/v0/nodes?detail=false", timeout=5) as answer:
    nodes = json.load(answer)["data"]["result"]["result"]
sys.exit(0 if any(n["is_head_node"] and n["state"] == "ALIVE" for n in nodes) else 1)
EOF
}

# ray[default] = ray + the dashboard's dependencies (the job API lives in the dashboard).
# Looked up without importing ray (an import costs seconds).
ray_installed() {
    [ -x "$VENV_BIN/ray" ] && "$PYTHON" -c '
import importlib.util, sys
sys.exit(any(importlib.util.find_spec(name) is None
             for name in ("ray", "aiohttp_cors", "opencensus", "prometheus_client")))' 2>/dev/null
}
ray_version() {
    "$PYTHON" -c 'import importlib.metadata as m; print("ray", m.version("ray"))'
}

ensure_ray() {
    ray_installed && return 0
    local started uv
    started=$(now)
    log "installing ray[default] into $PYTHON"
    if [ -x "$VENV_BIN/uv" ]; then uv=$VENV_BIN/uv; else uv=$(command -v uv || true); fi
    if [ -n "$uv" ]; then
        "$uv" pip install -q --python "$PYTHON" 'ray[default]>=2.9'
    else
        "$PYTHON" -m pip install -q 'ray[default]>=2.9'
    fi
    log "installed $(ray_version) in $(elapsed "$started") s"
}

start_head() {
    if job_api_up; then
        log "already running: job API answers at $ADDRESS"
        return 1
    fi
    local started attempt
    started=$(now)
    # `ray start` gives the raylet a fixed 30 s to register; on a loaded 2-core machine that
    # can be too short, so a failed start is cleaned up and tried once more.
    for attempt in 1 2; do
        log "starting the Ray head, attempt $attempt (log: $START_LOG)"
        # Only the dashboard (the job API) can be put on loopback: Ray maps a loopback
        # --node-ip-address to the machine's address, and its GCS/raylet ports listen on
        # all interfaces. 9>&-: the head's daemons must not hold our lock.
        if PATH=$VENV_BIN:$PATH "$VENV_BIN/ray" start --head --dashboard-host 127.0.0.1 \
            --dashboard-port "$PORT" --include-dashboard true --num-cpus "$NUM_CPUS" \
            --object-store-memory "$OBJECT_STORE" --disable-usage-stats \
            </dev/null >"$START_LOG" 2>&1 9>&-; then
            break
        fi
        log "ray start failed: $(tail -n 1 "$START_LOG")"
        "$VENV_BIN/ray" stop --force >/dev/null 2>&1 9>&- || true
        if [ "$attempt" = 2 ]; then
            tail -n 20 "$START_LOG" >&2
            return 2
        fi
    done
    for _ in $(seq 1 600); do
        if job_api_up; then
            log "job API answers at $ADDRESS $(elapsed "$started") s after 'ray start'"
            return 0
        fi
        sleep 0.1
    done
    log "the job API did not answer in 60 s; see $START_LOG and /tmp/ray/session_latest/logs"
    return 2
}

smoke_jobs() {
    [ "${MLPROJ_CI_RAY_SMOKE:-1}" = 0 ] && return 0
    local started output
    started=$(now)
    output=$("$VENV_BIN/ray" job submit --address "$ADDRESS" -- echo hi 2>&1) \
        || { log "ray job submit failed: $output"; return 1; }
    if ! grep -qx hi <<<"$output" || ! grep -q "Job '.*' succeeded" <<<"$output"; then
        log "ray job submit: unexpected output: $output"
        return 1
    fi
    log "ray job submit -- echo hi: SUCCEEDED in $(elapsed "$started") s"
    started=$(now)
    "$PYTHON" - "$ADDRESS" <<'EOF' || { log "JobSubmissionClient smoke job failed"; return 1; }
import sys
import time

from ray.job_submission import JobStatus, JobSubmissionClient

client = JobSubmissionClient(sys.argv[1])
job_id = client.submit_job(entrypoint="echo hi")
deadline = time.monotonic() + 60
while (status := client.get_job_status(job_id)) not in {
    JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED
}:
    if time.monotonic() > deadline:
        sys.exit(f"{job_id} still {status} after 60 s")
    time.sleep(0.1)
logs = client.get_job_logs(job_id)
# Ray adds its own lines ("Runtime env is setting up.", "Running entrypoint for job ...").
if status != JobStatus.SUCCEEDED or "hi" not in logs.splitlines():
    sys.exit(f"{job_id}: {status}, logs {logs!r}")
EOF
    log "JobSubmissionClient echo hi: SUCCEEDED in $(elapsed "$started") s"
}

# A head that was already running may have been started with another Python (another
# checkout's venv, the machine's own): its `--env-manager local` jobs would then import that
# Python's packages, not this venv's. Said loudly; not stopped (others may be using it).
check_head_python() {
    local want got
    want=$("$PYTHON" -c 'import sys; print(sys.prefix)')
    got=$("$VENV_BIN/ray" job submit --address "$ADDRESS" -- \
        python -c 'import sys; print("prefix=" + sys.prefix)' 2>/dev/null | sed -n 's/^prefix=//p')
    if [ "$got" != "$want" ]; then
        log "WARNING: the running Ray head's jobs use the Python in ${got:-?}, not $want:"
        log "WARNING: Ray tests with --env-manager local run there; \`ray stop\` it to use this venv"
    fi
}

main() {
    if [ $# -lt 1 ] || [ ! -x "$1" ]; then
        log "usage: $0 VENV_PYTHON [--stop]"
        return 2
    fi
    # The real interpreter, not a pyenv shim: its bin/ is where `ray` (and mlproj's uv) live.
    PYTHON=$("$1" -c 'import sys; print(sys.executable)')
    VENV_BIN=$(dirname "$PYTHON")
    exec 9>"$LOCK_FILE"
    flock 9
    if [ "${2:-}" = --stop ]; then
        if [ -x "$VENV_BIN/ray" ]; then
            log "stopping the Ray head"
            "$VENV_BIN/ray" stop >/dev/null 2>&1 9>&- || true
        fi
        return 0
    fi
    ensure_ray
    local rc=0
    start_head || rc=$?
    case $rc in
        0) smoke_jobs ;;
        1) check_head_python ;;  # already running: nothing to start
        *) return 1 ;;
    esac
    log "ready: $(ray_version) at $ADDRESS"
}

main "$@"
