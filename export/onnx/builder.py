"""A small ONNX graph builder on top of ``onnx.helper``: unique names, constants, typed inputs/outputs.

Both step graphs (:mod:`.fixed`, :mod:`.floating`) are written with it. Models use opset 17 and IR
version 8, which onnxruntime 1.16 and later load; ``onnx.checker.check_model(full_check=True)`` validates
each model (shape inference included) before it is returned.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["BATCH", "IR_VERSION", "OPSET", "GraphBuilder", "sum_pool"]

OPSET = 17
IR_VERSION = 8
BATCH = "batch"  # the symbolic first dimension of every input, state and output

_ELEMENT_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
                  np.dtype(np.int64): TensorProto.INT64, np.dtype(np.int8): TensorProto.INT8,
                  np.dtype(np.bool_): TensorProto.BOOL}


def element_type(dtype: Any) -> int:
    return _ELEMENT_TYPES[np.dtype(dtype)]


class GraphBuilder:
    """Collects nodes, initializers, inputs and outputs of one graph; :meth:`model` returns the checked model."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._used: set[str] = set()

    def _fresh(self, hint: str) -> str:
        name, index = hint, 1
        while name in self._used:
            index += 1
            name = f"{hint}_{index}"
        self._used.add(name)
        return name

    def constant(self, value: Any, hint: str, dtype: Any = None) -> str:
        """An initializer holding ``value`` (numpy array or scalar; ``dtype`` converts it)."""
        array = np.asarray(value, dtype=dtype)
        name = self._fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def op(self, op_type: str, *inputs: str, hint: str = "", **attributes: Any) -> str:
        """Add one node with one output; returns the output's name."""
        output = self._fresh(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=output, **attributes))
        return output

    def input(self, name: str, dtype: Any, shape: tuple[int | str, ...]) -> str:
        if name in self._used:
            raise ValueError(f"duplicate graph name {name!r}")
        self._used.add(name)
        self.inputs.append(helper.make_tensor_value_info(name, element_type(dtype), list(shape)))
        return name

    def output(self, name: str, value: str, dtype: Any, shape: tuple[int | str, ...]) -> None:
        """Expose ``value`` as the graph output ``name`` (through an Identity, so names are the caller's)."""
        if name in self._used:
            raise ValueError(f"duplicate graph name {name!r}")
        self._used.add(name)
        self.nodes.append(helper.make_node("Identity", [value], [name], name=name))
        self.outputs.append(helper.make_tensor_value_info(name, element_type(dtype), list(shape)))

    def model(self, doc: str, metadata: dict[str, Any]) -> onnx.ModelProto:
        """The model, validated by ``onnx.checker``; ``metadata`` is stored as JSON under ``bso_deploy``."""
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers,
                                  doc_string=doc)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="bso-deploy", doc_string=doc)
        model.ir_version = IR_VERSION
        helper.set_model_props(model, {"bso_deploy": json.dumps(metadata, allow_nan=False)})
        onnx.checker.check_model(model, full_check=True)
        return model


def sum_pool(g: GraphBuilder, x: str, input_shape: tuple[int, ...], pool: tuple[int, int], k: int) -> str:
    """Non-overlapping sum pooling of x (batch, C, H, W) over ``pool`` windows (docs/fixed-point.md §4.2): a
    reshape to (batch, C, H/ph, ph, W/pw, pw) and a sum over the window axes; x itself when pool is (1, 1)."""
    if tuple(pool) == (1, 1):
        return x
    channels, height, width = input_shape
    ph, pw = pool
    shape = g.constant([-1, channels, height // ph, ph, width // pw, pw], f"pool_shape_{k}", np.int64)
    return g.op("ReduceSum", g.op("Reshape", x, shape), g.constant([3, 5], "pool_axes", np.int64), keepdims=0,
                hint=f"pooled_{k}")
