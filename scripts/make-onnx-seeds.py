#!/usr/bin/python3
"""Seed inputs for the ONNX loader's fuzzer (scripts/fuzz-onnx.sh): tiny models, each a few hundred
bytes, that between them reach every op handler and every form the loader accepts or refuses.
Weights come from ConstantOfShape nodes (as in the zoo's light models) or small initializers, so
that the fuzzer mutates graph structure rather than megabytes of floats.
Usage: make-onnx-seeds.py OUTDIR (tests/onnx-corpus holds the committed result)."""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def const_of_shape(name, shape, value=0.02):
    s = numpy_helper.from_array(np.array(shape, np.int64), name + "_shape")
    n = helper.make_node("ConstantOfShape", [name + "_shape"], [name],
                         value=helper.make_tensor("v", TensorProto.FLOAT, [1], [value]))
    return s, n


def model(nodes, inits, x_shape, opset, ir=7, inputs_extra=(), out="y"):
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))] + list(inputs_extra)
    g = helper.make_graph(nodes, "seed", inputs, [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                          inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = ir
    return m


def chain(opset=11, conv_w="cos", bias="init", pool="max", flat="reshape", fc="gemm", extra=()):
    """conv -> relu -> lrn -> pool -> flatten -> fc -> dropout -> softmax on a 1x3x9x9 input."""
    rng = np.random.default_rng(len(extra) + opset)
    inits, nodes = [], []
    if conv_w == "cos":
        s, n = const_of_shape("W", [4, 3, 3, 3])
        inits.append(s)
        nodes.append(n)
    else:
        inits.append(numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W"))
    conv_in = ["x", "W"]
    if bias == "init":
        inits.append(numpy_helper.from_array(np.arange(4, dtype=np.float32), "B"))
        conv_in.append("B")
    nodes.append(helper.make_node("Conv", conv_in, ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                  strides=[2, 2]))
    cur = "c"
    if bias == "add":
        inits.append(numpy_helper.from_array(np.ones((1, 4, 1, 1), np.float32), "B"))
        nodes.append(helper.make_node("Add", [cur, "B"], ["cb"], name="bias"))
        cur = "cb"
    nodes.append(helper.make_node("Relu", [cur], ["r"], name="relu"))
    nodes.append(helper.make_node("LRN", ["r"], ["l"], name="lrn", size=3, alpha=1e-3, beta=0.75, bias=1.0))
    if pool == "max":
        nodes.append(helper.make_node("MaxPool", ["l"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2],
                                      pads=[0, 0, 1, 1]))
    elif pool == "avg":
        nodes.append(helper.make_node("AveragePool", ["l"], ["p"], name="pool", kernel_shape=[3, 3],
                                      strides=[1, 1], pads=[1, 1, 1, 1], count_include_pad=1))
    else:
        nodes.append(helper.make_node("GlobalAveragePool", ["l"], ["p"], name="pool"))
    feat = 4 * (1 if pool == "global" else 9 if pool == "max" else 25)
    if flat == "reshape":
        inits.append(numpy_helper.from_array(np.array([1, -1], np.int64), "shape"))
        nodes.append(helper.make_node("Reshape", ["p", "shape"], ["f"], name="flat"))
    else:
        nodes.append(helper.make_node("Flatten", ["p"], ["f"], name="flat", axis=1))
    s, n = const_of_shape("F", [5, feat] if fc == "gemm" else [feat, 5], 0.01)
    inits.append(s)
    nodes.append(n)
    if fc == "gemm":
        inits.append(numpy_helper.from_array(np.ones(5, np.float32), "C"))
        nodes.append(helper.make_node("Gemm", ["f", "F", "C"], ["g"], name="fc", transB=1, alpha=0.5))
    else:
        nodes.append(helper.make_node("MatMul", ["f", "F"], ["mm"], name="fc"))
        inits.append(numpy_helper.from_array(np.ones(5, np.float32), "C"))
        nodes.append(helper.make_node("Add", ["mm", "C"], ["g"], name="fcb"))
    nodes.append(helper.make_node("Dropout", ["g"], ["d"], name="drop", ratio=0.5))
    nodes.append(helper.make_node("Softmax", ["d"], ["y"], name="prob"))
    return model(nodes + list(extra), inits, (1, 3, 9, 9), opset)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    seeds = {
        "chain_cos.onnx": chain(),
        "chain_init.onnx": chain(conv_w="init", pool="avg", flat="flatten", fc="matmul"),
        "chain_global.onnx": chain(pool="global", bias="add"),
        "chain_op9.onnx": chain(opset=9),
        "chain_op13.onnx": chain(opset=13),
    }
    # opset 3 forms: Reshape with a shape attribute, Gemm broadcast, Dropout is_test, consumed_inputs
    W = numpy_helper.from_array(np.full((2, 3, 3, 3), 0.1, np.float32), "W")
    seeds["legacy_op3.onnx"] = model(
        [helper.make_node("Conv", ["x", "W"], ["c"], kernel_shape=[3, 3]),
         helper.make_node("Add", ["c", "b"], ["cb"], broadcast=1, axis=1),
         helper.make_node("Relu", ["cb"], ["r"], consumed_inputs=[0]),
         helper.make_node("Reshape", ["r"], ["f"], shape=[1, 18]),
         helper.make_node("Gemm", ["f", "G", "gc"], ["g"], broadcast=1, transB=1),
         helper.make_node("Dropout", ["g"], ["d", "mask"], is_test=1, ratio=0.5),
         helper.make_node("Softmax", ["d"], ["y"])],
        [W, numpy_helper.from_array(np.ones(2, np.float32), "b"),
         numpy_helper.from_array(np.ones((4, 18), np.float32), "G"),
         numpy_helper.from_array(np.ones((1, 4), np.float32), "gc")], (1, 3, 5, 5), 3, ir=3)
    # constants made by nodes, transposed, cast, typed fields, half precision
    seeds["constants.onnx"] = model(
        [helper.make_node("Constant", [], ["W0"], value=helper.make_tensor("w", TensorProto.FLOAT16, [2, 3, 1, 1],
                                                                          np.ones(6, np.float16).view(np.uint16))),
         helper.make_node("Identity", ["W0"], ["W"]),
         helper.make_node("Conv", ["x", "W"], ["c"]),
         helper.make_node("Flatten", ["c"], ["f"]),
         helper.make_node("Constant", [], ["M0"], value=helper.make_tensor("m", TensorProto.DOUBLE, [3, 8],
                                                                          np.ones(24).tolist())),
         helper.make_node("Transpose", ["M0"], ["M1"], perm=[1, 0]),
         helper.make_node("Cast", ["M1"], ["M"], to=TensorProto.FLOAT),
         helper.make_node("Gemm", ["f", "M"], ["y"], transB=0)],
        [], (1, 3, 2, 2), 11)
    seeds["int_shapes.onnx"] = model(
        [helper.make_node("Constant", [], ["s"], value_ints=[1, -1]),
         helper.make_node("Reshape", ["x", "s"], ["f"]),
         helper.make_node("Constant", [], ["k"], value=helper.make_tensor("k", TensorProto.INT32, [2], [12, 4])),
         helper.make_node("ConstantOfShape", ["k"], ["K"]),
         helper.make_node("MatMul", ["f", "K"], ["y"])],
        [], (1, 3, 2, 2), 12)
    seeds["external.onnx"] = model(
        [helper.make_node("Conv", ["x", "W"], ["y"])],
        [helper.make_tensor("W", TensorProto.FLOAT, [1, 3, 1, 1], [1.0, 2.0, 3.0])], (1, 3, 2, 2), 11)
    t = seeds["external.onnx"].graph.initializer[0]
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "w.bin"), ("offset", "0"), ("length", "12")):
        e = t.external_data.add()
        e.key, e.value = k, v
    seeds["symbolic.onnx"] = model(
        [helper.make_node("GlobalMaxPool", ["x"], ["p"]), helper.make_node("Flatten", ["p"], ["y"])],
        [], ("N", 3, "H", 4), 11)
    seeds["bound_input.onnx"] = model(
        [helper.make_node("Conv", ["x", "W"], ["y"], auto_pad="SAME_UPPER", kernel_shape=[3, 3], strides=[2, 2])],
        [], (1, 1, 5, 5), 11, inputs_extra=[helper.make_tensor_value_info("W", TensorProto.FLOAT, [1, 1, 3, 3])])
    seeds["refused_branch.onnx"] = model(
        [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Relu", ["x"], ["b"]),
         helper.make_node("Sum", ["a", "b"], ["y"])], [], (1, 3, 4, 4), 8)
    seeds["dropout12.onnx"] = model(
        [helper.make_node("Flatten", ["x"], ["f"]),
         helper.make_node("Dropout", ["f", "r", "t"], ["y", "m"], seed=1)],
        [numpy_helper.from_array(np.array(0.25, np.float32), "r"), numpy_helper.from_array(np.array(False), "t")],
        (2, 3, 1, 1), 12)
    for name, m in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(m.SerializeToString())
    # and damaged ones: cut, and a varint run-on
    whole = seeds["chain_cos.onnx"].SerializeToString()
    with open(os.path.join(out, "cut_half.onnx"), "wb") as f:
        f.write(whole[:len(whole) // 2])
    with open(os.path.join(out, "varint_runon.onnx"), "wb") as f:
        f.write(b"\x08" + b"\xff" * 16)
    print(f"make-onnx-seeds: {len(seeds) + 2} seeds in {out}")


if __name__ == "__main__":
    main()
