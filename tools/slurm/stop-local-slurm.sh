#!/usr/bin/env bash
# Stops a cluster started by start-local-slurm.sh DIR: cancels its jobs, then stops slurmd, slurmctld
# and munged by the pids in their pid files (never by name: other clusters may run here), waiting up to
# 10 s for each. The folder (logs, state) is left for a look; remove it yourself.
set -uo pipefail
dir="${1:?usage: stop-local-slurm.sh DIR}"
[ -f "$dir/slurm.conf" ] || { echo "stop-local-slurm: $dir holds no slurm.conf" >&2; exit 2; }
export SLURM_CONF="$dir/slurm.conf"
scancel --quiet --full "--partition=local" 2>/dev/null || true
stop() {
  local pidfile="$1" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
stop "$dir/slurmd.pid"
stop "$dir/slurmctld.pid"
stop "$dir/munge/munged.pid"
exit 0
