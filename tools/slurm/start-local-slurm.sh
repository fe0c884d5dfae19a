#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the tests and for trying examples/slurm/ by hand:
# its own munge key and socket, its own slurm.conf, state and logs, all under one folder, so it neither
# needs nor touches /etc/slurm, /etc/munge or a Slurm that may already run here.
#
#   tools/slurm/start-local-slurm.sh [DIR]    # DIR: a new or empty folder (default: a new one under $TMPDIR)
#   export SLURM_CONF=DIR/slurm.conf          # the last line printed; sbatch, squeue, sinfo read it
#   tools/slurm/stop-local-slurm.sh DIR       # cancels its jobs, stops its daemons (by their pid files)
#
# Needs Debian's slurm-wlm and munge (apt-get install -y slurm-wlm munge) and root (slurmd starts jobs as
# their user). The node is this host with the CPUs and memory `slurmd -C` finds; ports are free ones picked
# at start. proctrack/linuxproc and task/none: no cgroups, so it runs in containers too.
set -euo pipefail

for tool in munged slurmctld slurmd sinfo scontrol; do
  command -v "$tool" >/dev/null || { echo "start-local-slurm: $tool is not installed (apt-get install -y slurm-wlm munge)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "start-local-slurm: needs root (slurmd runs jobs as their submitting user)" >&2; exit 2; }

dir="${1:-}"
if [ -z "$dir" ]; then dir="$(mktemp -d "${TMPDIR:-/tmp}/vlc-slurm-XXXXXX")"; fi
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
[ -e "$dir/slurm.conf" ] && { echo "start-local-slurm: $dir already holds a cluster (stop it with stop-local-slurm.sh $dir, or give a new folder)" >&2; exit 2; }
chmod 0700 "$dir"
mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
chmod 0700 "$dir/munge"

# Two free TCP ports (the kernel picks them; nothing fixed, so clusters of parallel test runs do not collide).
read -r ctld_port slurmd_port < <(node -e '
  const net = require("net");
  const take = () => new Promise((ok) => { const s = net.createServer(); s.listen(0, "127.0.0.1", () => ok(s)); });
  Promise.all([take(), take()]).then((ss) => { console.log(ss.map((s) => s.address().port).join(" ")); ss.forEach((s) => s.close()); });')

# munge: a fresh key for this cluster only, and its own socket.
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 0400 "$dir/munge/munge.key"
munged --force --socket="$dir/munge/munge.sock" --key-file="$dir/munge/munge.key" \
  --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed"

# The node and controller talk over 127.0.0.1, so the host name need not resolve.
host="$(hostname -s)"
# `slurmd -C` prints this node as slurm.conf wants it: NodeName=... CPUs=... RealMemory=...
node_line="$(slurmd -C | head -n 1)"
cat >"$dir/slurm.conf" <<CONF
ClusterName=vlclocal
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/slurmd-%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
${node_line% UpTime=*} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir/slurm.conf"

slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"

# Ready when the node is idle (up to 60 s); otherwise say why, from the logs, and stop what was started.
for _ in $(seq 1 120); do
  state="$(sinfo -h -N -o '%t' 2>/dev/null | head -n 1 || true)"
  [ "$state" = idle ] && break
  sleep 0.5
done
if [ "${state:-}" != idle ]; then
  echo "start-local-slurm: the node did not become idle within 60 s (state: '${state:-none}'); last log lines:" >&2
  tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" "$dir/log/munged.log" >&2 || true
  "$(dirname "$0")/stop-local-slurm.sh" "$dir" >&2 || true
  exit 1
fi
echo "SLURM_CONF=$SLURM_CONF"
