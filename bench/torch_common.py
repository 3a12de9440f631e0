"""What the PyTorch timing scripts (torch_cpu.py, torch_train.py) share: the options every one of
them takes, parsed the same way."""
import argparse

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
