#!/usr/bin/env bash
# Submit a vlcurate run of N parts to Slurm: a job array of N builds (`--shard I/N`), then one merge job
# that starts only when every part succeeded.
#
#   examples/slurm/submit.sh RECIPE N [sbatch options for the parts, e.g. --partition=gpu --gres=gpu:1]
#
# The recipe and its inputs/outputs must be on storage every node reaches (a shared file system, or s3://
# URLs). Logs go to slurm-logs/ next to the recipe. SBATCH_PARTITION, SBATCH_ACCOUNT etc. apply to both jobs;
# VLCURATE_MAX_RUNNING=K runs at most K parts at a time (--array=0-(N-1)%K). N is limited by the
# cluster's MaxArraySize (`scontrol show config | grep MaxArraySize`, 1001 by default).
# Prints the two job ids (`array=ID merge=ID`) on its last line.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[ $# -ge 2 ] || { echo "usage: $0 RECIPE N [sbatch options for the parts]" >&2; exit 2; }
recipe="$(realpath "$1")"
parts="$2"
shift 2
[ -f "$recipe" ] || { echo "$0: no recipe at $recipe" >&2; exit 2; }
[[ "$parts" =~ ^[1-9][0-9]*$ ]] || { echo "$0: N must be a whole number from 1, got '$parts'" >&2; exit 2; }

# Every part must run the same vlcurate (the split and the decisions depend on it): pin the version once.
if [ -z "${VLCURATE:-}" ] && [ -z "${VLCURATE_VERSION:-}" ]; then
  VLCURATE_VERSION="$(npm view vlcurate version)" ||
    { echo "$0: could not look up vlcurate's version on npm; set VLCURATE_VERSION (or VLCURATE to a command)" >&2; exit 2; }
fi
export VLCURATE_RECIPE="$recipe" VLCURATE_PARTS="$parts" VLCURATE_VERSION="${VLCURATE_VERSION:-}"

logs="$(dirname "$recipe")/slurm-logs"
mkdir -p "$logs"
array_job="$(sbatch --parsable --export=ALL --chdir="$(dirname "$recipe")" --array="0-$((parts - 1))${VLCURATE_MAX_RUNNING:+%$VLCURATE_MAX_RUNNING}" \
  --output="$logs/part-%A_%a.out" "$@" "$here/build-part.sbatch")"
array_job="${array_job%%;*}" # "ID;cluster" on multi-cluster setups
# afterok: only when every array task exited 0; --kill-on-invalid-dep: a failed part cancels the merge
# instead of leaving it pending forever (rerun the failed parts, then submit merge.sbatch yourself).
merge_job="$(sbatch --parsable --export=ALL --chdir="$(dirname "$recipe")" --dependency="afterok:${array_job}" \
  --kill-on-invalid-dep=yes --output="$logs/merge-%j.out" "$here/merge.sbatch")"
merge_job="${merge_job%%;*}"
echo "array=${array_job} merge=${merge_job}"
