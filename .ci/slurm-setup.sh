#!/usr/bin/env bash
# Make a real single-node Slurm (munged + slurmctld + slurmd on localhost) run on this machine.
#
#   .ci/slurm-setup.sh          install/configure/start as needed, wait for the node, smoke job
#   .ci/slurm-setup.sh --stop   stop slurmd, slurmctld and munged (started by this script or not)
#
# Idempotent and safe to run concurrently (one flock around everything): with the same
# configuration and every daemon answering, a second call only re-checks (no restart, no job).
# No systemd: the daemons are started directly and outlive the caller. Needs root.
# Accounting: slurmdbd on a local MariaDB (Debian's mariadb-server, started directly: about
# 0.2 s), so `sacct` knows finished jobs; the job-completion file ($JOBCOMP_LOG,
# jobcomp/filetxt) is written as well. See docs/backends/engines-notes.md.
# Environment:
#   MLPROJ_CI_SLURM_MIN_JOB_AGE   seconds a finished job stays in slurmctld's memory (default 2)
#   MLPROJ_CI_SLURM_SMOKE=0       skip the smoke job
#   MLPROJ_CI_SLURM_ACCOUNTING=0  no slurmdbd/MariaDB: finished jobs only in the jobcomp file
set -euo pipefail

LOCK_FILE=/tmp/mlproj-slurm-setup.lock
CONF=/etc/slurm/slurm.conf
LOG_DIR=/var/log/slurm
JOBCOMP_LOG=$LOG_DIR/jobcomp.log
CTLD_STATE=/var/spool/slurmctld
SLURMD_SPOOL=/var/spool/slurmd
MIN_JOB_AGE=${MLPROJ_CI_SLURM_MIN_JOB_AGE:-2}
ACCOUNTING=${MLPROJ_CI_SLURM_ACCOUNTING:-1}
DBD_CONF=/etc/slurm/slurmdbd.conf
ALREADY_RUNNING=0

log() { echo "slurm-setup: $*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

ensure_packages() {
    local pkg missing=()
    local wanted=(slurmctld slurmd slurm-client munge)
    [ "$ACCOUNTING" = 0 ] || wanted+=(slurmdbd mariadb-server)
    for pkg in "${wanted[@]}"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # policy-rc.d 101: the packages' init scripts must not try to start anything (no systemd).
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
    fi
    local apt=(apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends)
    "${apt[@]}" "${missing[@]}" >/dev/null \
        || { apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null &&
             "${apt[@]}" "${missing[@]}" >/dev/null; }
    [ "$created_policy" = 0 ] || rm -f "$policy"
}

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

ensure_munge() {
    if [ ! -s /etc/munge/munge.key ]; then
        log "creating /etc/munge/munge.key"
        install -d -o munge -g munge -m 0700 /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    munge_works && return 0
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged 9>&-
    for _ in $(seq 1 50); do
        munge_works && return 0
        sleep 0.1
    done
    log "munged does not answer; see /var/log/munge/munged.log"
    return 1
}

# The node line uses what slurmd itself detects, so the node is never drained for having
# less CPU or memory than configured.
render_conf() {
    local detected cpus memory
    detected=$(slurmd -C | head -n 1)
    cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$detected")
    memory=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$detected")
    local storage=accounting_storage/none
    [ "$ACCOUNTING" = 0 ] || storage=accounting_storage/slurmdbd
    cat <<EOF
# Written by mlproj's .ci/slurm-setup.sh: a single-node test cluster.
ClusterName=mlproj-ci
SlurmctldHost=localhost
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$CTLD_STATE
SlurmdSpoolDir=$SLURMD_SPOOL
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups in a container / CI VM.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=$storage
AccountingStorageHost=localhost
JobCompType=jobcomp/filetxt
JobCompLoc=$JOBCOMP_LOG
# Cores only: memory is not a consumable resource, so a job without --mem does not take the
# whole node's memory and several jobs run at once.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# A request no node of the partition can satisfy is refused at submission, not left pending.
EnforcePartLimits=ALL
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
# Fast turnaround for tests: finished jobs leave slurmctld's memory after MinJobAge seconds,
# a cancelled/timed-out job gets SIGKILL KillWait seconds after SIGTERM.
MinJobAge=$MIN_JOB_AGE
KillWait=2
OverTimeLimit=0
InactiveLimit=0
MessageTimeout=10
SlurmctldTimeout=30
SlurmdTimeout=60
ReturnToService=2
MpiDefault=none
NodeName=localhost CPUs=$cpus RealMemory=$memory State=UNKNOWN
# OverSubscribe=FORCE:4: up to 4 jobs per core, so a sweep test on a 2-core VM is not serial.
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
}

# A live process of that name: not a stale pid file, and not a zombie (pid 1 of a container may
# be slow to reap a killed daemon).
daemon_running() {  # $1: pid file
    local pid name state
    [ -s "$1" ] || return 1
    pid=$(cat "$1")
    name=$(basename "$1" .pid)
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)
    [ -n "$state" ] && [ "$state" != Z ]
}

node_idle() {
    local state
    state=$(sinfo -h -N -n localhost -o '%t' 2>/dev/null | head -n 1) || return 1
    [ "$state" = idle ] || [ "$state" = mix ] || [ "$state" = alloc ]
}

stop_daemon() {  # $1: name, $2: pid file
    daemon_running "$2" || return 0
    local pid
    pid=$(cat "$2")
    log "stopping $1 (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

# -- accounting: MariaDB + slurmdbd, no systemd ----------------------------------------------
mariadb_works() { mariadb -e 'SELECT 1' >/dev/null 2>&1; }
dbd_listens() { (exec 3<>/dev/tcp/127.0.0.1/6819) 2>/dev/null; }

dbd_conf() {
    cat <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
DebugLevel=info
LogFile=$LOG_DIR/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
EOF
}

ensure_accounting() {
    [ "$ACCOUNTING" = 0 ] && return 0
    if ! mariadb_works; then
        [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null
        install -d -o mysql -g mysql -m 0755 /run/mysqld
        log "starting mariadbd"
        setsid /usr/sbin/mariadbd --user=mysql </dev/null >>/var/log/mlproj-mariadbd.log 2>&1 9>&- &
        for _ in $(seq 1 300); do
            mariadb_works && break
            sleep 0.1
        done
        mariadb_works || { log "mariadbd does not answer; see /var/log/mlproj-mariadbd.log"; return 1; }
    fi
    # slurmdbd (SlurmUser slurm) logs in through the socket as that unix user: no password.
    mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
        CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED VIA unix_socket;
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
    local conf
    conf=$(dbd_conf)
    if [ ! -f "$DBD_CONF" ] || [ "$(cat "$DBD_CONF")" != "$conf" ]; then
        printf '%s\n' "$conf" >"$DBD_CONF"
        stop_daemon slurmdbd /run/slurmdbd.pid
    fi
    chown slurm:slurm "$DBD_CONF" && chmod 0600 "$DBD_CONF"
    if ! daemon_running /run/slurmdbd.pid; then
        log "starting slurmdbd (log: $LOG_DIR/slurmdbd.log)"
        setsid /usr/sbin/slurmdbd </dev/null >/dev/null 2>&1 9>&-
    fi
    for _ in $(seq 1 300); do
        dbd_listens && break
        sleep 0.1
    done
    if ! dbd_listens; then
        log "slurmdbd does not listen on port 6819"
        tail -n 20 "$LOG_DIR/slurmdbd.log" >&2 || true
        return 1
    fi
    # slurmctld sends its jobs' records only for a cluster the database knows.
    sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx mlproj-ci \
        || sacctmgr -i add cluster mlproj-ci >/dev/null
}

stop_all() {
    stop_daemon slurmd /run/slurmd.pid
    stop_daemon slurmctld /run/slurmctld.pid
    stop_daemon slurmdbd /run/slurmdbd.pid
    if mariadb_works; then
        log "stopping mariadbd"
        mariadb-admin shutdown >/dev/null 2>&1 || true
    fi
    if munge_works; then
        log "stopping munged"
        munged --stop >/dev/null 2>&1 || true
    fi
}

ensure_slurm() {
    local new_conf changed=0
    install -d -m 0755 /etc/slurm
    new_conf=$(render_conf)
    if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$new_conf" ]; then
        log "writing $CONF"
        printf '%s\n' "$new_conf" >"$CONF.tmp.$$"
        mv "$CONF.tmp.$$" "$CONF"
        changed=1
    fi
    install -d -o slurm -g slurm -m 0755 "$LOG_DIR" "$CTLD_STATE"
    install -d -m 0755 "$SLURMD_SPOOL"
    touch "$JOBCOMP_LOG" && chown slurm:slurm "$JOBCOMP_LOG"

    if [ "$changed" = 1 ]; then
        # A changed slurm.conf is only fully read at start-up (node lines, plugins).
        stop_daemon slurmd /run/slurmd.pid
        stop_daemon slurmctld /run/slurmctld.pid
    fi
    ensure_accounting
    if daemon_running /run/slurmctld.pid && daemon_running /run/slurmd.pid && node_idle; then
        log "already running: $(sinfo -h -o '%P %a %D %t')"
        ALREADY_RUNNING=1
        return 0
    fi
    local started
    started=$(now)
    # Both daemons fork into the background themselves; 9>&-: they must not hold our lock.
    if ! daemon_running /run/slurmctld.pid; then
        log "starting slurmctld (log: $LOG_DIR/slurmctld.log)"
        setsid /usr/sbin/slurmctld -i </dev/null >/dev/null 2>&1 9>&-
    fi
    if ! daemon_running /run/slurmd.pid; then
        log "starting slurmd -N localhost (log: $LOG_DIR/slurmd.log)"
        setsid /usr/sbin/slurmd -N localhost </dev/null >/dev/null 2>&1 9>&-
    fi
    for _ in $(seq 1 300); do
        if node_idle; then
            log "node idle $(elapsed "$started") s after starting the daemons"
            return 0
        fi
        # A node left DOWN/DRAIN by an earlier run (e.g. a killed slurmd) is put back.
        case $(sinfo -h -N -n localhost -o '%t' 2>/dev/null | head -n 1) in
            down* | drain* | drng*) scontrol update NodeName=localhost State=RESUME 2>/dev/null || true ;;
        esac
        sleep 0.1
    done
    log "the node did not become idle in 30 s: $(sinfo -N 2>&1 | tail -n 1)"
    tail -n 20 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" >&2 || true
    return 1
}

smoke_job() {
    [ "${MLPROJ_CI_SLURM_SMOKE:-1}" = 0 ] && return 0
    [ "$ALREADY_RUNNING" = 1 ] && return 0
    local out job_id started line
    out=$(mktemp /tmp/mlproj-slurm-smoke.XXXXXX)
    started=$(now)
    job_id=$(sbatch --parsable --output="$out" --job-name=mlproj-ci-smoke --wrap 'echo hi')
    job_id=${job_id%%;*}
    for _ in $(seq 1 600); do
        line=$(grep -E "^JobId=$job_id " "$JOBCOMP_LOG" || true)
        [ -n "$line" ] && break
        sleep 0.1
    done
    if [ -z "$line" ]; then
        log "smoke job $job_id not in $JOBCOMP_LOG after 60 s"
        return 1
    fi
    local state output
    state=$(sed -n 's/.* JobState=\([A-Z_]*\).*/\1/p' <<<"$line")
    output=$(cat "$out")
    rm -f "$out"
    if [ "$state" != COMPLETED ] || [ "$output" != hi ]; then
        log "smoke job $job_id: state '$state', output '$output'"
        return 1
    fi
    log "smoke job $job_id COMPLETED with output 'hi' in $(elapsed "$started") s"
}

main() {
    if [ "$(id -u)" != 0 ]; then
        log "needs root"
        return 1
    fi
    exec 9>"$LOCK_FILE"
    flock 9
    if [ "${1:-}" = --stop ]; then
        stop_all
        return 0
    fi
    ensure_packages
    ensure_munge
    ensure_slurm
    smoke_job
    log "ready: $(sinfo -h -o 'partition %P, %D node(s) %t, %c CPUs')"
}

main "$@"
