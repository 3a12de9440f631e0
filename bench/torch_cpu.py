#!/usr/bin/python3
"""PyTorch's side of the CPU benchmark, in its best configuration (docs/benchmarking.md): all
cores (torch.set_num_threads(os.cpu_count())), tcmalloc preloaded, inference mode, and each
OMP_WAIT_POLICY (ACTIVE, PASSIVE) tried in its own process, the better one reported.

Measures, for alexnet, alexnet-caffe and zfnet (the architectures and the deconvnet of
tests/fixtures/gen_nets.py, here in float32):
  forward   the whole net at batch 1 and 16
  deconv    one conv5 unit (channel 3, its strongest position) of one image, forward included:
            the forward up to relu5 recording the switches (as bench_cpu does), then the deconvnet
            down to pixels (unpooling by scatter_add, since max_unpool2d does not add where
            windows share a switch)
Each measurement warms up, then repeats for a few seconds and takes the median.
Prints one JSON line per measurement:
  {"side": "pytorch", "net": "zfnet", "what": "forward", "batch": 16, "ms": ..., "img_per_s": ...,
   "omp_wait_policy": "ACTIVE", "ms_by_policy": {"ACTIVE": ..., "PASSIVE": ...}, "threads": 2, ...}

With --data DIR (bench_cpu --dump, then peers_export.py: what bench/run-cpu.sh passes) the weights
are the engine's random:1 ones and the forward's inputs the engine's, and each forward's fc8 is
checked against the float64 reference before timing ("rel_err_f64"); without it, N(0, 0.01)
weights from torch's own generator.

Usage: torch_cpu.py [--quick] [--nets a,b] [--what forward,deconv] [--batches 1,16]
                    [--seconds S] [--policy ACTIVE|PASSIVE|both] [--data DIR]
Run with /usr/bin/python3 (Debian's torch is visible only to it).
"""
import argparse
import json
import os
import statistics
import sys
import time

from torch_common import POLICIES, load_params, run_policies, timing_args, timing_parser, torch_child


def parse_args(argv):
    p = timing_parser(__doc__, "alexnet,alexnet-caffe,zfnet", "1,16", "forward batch sizes", 3.0, 0.3)
    p.add_argument("--what", default="forward,deconv")
    p.add_argument("--data", default=None, help="weights, inputs and reference of bench_cpu --dump")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = timing_args(p, argv)
    a.what = [w for w in a.what.split(",") if w]
    for w in a.what:
        if w not in ("forward", "deconv"):
            p.error(f"--what: unknown measurement '{w}' (forward, deconv)")
    return a


# ---------------------------------------------------------------------------------------------
# Child: one OMP_WAIT_POLICY, every measurement

def time_it(fn, seconds, quick):
    """Median milliseconds of fn() after warming up; at least 3 (quick) or 5 timed runs."""
    for _ in range(1 if quick else 3):
        fn()
    times = []
    t_end = time.perf_counter() + seconds
    while len(times) < (3 if quick else 5) or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), len(times)


def random_params(G, arch, gen):
    """N(0, 0.01) weights and zero biases (as the engine's random:SEED), float32."""
    import torch
    size, layers = G.ARCHS[arch]
    x = torch.zeros(1, 3, size, size)
    params = {}
    h = x
    for name, op, a in layers:
        if op == "conv":
            out, k, _, _, g = a
            params[name] = (torch.randn(out, h.shape[1] // g, k, k, generator=gen) * 0.01,
                            torch.zeros(out))
        elif op == "fc":
            params[name] = (torch.randn(a, h.shape[1], generator=gen) * 0.01, torch.zeros(a))
        h, _ = G.run_layer(op, a, h, params, name)
    return params


def child(a):
    torch, G, tcmalloc = torch_child()
    cfg = torch.__config__.show()
    blas = next((w.split("=", 1)[1] for w in cfg.replace(",", " ").split() if w.startswith("BLAS_INFO=")), "?")
    kernels = f"ATen CPU (oneDNN {'on' if torch.backends.mkldnn.is_available() else 'off'}, BLAS {blas})"
    common = {"side": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(), "kernels": kernels,
              "tcmalloc": tcmalloc, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}
    gen = torch.Generator().manual_seed(1)
    for arch in a.nets:
        if arch not in G.ARCHS:
            sys.exit(f"torch_cpu.py: unknown net '{arch}' ({', '.join(G.ARCHS)})")
        size, layers = G.ARCHS[arch]
        if a.data:
            import numpy as np
            d = os.path.join(a.data, arch)
            params = load_params(torch, os.path.join(d, "weights"), layers)
            x_data = torch.from_numpy(np.load(os.path.join(d, "x.npy")))
            ref = torch.from_numpy(np.load(os.path.join(d, "ref64.npy")))
        else:
            params = random_params(G, arch, gen)
            x_data = ref = None

        def fc8_of(x):
            with torch.inference_mode():
                for name, op, arg in layers:
                    x, _ = G.run_layer(op, arg, x, params, name)
                    if name == "fc8":
                        return x

        def forward(x):
            with torch.inference_mode():
                for name, op, arg in layers:
                    x, _ = G.run_layer(op, arg, x, params, name)
            return x

        def deconv_unit(x):
            """The forward up to relu5 with switches (all the projection needs, as bench_cpu
            does), then the strongest unit of channel 3 to pixels."""
            with torch.inference_mode():
                outs, sw, h = {}, {}, x
                for name, op, arg in layers:
                    h, idx = G.run_layer(op, arg, h, params, name)
                    outs[name] = h
                    if idx is not None:
                        sw[name] = idx
                    if name == "relu5":
                        break
                act = outs["relu5"]
                flat = act[0, 3].reshape(-1)
                i = int(torch.argmax(flat))  # the first maximum
                sig = torch.zeros_like(act)
                sig[0, 3].view(-1)[i] = flat[i]
                pix, _ = G.deconv_from(arch, params, outs, sw, tuple(x.shape), "conv5", sig)
            return pix

        if "forward" in a.what:
            for b in a.batches:
                extra = {}
                if x_data is not None:
                    x = x_data[:b].contiguous()
                    n = min(b, len(ref))
                    err = float((fc8_of(x)[:n].double() - ref[:n]).abs().max() / ref[:n].abs().max())
                    if err > 1e-4:
                        sys.exit(f"torch_cpu.py: {arch} batch {b}: fc8 off by {err:.2e} from float64")
                    extra["rel_err_f64"] = float(f"{err:.3g}")
                else:
                    x = torch.randn(b, 3, size, size, generator=gen)
                ms, reps = time_it(lambda: forward(x), a.seconds, a.quick)
                print(json.dumps(dict(common, net=arch, what="forward", batch=b, ms=round(ms, 3),
                                      img_per_s=round(1e3 * b / ms, 2), reps=reps, **extra)), flush=True)
        if "deconv" in a.what:
            x = x_data[:1].contiguous() if x_data is not None else torch.randn(1, 3, size, size, generator=gen)
            ms, reps = time_it(lambda: deconv_unit(x), a.seconds, a.quick)
            print(json.dumps(dict(common, net=arch, what="deconv_conv5_unit", batch=1,
                                  ms=round(ms, 3), img_per_s=round(1e3 / ms, 2), reps=reps)),
                  flush=True)


# ---------------------------------------------------------------------------------------------
# Parent: one child per policy, the better of each measurement

def main(argv):
    a = parse_args(argv)
    if a.child:
        child(a)
        return 0
    policies = POLICIES if a.policy == "both" else (a.policy,)
    results = {}
    order = []
    for lines in run_policies(__file__, argv, policies).values():
        for m in lines:
            key = (m["net"], m["what"], m["batch"])
            if key not in results:
                order.append(key)
                results[key] = []
            results[key].append(m)
    for key in order:
        runs = results[key]
        best = min(runs, key=lambda m: m["ms"])
        out = dict(best, ms_by_policy={m["omp_wait_policy"]: m["ms"] for m in runs})
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
