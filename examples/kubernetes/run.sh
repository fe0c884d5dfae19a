#!/usr/bin/env bash
# Runs the example: the parts as an Indexed Job, then, once every index succeeded, the merge Job.
#
# Why a second Job applied after `kubectl wait` (and not a merge pod waiting inside the cluster): the merge
# starts only on the parts' Complete condition, which Kubernetes sets when every index succeeded; nothing
# holds a node or needs RBAC to watch Jobs while the parts run; and a parts Job that Failed stops here with
# its status instead of leaving a merge waiting forever. Run it where kubectl works (a CI job, a laptop);
# if this script dies, run it again: applying unchanged Jobs is a no-op and the wait resumes.
set -euo pipefail
cd "$(dirname "$0")"
kubectl apply -f shared-volume.yaml -f recipe-configmap.yaml
kubectl apply -f parts-job.yaml
# Complete or Failed, whichever comes first (kubectl wait takes one condition, so poll both).
while :; do
  state="$(kubectl get job/vlcurate-parts -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}')"
  case " $state " in
    *" Complete "*) break ;;
    *" Failed "*) echo "vlcurate-parts failed: kubectl describe job/vlcurate-parts; fix, delete the Job and run again (parts resume)" >&2; exit 1 ;;
  esac
  sleep 30
done
kubectl wait --for=condition=complete job/vlcurate-parts --timeout=60s
kubectl apply -f merge-job.yaml
kubectl wait --for=condition=complete job/vlcurate-merge --timeout=24h
kubectl logs job/vlcurate-merge
