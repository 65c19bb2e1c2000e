#!/usr/bin/env bash
# The StatefulSet partition canary done by hand with kubectl, as a pipeline would:
# hold partition 2, set image, wait; partition 1, wait; partition 0, wait (the
# steps of playbooks/statefulset-partition-canary.yaml that change or wait).
#
#   KUBECTL=path/to/kubectl bench/contenders/kubectl-canary.sh NAMESPACE [NEW_IMAGE]
#
# `kubectl rollout status` on a StatefulSet with rollingUpdate.partition judges
# by status counters, not by pods: done once observedGeneration is current,
# readyReplicas >= replicas and updatedReplicas >= replicas - partition
# ("partitioned roll out complete: N new pods have been updated"). With a
# partition it never compares currentRevision with updateRevision, so it does
# return for a canary (unlike Ansible's wait). To be correct here the partition
# must be set *before* the image (else every ordinal starts moving), and each
# wait needs --timeout (the default waits forever). Marks go to $BENCH_MARKS
# (one "name epoch" line per command) so the bench can attribute API requests.
set -euo pipefail
ns=$1
image=${2:-nginx:1.26.1}
kubectl=${KUBECTL:-kubectl}
marks=${BENCH_MARKS:-/dev/null}

mark() { echo "$1 $EPOCHREALTIME" >>"$marks"; }

mark set_partition
"$kubectl" -n "$ns" patch statefulset/web --type=merge \
  -p '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}'
mark set_image
"$kubectl" -n "$ns" set image statefulset/web nginx="$image"
mark wait_ready
"$kubectl" -n "$ns" rollout status statefulset/web --timeout=5m
for partition in 1 0; do
  mark set_partition
  "$kubectl" -n "$ns" patch statefulset/web --type=merge \
    -p "{\"spec\":{\"updateStrategy\":{\"rollingUpdate\":{\"partition\":$partition}}}}"
  mark wait_ready
  "$kubectl" -n "$ns" rollout status statefulset/web --timeout=5m
done
mark end
