#!/usr/bin/python3
"""PyTorch's side of the training benchmark: the nets of core/arch.c, layer for layer, trained as
`zfviz train` trains them, in PyTorch's best configuration on this machine (docs/benchmarking.md).

One training step, timed as bench/bench_train.c times zfviz's:
  batch_prep   a batch of Fashion-MNIST training images (kept in memory as uint8, as zfviz keeps
               them) made ready for the net as zf_dataset_batch makes it with zfviz train's default
               augmentation: the 28x28 image zero-padded by 2 px and a random 28x28 window cut
               (offsets -2..2), a random horizontal flip, F.interpolate bilinear
               align_corners=False (antialias=True, see Batcher) to the net's input, normalised. (Full nets: the window is the
               net's crop fraction of the image, 25 of 28, anywhere in it; the grey plane is copied
               to three channels.)
  step         forward with dropout (p 0.5) in train mode, F.cross_entropy (mean), backward,
               torch.optim.SGD (lr 0.01, full nets 0.001, momentum 0.9, weight decay 5e-4 on
               weights, none on biases), then ZF's renormalisation: every conv filter whose RMS exceeds 0.1 scaled
               back to RMS 0.1.
  train_step   both; images/s = batch / its median.
Initialisation as zf_net_init_he (He normal, the last fc N(0, 0.01), zero biases).

Configuration: all cores (torch.set_num_threads(os.cpu_count())), tcmalloc preloaded, and each
combination of OMP_WAIT_POLICY (ACTIVE, PASSIVE) and memory format (contiguous, channels_last)
run in its own process; per net and batch the configuration with the fastest train_step is
reported, its three measurements together, with every configuration's train_step in ms_by_config.
Each measurement warms up, then repeats steps for a few seconds and takes medians.
Prints one JSON line per measurement:
  {"side": "pytorch", "net": "zfnet-mini", "what": "train_step", "batch": 64, "ms": ...,
   "img_per_s": ..., "prep_ms": ..., "step_ms": ..., "config": "ACTIVE/contiguous", ...}

--check verifies once that these nets are zfviz's: for each net it takes a model file written by
`zfviz train` (--model, or a short run of `zfviz train` made on the spot), loads its safetensors
into the PyTorch net, and checks that fc8 of the PyTorch forward (dropout off) agrees with
`zfviz forward --dump fc8` to 1e-4, both on batches prepared here (the nets) and on PNG files of the
images that zfviz prepares itself (the preparation, without augmentation).

Usage: torch_train.py [--quick] [--nets a,b] [--batches 16,64,128] [--seconds S]
                      [--policy ACTIVE|PASSIVE|both] [--format contiguous|channels_last|both]
                      [--data DIR]
       torch_train.py --check [--nets a,b] [--model FILE] [--zfviz PATH] [--data DIR]
Run with /usr/bin/python3 (Debian's torch is visible only to it).
"""
import argparse
import collections
import gzip
import json
import math
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np

from torch_common import POLICIES, timing_args, timing_parser

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
FORMATS = ("contiguous", "channels_last")
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"

# Layer: (name, op, args). conv: (out, k, stride, pad); maxpool: (k, stride, pad), floor mode;
# fc: out features. As core/arch.c builds them (`zfviz info --arch A` prints them).
LRN = (5, 1e-4, 0.75, 1.0)  # bvlc_alexnet; nn.LocalResponseNorm divides alpha by size, as Caffe


def _mini_classifier():
    return [("flatten", "flatten", None),
            ("fc6", "fc", 256), ("relu6", "relu", None), ("drop6", "dropout", None),
            ("fc7", "fc", 256), ("relu7", "relu", None), ("drop7", "dropout", None),
            ("fc8", "fc", None)]


def _full_classifier():
    return [("flatten", "flatten", None),
            ("fc6", "fc", 4096), ("relu6", "relu", None), ("drop6", "dropout", None),
            ("fc7", "fc", 4096), ("relu7", "relu", None), ("drop7", "dropout", None),
            ("fc8", "fc", None)]


ARCHS = {
    "alexnet-mini": (112, [
        ("conv1", "conv", (32, 11, 4, 2)), ("relu1", "relu", None), ("norm1", "lrn", None),
        ("pool1", "maxpool", (3, 2, 0)),
        ("conv2", "conv", (64, 5, 1, 2)), ("relu2", "relu", None), ("norm2", "lrn", None),
        ("pool2", "maxpool", (3, 2, 0)),
        ("conv3", "conv", (96, 3, 1, 1)), ("relu3", "relu", None),
        ("conv4", "conv", (96, 3, 1, 1)), ("relu4", "relu", None),
        ("conv5", "conv", (64, 3, 1, 1)), ("relu5", "relu", None),
        ("pool5", "maxpool", (3, 2, 0)),
    ] + _mini_classifier()),
    "zfnet-mini": (112, [
        ("conv1", "conv", (32, 7, 2, 1)), ("relu1", "relu", None),
        ("pool1", "maxpool", (3, 2, 1)), ("norm1", "lrn", None),
        ("conv2", "conv", (64, 5, 2, 0)), ("relu2", "relu", None),
        ("pool2", "maxpool", (3, 2, 1)), ("norm2", "lrn", None),
        ("conv3", "conv", (96, 3, 1, 1)), ("relu3", "relu", None),
        ("conv4", "conv", (96, 3, 1, 1)), ("relu4", "relu", None),
        ("conv5", "conv", (64, 3, 1, 1)), ("relu5", "relu", None),
        ("pool5", "maxpool", (3, 2, 0)),
    ] + _mini_classifier()),
    "alexnet": (224, [
        ("conv1", "conv", (64, 11, 4, 2)), ("relu1", "relu", None),
        ("pool1", "maxpool", (3, 2, 0)),
        ("conv2", "conv", (192, 5, 1, 2)), ("relu2", "relu", None),
        ("pool2", "maxpool", (3, 2, 0)),
        ("conv3", "conv", (384, 3, 1, 1)), ("relu3", "relu", None),
        ("conv4", "conv", (256, 3, 1, 1)), ("relu4", "relu", None),
        ("conv5", "conv", (256, 3, 1, 1)), ("relu5", "relu", None),
        ("pool5", "maxpool", (3, 2, 0)), ("avgpool", "adaptive_avgpool", 6),
        # torchvision's order: dropout before fc6 and fc7
        ("flatten", "flatten", None),
        ("drop6", "dropout", None), ("fc6", "fc", 4096), ("relu6", "relu", None),
        ("drop7", "dropout", None), ("fc7", "fc", 4096), ("relu7", "relu", None),
        ("fc8", "fc", None),
    ]),
    "zfnet": (224, [
        ("conv1", "conv", (96, 7, 2, 1)), ("relu1", "relu", None),
        ("pool1", "maxpool", (3, 2, 1)), ("norm1", "lrn", None),
        ("conv2", "conv", (256, 5, 2, 0)), ("relu2", "relu", None),
        ("pool2", "maxpool", (3, 2, 1)), ("norm2", "lrn", None),
        ("conv3", "conv", (384, 3, 1, 1)), ("relu3", "relu", None),
        ("conv4", "conv", (384, 3, 1, 1)), ("relu4", "relu", None),
        ("conv5", "conv", (256, 3, 1, 1)), ("relu5", "relu", None),
        ("pool5", "maxpool", (3, 2, 0)),
    ] + _full_classifier()),
}
# alexnet-caffe's grouped convs are left out: the issue asks for the mini nets and AlexNet.

# Preprocessing (core/arch.c): per-channel mean and std of values in 0-1 scale; `short`: the
# resize_short of ZF_RESIZE_SHORT_CROP nets (0: the whole image resized to the input).
PREPROC = {
    "alexnet-mini": dict(mean=(0.2860,), std=(0.3530,), short=0),
    "zfnet-mini": dict(mean=(0.2860,), std=(0.3530,), short=0),
    "alexnet": dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), short=256),
    "zfnet": dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), short=256),
}
CROP = 2  # zfviz train's --crop default
SGD = dict(momentum=0.9, weight_decay=5e-4)
# zfviz train's default rate; the full nets (bench_train's choice too) at a tenth of it, where a
# few steps on upsampled 28x28 images do not diverge (the rate does not change the work).
LR = {"alexnet-mini": 0.01, "zfnet-mini": 0.01, "alexnet": 0.001, "zfnet": 0.001}
RENORM = 0.1


def parse_args(argv):
    p = timing_parser(__doc__, "alexnet-mini,zfnet-mini", "16,64,128", None, 5.0, 0.5)
    p.add_argument("--format", default="both", choices=("both",) + FORMATS,
                   help="memory format to try (both: one process each, report the better)")
    p.add_argument("--data", default=None,
                   help="Fashion-MNIST folder (default $ZFVIZ_FASHION_MNIST or " + FASHION_MNIST + ")")
    p.add_argument("--check", action="store_true",
                   help="verify the PyTorch nets against zfviz forward instead of timing")
    p.add_argument("--model", default=None, help="--check: a model file from zfviz train")
    p.add_argument("--zfviz", default=os.path.join(ROOT, "build", "tools", "zfviz"),
                   help="--check: the zfviz program (default build/tools/zfviz)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = timing_args(p, argv)
    for n in a.nets:
        if n not in ARCHS:
            p.error(f"--nets: unknown net '{n}' ({', '.join(ARCHS)})")
    if a.data is None:
        a.data = os.environ.get("ZFVIZ_FASHION_MNIST") or FASHION_MNIST
    return a


# ---------------------------------------------------------------------------------------------
# Data

def read_idx(path):
    """An IDX file (gzip'd or plain) as a numpy uint8 array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    if magic >> 8 != 0x08 or ndim < 1:
        sys.exit(f"torch_train.py: {path}: not an unsigned-byte IDX file (magic {magic:#010x})")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if arr.size != math.prod(dims):
        sys.exit(f"torch_train.py: {path}: {arr.size} bytes of data for dimensions {dims}")
    return arr.reshape(dims)


def load_fashion_mnist(folder, train):
    """(images (n, 28, 28) uint8, labels (n,) int64) of the training or test set."""
    pre = "train" if train else "t10k"
    out = []
    for kind in ("images-idx3", "labels-idx1"):
        base = os.path.join(folder, f"{pre}-{kind}-ubyte")
        path = base + ".gz" if os.path.exists(base + ".gz") else base
        if not os.path.exists(path):
            sys.exit(f"torch_train.py: {path}: no such file (Fashion-MNIST; --data DIR)")
        out.append(read_idx(path))
    return out[0], out[1].astype(np.int64)


class Batcher:
    """zf_dataset_batch in PyTorch ops, for `arch` on grey 28x28 images (torch uint8 (n, 28, 28))."""

    def __init__(self, torch, arch, in_c, images):
        self.t = torch
        self.images = images
        self.size = ARCHS[arch][0]
        self.in_c = in_c
        pre = PREPROC[arch]
        stored = images.shape[1]
        # the window: the whole image, or the net's crop fraction of it (C's lround)
        self.win = stored
        if pre["short"]:
            self.win = min(stored, int(math.floor(stored * self.size / pre["short"] + 0.5)))
        self.stored = stored
        # (p / 255 - mean) / std as p * a + b, per channel (a grey plane copied to three channels
        # takes each channel's mean and std)
        mean = torch.tensor(pre["mean"]).expand(in_c)
        std = torch.tensor(pre["std"]).expand(in_c)
        self.a = (1.0 / (255.0 * std)).view(1, in_c, 1, 1)
        self.b = (-mean / std).view(1, in_c, 1, 1)

    def __call__(self, idx, gen, augment=True):
        """(x (B, in_c, size, size) float32) for image indices idx (a LongTensor)."""
        t = self.t
        b = idx.shape[0]
        x = self.images[idx]
        if self.win == self.stored:
            # the whole image: pad by CROP, offsets 0..2*CROP in the padded image (-CROP..CROP)
            pad = CROP if augment else 0
            if pad:
                x = t.nn.functional.pad(x, (pad, pad, pad, pad))
            hi = 2 * pad + 1
        else:
            hi = self.stored - self.win + 1
        if augment:
            oy = t.randint(0, hi, (b,), generator=gen)
            ox = t.randint(0, hi, (b,), generator=gen)
            flip = t.randint(0, 2, (b,), generator=gen).bool()
        else:
            # the centred window (torchvision's CenterCrop offset: Python's round)
            c = round((self.stored - self.win) / 2) if self.win < self.stored else 0
            oy = ox = t.full((b,), c, dtype=t.long)
            flip = t.zeros(b, dtype=t.bool)
        # every window position as a view (B, positions, positions, win, win), then one per image
        x = x.unfold(1, self.win, 1).unfold(2, self.win, 1)[t.arange(b), oy, ox]
        # mirroring before a symmetric bilinear resize is mirroring after it
        x = t.where(flip[:, None, None], x.flip(2), x)
        x = x.unsqueeze(1).float()
        # antialias=True: for upsampling the same triangle filter as without it (the same values to
        # float rounding; --check compares with zfviz), by a separable path 4-8 times faster here
        up = dict(size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        if self.in_c == 1:
            # Bilinear weights sum to 1, so normalising the small window before upsampling is
            # normalising after it, at a sixteenth of the cost.
            x = t.addcmul(self.b, x, self.a)
            return t.nn.functional.interpolate(x, **up)
        x = t.nn.functional.interpolate(x, **up)
        return t.addcmul(self.b, x, self.a)


# ---------------------------------------------------------------------------------------------
# The nets

def build_net(torch, arch, in_c, classes):
    """nn.Sequential with zfviz's layer names (state_dict keys conv1.weight, ... as zfviz's
    safetensors), no softmax: its output is fc8."""
    nn = torch.nn
    size, layers = ARCHS[arch]
    mods = collections.OrderedDict()
    h = torch.zeros(1, in_c, size, size)
    with torch.no_grad():
        for name, op, a in layers:
            if op == "conv":
                out, k, s, p = a
                m = nn.Conv2d(h.shape[1], out, k, s, p)
            elif op == "relu":
                m = nn.ReLU(inplace=True)
            elif op == "lrn":
                m = nn.LocalResponseNorm(*LRN)
            elif op == "maxpool":
                k, s, p = a
                m = nn.MaxPool2d(k, s, p, ceil_mode=False)
            elif op == "adaptive_avgpool":
                m = nn.AdaptiveAvgPool2d(a)
            elif op == "flatten":
                m = nn.Flatten(1)
            elif op == "dropout":
                m = nn.Dropout(0.5)
            elif op == "fc":
                m = nn.Linear(h.shape[1], a if a is not None else classes)
            else:
                raise ValueError(op)
            h = m(h)
            mods[name] = m
    return nn.Sequential(mods)


def init_he(torch, net, gen):
    """zf_net_init_he's distribution: He normal std sqrt(2 / fan_in), the last fc N(0, 0.01),
    zero biases."""
    with torch.no_grad():
        params = [m for m in net if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        for i, m in enumerate(params):
            fan_in = m.weight[0].numel()
            std = 0.01 if i == len(params) - 1 else math.sqrt(2.0 / fan_in)
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * std)
            m.bias.zero_()


def renorm(torch, convs, radius):
    """ZF's rule: each filter (one output channel's weights) with RMS above radius scaled to it."""
    with torch.no_grad():
        for w in convs:
            rms = w.detach().pow(2).mean(dim=(1, 2, 3)).sqrt_()
            w.mul_((radius / rms).clamp_(max=1.0).view(-1, 1, 1, 1))


# ---------------------------------------------------------------------------------------------
# Child: one configuration, every measurement

def child(a, config):
    import torch
    policy, fmt = config.split("/")
    torch.set_num_threads(os.cpu_count() or 1)
    with open("/proc/self/maps") as f:
        tcmalloc = "tcmalloc" in f.read()
    common = {"side": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
              "tcmalloc": tcmalloc, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
              "memory_format": fmt, "config": config}
    images, labels = load_fashion_mnist(a.data, True)
    images = torch.from_numpy(images.copy())
    labels = torch.from_numpy(labels)
    mf = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
    for arch in a.nets:
        in_c = 1 if arch.endswith("-mini") else 3
        for b in a.batches:
            gen = torch.Generator().manual_seed(1)
            net = build_net(torch, arch, in_c, 10)
            init_he(torch, net, gen)
            net = net.to(memory_format=mf).train()
            weights = [p for n, p in net.named_parameters() if n.endswith(".weight")]
            biases = [p for n, p in net.named_parameters() if n.endswith(".bias")]
            opt = torch.optim.SGD([{"params": weights}, {"params": biases, "weight_decay": 0.0}],
                                  lr=LR[arch], foreach=True, **SGD)
            convs = [m.weight for m in net if isinstance(m, torch.nn.Conv2d)]
            batcher = Batcher(torch, arch, in_c, images)
            perm = torch.randperm(images.shape[0], generator=gen)
            at = 0
            prep, step, total, losses = [], [], [], []
            warm = 1 if a.quick else 3
            min_reps = 3 if a.quick else 10
            t_end = None
            s = 0
            while True:
                if s == warm:
                    t_end = time.perf_counter() + a.seconds
                if s >= warm and len(total) >= min_reps and time.perf_counter() >= t_end:
                    break
                if at + b > images.shape[0]:
                    at = 0
                idx = perm[at:at + b]
                at += b
                t0 = time.perf_counter()
                x = batcher(idx, gen).contiguous(memory_format=mf)
                y = labels[idx]
                t1 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(net(x), y)
                loss.backward()
                opt.step()
                renorm(torch, convs, RENORM)
                t2 = time.perf_counter()
                losses.append(loss.item())
                if s >= warm:
                    prep.append((t1 - t0) * 1e3)
                    step.append((t2 - t1) * 1e3)
                    total.append((t2 - t0) * 1e3)
                s += 1
            ms = statistics.median(total)
            p_ms, s_ms = statistics.median(prep), statistics.median(step)
            key = dict(common, net=arch, batch=b)
            print(json.dumps(dict(key, what="train_step", ms=round(ms, 3),
                                  img_per_s=round(1e3 * b / ms, 2), prep_ms=round(p_ms, 3),
                                  step_ms=round(s_ms, 3), reps=len(total),
                                  loss_first=round(losses[0], 4), loss_last=round(losses[-1], 4))),
                  flush=True)
            print(json.dumps(dict(key, what="train_step_compute", ms=round(s_ms, 3),
                                  img_per_s=round(1e3 * b / s_ms, 2))), flush=True)
            print(json.dumps(dict(key, what="batch_prep", ms=round(p_ms, 3),
                                  img_per_s=round(1e3 * b / p_ms, 2))), flush=True)


# ---------------------------------------------------------------------------------------------
# --check: the same nets as zfviz's

def read_safetensors(path):
    """{name: float32 numpy array} and the metadata of a safetensors file (F32 only, as zfviz
    writes)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        sys.exit(f"torch_train.py: {path}: too short for a safetensors file")
    n, = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        sys.exit(f"torch_train.py: {path}: header of {n} bytes in a file of {len(blob)}")
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = memoryview(blob)[8 + n:]
    out = {}
    for name, t in header.items():
        if t["dtype"] != "F32":
            sys.exit(f"torch_train.py: {path}: tensor {name} is {t['dtype']} (F32 expected)")
        lo, hi = t["data_offsets"]
        arr = np.frombuffer(data[lo:hi], dtype="<f4").reshape(t["shape"])
        out[name] = arr.copy()
    return out, meta


def write_png_grey(path, img):
    """An 8-bit grey PNG of img (h, w) uint8."""
    h, w = img.shape
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def run_zfviz(a, args):
    env = dict(os.environ, ZFVIZ_FASHION_MNIST=a.data)
    r = subprocess.run([a.zfviz] + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if r.returncode != 0:
        sys.exit(f"torch_train.py: zfviz {' '.join(args)} failed (exit {r.returncode}):\n{r.stdout}")
    return r.stdout


def lrn_keeps(torch, net, x):
    """How much of its input's magnitude the net's first LRN passes on (None: no LRN)."""
    with torch.no_grad():
        for m in net:
            y = m(x)
            if isinstance(m, torch.nn.LocalResponseNorm):
                return float(y.abs().sum() / x.abs().sum())
            x = y
    return None


def check(a):
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    if not os.access(a.zfviz, os.X_OK):
        sys.exit(f"torch_train.py: {a.zfviz}: no zfviz program (build it, or --zfviz PATH)")
    images, _ = load_fashion_mnist(a.data, False)
    n_img = 8
    ok = True
    with tempfile.TemporaryDirectory(prefix="zf-torch-train-") as tmp:
        models = []
        if a.model:
            models.append(a.model)
        else:
            for arch in a.nets:
                path = os.path.join(tmp, f"{arch}.safetensors")
                # a few steps of training, so the weights are not just the initialisation's
                run_zfviz(a, ["train", "--arch", arch, "--data", "fashion-mnist", "--limit", "256",
                              "--epochs", "1", "--val", "0", "--batch", "32", "--out", path])
                models.append(path)
        for path in models:
            params, meta = read_safetensors(path)
            arch = meta.get("arch")
            if arch not in ARCHS:
                sys.exit(f"torch_train.py: {path}: architecture '{arch}' is not one of {', '.join(ARCHS)}")
            in_c = params["conv1.weight"].shape[1]
            classes = params["fc8.weight"].shape[0]
            net = build_net(torch, arch, in_c, classes)
            net.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()}, strict=True)
            net.eval()
            batcher = Batcher(torch, arch, in_c, torch.from_numpy(images.copy()))
            x = batcher(torch.arange(n_img), None, augment=False).contiguous()
            # The nets: the same input tensors through both; the images as prepared, and 30 times
            # brighter, where LRN's denominator is far from 1 (at the prepared images' scale a net
            # with a wrong LRN convention would agree to 1e-4).
            for label, xin in (("prepared", x), ("x30", x * 30.0)):
                npy = os.path.join(tmp, "x.npy")
                np.save(npy, xin.numpy())
                run_zfviz(a, ["forward", "--model", path, "--input", npy, "--dump", "fc8", "--out", tmp,
                              "--top", "0"])
                with torch.no_grad():
                    ref = net(xin).numpy()
                got = np.load(os.path.join(tmp, "fc8.npy"))
                scale = max(1.0, float(np.abs(ref).max()))
                diff = float(np.abs(got - ref).max()) if got.shape == ref.shape else math.inf
                good = diff <= 1e-4 * scale
                ok &= good
                keep = lrn_keeps(torch, net, xin)
                print(f"check {arch}: fc8 of {n_img} {label} images, zfviz forward vs PyTorch: max |diff| "
                      f"{diff:.2e} at scale {scale:.3g}"
                      + (f" (the first LRN keeps {keep:.3f} of its input)" if keep else "")
                      + (" ok" if good else " MISMATCH"), flush=True)
            with torch.no_grad():
                ref = net(x).numpy()
            # The preparation: zfviz's from PNG files, PyTorch's Batcher (no augmentation). Only
            # for the mini nets: a full net's image path resizes the short side to 256 first,
            # which its training batches do not.
            if not PREPROC[arch]["short"]:
                worst = 0.0
                for i in range(2):
                    png = os.path.join(tmp, f"img{i}.png")
                    write_png_grey(png, images[i])
                    run_zfviz(a, ["forward", "--model", path, "--input", png, "--dump", "fc8",
                                  "--out", tmp, "--top", "0"])
                    got = np.load(os.path.join(tmp, "fc8.npy"))
                    worst = max(worst, float(np.abs(got - ref[i:i + 1]).max()))
                scale = max(1.0, float(np.abs(ref[:2]).max()))
                good = worst <= 1e-4 * scale
                ok &= good
                print(f"check {arch}: fc8 of 2 PNG images prepared by zfviz vs by PyTorch: max |diff| "
                      f"{worst:.2e} at scale {scale:.3g} {'ok' if good else 'MISMATCH'}", flush=True)
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------------
# Parent: one child per configuration, the best of each net and batch

def main(argv):
    a = parse_args(argv)
    if a.child:
        child(a, a.child)
        return 0
    if a.check:
        return check(a)
    policies = POLICIES if a.policy == "both" else (a.policy,)
    formats = FORMATS if a.format == "both" else (a.format,)
    if not os.path.exists(TCMALLOC):
        sys.exit(f"torch_train.py: {TCMALLOC} missing (apt-get install libtcmalloc-minimal4)")
    runs = collections.defaultdict(dict)  # (net, batch) -> config -> {what: line}
    order = []
    for fmt in formats:
        for pol in policies:
            config = f"{pol}/{fmt}"
            env = dict(os.environ, OMP_WAIT_POLICY=pol)
            pre = env.get("LD_PRELOAD", "")
            if TCMALLOC not in pre:
                env["LD_PRELOAD"] = (TCMALLOC + " " + pre).strip()
            cmd = [sys.executable, os.path.abspath(__file__), "--child", config] + argv
            r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
            if r.returncode != 0:
                sys.exit(f"torch_train.py: the {config} run failed (exit {r.returncode})")
            for line in r.stdout.splitlines():
                m = json.loads(line)
                key = (m["net"], m["batch"])
                if key not in runs:
                    order.append(key)
                runs[key].setdefault(config, {})[m["what"]] = m
    for key in order:
        by_config = runs[key]
        best = min(by_config, key=lambda c: by_config[c]["train_step"]["ms"])
        spread = {c: v["train_step"]["ms"] for c, v in by_config.items()}
        for what in ("train_step", "train_step_compute", "batch_prep"):
            print(json.dumps(dict(by_config[best][what], ms_by_config=spread)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
