#!/usr/bin/env bash
# A sharded scan over several hosts with GNU parallel: each shard is scanned on some host into its
# local disk and copied back here, then the shards are merged (docs/scale.md).
#
#   scripts/parallel-scan.sh N OUT.db HOSTS -- SCAN-OPTIONS...
#   e.g. scripts/parallel-scan.sh 8 val.db host1,host2,: -- --arch zfnet --weights W --images /shared/val
#
# HOSTS is parallel's --sshlogin list (":" is this machine); every host needs zfviz (ZFVIZ) and the
# images and weights at the same paths. One shard runs per host at a time (the scan uses all its
# cores). Run the same command again after a failure: finished shards are kept, and an unfinished
# one continues from its last commit.
set -euo pipefail
if [ $# -lt 4 ] || [ "$4" != "--" ]; then
    sed -n '2,11p' "$0" >&2
    exit 2
fi
n=$1
out=$(realpath -m "$2")
hosts=$3
shift 4
zfviz=${ZFVIZ:-zfviz}
shards=${out%.db}.shards
mkdir -p "$shards"
scan_args=$(printf '%q ' "$@")
export shards scan_args zfviz n

# each shard's database goes to the host at the same path (empty: a new scan; else the progress
# of an earlier attempt), is scanned there and comes back
for k in $(seq 1 "$n"); do touch "$shards/shard-$k-of-$n.db"; done
seq 1 "$n" | parallel --sshlogin "$hosts" -j1 --retries 2 --halt now,fail=1 \
    --transferfile "$shards/shard-{}-of-$n.db" \
    --return "$shards/shard-{}-of-$n.db" --cleanup \
    "mkdir -p '$shards' && $zfviz scan $scan_args --db '$shards/shard-{}-of-$n.db' --shard {}/$n"
"$zfviz" merge -o "$out" "$shards"/shard-*-of-"$n".db
