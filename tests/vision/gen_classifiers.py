"""Writes the two tiny classifiers test_vision_classify_run.c runs (tooling, Debian's python3 + onnx):
data/classifier_logits.onnx    images [1,3,8,8] -> GlobalAveragePool -> Flatten -> Gemm -> logits [1,4]
data/classifier_softmax.onnx   the same followed by Softmax(axis=1) -> probabilities [1,4]
The test computes its reference from W and B below, so keep them in step with WEIGHTS/BIAS there."""
import os
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

W = np.array([[4, 0, 0], [0, 4, 0], [0, 0, 4], [2, 2, 2]], dtype=np.float32)   # [classes, channels]
B = np.array([0.0, 0.1, 0.2, -1.0], dtype=np.float32)


def build(softmax):
    nodes = [helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
             helper.make_node("Gemm", ["flat", "W", "B"], ["logits" if softmax else "scores"], transB=1)]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["scores"], axis=1))
    graph = helper.make_graph(
        nodes, "classifier",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
for name, sm in (("classifier_logits.onnx", False), ("classifier_softmax.onnx", True)):
    onnx.save(build(sm), os.path.join(here, name))
