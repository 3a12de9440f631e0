#!/usr/bin/env bash
# Every GPU check in one place: the CUDA engine's Criterion tests, compute-sanitizer (memcheck and
# racecheck) on the test binary, bench/gpu (bench_gpu against PyTorch + cuDNN on the same GPU), and
# the commands on both engines (zfviz scan and train with --device cpu and cuda on the same data:
# the databases and losses compared, the times side by side), ending with one short table.
#
# The GPU machine is bare (CUDA 13 runtime, cuBLAS, PyTorch with its bundled cuDNN wheels, no Debian
# libraries, no network), so the work is split:
#   scripts/gpu-check.sh pack    on the build machine: Release build with CUDA, then the binaries and
#                                every shared library they need except libc/libstdc++ and CUDA's own
#                                (cudart, cuBLAS, cuDNN: the GPU machine's are used), gzipped into
#                                .gpucheck/pack.tar.gz (about 23 MiB)
#   scripts/gpu-check.sh run [tests|sanitize|bench|commands|all]
#                                on the GPU machine, from the repository root with .gpucheck carried:
#                                finds the machine's CUDA libraries (ldconfig, the torch environment's
#                                nvidia/*/lib), runs the checks, prints the table last. The summary,
#                                the benchmark lines and a tarball of all logs go to $OUT (the device
#                                tool's folder) or .gpucheck/out.
#   scripts/gpu-check.sh         pack, then run if this machine has a GPU.
# With the device tool: pack here, then run `scripts/gpu-check.sh run` with carry [".gpucheck"].
# One call has 10 minutes: `run` does the tests, the benchmarks, then the sanitizer runs that fit in
# BUDGET seconds (540); `run sanitize` does all sanitizer runs in a call of its own. Environment:
# PRECISIONS (default fp32; e.g. fp32,tf32), QUICK=1 for short benchmarks, BUDGET; OTHER=cpu runs
# the commands step with the CPU engine on both sides (to try the step on a machine without a GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CARRY="$ROOT/.gpucheck"               # what travels: pack.tar.gz
STAGE="$ROOT/build-gpu/gpucheck"      # pack's staging folder here

pack() {
  set -e
  local jobs=2
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DZF_CUDA=ON >/dev/null
  grep -q '^ZF_CUDNN_LIB:' build-gpu/CMakeCache.txt || { echo "gpu-check: CUDA engine not configured (no nvcc/cuDNN?)" >&2; exit 1; }
  cmake --build build-gpu -j"$jobs" --target test_cuda bench_gpu
  # zfviz too when it links (it needs the whole CPU engine)
  cmake --build build-gpu -j"$jobs" --target zfviz >/dev/null 2>&1 || echo "gpu-check: zfviz does not link yet; packing without it"
  rm -rf "$STAGE"
  mkdir -p "$STAGE/bin" "$STAGE/lib"
  local bins=(build-gpu/tests/test_cuda build-gpu/bench/bench_gpu)
  [ -x build-gpu/tools/zfviz ] && bins+=(build-gpu/tools/zfviz)
  for b in "${bins[@]}"; do
    cp "$b" "$STAGE/bin/"
    strip --strip-unneeded "$STAGE/bin/$(basename "$b")"
  done
  # the CUDA engine's module, which zfviz loads by name (LD_LIBRARY_PATH on the GPU machine) and
  # test_cuda links
  cp -L build-gpu/cuda/libzfviz_cuda.so "$STAGE/lib/"
  bins+=(build-gpu/cuda/libzfviz_cuda.so)
  # Shared libraries: everything ldd resolves except the C/C++ runtime (the GPU machine's newer
  # glibc/libstdc++ run binaries built against older ones) and CUDA's (taken from that machine).
  local skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|librt\.so|libpthread\.so|libresolv\.so|libnsl\.so|libutil\.so|libanl\.so|libstdc\+\+\.so|libgcc_s\.so|libcuda\.so|libcudart\.so|libcublas\.so|libcublasLt\.so|libcudnn)'
  for b in "${bins[@]}"; do
    ldd "$b" | awk '/=>/ {print $1, $3}' | while read -r name path; do
      [[ "$name" =~ $skip ]] && continue
      [ -f "$path" ] || { echo "gpu-check: $b needs $name, not found here" >&2; exit 1; }
      [ -f "$STAGE/lib/$name" ] || cp -L "$path" "$STAGE/lib/$name"
    done
  done
  rm -rf "$CARRY"
  mkdir -p "$CARRY"
  tar -C "$STAGE" -czf "$CARRY/pack.tar.gz" bin lib
  local mib
  mib=$(du -sm "$CARRY" | cut -f1)
  echo "gpu-check: packed $(ls "$STAGE/bin" | tr '\n' ' ')+ $(ls "$STAGE/lib" | wc -l) libraries ($(du -sm "$STAGE" | cut -f1) MiB), ${mib} MiB gzipped in .gpucheck/pack.tar.gz"
  if [ "$mib" -gt 56 ]; then
    echo "gpu-check: .gpucheck is ${mib} MiB, too close to what one device call carries (64 MiB with the tree)" >&2
    exit 1
  fi
}

# The GPU machine's CUDA runtime, cuBLAS and cuDNN: the system's, or the torch environment's wheels.
cuda_lib_path() {
  local dirs=() want=(libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcudnn.so.9)
  local roots=(/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu)
  local site
  site=$(python3 -c 'import nvidia, os; print(" ".join(os.path.abspath(p) for p in nvidia.__path__))' 2>/dev/null || true)
  for lib in "${want[@]}"; do
    local found=""
    for d in "${roots[@]}"; do
      [ -e "$d/$lib" ] && { found=$d; break; }
    done
    if [ -z "$found" ] && [ -n "$site" ]; then
      found=$(find $site -name "$lib" -printf '%h\n' 2>/dev/null | head -1)
    fi
    if [ -z "$found" ]; then
      found=$(ldconfig -p 2>/dev/null | awk -v l="$lib" '$1 == l {print $NF; exit}' | xargs -r dirname)
    fi
    if [ -z "$found" ]; then
      echo "gpu-check: $lib not found on this machine" >&2
    else
      echo "gpu-check: $lib in $found" >&2
      dirs+=("$found")
    fi
  done
  printf '%s\n' "${dirs[@]}" | awk '!seen[$0]++' | paste -sd: -
}

step_tests() {
  echo "== GPU tests (test_cuda)"
  local t0=$SECONDS
  timeout -k 10 300 env LD_LIBRARY_PATH="$libpath" "$STAGE/bin/test_cuda" --jobs 1 --verbose >"$out/test_cuda.log" 2>&1
  local rc=$?
  grep -E '^\[(FAIL|SKIP|----)\]|Synthesis' "$out/test_cuda.log" | tail -40
  local synth
  synth=$(grep -o 'Tested: .*' "$out/test_cuda.log" | tail -1)
  printf 'tests\ttest_cuda\trc=%s %s (%ss)\n' "$rc" "${synth:-no synthesis line}" $((SECONDS - t0)) >>"$summary"
}

step_bench() {
  local q=()
  [ "${QUICK:-0}" = 1 ] && q=(--quick)
  local precs="${PRECISIONS:-fp32}"
  echo "== bench_gpu"
  timeout -k 10 200 env LD_LIBRARY_PATH="$libpath" "$STAGE/bin/bench_gpu" "${q[@]}" --precisions "$precs" \
    >"$out/bench_zfviz.jsonl" 2>"$out/bench_zfviz.err"
  printf 'bench\tbench_gpu\trc=%s\n' $? >>"$summary"
  cat "$out/bench_zfviz.err"
  echo "== PyTorch + cuDNN"
  PYTHONUNBUFFERED=1 timeout -k 10 200 python3 bench/torch_gpu.py "${q[@]}" --precisions "$precs" \
    >"$out/bench_torch.jsonl" 2>"$out/bench_torch.err"
  printf 'bench\ttorch_gpu.py\trc=%s\n' $? >>"$summary"
  tail -5 "$out/bench_torch.err"
}

step_sanitize() {
  local cs
  cs=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
  if [ -z "$cs" ]; then
    printf 'sanitize\tcompute-sanitizer\tnot found\n' >>"$summary"
    return
  fi
  # Subsets, each with a time limit, so that one slow library kernel under the sanitizer cannot
  # eat the call; the ones that no longer fit in the budget are listed as skipped.
  local runs=("memcheck cuda_ops/* 120" "racecheck cuda_ops/* 120" "memcheck cuda_train/* 150"
              "memcheck cuda_scan/* 120" "racecheck cuda_scan/* 120" "memcheck cuda_nets/deconv* 120"
              "racecheck cuda_nets/deconv* 120" "memcheck cuda_nets/occlusion_maps_match_core* 150"
              "racecheck cuda_nets/occlusion_maps_match_core* 150" "memcheck cuda_nets/forward_of_every* 150"
              "memcheck cuda_nets/autotuned* 120")
  for r in "${runs[@]}"; do
    local tool filter limit
    read -r tool filter limit <<<"$r"
    if [ $((SECONDS + limit)) -gt "$budget" ]; then
      printf 'sanitize\t%s %s\tskipped: not enough time left (run "run sanitize" in its own call)\n' "$tool" "$filter" >>"$summary"
      continue
    fi
    local log="$out/sanitize_${tool}_$(echo "$filter" | tr -c 'a-zA-Z0-9_\n' '_').log"
    echo "== compute-sanitizer --tool $tool, tests $filter"
    local t0=$SECONDS
    timeout -k 10 "$limit" env LD_LIBRARY_PATH="$libpath" "$cs" --tool "$tool" --target-processes all \
      --error-exitcode 3 "$STAGE/bin/test_cuda" --jobs 1 --filter "$filter" >"$log" 2>&1
    local rc=$? verdict
    case $rc in
      0) verdict="clean" ;;
      3) verdict="ERRORS (see $(basename "$log"))" ;;
      124|137) verdict="timed out after ${limit}s" ;;
      *) verdict="rc=$rc (test failure or sanitizer problem, see $(basename "$log"))" ;;
    esac
    grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|Synthesis' "$log" | tail -3
    printf 'sanitize\t%s %s\t%s (%ss)\n' "$tool" "$filter" "$verdict" $((SECONDS - t0)) >>"$summary"
  done
}

# zfviz on both engines: a scan of 64 generated images (alexnet, random weights) and two epochs of
# alexnet-mini on 96 images of 4 classes, each with --device cpu and --device cuda (OTHER), the
# scan databases compared unit by unit (sums and maxima to 1e-5, the same top-k images) and the
# training losses side by side.
step_commands() {
  local zf="$STAGE/bin/zfviz" other="${OTHER:-cuda}" w="$out/commands"
  if [ ! -x "$zf" ]; then
    printf 'commands	zfviz	not packed
' >>"$summary"
    return
  fi
  rm -rf "$w" && mkdir -p "$w"
  python3 - "$w" <<'PY'
import os, struct, sys, zlib, random
root = sys.argv[1]
def png(path, w, h, seed):
    r = random.Random(seed)
    rows = []
    for y in range(h):
        row = bytearray([0])
        for x in range(w):
            v = (x * (seed % 7 + 1) + y * (seed % 5 + 2) + r.randrange(64)) & 255
            row += bytes([v, (v * 3 + seed) & 255, (255 - v) & 255])
        rows.append(bytes(row))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")
    open(path, "wb").write(data)
os.makedirs(f"{root}/scan", exist_ok=True)
for i in range(64):
    png(f"{root}/scan/im{i:03d}.png", 96 + i, 80 + 2 * i, i)
for c in range(4):
    os.makedirs(f"{root}/train/c{c}", exist_ok=True)
    for i in range(24):
        png(f"{root}/train/c{c}/{i}.png", 40, 40, 1000 * (c + 1) + (i % 6) * 7 + c)
PY
  local dev t0 side=0
  for dev in cpu "$other"; do
    side=$((side + 1))
    t0=$SECONDS
    zrun "$zf" scan --arch alexnet --weights random:1 --images "$w/scan" --db "$w/scan-$side.db" --batch 16 \
      --device "$dev" >"$w/scan-$side.log" 2>&1
    printf 'commands	scan 64 images, alexnet, %s	rc=%s (%ss) %s
' "$dev" $? $((SECONDS - t0)) "$(grep -h 'decoded ahead' "$w/scan-$side.log" | tr -s ' ')" >>"$summary"
    t0=$SECONDS
    zrun "$zf" train --arch alexnet-mini --data "$w/train" --epochs 2 --batch 16 --val 16 --seed 3 \
      --out "$w/train-$side/m.safetensors" --device "$dev" >"$w/train-$side.log" 2>&1
    printf 'commands	train alexnet-mini 2 epochs, %s	rc=%s (%ss): %s
' "$dev" $? $((SECONDS - t0)) \
      "$(grep -E '^epoch' "$w/train-$side.log" | tail -1 | tr -s ' ')" >>"$summary"
  done
  python3 - "$w/scan-1.db" "$w/scan-2.db" <<'PY' >>"$summary"
import sqlite3, sys
q = "SELECT layer, unit, sum, max, positive_positions, top FROM unit_stats ORDER BY layer, unit"
try:
    a = sqlite3.connect(sys.argv[1]).execute(q).fetchall()
    b = sqlite3.connect(sys.argv[2]).execute(q).fetchall()
except Exception as e:
    print(f"commands\tscan databases compared\tcannot read them: {e}")
    sys.exit(0)
worst, tops = 0.0, 0
for x, y in zip(a, b):
    for i in (2, 3):
        d = abs(x[i] - y[i]) / max(abs(x[i]), abs(y[i]), 1e-6)
        worst = max(worst, d)
    seqs = lambda t: [e[1] for e in __import__("json").loads(t or "[]")]
    tops += seqs(x[5]) != seqs(y[5])
ok = len(a) == len(b) and len(a) > 0 and worst <= 1e-5
print(f"commands\tscan databases compared\t{'same' if ok else 'DIFFERENT'}: {len(a)} units, worst relative "
      f"difference of sums and maxima {worst:.2e}, {tops} units with other top-k images")
PY
}

run() {
  local what="${1:-all}"
  [ -f "$CARRY/pack.tar.gz" ] || { echo "gpu-check: no .gpucheck/pack.tar.gz: run 'scripts/gpu-check.sh pack' first (and carry .gpucheck)" >&2; exit 1; }
  STAGE="${TMPDIR:-/tmp}/zf-gpucheck"
  rm -rf "$STAGE" && mkdir -p "$STAGE" && tar -C "$STAGE" -xzf "$CARRY/pack.tar.gz"
  # Logs are written in the scratch folder; $OUT gets the summary, the benchmark lines and one
  # tarball of the logs (the device tool returns at most 8 files).
  local out="$STAGE/out" dest="${OUT:-$CARRY/out}"
  mkdir -p "$out" "$dest"
  local summary="$out/summary.tsv"
  : >"$summary"
  local libpath
  libpath="$STAGE/lib:$(cuda_lib_path)"
  # Only our binaries see the carried libraries: python3/torch keep their own.
  zrun() { env LD_LIBRARY_PATH="$libpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"; }
  # Binaries built on Debian 12 need glibc >= 2.36 here; say so plainly if they cannot load.
  if ! zrun "$STAGE/bin/test_cuda" --list >/dev/null 2>"$out/load.err"; then
    echo "gpu-check: the packed binaries do not load on this machine ($(ldd --version | head -1)):" >&2
    head -5 "$out/load.err" >&2
    exit 1
  fi
  nvidia-smi -L 2>&1 | head -4
  [ -x "$STAGE/bin/zfviz" ] && zrun "$STAGE/bin/zfviz" gpuinfo 2>&1 | head -20

  # One device call has 10 minutes: "all" runs the tests, then the benchmarks, then as many
  # sanitizer runs as fit before BUDGET seconds (default 540); "sanitize" has the call to itself.
  local budget=${BUDGET:-540}
  case "$what" in
    all) step_tests; step_commands; step_bench; step_sanitize ;;
    tests) step_tests ;;
    bench) step_bench ;;
    commands) step_commands ;;
    sanitize) step_sanitize ;;
    *) echo "gpu-check: unknown part '$what' (tests, sanitize, bench, commands, all)" >&2; exit 2 ;;
  esac

  tar -C "$out" -czf "$dest/gpu-check-logs.tar.gz" .
  cp "$summary" "$dest/"
  for f in bench_zfviz.jsonl bench_torch.jsonl; do [ -f "$out/$f" ] && cp "$out/$f" "$dest/"; done
  echo
  python3 - "$summary" "$out/bench_zfviz.jsonl" "$out/bench_torch.jsonl" <<'EOF'
import json, os, sys
summary, zf_path, th_path = sys.argv[1:4]
def load(p):
    rows = []
    if os.path.exists(p):
        for line in open(p):
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    return rows
zf, th = load(zf_path), load(th_path)
torch_ms = {(r["net"], r["what"].replace("_brute", ""), r["batch"], r["precision"]): r["ms"] for r in th}
if zf or th:
    print(f"{'net':8} {'measure':28} {'batch':>5} {'prec':4} {'zfviz ms':>10} {'torch ms':>10} {'speed-up':>8}")
    for r in zf:
        key = (r["net"], r["what"].replace("_incremental", "").replace("_brute", ""), r["batch"], r["precision"])
        t = torch_ms.get(key)
        extra = f"  ({r['img_per_s']:.0f} img/s)" if "img_per_s" in r else ""
        if "work_ratio" in r:
            extra = f"  (work ratio {r['work_ratio']:.2f})"
        tms = f"{t:10.3f}" if t else "         -"
        speed = f"{t / r['ms']:7.2f}x" if t else "       -"
        print(f"{r['net']:8} {r['what']:28} {r['batch']:>5} {r['precision']:4} {r['ms']:>10.3f} {tms} {speed}{extra}")
print()
for line in open(summary):
    kind, what, result = line.rstrip("\n").split("\t")
    print(f"{kind:8} {what:45} {result}")
EOF
}

case "${1:-}" in
  pack) pack ;;
  run) shift; run "${1:-all}" ;;
  "")
    pack
    if nvidia-smi -L >/dev/null 2>&1; then run all; else echo "gpu-check: no GPU here: packed only (run 'scripts/gpu-check.sh run' on a GPU machine)"; fi ;;
  -h|--help) sed -n '2,26p' "$0" ;;
  *) echo "gpu-check.sh: unknown mode '$1' (pack, run [tests|sanitize|bench|commands|all])" >&2; exit 2 ;;
esac
