#!/usr/bin/python3
"""Writes the nets that bench_cpu --dump saved (the engine's random:1 weights) as ONNX files for the
peers of bench/run-cpu.sh, and the float64 reference they are all checked against.

For each net in DIR (DIR/<net>/weights/*.npy, DIR/<net>/x.npy from bench_cpu --dump):
  DIR/<net>/net.onnx   the net at opset 13 with a symbolic batch, built node by node from
                       tests/fixtures/gen_nets.py's layer list: Conv (with group), Relu, the ONNX
                       LRN operator (size 5, alpha 1e-4, beta 0.75, bias 1: the same formula as
                       PyTorch's, alpha divided by size), MaxPool (floor mode), Flatten, Gemm,
                       Softmax; outputs "fc8" (what is compared) and "prob"
  DIR/<net>/ref64.npy  fc8 of the first REF_IMAGES inputs in float64 (PyTorch, double weights)
A native LRN node instead of what torch.onnx.export spells out (Mul, Pad, AveragePool, Pow, Div)
gives OpenVINO and onnxruntime their own LRN kernels: the peers at their best.
Usage: peers_export.py DIR [--nets a,b]   (Debian's torch and onnx: run with /usr/bin/python3)
"""
import argparse
import os
import sys

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures"))
import gen_nets as G  # noqa: E402

REF_IMAGES = 16


def load_params(wdir, layers):
    params = {}
    for name, op, _ in layers:
        if op in ("conv", "fc"):
            params[name] = tuple(np.load(os.path.join(wdir, f"{name}.{k}.npy")) for k in ("weight", "bias"))
    return params


def build_onnx(arch, params):
    size, layers = G.ARCHS[arch]
    nodes, inits = [], []
    cur = "input"
    shape = [3, size, size]  # per image, to check the adaptive pool is the identity
    for name, op, a in layers:
        out = name
        if op == "conv":
            _, k, s, p, g = a
            w, b = params[name]
            inits += [numpy_helper.from_array(w.astype(np.float32), name + ".weight"),
                      numpy_helper.from_array(b.astype(np.float32), name + ".bias")]
            nodes.append(helper.make_node("Conv", [cur, name + ".weight", name + ".bias"], [out], name=name,
                                          kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p], group=g))
            shape = [w.shape[0], (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1]
        elif op == "relu":
            nodes.append(helper.make_node("Relu", [cur], [out], name=name))
        elif op == "lrn":
            nodes.append(helper.make_node("LRN", [cur], [out], name=name, size=G.LRN["size"],
                                          alpha=G.LRN["alpha"], beta=G.LRN["beta"], bias=G.LRN["k"]))
        elif op == "maxpool":
            k, s, p = a
            nodes.append(helper.make_node("MaxPool", [cur], [out], name=name, kernel_shape=[k, k],
                                          strides=[s, s], pads=[p, p, p, p], ceil_mode=0))
            shape = [shape[0], (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1]
        elif op == "adaptive_avgpool":
            if shape[1:] != [a, a]:
                sys.exit(f"peers_export.py: {arch}: {name} is not the identity here ({shape})")
            continue
        elif op == "dropout":
            continue
        elif op == "flatten":
            nodes.append(helper.make_node("Flatten", [cur], [out], name=name, axis=1))
        elif op == "fc":
            w, b = params[name]
            inits += [numpy_helper.from_array(w.astype(np.float32), name + ".weight"),
                      numpy_helper.from_array(b.astype(np.float32), name + ".bias")]
            nodes.append(helper.make_node("Gemm", [cur, name + ".weight", name + ".bias"], [out], name=name,
                                          transB=1))
        elif op == "softmax":
            nodes.append(helper.make_node("Softmax", [cur], [out], name=name, axis=1))
        else:
            sys.exit(f"peers_export.py: {arch}: op {op} has no ONNX spelling here")
        cur = out
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 1000]) for n in ("fc8", "prob")]
    graph = helper.make_graph(nodes, arch, [inp], outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="zfviz bench/peers_export.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def reference(arch, params, x):
    _, layers = G.ARCHS[arch]
    p64 = {k: (torch.from_numpy(w).double(), torch.from_numpy(b).double()) for k, (w, b) in params.items()}
    with torch.no_grad():
        outs, _ = G.forward(arch, p64, torch.from_numpy(x).double())
    return outs["fc8"].numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--nets", default="alexnet,alexnet-caffe,zfnet")
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    for arch in [n for n in a.nets.split(",") if n]:
        d = os.path.join(a.dir, arch)
        params = load_params(os.path.join(d, "weights"), G.ARCHS[arch][1])
        onnx.save(build_onnx(arch, params), os.path.join(d, "net.onnx"))
        x = np.load(os.path.join(d, "x.npy"))[:REF_IMAGES]
        np.save(os.path.join(d, "ref64.npy"), reference(arch, params, x))
        print(f"peers_export.py: {d}/net.onnx and ref64.npy ({len(x)} images)", file=sys.stderr)


if __name__ == "__main__":
    main()
