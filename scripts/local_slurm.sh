#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for trying the cluster path
# (hydra/launcher=slurm_gpu) and for the slow SLURM tests (tests/test_slurm_real.py).
# NOT a production cluster: no accounting, no cgroups (jobs are not confined to their
# CPUs or memory), root runs the daemons, one node.
#
#   sudo bash scripts/local_slurm.sh start    # install slurm-wlm + munge if missing, write the config, start, wait for the node
#   sudo bash scripts/local_slurm.sh status   # daemons, node state, jobs; exit 0 when the node takes jobs
#   sudo bash scripts/local_slurm.sh stop     # cancel this cluster's jobs, stop slurmd, slurmctld and munged
#
# Debian/Ubuntu (apt-get), as root, no systemd needed. start and stop are idempotent.
# The config is /etc/slurm/slurm.conf (where sbatch, squeue, sinfo look), written by this
# script and marked so; a slurm.conf it did not write is never touched. The cluster's state
# and logs live in $LOCAL_SLURM_STATE_DIR (default /var/lib/vlm-prompt-opt-slurm).
# Settings: LOCAL_SLURM_CPUS (default: nproc), LOCAL_SLURM_STATE_DIR, LOCAL_SLURM_WAIT_S
# (default 90: how long start waits for the node to take jobs).
set -euo pipefail

STATE_DIR=${LOCAL_SLURM_STATE_DIR:-/var/lib/vlm-prompt-opt-slurm}
CONF=/etc/slurm/slurm.conf
MARKER="# written by vlm-prompt-opt scripts/local_slurm.sh"
WAIT_S=${LOCAL_SLURM_WAIT_S:-90}
NODE=$(hostname -s)

say() { echo "local_slurm: $*"; }
die() { echo "local_slurm: error: $*" >&2; exit 2; }

alive() {  # alive PIDFILE: the pid it names is a running process
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

require_root() {
    [[ $(id -u) == 0 ]] || die "run as root (it installs Debian packages and starts munged, slurmctld and slurmd)"
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        && command -v munged >/dev/null; then
        return
    fi
    command -v apt-get >/dev/null || die "slurm-wlm and munge are not installed and there is no apt-get to install them"
    say "installing slurm-wlm and munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed (no package mirror reachable?)"
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null \
        || die "apt-get install slurm-wlm munge failed"
}

write_config() {
    if [[ -e $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
        die "$CONF exists and was not written by this script: refusing to replace it (this script is for a machine without a SLURM cluster)"
    fi
    local cpus=${LOCAL_SLURM_CPUS:-$(nproc)}
    [[ $cpus =~ ^[1-9][0-9]*$ ]] || die "LOCAL_SLURM_CPUS must be a positive whole number, got '$cpus'"
    local avail_kb mem_mb
    avail_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
    mem_mb=$(( avail_kb * 9 / 10 / 1024 ))  # a bit under what is free now: the node is never drained for "low memory"
    (( mem_mb >= 1024 )) || die "only $(( avail_kb / 1024 )) MB of memory available: too little for a node"
    mkdir -p /etc/slurm "$STATE_DIR"/{ctld,spool,log}
    local tmp
    tmp=$(mktemp "$CONF.XXXXXX")
    cat >"$tmp" <<EOF
$MARKER ($(date -u +%Y-%m-%dT%H:%M:%SZ))
# A single-node cluster for trying the cluster path and for tests; not for production.
ClusterName=vlmpo-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# a job requeued (its node failed) may start again after cred_expire seconds (default 120)
AuthInfo=cred_expire=30
CredType=cred/munge
MpiDefault=none
# no systemd or cgroups here: track job processes by /proc, bind nothing
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
# no accounting database: sacct has nothing to say; job states come from squeue
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# a node that stopped answering takes jobs again when it answers; one set down by hand waits for state=resume
ReturnToService=1
# finished jobs stay visible to squeue for 5 minutes (their final state: COMPLETED, TIMEOUT, ...)
MinJobAge=300
KillWait=10
MailProg=/bin/true
InactiveLimit=0
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    chmod 644 "$tmp"
    mv "$tmp" "$CONF"
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return  # a munged is running and answers
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey --create --keyfile=/etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
    chmod 700 /etc/munge /var/log/munge
    chmod 600 /etc/munge/munge.key
    chmod 755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    touch "$STATE_DIR/munged.ours"  # stop stops only a munged this script started
    local i
    for i in $(seq 1 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return
        sleep 0.2
    done
    die "munged did not start (see /var/log/munge/munged.log)"
}

node_state() {  # the node's state as sinfo prints it (idle, mix, alloc, down*, drain, ...), or nothing
    sinfo -h -n "$NODE" -o %t 2>/dev/null | head -n1
}

start() {
    require_root
    install_packages
    if alive "$STATE_DIR/slurmctld.pid" && alive "$STATE_DIR/slurmd.pid"; then
        say "already running (slurmctld pid $(cat "$STATE_DIR/slurmctld.pid"), slurmd pid $(cat "$STATE_DIR/slurmd.pid"))"
    else
        write_config
        start_munge
        alive "$STATE_DIR/slurmctld.pid" || slurmctld || die "slurmctld did not start: see $STATE_DIR/log/slurmctld.log"
        alive "$STATE_DIR/slurmd.pid" || slurmd || die "slurmd did not start: see $STATE_DIR/log/slurmd.log"
    fi
    local deadline=$(( SECONDS + WAIT_S )) state=""
    while (( SECONDS < deadline )); do
        state=$(node_state)
        case $state in
            idle|mix|alloc|comp) say "node $NODE is up ($state), partition debug; $CONF"; return 0 ;;
            down|drain|drng|down\*|drain\*)
                # a node taken down earlier (or not yet registered) returns to service
                scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 1
    done
    die "node $NODE did not come up in ${WAIT_S}s (state: '${state:-unknown}'); see $STATE_DIR/log/"
}

wait_gone() {  # wait_gone NAME PID: wait up to 15 s for PID to exit, then SIGTERM it, then SIGKILL
    local name=$1 pid=$2 i
    for i in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    say "$name (pid $pid) still running after 15 s: SIGTERM"
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 10); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    say "$name (pid $pid) ignored SIGTERM: SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
}

stop() {
    require_root
    local ctld_pid="" slurmd_pid="" munged_pid=""
    alive "$STATE_DIR/slurmctld.pid" && ctld_pid=$(cat "$STATE_DIR/slurmctld.pid")
    alive "$STATE_DIR/slurmd.pid" && slurmd_pid=$(cat "$STATE_DIR/slurmd.pid")
    if [[ -e $STATE_DIR/munged.ours ]] && alive /run/munge/munged.pid; then
        munged_pid=$(cat /run/munge/munged.pid)
    fi
    if [[ -n $ctld_pid ]]; then
        # this cluster's jobs first, so no job outlives its slurmd
        local jobs i
        jobs=$(squeue -h -o %A 2>/dev/null || true)
        if [[ -n $jobs ]]; then
            say "cancelling jobs: $(echo $jobs)"
            scancel $jobs 2>/dev/null || true
            for i in $(seq 1 30); do
                [[ -z $(squeue -h -t PD,R,CG,S -o %A 2>/dev/null) ]] && break
                sleep 1
            done
        fi
        scontrol shutdown >/dev/null 2>&1 || true  # slurmctld and every slurmd
    fi
    [[ -n $slurmd_pid ]] && wait_gone slurmd "$slurmd_pid"
    [[ -n $ctld_pid ]] && wait_gone slurmctld "$ctld_pid"
    if [[ -n $munged_pid ]]; then
        kill "$munged_pid" 2>/dev/null || true
        wait_gone munged "$munged_pid"
    fi
    rm -f "$STATE_DIR/munged.ours"
    say "stopped"
}

status() {
    local ctld=down slurmd=down
    alive "$STATE_DIR/slurmctld.pid" && ctld="running (pid $(cat "$STATE_DIR/slurmctld.pid"))"
    alive "$STATE_DIR/slurmd.pid" && slurmd="running (pid $(cat "$STATE_DIR/slurmd.pid"))"
    say "slurmctld: $ctld; slurmd: $slurmd; state and logs: $STATE_DIR"
    if [[ $ctld == down ]]; then
        return 1
    fi
    sinfo -N -o "%N %P %t %c %m %E" || true
    squeue -o "%i %j %T %M %l %R" || true
    case $(node_state) in
        idle|mix|alloc|comp) return 0 ;;
        *) return 1 ;;
    esac
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status  (a single-node SLURM cluster for trying the cluster path and the tests)" >&2; exit 2 ;;
esac
