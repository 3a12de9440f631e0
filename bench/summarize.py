#!/usr/bin/python3
"""Pairs the JSON lines of a benchmark run (side "zfviz" vs "pytorch", same net/what/batch) and
prints a table of medians and ratios. Usage: summarize.py LOG"""
import json
import sys


def main():
    rows = {}
    with open(sys.argv[1]) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            rows.setdefault((r["net"], r["what"], r.get("batch", 1), r.get("extra", "")), {})[r["side"]] = r
    print()
    print(f"{'net':14} {'measurement':26} {'batch':>5} {'zfviz ms':>10} {'pytorch ms':>11} {'ratio':>7}")
    for (net, what, batch, extra), sides in rows.items():
        z, t = sides.get("zfviz"), sides.get("pytorch")
        if not z or not t:
            continue
        ratio = t["ms"] / z["ms"]
        label = what + (f" {extra}" if extra else "")
        print(f"{net:14} {label:26} {batch:>5} {z['ms']:>10.2f} {t['ms']:>11.2f} {ratio:>6.2f}x")


if __name__ == "__main__":
    main()
