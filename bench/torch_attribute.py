#!/usr/bin/python3
"""Attribution benchmark, PyTorch side (bench/run-attribute.sh): the gradient, guided backprop,
Grad-CAM (at the last conv layer's ReLU) and integrated gradients (midpoint rule, zero baseline)
of one class's score, written with PyTorch autograd as the libraries that offer them do (Captum,
pytorch-grad-cam): a tensor hook that clamps each ReLU output's gradient for guided backprop,
retain_grad on the Grad-CAM layer, the integrated-gradients path of one image as one batch.

  torch_attribute.py prepare DIR --nets N,...   seeded weights (gen_nets.make_params), 16 inputs
                                                 and these methods' outputs at batch 16
  torch_attribute.py time DIR --nets N,... --batches 1,16 --seconds S --policy P
                                                 one JSON line per net, method and batch: the
                                                 median seconds per image

Run with /usr/bin/python3 (Debian's torch), with LD_PRELOAD=libtcmalloc_minimal.so.4, all cores
as threads (torch starts with one here) and OMP_WAIT_POLICY as the caller sets it: the best
configuration of docs/benchmarking.md."""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
import gen_attribute  # noqa: E402  (the mini nets' layer lists, added to gen_nets.ARCHS)
import gen_nets  # noqa: E402

CLASS = 1
STEPS = 50
METHODS = ("gradient", "guided-backprop", "gradcam", "integrated-gradients")
IMAGES = 16


def forward(arch, params, x, guided=False, keep=None):
    """The logits; guided clamps every ReLU output's gradient at 0; keep names a layer whose
    output is returned too (retain_grad)."""
    _, layers = gen_nets.ARCHS[arch]
    kept = None
    for name, op, a in layers:
        if op == "softmax":
            break
        if op == "maxpool":
            k, s, p = a
            x = F.max_pool2d(x, k, s, p)
        else:
            x, _ = gen_nets.run_layer(op, a, x, params, name)
        if op == "relu" and guided:
            x.register_hook(lambda g: g.clamp(min=0))
        if name == keep:
            x.retain_grad()
            kept = x
    return x, kept


def cam_layer(arch):
    _, layers = gen_nets.ARCHS[arch]
    last_conv = max(i for i, (_, op, _) in enumerate(layers) if op == "conv")
    return next(n for n, op, _ in layers[last_conv:] if op == "relu")


def method(arch, params, x, m):
    """Method m on the images x: (n, C, H, W), or (n, H, W) for Grad-CAM."""
    if m in ("gradient", "guided-backprop"):
        x = x.clone().requires_grad_(True)
        z, _ = forward(arch, params, x, guided=m == "guided-backprop")
        z[:, CLASS].sum().backward()
        return x.grad
    if m == "gradcam":
        layer = cam_layer(arch)
        z, A = forward(arch, params, x.clone().requires_grad_(True), keep=layer)
        z[:, CLASS].sum().backward()
        w = A.grad.mean(dim=(2, 3))
        cam = F.relu((w[:, :, None, None] * A.detach()).sum(1))
        return F.interpolate(cam[:, None], size=x.shape[2:], mode="bilinear", align_corners=False)[:, 0]
    out = []
    alphas = (torch.arange(STEPS, dtype=torch.float64) + 0.5) / STEPS
    for i in range(x.shape[0]):
        xi = x[i:i + 1]
        path = (alphas[:, None, None, None] * xi.double()).float().requires_grad_(True)
        z, _ = forward(arch, params, path)
        z[:, CLASS].sum().backward()
        out.append(xi[0] * path.grad.mean(0))
    return torch.stack(out)


def load(d, arch):
    _, layers = gen_nets.ARCHS[arch]
    params = {}
    for name, op, _ in layers:
        if op in ("conv", "fc"):
            params[name] = (torch.from_numpy(np.load(os.path.join(d, arch, "weights", name + ".weight.npy"))),
                            torch.from_numpy(np.load(os.path.join(d, arch, "weights", name + ".bias.npy"))))
    return params, torch.from_numpy(np.load(os.path.join(d, arch, "x.npy")))


def prepare(a):
    for k, arch in enumerate(a.nets):
        size, _ = gen_nets.ARCHS[arch]
        in_c = 1 if arch in gen_attribute.MINI else 3
        gen = torch.Generator().manual_seed(4242 + k)
        x = torch.randn((IMAGES, in_c, size, size), generator=gen)
        params = gen_nets.make_params(arch, x[:1], 9001 + k)
        for name, (w, b) in params.items():
            gen_nets.save(os.path.join(a.dir, arch, "weights", name + ".weight.npy"), w)
            gen_nets.save(os.path.join(a.dir, arch, "weights", name + ".bias.npy"), b)
        gen_nets.save(os.path.join(a.dir, arch, "x.npy"), x)
        for m in METHODS:
            gen_nets.save(os.path.join(a.dir, arch, "torch-" + m + ".npy"), method(arch, params, x, m).detach())


def timed(fn, seconds):
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < 2 or (time.perf_counter() - start < seconds and len(times) < 50):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), len(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=("prepare", "time"))
    p.add_argument("dir")
    p.add_argument("--nets", default="alexnet-mini,zfnet-mini,alexnet")
    p.add_argument("--batches", default="1,16")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seconds", type=float, default=3.0)
    a = p.parse_args()
    a.nets = [n for n in a.nets.split(",") if n]
    torch.set_num_threads(os.cpu_count() or 1)
    if a.what == "prepare":
        prepare(a)
        return
    for arch in a.nets:
        params, x = load(a.dir, arch)
        for m in a.methods.split(","):
            for b in (int(v) for v in a.batches.split(",")):
                med, n = timed(lambda: method(arch, params, x[:b], m), a.seconds)
                print(json.dumps({"side": "pytorch", "net": arch, "method": m, "batch": b,
                                  "policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
                                  "threads": torch.get_num_threads(), "s_per_image": med / b, "calls": n}),
                      flush=True)


if __name__ == "__main__":
    main()
