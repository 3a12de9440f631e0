"""OpenVINO's and onnxruntime's side of the CPU benchmark (bench/run-cpu.sh), run by the benchmark's
own virtual environment (bench/peers-venv.sh), never by the product or its tests.

For each net in DIR (bench_cpu --dump, then peers_export.py): loads DIR/<net>/net.onnx into
  openvino       f32 (INFERENCE_PRECISION_HINT f32), LATENCY hint, all cores
  openvino-bf16  the same in bf16, only where OpenVINO says the CPU has BF16 (else one line saying
                 it is not run); reported apart, with its error
  onnxruntime    CPUExecutionProvider, all graph optimisations, all cores
checks every engine's fc8 at every batch against the float64 reference (DIR/<net>/ref64.npy, the
first images) and the engine's own output (DIR/<net>/fc8_b<N>.npy), refuses to time an f32 engine
that is off by more than 1e-4 relative to the largest reference value, then times the engines in
rounds, the order rotating each round, and prints one JSON line per engine and batch (median ms),
with the kernels each runs (OpenVINO: the convolutions' primitive types from its executable graph;
onnxruntime: its provider).
Usage: peers_cpu.py DIR [--nets a,b] [--batches 1,16,64] [--seconds S] [--quick]
"""
import argparse
import collections
import json
import os
import statistics
import sys
import time

import numpy as np

TOL = 1e-4


def rel_err(a, ref):
    n = min(len(a), len(ref))
    return float(np.abs(a[:n].astype(np.float64) - ref[:n]).max() / np.abs(ref[:n]).max())


class OpenVINO:
    def __init__(self, path, precision, threads):
        import openvino as ov
        self.core = ov.Core()
        self.name = "openvino" if precision == "f32" else "openvino-" + precision
        self.version = ov.__version__
        cfg = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY",
               "INFERENCE_NUM_THREADS": threads}
        self.model = self.core.read_model(path)
        self.cfg = cfg
        self.compiled = {}

    @staticmethod
    def bf16_supported():
        import openvino as ov
        caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        return "BF16" in caps, ", ".join(caps)

    def _get(self, b, shape):
        if b not in self.compiled:
            m = self.model.clone()
            m.reshape({"input": [b] + list(shape[1:])})
            cm = self.core.compile_model(m, "CPU", self.cfg)
            self.compiled[b] = (cm, cm.create_infer_request())
        return self.compiled[b]

    def run(self, x):
        cm, req = self._get(len(x), x.shape)
        req.infer({0: x})
        return req.get_tensor("fc8").data

    def kernels(self):
        kinds = collections.Counter()
        for cm, _ in self.compiled.values():
            for op in cm.get_runtime_model().get_ordered_ops():
                rt = {k: v.astype(str) for k, v in op.get_rt_info().items()
                      if k in ("layerType", "primitiveType", "runtimePrecision")}
                if rt.get("layerType") in ("Convolution", "FullyConnected"):
                    kinds[f"{rt['layerType']} {rt['primitiveType']} {rt['runtimePrecision']}"] += 1
            break
        return ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items()))


class OnnxRuntime:
    def __init__(self, path, threads):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.name = "onnxruntime"
        self.version = ort.__version__
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def run(self, x):
        return self.sess.run(["fc8"], {"input": x})[0]

    def kernels(self):
        return ", ".join(self.sess.get_providers()) + " (MLAS)"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--nets", default="alexnet,alexnet-caffe,zfnet")
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--seconds", type=float, default=None, help="timed seconds per engine and batch")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    seconds = a.seconds if a.seconds is not None else (0.3 if a.quick else 3.0)
    min_rounds = 3 if a.quick else 5
    threads = os.cpu_count() or 1
    batches = [int(b) for b in a.batches.split(",") if b]
    bf16, caps = OpenVINO.bf16_supported()
    if not bf16:
        print(f"peers_cpu.py: openvino-bf16 not run: this CPU has no BF16 for OpenVINO "
              f"(its capabilities: {caps})", file=sys.stderr)
    for arch in [n for n in a.nets.split(",") if n]:
        d = os.path.join(a.dir, arch)
        path = os.path.join(d, "net.onnx")
        x_all = np.load(os.path.join(d, "x.npy"))
        ref = np.load(os.path.join(d, "ref64.npy"))
        engines = [OpenVINO(path, "f32", threads), OnnxRuntime(path, threads)]
        if bf16:
            engines.append(OpenVINO(path, "bf16", threads))
        checks = {}
        for b in batches:
            x = np.ascontiguousarray(x_all[:b])
            zf = np.load(os.path.join(d, f"fc8_b{b}.npy"))
            for e in engines:
                y = np.array(e.run(x))
                err, err_zf = rel_err(y, ref), rel_err(y, zf.astype(np.float64))
                checks[(e.name, b)] = (err, err_zf)
                if e.name != "openvino-bf16" and max(err, err_zf) > TOL:
                    sys.exit(f"peers_cpu.py: {arch} batch {b}: {e.name}'s fc8 is off by {err:.2e} from "
                             f"the float64 reference and {err_zf:.2e} from zfviz's (limit {TOL:g}); not timed")
        for b in batches:
            x = np.ascontiguousarray(x_all[:b])
            times = {e.name: [] for e in engines}
            for e in engines:
                e.run(x)
            t_end = time.perf_counter() + seconds * len(engines)
            r = 0
            while r < min_rounds or time.perf_counter() < t_end:
                for i in range(len(engines)):
                    e = engines[(i + r) % len(engines)]
                    t0 = time.perf_counter()
                    e.run(x)
                    times[e.name].append((time.perf_counter() - t0) * 1e3)
                r += 1
            for e in engines:
                ms = statistics.median(times[e.name])
                err, err_zf = checks[(e.name, b)]
                print(json.dumps({"side": e.name, "net": arch, "what": "forward", "batch": b, "ms": round(ms, 3),
                                  "img_per_s": round(1e3 * b / ms, 2), "reps": len(times[e.name]),
                                  "threads": threads, "version": e.version, "kernels": e.kernels(),
                                  "rel_err_f64": float(f"{err:.3g}"), "rel_err_zfviz": float(f"{err_zf:.3g}")}),
                      flush=True)


if __name__ == "__main__":
    main()
