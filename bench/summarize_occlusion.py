#!/usr/bin/python3
"""Summarises bench/run-occlusion.sh: medians per side, ratios, and how far zfviz's maps agree with
PyTorch's. Usage: summarize_occlusion.py LOG MAPS_DIR"""
import json
import os
import statistics
import sys

import numpy as np


def main():
    log, maps = sys.argv[1], sys.argv[2]
    runs = {}
    for line in open(log):
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        pol = r.get("omp_wait_policy") or "ACTIVE"
        if r.get("side") == "zfviz":
            key = (r["net"], r["patch"], r["stride"])
            what = r["what"].replace("occlusion_", "zfviz ")
            runs.setdefault(key, {}).setdefault(f"{what} {pol}", []).append(r["seconds"])
            runs[key]["positions"] = r["positions"]
        else:
            key = (r["arch"], r["patch"], r["stride"])
            runs.setdefault(key, {}).setdefault(f"torch {pol}", []).extend(r["seconds"])
    print()
    print(f"{'net':14} {'patch:stride':>12} {'pos':>5} {'incremental s':>13} {'brute s':>8} {'torch s':>8}"
          f" {'vs brute':>8} {'vs torch':>8}  maps vs torch")
    for (net, patch, stride), sides in sorted(runs.items()):
        med = {k: statistics.median(v) for k, v in sides.items() if isinstance(v, list) and v}
        best = lambda side: min((v for k, v in med.items() if k.startswith(side + " ")), default=None)
        inc, brute, torch = best("zfviz incremental"), best("zfviz brute"), best("torch")
        agree = ""
        zd = os.path.join(maps, f"{net}-{patch}-{stride}-incremental")
        td = os.path.join(maps, f"{net}-{patch}-{stride}-torch")
        if os.path.isdir(zd) and os.path.isdir(td):
            err = {}
            for m in ("feature", "prob"):
                a, b = np.load(os.path.join(zd, m + ".npy")), np.load(os.path.join(td, m + ".npy"))
                err[m] = float(np.max(np.abs(a.astype(np.float64) - b) / np.maximum(np.abs(b), 1e-3 * np.abs(b).max())))
            same = float(np.mean(np.load(os.path.join(zd, "argmax.npy")) == np.load(os.path.join(td, "argmax.npy"))))
            agree = f"feature {err['feature']:.1e}, prob {err['prob']:.1e}, argmax {100 * same:.1f}% equal"
        fmt = lambda v: f"{v:8.2f}" if v is not None else f"{'-':>8}"
        ratio = lambda a, b: f"{a / b:7.2f}x" if a and b else f"{'-':>8}"
        print(f"{net:14} {f'{patch}:{stride}':>12} {sides.get('positions', 0):>5} {fmt(inc):>13} {fmt(brute)}"
              f" {fmt(torch)} {ratio(brute, inc)} {ratio(torch, inc)}  {agree}")
    print("\nvs brute: zfviz brute force / incremental; vs torch: PyTorch brute force / zfviz incremental."
          "\nMedians over rounds, each side at the better of OMP_WAIT_POLICY ACTIVE and PASSIVE.")


if __name__ == "__main__":
    main()
