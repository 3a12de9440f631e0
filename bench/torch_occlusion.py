#!/usr/bin/python3
"""PyTorch brute-force occlusion maps (one batched forward per group of occluded images): the
baseline bench/occlusion_bench.py compares zfviz occlude against. Also writes the He-normal weights
and the input both sides use.

  torch_occlusion.py --arch A --save-weights DIR [--seed S]        weights as DIR/<layer>.{weight,bias}.npy
  torch_occlusion.py --arch A --weights DIR --input X.npy --patch P --stride S [--batch B]
                     [--repeat R] [--out DIR]                       prints one JSON line of timings

Run with /usr/bin/python3 (Debian's torch), under LD_PRELOAD=libtcmalloc_minimal.so.4 as
docs/benchmarking.md says; the driver does that."""
import argparse
import json
import os
import sys
import time
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn


def lrn():
    # Caffe's convention (alpha divided by the size), which torch.nn.LocalResponseNorm shares.
    return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)


def make_features(arch):
    """The convolutional part up to and including conv5's ReLU, named as zfviz names layers."""
    if arch == "alexnet":
        return nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 64, 11, 4, 2)), ("relu1", nn.ReLU(True)), ("pool1", nn.MaxPool2d(3, 2)),
            ("conv2", nn.Conv2d(64, 192, 5, 1, 2)), ("relu2", nn.ReLU(True)), ("pool2", nn.MaxPool2d(3, 2)),
            ("conv3", nn.Conv2d(192, 384, 3, 1, 1)), ("relu3", nn.ReLU(True)),
            ("conv4", nn.Conv2d(384, 256, 3, 1, 1)), ("relu4", nn.ReLU(True)),
            ("conv5", nn.Conv2d(256, 256, 3, 1, 1)), ("relu5", nn.ReLU(True))]))
    if arch == "alexnet-caffe":
        return nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 96, 11, 4, 0)), ("relu1", nn.ReLU(True)), ("norm1", lrn()),
            ("pool1", nn.MaxPool2d(3, 2)),
            ("conv2", nn.Conv2d(96, 256, 5, 1, 2, groups=2)), ("relu2", nn.ReLU(True)), ("norm2", lrn()),
            ("pool2", nn.MaxPool2d(3, 2)),
            ("conv3", nn.Conv2d(256, 384, 3, 1, 1)), ("relu3", nn.ReLU(True)),
            ("conv4", nn.Conv2d(384, 384, 3, 1, 1, groups=2)), ("relu4", nn.ReLU(True)),
            ("conv5", nn.Conv2d(384, 256, 3, 1, 1, groups=2)), ("relu5", nn.ReLU(True))]))
    if arch == "zfnet":
        return nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 96, 7, 2, 1)), ("relu1", nn.ReLU(True)), ("pool1", nn.MaxPool2d(3, 2, 1)),
            ("norm1", lrn()),
            ("conv2", nn.Conv2d(96, 256, 5, 2, 0)), ("relu2", nn.ReLU(True)), ("pool2", nn.MaxPool2d(3, 2, 1)),
            ("norm2", lrn()),
            ("conv3", nn.Conv2d(256, 384, 3, 1, 1)), ("relu3", nn.ReLU(True)),
            ("conv4", nn.Conv2d(384, 384, 3, 1, 1)), ("relu4", nn.ReLU(True)),
            ("conv5", nn.Conv2d(384, 256, 3, 1, 1)), ("relu5", nn.ReLU(True))]))
    raise SystemExit(f"torch_occlusion: unknown arch {arch}")


def make_head(arch):
    """pool5 to the logits (dropout is the identity in eval mode and is left out)."""
    layers = [("pool5", nn.MaxPool2d(3, 2))]
    if arch == "alexnet":
        layers.append(("avgpool", nn.AdaptiveAvgPool2d((6, 6))))
    layers += [("flatten", nn.Flatten()),
               ("fc6", nn.Linear(9216, 4096)), ("relu6", nn.ReLU(True)),
               ("fc7", nn.Linear(4096, 4096)), ("relu7", nn.ReLU(True)),
               ("fc8", nn.Linear(4096, 1000))]
    return nn.Sequential(OrderedDict(layers))


def input_size(arch):
    return 227 if arch == "alexnet-caffe" else 224


def params(features, head):
    for m in list(features.named_children()) + list(head.named_children()):
        if isinstance(m[1], (nn.Conv2d, nn.Linear)):
            yield m


def save_weights(arch, out_dir, seed):
    """He-normal weights (std sqrt(2 / fan_in)) and small biases, so that activations neither vanish
    nor explode through eight layers and the maps mean something."""
    torch.manual_seed(seed)
    features, head = make_features(arch), make_head(arch)
    os.makedirs(out_dir, exist_ok=True)
    for name, m in params(features, head):
        fan_in = m.weight[0].numel()
        with torch.no_grad():
            m.weight.normal_(0.0, (2.0 / fan_in) ** 0.5)
            m.bias.uniform_(-0.05, 0.05)
        np.save(os.path.join(out_dir, f"{name}.weight.npy"), m.weight.detach().numpy())
        np.save(os.path.join(out_dir, f"{name}.bias.npy"), m.bias.detach().numpy())


def load_weights(features, head, d):
    for name, m in params(features, head):
        m.weight.data.copy_(torch.from_numpy(np.load(os.path.join(d, f"{name}.weight.npy"))))
        m.bias.data.copy_(torch.from_numpy(np.load(os.path.join(d, f"{name}.bias.npy"))))


def occlusion_maps(features, head, x, patch, stride, fill, batch, channel, cls):
    """x is (1, 3, H, W). Returns feature, prob, argmax maps (rows x cols)."""
    h, w = x.shape[2], x.shape[3]
    ys = list(range(0, h - patch + 1, stride))
    xs = list(range(0, w - patch + 1, stride))
    pos = [(py, px) for py in ys for px in xs]
    feat = np.zeros(len(pos), np.float32)
    prob = np.zeros(len(pos), np.float32)
    amax = np.zeros(len(pos), np.int32)
    for b0 in range(0, len(pos), batch):
        chunk = pos[b0:b0 + batch]
        xb = x.repeat(len(chunk), 1, 1, 1)
        for i, (py, px) in enumerate(chunk):
            xb[i, :, py:py + patch, px:px + patch] = fill
        f = features(xb)
        p = torch.softmax(head(f), dim=1)
        feat[b0:b0 + len(chunk)] = f[:, channel].sum(dim=(1, 2)).numpy()
        prob[b0:b0 + len(chunk)] = p[:, cls].numpy()
        amax[b0:b0 + len(chunk)] = p.argmax(dim=1).numpy()
    shape = (len(ys), len(xs))
    return feat.reshape(shape), prob.reshape(shape), amax.reshape(shape)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", required=True, choices=["alexnet", "alexnet-caffe", "zfnet"])
    ap.add_argument("--save-weights")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--weights")
    ap.add_argument("--input", help=".npy (1, 3, H, W) or (3, H, W); default seeded N(0, 1)")
    ap.add_argument("--patch", type=int, default=32)
    ap.add_argument("--stride", type=int, default=8)
    ap.add_argument("--fill", type=float, default=0.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out", help="write feature.npy, prob.npy, argmax.npy here")
    a = ap.parse_args()
    if a.save_weights:
        save_weights(a.arch, a.save_weights, a.seed)
        return
    torch.set_num_threads(os.cpu_count())
    features, head = make_features(a.arch).eval(), make_head(a.arch).eval()
    if a.weights:
        load_weights(features, head, a.weights)
    n = input_size(a.arch)
    if a.input:
        x = torch.from_numpy(np.load(a.input).astype(np.float32)).reshape(1, 3, n, n)
    else:
        x = torch.randn(1, 3, n, n, generator=torch.Generator().manual_seed(a.seed))
    with torch.no_grad():
        f = features(x)
        flat = f[0].flatten()
        channel = int(flat.argmax()) // (f.shape[2] * f.shape[3])
        cls = int(torch.softmax(head(f), dim=1)[0].argmax())
        # Warm-up: one batch, so that the timed runs see allocated memory and started threads.
        occlusion_maps(features, head, x, a.patch, max(a.stride, n), a.fill, a.batch, channel, cls)
        times = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            maps = occlusion_maps(features, head, x, a.patch, a.stride, a.fill, a.batch, channel, cls)
            times.append(time.perf_counter() - t0)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        for name, m in zip(("feature", "prob", "argmax"), maps):
            np.save(os.path.join(a.out, f"{name}.npy"), m)
    print(json.dumps({"arch": a.arch, "patch": a.patch, "stride": a.stride, "positions": maps[0].size,
                      "channel": channel, "class": cls, "batch": a.batch, "threads": torch.get_num_threads(),
                      "seconds": times, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}))


if __name__ == "__main__":
    sys.exit(main())
