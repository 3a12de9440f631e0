"""What the PyTorch timing scripts (torch_cpu.py, torch_train.py, torch_scan.py) share: the options
they take, parsed the same way, a child process per OpenMP wait policy, torch's set-up in the
child, and the weights of bench_cpu --dump."""
import argparse
import os

POLICIES = ("ACTIVE", "PASSIVE")


def timing_parser(doc, nets, batches, batches_help, seconds, quick_seconds):
    """A parser with --quick, --nets, --batches, --seconds and --policy; add the script's own."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="short runs (a check that everything works, not a measurement)")
    p.add_argument("--nets", default=nets)
    p.add_argument("--batches", default=batches, help=batches_help)
    p.add_argument("--seconds", type=float, default=None,
                   help=f"timed seconds per measurement (default {seconds:g}, --quick {quick_seconds:g})")
    p.add_argument("--policy", default="both", choices=("both",) + POLICIES,
                   help="OMP_WAIT_POLICY to try (both: one process each, report the better)")
    p.set_defaults(default_seconds=(seconds, quick_seconds))
    return p


def timing_args(p, argv):
    """Parses argv: --seconds defaulted for --quick, --nets and --batches as lists."""
    a = p.parse_args(argv)
    if a.seconds is None:
        a.seconds = a.default_seconds[1] if a.quick else a.default_seconds[0]
    a.nets = [n for n in a.nets.split(",") if n]
    a.batches = [int(b) for b in a.batches.split(",") if b]
    return a


TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


def run_policies(script, argv, policies):
    """Runs `script --child argv` once per OMP_WAIT_POLICY, with tcmalloc preloaded; returns
    {policy: [each JSON line it printed, parsed]}. Exits naming the script where a run fails."""
    import json
    import subprocess
    import sys
    name = os.path.basename(script)
    if not os.path.exists(TCMALLOC):
        sys.exit(f"{name}: {TCMALLOC} missing (apt-get install libtcmalloc-minimal4)")
    out = {}
    for pol in policies:
        env = dict(os.environ, OMP_WAIT_POLICY=pol)
        pre = env.get("LD_PRELOAD", "")
        if TCMALLOC not in pre:
            env["LD_PRELOAD"] = (TCMALLOC + " " + pre).strip()
        r = subprocess.run([sys.executable, os.path.abspath(script), "--child"] + argv, env=env,
                           stdout=subprocess.PIPE, text=True)
        if r.returncode != 0:
            sys.exit(f"{name}: the {pol} run failed (exit {r.returncode})")
        out[pol] = [json.loads(line) for line in r.stdout.splitlines()]
    return out


def torch_child():
    """A child's set-up: torch on every core, no autograd, gen_nets importable. Returns (torch,
    gen_nets, whether tcmalloc is loaded)."""
    import sys
    import torch
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
    import gen_nets
    torch.set_num_threads(os.cpu_count() or 1)
    torch.set_grad_enabled(False)
    with open("/proc/self/maps") as f:
        tcmalloc = "tcmalloc" in f.read()
    return torch, gen_nets, tcmalloc


def load_params(torch, weights_dir, layers):
    """{layer: (weight, bias)} of the conv and fc layers from bench_cpu --dump's .npy files."""
    import numpy as np
    return {name: tuple(torch.from_numpy(np.load(os.path.join(weights_dir, f"{name}.{k}.npy")))
                        for k in ("weight", "bias"))
            for name, op, _ in layers if op in ("conv", "fc")}
