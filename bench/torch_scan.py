#!/usr/bin/python3
"""PyTorch's side of the scan benchmark (bench/run-scan.sh): what a PyTorch user writes to get the
per-unit statistics of `zfviz scan` over a folder of images, in its best configuration: a
DataLoader with worker processes (2 by default) decoding and preprocessing with PIL and
torchvision (Resize(256), CenterCrop, ToTensor, Normalize), all cores for the forward
(torch.set_num_threads(os.cpu_count())), tcmalloc preloaded, inference mode, and each
OMP_WAIT_POLICY (ACTIVE, PASSIVE) in its own process, the better one reported.

The reductions are zfviz scan's (docs/db.md), per unit of every conv or fc layer a ReLU follows,
on the values before the ReLU: the images on which the unit is positive somewhere, its positive
positions, the sum of the rectified values (float64; zfviz's is exact), the largest value and
where, each image's strongest and weakest position with the top-9 and bottom-9 images (ties to
the earlier image) and the 260-bin histogram of the values. Only the database is missing: zfviz
commits its statistics to SQLite, this side keeps them in memory.

Measures, per net (weights of bench_cpu --dump DIR, the engine's random:1):
  decode    images/s of the DataLoader alone (decoding, preprocessing, batching)
  forward   images/s of the forward alone over the same images already in memory
  scan      images/s of the whole: DataLoader + forward + reductions, workers' start included
--check NET=DB compares this side's statistics with a zfviz scan database of the same images and
weights before anything is timed (PIL rounds the resized image to 8 bits, zfviz does not: the
difference is the inputs' rounding, a wrong layer or weight would be far off).
Prints one JSON line per net:
  {"side": "pytorch", "net": "alexnet", "images": 400, "batch": 16, "workers": 2,
   "decode_ips": ..., "forward_ips": ..., "scan_ips": ..., "omp_wait_policy": ..., ...}

Usage: torch_scan.py --images DIR --data DIR [--nets alexnet,zfnet] [--batch 16] [--workers 2]
                     [--reps 1] [--check NET=DB ...] [--policy ACTIVE|PASSIVE|both]
Run with /usr/bin/python3 (Debian's torch is visible only to it).
"""
import argparse
import json
import os
import sqlite3
import statistics
import sys
import time

from torch_common import POLICIES, load_params, run_policies, torch_child

TOP_K = 9
HIST_BINS = 260
EXTS = (".jpg", ".jpeg", ".png")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", required=True, help="a folder of images (its files in name order)")
    p.add_argument("--data", required=True, help="weights of bench_cpu --dump")
    p.add_argument("--nets", default="alexnet,zfnet")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--reps", type=int, default=1, help="timed repetitions (the median is reported)")
    p.add_argument("--check", action="append", default=[], metavar="NET=DB",
                   help="a zfviz scan database of the same images and weights to agree with")
    p.add_argument("--policy", default="both", choices=("both",) + POLICIES)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.nets = [n for n in a.nets.split(",") if n]
    checks = {}
    for c in a.check:
        net, sep, db = c.partition("=")
        if not sep or not db:
            p.error(f"--check '{c}': expected NET=DB")
        checks[net] = db
    a.check = checks
    if a.batch < 1 or a.workers < 0 or a.reps < 1:
        p.error("--batch and --reps must be at least 1, --workers at least 0")
    return a


# ---------------------------------------------------------------------------------------------
# Child: one OMP_WAIT_POLICY, every net

class Folder:
    """The images of a folder in name order, as the net's preprocessing makes them."""

    def __init__(self, paths, size):
        import torchvision.transforms as T
        self.paths = paths
        self.tf = T.Compose([T.Resize(256), T.CenterCrop(size), T.ToTensor(),
                             T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image
        with Image.open(self.paths[i]) as im:
            return self.tf(im.convert("RGB"))


def hist_bins(y):
    """zfviz's histogram bin of every float32 of y (db/scan.c, docs/db.md): sign, exponent and the
    two leading significand bits; 129 holds (-2^-16, 2^-16), 0 and 258 beyond +-2^16, 259 NaN."""
    import torch
    u = y.contiguous().view(torch.int32)
    e = (u >> 23) & 0xFF
    j = ((e - 111) << 2) | ((u >> 21) & 3)
    neg = u < 0
    b = torch.where(neg, 128 - j, 130 + j)
    b = torch.where(e < 111, torch.full_like(b, 129), b)
    b = torch.where(e >= 143, torch.where(neg, torch.zeros_like(b), torch.full_like(b, 258)), b)
    return torch.where((e == 0xFF) & ((u & 0x7FFFFF) != 0), torch.full_like(b, 259), b)


class UnitStats:
    """One layer's per-unit accumulators, fed a batch of its values before the ReLU at a time."""

    def __init__(self, channels):
        import torch
        c = channels
        self.c = c
        self.active = torch.zeros(c, dtype=torch.int64)
        self.positive = torch.zeros(c, dtype=torch.int64)
        self.positions = 0
        self.images = 0
        self.sum = torch.zeros(c, dtype=torch.float64)
        self.hist = torch.zeros(c * HIST_BINS, dtype=torch.int64)
        # top-k and bottom-k: score, image seq, position; best first
        self.top = [torch.full((c, TOP_K), -float("inf")), torch.full((c, TOP_K), -1, dtype=torch.int64),
                    torch.zeros((c, TOP_K), dtype=torch.int64)]
        self.bot = [torch.full((c, TOP_K), -float("inf")), torch.full((c, TOP_K), -1, dtype=torch.int64),
                    torch.zeros((c, TOP_K), dtype=torch.int64)]
        self.offsets = torch.arange(c, dtype=torch.int64).view(1, c, 1) * HIST_BINS

    @staticmethod
    def _merge(kept, score, seq, pos):
        """kept's k best of kept and this batch's (c, n) scores; the earlier image wins a tie."""
        import torch
        s = torch.cat([kept[0], score], 1)
        q = torch.cat([kept[1], seq.expand_as(score)], 1)
        p = torch.cat([kept[2], pos], 1)
        order = torch.sort(s, dim=1, descending=True, stable=True)[1][:, :TOP_K]
        return [s.gather(1, order), q.gather(1, order), p.gather(1, order)]

    def add(self, y, seq0):
        import torch
        n = y.shape[0]
        v = y.reshape(n, self.c, -1)  # n, c, positions
        mx, amx = v.max(2)
        mn, amn = v.min(2)
        self.active += (mx > 0).sum(0)
        self.positive += (v > 0).sum((0, 2))
        self.sum += v.clamp(min=0).sum(2, dtype=torch.float64).sum(0)
        self.positions += n * v.shape[2]
        self.images += n
        self.hist += torch.bincount((hist_bins(v) + self.offsets).flatten(), minlength=self.c * HIST_BINS)
        seq = torch.arange(seq0, seq0 + n, dtype=torch.int64).view(1, n)
        self.top = self._merge(self.top, mx.t(), seq, amx.t())
        self.bot = self._merge(self.bot, -mn.t(), seq, amn.t())


def scan_layers(layers):
    """The conv and fc layers a ReLU follows (zfviz scan's default layers)."""
    return [layers[i][0] for i in range(len(layers) - 1)
            if layers[i][1] in ("conv", "fc") and layers[i + 1][1] == "relu"]


def check_db(stats, db):
    """This side's statistics against a zfviz scan database: the same units and images; the
    largest differences of max and mean (relative to the layer's largest), of the active images
    and the positive positions (as fractions), and the share of units with the same top-9 images.
    Returns a message instead where the two do not describe the same scan."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = con.execute("SELECT layer, unit, images, active_images, positive_positions, sum, max, top "
                       "FROM unit_stats").fetchall()
    con.close()
    by = {(r[0], r[1]): r for r in rows}
    n_units = sum(s.c for s in stats.values())
    if len(by) != n_units:
        return f"{db}: {len(by)} units, this side {n_units}"
    worst = {"max": 0.0, "mean": 0.0, "active": 0.0, "positive": 0.0}
    top_same = 0
    for layer, s in stats.items():
        mx = s.top[0][:, 0].double()
        scale = float(mx.abs().max()) or 1.0
        mean_scale = float((s.sum / s.positions).abs().max()) or 1.0
        for u in range(s.c):
            r = by.get((layer, u))
            if r is None:
                return f"{db}: no row for {layer} unit {u}"
            if r[2] != s.images:
                return f"{db}: {layer} unit {u} saw {r[2]} images, this side {s.images}"
            worst["max"] = max(worst["max"], abs(r[6] - float(mx[u])) / scale)
            worst["mean"] = max(worst["mean"], abs(r[5] - float(s.sum[u])) / s.positions / mean_scale)
            worst["active"] = max(worst["active"], abs(r[3] - int(s.active[u])) / s.images)
            worst["positive"] = max(worst["positive"], abs(r[4] - int(s.positive[u])) / s.positions)
            theirs = sorted(e[1] for e in json.loads(r[7]))
            if theirs == sorted(int(q) for q in s.top[1][u] if q >= 0):
                top_same += 1
    return worst, top_same / n_units


def child(a):
    torch, G, tcmalloc = torch_child()
    paths = sorted(os.path.join(a.images, f) for f in os.listdir(a.images) if f.lower().endswith(EXTS))
    if not paths:
        sys.exit(f"torch_scan.py: {a.images}: no images")
    for arch in a.nets:
        if arch not in G.ARCHS:
            sys.exit(f"torch_scan.py: unknown net '{arch}' ({', '.join(G.ARCHS)})")
        size, layers = G.ARCHS[arch]
        params = load_params(torch, os.path.join(a.data, arch, "weights"), layers)
        wanted = set(scan_layers(layers))
        last = max(i for i, l in enumerate(layers) if l[0] in wanted)
        loader = torch.utils.data.DataLoader(Folder(paths, size), batch_size=a.batch, shuffle=False,
                                             num_workers=a.workers)

        def forward(x, stats=None, seq0=0):
            with torch.inference_mode():
                for name, op, arg in layers[:last + 2]:
                    x, _ = G.run_layer(op, arg, x, params, name)
                    if stats is not None and name in wanted:
                        if name not in stats:
                            stats[name] = UnitStats(x.shape[1])
                        stats[name].add(x, seq0)

        def scan():
            stats, seq = {}, 0
            for x in loader:
                forward(x, stats, seq)
                seq += x.shape[0]
            return stats

        # the check first (also the warm-up): the statistics of the whole folder
        stats = scan()
        check = None
        if arch in a.check:
            got = check_db(stats, a.check[arch])
            if isinstance(got, str):
                sys.exit(f"torch_scan.py: {arch}: {got}")
            worst, top_same = got
            check = dict(worst, top9_same=top_same)
            # PIL's 8-bit resize moves values by ~1e-3 of the layer's largest and a near tie in
            # the top-9 here and there; a wrong weight, layer or reduction is off by far more
            if worst["max"] > 1e-2 or worst["mean"] > 1e-2 or top_same < 0.8:
                sys.exit(f"torch_scan.py: {arch}: the statistics differ from {a.check[arch]}'s: {check}")
        decode, fwd, whole = [], [], []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            batches = [x for x in loader]
            decode.append(len(paths) / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            for x in batches:
                forward(x)
            fwd.append(len(paths) / (time.perf_counter() - t0))
            del batches
            t0 = time.perf_counter()
            scan()
            whole.append(len(paths) / (time.perf_counter() - t0))
        print(json.dumps({"side": "pytorch", "net": arch, "images": len(paths), "batch": a.batch,
                          "workers": a.workers, "decode_ips": statistics.median(decode),
                          "forward_ips": statistics.median(fwd), "scan_ips": statistics.median(whole),
                          "check": check, "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "tcmalloc": tcmalloc, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}),
              flush=True)


def main(argv):
    a = parse_args(argv)
    if a.child:
        child(a)
        return 0
    policies = POLICIES if a.policy == "both" else (a.policy,)
    runs = {}
    for lines in run_policies(__file__, argv, policies).values():
        for m in lines:
            runs.setdefault(m["net"], []).append(m)
    for net in a.nets:
        best = max(runs[net], key=lambda m: m["scan_ips"])
        print(json.dumps(dict(best, scan_ips_by_policy={m["omp_wait_policy"]: m["scan_ips"]
                                                         for m in runs[net]})), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
