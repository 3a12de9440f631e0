#!/usr/bin/env bash
# A sharded scan on a Slurm cluster: a job array scans one shard per task into node-local disk and
# copies the finished shard to shared storage; a dependent job merges the shards (docs/scale.md).
#
#   scripts/slurm-scan.sh N OUT.db -- SCAN-OPTIONS...
#   e.g. scripts/slurm-scan.sh 64 /shared/scans/val.db -- --arch zfnet --weights W --images /shared/val
#
# Environment: SHARDS_DIR (shared folder for the finished shards; default OUT.db's folder/OUT.shards),
# LOCAL_DIR (node-local scratch; default ${TMPDIR:-/tmp}), ZFVIZ (the program; default zfviz),
# SBATCH_ARGS (more sbatch options, e.g. "--partition=cpu --time=02:00:00 --cpus-per-task=16").
# A failed or pre-empted task is resumed by resubmitting the same command: each task first copies
# back what it had committed and continues from there.
set -euo pipefail
if [ $# -lt 3 ] || [ "$3" != "--" ]; then
    sed -n '2,13p' "$0" >&2
    exit 2
fi
n=$1
out=$(realpath -m "$2")
shift 3
zfviz=${ZFVIZ:-zfviz}
shards=${SHARDS_DIR:-${out%.db}.shards}
local_dir=${LOCAL_DIR:-${TMPDIR:-/tmp}}
mkdir -p "$shards"
scan_args=$(printf '%q ' "$@")

array_id=$(sbatch --parsable ${SBATCH_ARGS:-} --array=1-"$n" --job-name=zfviz-scan \
    --output="$shards/scan-%a.log" --wrap "
set -euo pipefail
k=\$SLURM_ARRAY_TASK_ID
name=shard-\$k-of-$n.db
work=\$(mktemp -d '$local_dir/zfviz-XXXXXX')
trap 'rm -rf \"\$work\"' EXIT
# continue from what an earlier attempt committed (a finished shard is left as it is)
if [ -f '$shards'/\$name ]; then cp '$shards'/\$name \"\$work/\$name\"; fi
$zfviz scan $scan_args --db \"\$work/\$name\" --shard \$k/$n
# copy whole, then rename: the merge never sees half a shard
cp \"\$work/\$name\" '$shards'/.\$name.part && mv '$shards'/.\$name.part '$shards'/\$name
")
sbatch ${SBATCH_ARGS:-} --dependency=afterok:"$array_id" --job-name=zfviz-merge \
    --output="$shards/merge.log" --wrap "$zfviz merge -o '$out' '$shards'/shard-*-of-$n.db"
echo "submitted: scan array $array_id ($n shards into $shards), then the merge into $out"
