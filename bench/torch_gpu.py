#!/usr/bin/env python3
"""PyTorch + cuDNN on the same GPU, measured as bench/bench_gpu measures the CUDA engine: forward
throughput at batch 1, 64 and 256 (input already on the GPU), the deconvnet projection of one conv5
unit (forward up to conv5's ReLU, switches, unpooling that adds, transposed convolutions, result on
the host), and a 224 occlusion map with patch 32 stride 8 by brute force in batches of 256.
One JSON line per measurement, medians of host-timed runs that end in torch.cuda.synchronize()
(as the C side times them).
    python3 bench/torch_gpu.py [--quick] [--nets alexnet,zfnet] [--precisions fp32,tf32]
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def zfnet():
    """ZFNet as the built-in zfnet (Zeiler & Fergus Fig. 3; ReLU, pool, then LRN)."""
    def lrn():
        return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
    features = nn.Sequential(
        nn.Conv2d(3, 96, 7, 2, 1), nn.ReLU(), nn.MaxPool2d(3, 2, 1), lrn(),
        nn.Conv2d(96, 256, 5, 2, 0), nn.ReLU(), nn.MaxPool2d(3, 2, 1), lrn(),
        nn.Conv2d(256, 384, 3, 1, 1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, 1, 1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, 1, 1), nn.ReLU(),
        nn.MaxPool2d(3, 2))
    classifier = nn.Sequential(
        nn.Flatten(), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(), nn.Dropout(),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 1000), nn.Softmax(dim=1))
    return features, classifier, 13  # index of relu5 in features


def alexnet():
    import torchvision
    m = torchvision.models.alexnet(weights=None)
    classifier = nn.Sequential(m.avgpool, nn.Flatten(), m.classifier, nn.Softmax(dim=1))
    return m.features, classifier, 11


def timed(fn, budget, reps_min=5, reps_max=200):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    ts = []
    end = time.perf_counter() + budget
    while len(ts) < reps_max and (len(ts) < reps_min or time.perf_counter() < end):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def deconv(features, relu5, x, channel=3):
    """Forward to relu5 recording switches, keep the strongest unit of `channel`, go down."""
    records = []
    cur = x
    for m in list(features)[:relu5 + 1]:
        if isinstance(m, nn.MaxPool2d):
            out, idx = F.max_pool2d(cur, m.kernel_size, m.stride, m.padding, return_indices=True)
            records.append(("pool", idx, cur.shape))
        elif isinstance(m, nn.Conv2d):
            records.append(("conv", m, cur.shape))
            out = m(cur)
        elif isinstance(m, nn.ReLU):
            records.append(("relu",))
            out = F.relu(cur)
        else:  # LRN: the identity on the way down
            records.append(("lrn",))
            out = m(cur)
        cur = out
    plane = cur[0, channel].flatten()
    pos = torch.argmax(plane)  # first maximum
    sig = torch.zeros_like(cur)
    sig[0, channel].view(-1)[pos] = plane[pos]
    for rec in reversed(records):
        if rec[0] == "relu":
            sig = F.relu(sig)
        elif rec[0] == "conv":
            m, shape = rec[1], rec[2]
            s, p, k = m.stride[0], m.padding[0], m.kernel_size[0]
            op = shape[2] - ((sig.shape[2] - 1) * s - 2 * p + k)
            sig = F.conv_transpose2d(sig, m.weight, None, m.stride, m.padding, output_padding=op, groups=m.groups)
        elif rec[0] == "pool":
            idx, shape = rec[1], rec[2]
            n, c = shape[0], shape[1]
            flat = torch.zeros(n, c, shape[2] * shape[3], device=sig.device, dtype=sig.dtype)
            flat.scatter_add_(2, idx.view(n, c, -1), sig.reshape(n, c, -1))  # overlapping windows add
            sig = flat.view(shape)
    return sig.cpu()


def occlusion(features, classifier, relu5, x, patch, stride, batch, fill=0.0):
    """Brute force: every occluded image through the whole net, in batches."""
    _, c, h, w = x.shape
    rows, cols = (h - patch) // stride + 1, (w - patch) // stride + 1
    feat = {}
    hook = features[relu5].register_forward_hook(lambda mod, inp, out: feat.__setitem__("a", out))
    probs = classifier(features(x))
    a = feat["a"][0]
    chan = int(torch.argmax(a.flatten())) // (a.shape[1] * a.shape[2])
    cls = int(torch.argmax(probs[0]))
    ys = torch.arange(rows, device=x.device).repeat_interleave(cols) * stride
    xs = torch.arange(cols, device=x.device).repeat(rows) * stride
    yy = torch.arange(h, device=x.device).view(1, h, 1)
    xx = torch.arange(w, device=x.device).view(1, 1, w)
    mask = ((yy >= ys.view(-1, 1, 1)) & (yy < ys.view(-1, 1, 1) + patch) &
            (xx >= xs.view(-1, 1, 1)) & (xx < xs.view(-1, 1, 1) + patch)).unsqueeze(1)
    fmap, pmap, amap = [], [], []
    for p0 in range(0, rows * cols, batch):
        xb = torch.where(mask[p0:p0 + batch], torch.tensor(fill, device=x.device), x)
        pr = classifier(features(xb))
        fmap.append(feat["a"][:, chan].sum((1, 2)))
        pmap.append(pr[:, cls])
        amap.append(pr.argmax(1))
    hook.remove()
    return torch.cat(fmap).cpu(), torch.cat(pmap).cpu(), torch.cat(amap).cpu()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--nets", default="alexnet,zfnet")
    ap.add_argument("--precisions", default="fp32")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("torch_gpu: no CUDA device", file=sys.stderr)
        return 1
    budget = 0.5 if args.quick else 2.0
    torch.backends.cudnn.benchmark = True  # as bench_gpu's autotuning
    dev = torch.device("cuda")
    print(f"torch_gpu: torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, "
          f"{torch.cuda.get_device_name(0)}", file=sys.stderr)
    gen = torch.Generator().manual_seed(777)
    for prec in args.precisions.split(","):
        tf32 = prec == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=prec == "bf16")
        for name in args.nets.split(","):
            features, classifier, relu5 = {"alexnet": alexnet, "zfnet": zfnet}[name]()
            features, classifier = features.to(dev).eval(), classifier.to(dev).eval()
            model = nn.Sequential(features, classifier)
            x = (torch.rand(256, 3, 224, 224, generator=gen) * 2 - 1).to(dev)
            with torch.inference_mode(), autocast:
                for n in (1, 64, 256):
                    xb = x[:n].contiguous()
                    ms = timed(lambda: model(xb), budget)
                    print(json.dumps({"side": "torch", "net": name, "what": "forward", "batch": n,
                                      "precision": prec, "ms": round(ms, 4),
                                      "img_per_s": round(n * 1e3 / ms, 1)}), flush=True)
                x1 = x[:1].contiguous()
                ms = timed(lambda: deconv(features, relu5, x1), budget)
                print(json.dumps({"side": "torch", "net": name, "what": "deconv_conv5_unit", "batch": 1,
                                  "precision": prec, "ms": round(ms, 4)}), flush=True)
                reps = 2 if args.quick else 5
                ms = timed(lambda: occlusion(features, classifier, relu5, x1, 32, 8, 256), 0, reps, reps)
                print(json.dumps({"side": "torch", "net": name, "what": "occlusion_p32_s8_brute", "batch": 256,
                                  "precision": prec, "positions": 625, "ms": round(ms, 2)}), flush=True)
            del features, classifier, model, x
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
