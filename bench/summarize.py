#!/usr/bin/python3
"""Pairs the JSON lines of a benchmark run (side "zfviz" vs "pytorch", same net/what/batch) and
prints a table of medians and ratios. Usage: summarize.py [--rate] LOG
--rate: throughput columns (images/s) instead of times, the ratio zfviz img/s / PyTorch img/s
(the same number as PyTorch ms / zfviz ms), and PyTorch's configuration where it says one."""
import json
import sys


def main():
    args = sys.argv[1:]
    rate = "--rate" in args
    args = [a for a in args if a != "--rate"]
    rows = {}
    with open(args[0]) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            rows.setdefault((r["net"], r["what"], r.get("batch", 1), r.get("extra", "")), {})[r["side"]] = r
    print()
    kernels = {(r["kernels"], r.get("blas", "?")) for sides in rows.values() for r in sides.values() if "kernels" in r}
    for k, blas in sorted(kernels):
        print(f"zfviz kernels: {k} (OpenBLAS: {blas})")
    if rate:
        print(f"{'net':14} {'measurement':26} {'batch':>5} {'zfviz img/s':>12} {'pytorch img/s':>14} "
              f"{'ratio':>7}  pytorch config")
    else:
        print(f"{'net':14} {'measurement':26} {'batch':>5} {'zfviz ms':>10} {'pytorch ms':>11} {'ratio':>7}")
    for (net, what, batch, extra), sides in rows.items():
        z, t = sides.get("zfviz"), sides.get("pytorch")
        if not z or not t:
            continue
        ratio = t["ms"] / z["ms"]
        label = what + (f" {extra}" if extra else "")
        if rate:
            zr, tr = batch * 1e3 / z["ms"], batch * 1e3 / t["ms"]
            print(f"{net:14} {label:26} {batch:>5} {zr:>12.1f} {tr:>14.1f} {ratio:>6.2f}x  {t.get('config', '')}")
        else:
            print(f"{net:14} {label:26} {batch:>5} {z['ms']:>10.2f} {t['ms']:>11.2f} {ratio:>6.2f}x")


if __name__ == "__main__":
    main()
