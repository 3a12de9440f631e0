#!/usr/bin/env bash
# Downloads the ONNX model zoo's bvlc_alexnet and zfnet512 into the folder `zfviz --model NAME`
# looks in ($ZFVIZ_MODELS, else $XDG_CACHE_HOME/zfviz/models, else ~/.cache/zfviz/models), checking
# each file's SHA-256 against scripts/zoo-models.tsv.
#   scripts/fetch-models.sh                  opset 12 of both models
#   scripts/fetch-models.sh --opset 9        another of the zoo's opsets (3, 6, 7, 8, 9, 12)
#   scripts/fetch-models.sh --all            every opset of both (about 3.5 GB)
#   scripts/fetch-models.sh bvlc_alexnet     one model (bvlc_alexnet or zfnet512)
# Sources, tried in order: the zoo's Hugging Face organisation (where its downloads moved in 2025),
# then the onnx/models repository's Git LFS media. Needs curl and sha256sum.
set -euo pipefail
cd "$(dirname "$0")/.."
opsets=(12)
models=()
while [ $# -gt 0 ]; do
  case "$1" in
    --opset) opsets=("${2:?--opset needs a number}"); shift 2 ;;
    --all) opsets=(3 6 7 8 9 12); shift ;;
    bvlc_alexnet|bvlcalexnet|alexnet) models+=(alexnet); shift ;;
    zfnet512|zfnet-512) models+=(zfnet-512); shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "fetch-models.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#models[@]} -gt 0 ] || models=(alexnet zfnet-512)
command -v curl >/dev/null || { echo "fetch-models.sh: curl not found" >&2; exit 2; }

if [ -n "${ZFVIZ_MODELS:-}" ]; then dest="$ZFVIZ_MODELS"
elif [ -n "${XDG_CACHE_HOME:-}" ]; then dest="$XDG_CACHE_HOME/zfviz/models"
else dest="$HOME/.cache/zfviz/models"; fi
mkdir -p "$dest"

fail=0
for dir in "${models[@]}"; do
  for op in "${opsets[@]}"; do
    row=$(awk -F'\t' -v d="$dir" -v o="$op" '!/^#/ && $1 == d && $3 == o' scripts/zoo-models.tsv)
    if [ -z "$row" ]; then
      echo "fetch-models.sh: the zoo has no $dir at opset $op" >&2; fail=1; continue
    fi
    IFS=$'\t' read -r _ file _ bytes sha <<<"$row"
    out="$dest/$file"
    if [ -f "$out" ] && [ "$(sha256sum "$out" | cut -d' ' -f1)" = "$sha" ]; then
      echo "$file: already there, checksum good"; continue
    fi
    stem="${file%.onnx}"
    urls=("https://huggingface.co/onnxmodelzoo/$stem/resolve/main/$file"
          "https://media.githubusercontent.com/media/onnx/models/main/validated/vision/classification/$dir/model/$file")
    ok=0
    for url in "${urls[@]}"; do
      echo "$file: downloading $url ($((bytes / 1000000)) MB)"
      if curl -fL --retry 2 --connect-timeout 20 -o "$out.part" "$url"; then
        got=$(sha256sum "$out.part" | cut -d' ' -f1)
        if [ "$got" = "$sha" ]; then mv "$out.part" "$out"; ok=1; break; fi
        echo "$file: SHA-256 $got does not match the zoo's $sha; trying the next source" >&2
      fi
      rm -f "$out.part"
    done
    if [ $ok = 1 ]; then echo "$file: saved in $dest"; else echo "$file: no source worked" >&2; fail=1; fi
  done
done
[ $fail = 0 ] && echo "models in $dest: zfviz info --model zfnet512 (or bvlc_alexnet)"
exit $fail
