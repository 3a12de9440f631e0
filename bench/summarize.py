#!/usr/bin/python3
"""Gathers the JSON lines of a benchmark run (sides "zfviz", "zfviz-bf16", "pytorch", "openvino",
"openvino-bf16", "onnxruntime"; the same net/what/batch) and prints a table: each side's median over the rounds,
the best f32 peer and the ratio best peer ms / zfviz ms (above 1: zfviz faster), then the kernels
each side ran and every peer's largest error against the float64 reference.
Usage: summarize.py [--rate] LOG   (--rate: images/s instead of ms)"""
import json
import statistics
import sys

PEERS = ("pytorch", "openvino", "onnxruntime")  # f32; the bf16 sides are shown apart


def main():
    args = sys.argv[1:]
    rate = "--rate" in args
    args = [a for a in args if a != "--rate"]
    rows, info = {}, {}
    with open(args[0]) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            key = (r["net"], r["what"], r.get("batch", 1), r.get("extra", ""))
            rows.setdefault(key, {}).setdefault(r["side"], []).append(r)
            i = info.setdefault(r["side"], {"kernels": set(), "err": 0.0})
            if "kernels" in r:
                i["kernels"].add(r["kernels"] + (f" (OpenBLAS: {r['blas']})" if "blas" in r else ""))
            i["err"] = max(i["err"], r.get("rel_err_f64", 0.0))
            i["err32"] = max(i.get("err32", 0.0), r.get("rel_err_fp32", 0.0))
    sides = [s for s in ("zfviz", "zfviz-bf16") + PEERS + ("openvino-bf16",) if s in info]
    unit = "img/s" if rate else "ms"
    print()
    print(f"{'net':14} {'measurement':18} {'batch':>5} " + " ".join(f"{s + ' ' + unit:>17}" for s in sides)
          + f" {'best peer':>12} {'ratio':>7}")
    for (net, what, batch, extra), by_side in rows.items():
        med = {s: statistics.median(m["ms"] for m in runs) for s, runs in by_side.items()}
        if "zfviz" not in med:
            continue
        cells = []
        for s in sides:
            if s not in med:
                cells.append(f"{'-':>17}")
            else:
                cells.append(f"{(batch * 1e3 / med[s] if rate else med[s]):>17.2f}")
        peers = [s for s in PEERS if s in med]
        best = min(peers, key=lambda s: med[s]) if peers else None
        ratio = f"{med[best] / med['zfviz']:>6.2f}x" if best else f"{'-':>7}"
        label = what + (f" {extra}" if extra else "")
        config = by_side.get("pytorch", [{}])[0].get("config", "")
        print(f"{net:14} {label:18} {batch:>5} " + " ".join(cells) + f" {best or '-':>12} {ratio}"
              + (f"  pytorch: {config}" if config else ""))
    print()
    for s in sides:
        for k in sorted(info[s]["kernels"]) or ["?"]:
            print(f"{s} kernels: {k}")
        if s != "zfviz" and info[s]["err"]:
            print(f"{s}: largest fc8 error against float64 {info[s]['err']:.2e} (relative to the largest value)")
        if info[s].get("err32"):
            print(f"{s}: largest fc8 difference from zfviz's float32 {info[s]['err32']:.2e} (relative L2)")


if __name__ == "__main__":
    main()
