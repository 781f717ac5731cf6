#!/usr/bin/python3
"""Writes the importer's malformed-model corpus: tests/import/corpus/*.onnx plus cases.txt
(file <TAB> expected message substring, "OK" for models that must load).
Deterministic; rerun after changing it and commit the output. Uses Debian's python3-onnx."""
import os
import struct
import onnx
from onnx import helper, TensorProto as TP

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
cases = []


def vi(name, et=TP.FLOAT, shape=(1, 3, 4, 4)):
    return helper.make_tensor_value_info(name, et, shape)


def rawt(name, dt, dims, raw=None, floats=None):
    t = TP(name=name, data_type=dt, dims=dims)
    if raw is not None:
        t.raw_data = raw
    if floats is not None:
        t.float_data.extend(floats)
    return t


def weights():
    w = helper.make_tensor("W", TP.FLOAT, [2, 3, 3, 3], [0.01 * i for i in range(54)])
    b = helper.make_tensor("B", TP.FLOAT, [2], [0.5, -0.5])
    return [w, b]


def conv(**kw):
    attrs = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    attrs.update(kw)
    return helper.make_node("Conv", ["X", "W", "B"], ["C"], name="conv0", **attrs)


def model(nodes=None, inits=None, inputs=None, outputs=None, opset=13, ir=7, graph=True, raw_opsets=None):
    nodes = [conv(), helper.make_node("Relu", ["C"], ["Y"], name="relu0")] if nodes is None else nodes
    g = helper.make_graph(nodes, "g", [vi("X")] if inputs is None else inputs,
                          [vi("Y", shape=(1, 2, 4, 4))] if outputs is None else outputs,
                          weights() if inits is None else inits)
    m = helper.make_model(g, producer_name="shoal-corpus")
    m.ir_version = ir
    del m.opset_import[:]
    for dom, ver in (raw_opsets if raw_opsets is not None else [("", opset)]):
        o = m.opset_import.add()
        o.domain = dom
        o.version = ver
    if not graph:
        m.ClearField("graph")
    return m


def add(name, m, expect):
    data = m if isinstance(m, (bytes, bytearray)) else m.SerializeToString()
    with open(os.path.join(HERE, name + ".onnx"), "wb") as f:
        f.write(data)
    cases.append((name + ".onnx", expect))


good = model()
gb = good.SerializeToString()
add("good", good, "OK")
add("truncated_half", gb[: len(gb) // 2], "malformed model")
add("truncated_last_byte", gb[:-1], "malformed model")
add("empty", b"", "empty input")
add("garbage", bytes((i * 37 + 11) & 0xFF for i in range(300)), "malformed model")
# field 7 (graph, a message) written as a varint
add("wrong_wire_type", b"\x08\x07\x38\x01" + gb, "malformed model")
# wire type 3 (start group) is not accepted
add("group_wire_type", b"\x0b" + gb, "wire type 3")
# a graph input whose type is a sequence of a sequence of ... 100 deep
t = onnx.TypeProto()
cur = t
for _ in range(100):
    cur = cur.sequence_type.elem_type
cur.tensor_type.elem_type = TP.FLOAT
deep = helper.make_value_info("X", t)
add("deep_nesting", model(inputs=[deep]), "nested deeper than")
add("no_graph", model(graph=False), "has no graph")
add("no_opset", model(raw_opsets=[]), "declares no default-domain opset")
add("opset_too_old", model(opset=5), "outside what shoal supports")
add("opset_too_new", model(opset=28), "outside what shoal supports")
add("opset_twice", model(raw_opsets=[("", 13), ("ai.onnx", 13)]), "default ONNX domain twice")
add("unknown_op", model(nodes=[conv(), helper.make_node("FooBar", ["C"], ["Y"], name="foo0")]),
    "node 'foo0' (FooBar, opset 13): unknown op")
add("custom_domain", model(nodes=[helper.make_node("FusedConv", ["X", "W", "B"], ["Y"], name="fc0",
                                                   domain="com.microsoft")],
                           raw_opsets=[("", 13), ("com.microsoft", 1)]),
    "domain 'com.microsoft' is not supported")
add("upsample_opset11", model(nodes=[conv(), helper.make_node("Upsample", ["C", "B"], ["Y"], name="up0")], opset=11),
    "opset 11 resolves to Upsample-10, which shoal does not implement")
add("hardswish_opset13", model(nodes=[conv(), helper.make_node("HardSwish", ["C"], ["Y"], name="hs0")]),
    "HardSwish does not exist at opset 13")
add("many_unsupported", model(nodes=[helper.make_node("Foo", ["X"], ["C"], name="a"),
                                     helper.make_node("Bar", ["C"], ["Y"], name="b")]),
    "2 unsupported nodes at opset 13")
add("fused_op_name", model(nodes=[conv(), helper.make_node("shoal.SiLU", ["C"], ["Y"], name="s0")]), "unknown op")
add("empty_op_type", model(nodes=[conv(), helper.make_node("", ["C"], ["Y"], name="e0")]), "unknown op")
add("undefined_input", model(nodes=[conv(), helper.make_node("Add", ["C", "nowhere"], ["Y"], name="add0")]),
    "reads tensor 'nowhere', which no node produces")
add("cycle", model(nodes=[helper.make_node("Add", ["X", "b"], ["a"], name="n1"),
                          helper.make_node("Relu", ["a"], ["b"], name="n2"),
                          helper.make_node("Relu", ["a"], ["Y"], name="n3")]), "cycle")
add("two_producers", model(nodes=[conv(), helper.make_node("Relu", ["C"], ["Y"], name="r1"),
                                  helper.make_node("Sigmoid", ["C"], ["Y"], name="r2")]), "produced by both")
add("writes_initializer", model(nodes=[conv(), helper.make_node("Relu", ["C"], ["W"], name="r1"),
                                       helper.make_node("Relu", ["C"], ["Y"], name="r2")]),
    "writes tensor 'W', which is a constant")
add("no_outputs", model(nodes=[], inits=[], outputs=[]), "has no outputs")
add("output_unproduced", model(outputs=[vi("Y"), vi("Z")]), "graph output 'Z' is produced by no node")
w = weights()
w[0].dims[1] = -3
add("negative_dim", model(inits=w), "dim 1 is negative")
add("too_many_dims", model(inits=[rawt("W", TP.FLOAT, [1] * 9, floats=[1.0])] + weights()[1:]),
    "9 dims; shoal supports at most 8")
w = weights()
w[1] = rawt("B", TP.FLOAT, [2], struct.pack("<3f", 1, 2, 3))
add("raw_size_mismatch", model(inits=w), "raw_data has 12 bytes")
w = weights()
w[1] = rawt("B", TP.FLOAT, [2], floats=[1.0, 2.0, 3.0])
add("typed_count_mismatch", model(inits=w), "3 values in float_data")
w = weights()
w[1] = rawt("B", TP.FLOAT, [1 << 40, 1 << 40], b"\0\0\0\0")
add("numel_overflow", model(inits=w), "element count overflows")
w = weights()
w[1] = rawt("B", TP.FLOAT, [1 << 30, 1 << 30], b"\0\0\0\0")
add("huge_declared_size", model(inits=w), "raw_data has 4 bytes")
w = weights()
w[1] = TP(name="B", data_type=TP.FLOAT, dims=[2])
add("no_data", model(inits=w), "0 values in float_data")
w = weights()
w[1] = helper.make_tensor("B", TP.STRING, [1], [b"x"])
add("string_initializer", model(inits=w), "data type STRING is not supported")
w = weights()
w[1] = TP(name="B", dims=[2], float_data=[1, 2])
add("no_data_type", model(inits=w), "no data_type")
w = weights()
w[1] = rawt("B", 30, [2], b"\0\0")
add("unknown_data_type", model(inits=w), "data type type 30 is not supported")
w = weights()
w[1].name = ""
add("unnamed_initializer", model(inits=w), "initializer #1 has no name")
add("duplicate_initializer", model(inits=weights() + weights()[1:]), "tensor 'B' is defined twice")
n = conv()
n.attribute[0].type = onnx.AttributeProto.FLOAT
n.attribute[0].f = 3.0
add("attr_wrong_type", model(nodes=[n, helper.make_node("Relu", ["C"], ["Y"], name="relu0")]),
    "attribute 'kernel_shape' is FLOAT, expected INTS")
n = conv(auto_pad=b"SAME\0UPPER")
add("attr_nul_string", model(nodes=[n, helper.make_node("Relu", ["C"], ["Y"], name="relu0")]), "contains a NUL byte")
n = conv()
a = n.attribute.add()
a.name = "body"
a.type = onnx.AttributeProto.GRAPH
a.g.name = "sub"
add("attr_graph", model(nodes=[n, helper.make_node("Relu", ["C"], ["Y"], name="relu0")]),
    "attribute 'body' of type GRAPH is not supported")
n = conv()
n.attribute.extend([helper.make_attribute("group", 1), helper.make_attribute("group", 2)])
add("attr_twice", model(nodes=[n, helper.make_node("Relu", ["C"], ["Y"], name="relu0")]), "attribute 'group' given twice")
n = helper.make_node("Constant", [], ["K"], name="k0")
a = n.attribute.add()
a.name = "sparse_value"
a.type = onnx.AttributeProto.SPARSE_TENSOR
a.sparse_tensor.values.CopyFrom(helper.make_tensor("v", TP.FLOAT, [1], [1.0]))
a.sparse_tensor.indices.CopyFrom(helper.make_tensor("i", TP.INT64, [1], [0]))
a.sparse_tensor.dims.append(4)
add("constant_sparse", model(nodes=[n, conv(), helper.make_node("Add", ["C", "K"], ["Y"], name="add0")]),
    "sparse_value is not supported")
add("constant_no_value", model(nodes=[helper.make_node("Constant", [], ["K"], name="k0"), conv(),
                                      helper.make_node("Add", ["C", "K"], ["Y"], name="add0")]),
    "needs exactly one value attribute")
add("constant_two_outputs", model(nodes=[helper.make_node("Constant", [], ["K", "L"], name="k0", value_float=1.0),
                                         conv(), helper.make_node("Add", ["C", "K"], ["Y"], name="add0")]),
    "needs exactly one named output")
add("constant_twice", model(nodes=[helper.make_node("Constant", [], ["K"], name="k0", value_float=1.0),
                                   helper.make_node("Constant", [], ["K"], name="k1", value_float=2.0),
                                   conv(), helper.make_node("Add", ["C", "K"], ["Y"], name="add0")]),
    "tensor 'K' is defined twice")
neg = helper.make_tensor_value_info("X", TP.FLOAT, [1, 3, 4, 4])
neg.type.tensor_type.shape.dim[2].dim_value = -4
add("input_negative_dim", model(inputs=[neg]), "graph input 'X': dim 2 is negative")
add("input_sequence", model(inputs=[helper.make_tensor_sequence_value_info("X", TP.FLOAT, None)]), "is not a tensor")
add("input_too_many_dims", model(inputs=[vi("X", shape=[1] * 9)]), "graph input 'X' has 9 dims")
add("input_twice", model(inputs=[vi("X"), vi("X")]), "graph input 'X' is listed twice")
add("input_bfloat16", model(inputs=[vi("X", et=TP.BFLOAT16)]), "data type BFLOAT16, which shoal does not support")
add("input_no_type", model(inputs=[helper.make_empty_tensor_value_info("X")]), "declares no tensor type")
add("output_twice", model(outputs=[vi("Y"), vi("Y")]), "graph output 'Y' is listed twice")
add("node_output_twice", model(nodes=[conv(), helper.make_node("Split", ["C"], ["Y", "Y"], name="sp0", axis=1)]),
    "output 'Y' listed twice")
m = model()
sp = m.graph.sparse_initializer.add()
sp.values.CopyFrom(helper.make_tensor("S", TP.FLOAT, [1], [1.0]))
sp.indices.CopyFrom(helper.make_tensor("Si", TP.INT64, [1], [0]))
sp.dims.append(4)
add("sparse_initializer", m, "sparse initializer 'S' is not supported")
add("unnamed_node_unsupported", model(nodes=[conv(), helper.make_node("Foo", ["C"], ["Y"])]), "node #1 (Foo, opset 13)")

# --- models that must load ---
ir3 = model(inputs=[vi("X"), helper.make_tensor_value_info("W", TP.FLOAT, [2, 3, 3, 3]),
                    helper.make_tensor_value_info("B", TP.FLOAT, [2])], ir=3, opset=7)
add("ok_ir3_weights_as_inputs", ir3, "OK")
dyn = helper.make_tensor_value_info("X", TP.FLOAT, ["batch", 3, None, 4])
add("ok_dynamic_dims", model(inputs=[dyn]), "OK")
add("ok_opset27", model(opset=27), "OK")
# every dtype through the typed fields and raw_data; bf16 is widened to float32
inits = weights() + [
    helper.make_tensor("t_f16", TP.FLOAT16, [2], [1.0, -2.0]),
    helper.make_tensor("t_bf16", TP.BFLOAT16, [2], [1.5, -3.0]),
    rawt("t_bf16_raw", TP.BFLOAT16, [1], struct.pack("<H", 0x3fc0)),
    helper.make_tensor("t_bool", TP.BOOL, [3], [True, False, True]),
    helper.make_tensor("t_i8", TP.INT8, [2], [-5, 7]),
    helper.make_tensor("t_u8", TP.UINT8, [2], [200, 3]),
    helper.make_tensor("t_i16", TP.INT16, [1], [-300]),
    helper.make_tensor("t_u16", TP.UINT16, [1], [60000]),
    helper.make_tensor("t_i32", TP.INT32, [1], [-70000]),
    helper.make_tensor("t_i64", TP.INT64, [2], [-(1 << 40), 5]),
    helper.make_tensor("t_u32", TP.UINT32, [1], [4000000000]),
    helper.make_tensor("t_u64", TP.UINT64, [1], [(1 << 63) + 1]),
    helper.make_tensor("t_f64", TP.DOUBLE, [1], [0.125]),
    helper.make_tensor("t_scalar", TP.FLOAT, [], [42.0]),
    helper.make_tensor("t_empty", TP.FLOAT, [0, 3], []),
]
nodes = [helper.make_node("Constant", [], ["k_ints"], name="k0", value_ints=[1, 2, 3]),
         helper.make_node("Constant", [], ["k_float"], name="k1", value_float=2.5),
         helper.make_node("ConstantOfShape", ["k_ints"], ["cos"], name="cos0",
                          value=helper.make_tensor("v", TP.FLOAT, [1], [7.0])),
         conv(), helper.make_node("Relu", ["C"], ["Y"], name="relu0")]
add("ok_dtypes", model(nodes=nodes, inits=inits, outputs=[vi("Y", shape=(1, 2, 4, 4)), vi("cos", shape=None)]), "OK")


# --- external data: the test copies these into a fresh folder and adds the side files ---
def ext(name, loc, offset=None, length=None, expect="OK"):
    w = weights()
    t = TP(name="B", data_type=TP.FLOAT, dims=[2])
    t.data_location = TP.EXTERNAL
    for k, v in (("location", loc), ("offset", offset), ("length", length)):
        if v is not None:
            e = t.external_data.add()
            e.key, e.value = k, str(v)
    w[1] = t
    data = model(inits=w).SerializeToString()
    with open(os.path.join(HERE, name + ".onnx"), "wb") as f:
        f.write(data)
    cases.append((name + ".onnx", "EXT " + expect))


ext("ext_good", "w.bin", 8, 8)
ext("ext_escape", "../w.bin", 0, 8, "leaves the model's folder")
ext("ext_absolute", "/etc/hostname", 0, 8, "is an absolute path")
ext("ext_past_end", "w.bin", 20, 8, "is past the end")
ext("ext_offset_past_end", "w.bin", 1000, 8, "offset 1000 is past the end")
ext("ext_symlink", "link.bin", 0, 8, "resolves outside the model's folder")
ext("ext_missing", "nope.bin", 0, 8, "No such file")
ext("ext_bad_offset", "w.bin", "-1", 8, "offset '-1' is not a number")
ext("ext_wrong_length", "w.bin", 0, 12, "has 12 bytes but the shape needs 8")

with open(os.path.join(HERE, "cases.txt"), "w") as f:
    f.write("# file<TAB>expected (OK, or a message substring; EXT: needs the external-data folder)\n")
    for n, e in cases:
        f.write("%s\t%s\n" % (n, e))
print(len(cases), "cases")
