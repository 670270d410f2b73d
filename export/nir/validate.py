"""Checks of NIR nodes before the importer builds anything from them.

The same checks run on the raw dictionaries read from an HDF5 file (before ``nir`` constructs nodes, whose
own checks are bare asserts) and on in-memory node objects. Every error names the node and the field.
Shape agreement between neighbouring nodes is checked later, by the executor's shape inference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

# Fields a node of each supported type must carry (optional fields such as v_reset and w_in are absent).
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "Input": ("input_type",),
    "Output": ("output_type",),
    "Affine": ("weight", "bias"),
    "Linear": ("weight",),
    "Scale": ("scale",),
    "Conv2d": ("weight", "bias", "stride", "padding", "dilation", "groups"),
    "Flatten": ("start_dim", "end_dim"),
    "SumPool2d": ("kernel_size", "stride", "padding"),
    "AvgPool2d": ("kernel_size", "stride", "padding"),
    "Threshold": ("threshold",),
    "LIF": ("tau", "r", "v_leak", "v_threshold"),
    "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold"),
    "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak"),
    "IF": ("r", "v_threshold"),
    "LI": ("tau", "r", "v_leak"),
    "I": ("r",),
    "NIRGraph": ("nodes", "edges"),
}
# In a file, Input and Output store their shape under "shape".
_RAW_RENAMES = {"Input": {"input_type": "shape"}, "Output": {"output_type": "shape"}}
# Per-neuron parameters of one node must share a shape.
_SAME_SHAPE = {
    "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset"),
    "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak"),
    "IF": ("r", "v_threshold", "v_reset"),
    "LI": ("tau", "r", "v_leak"),
}
_POSITIVE = ("tau", "tau_mem", "tau_syn")
_NUMERIC_FIELDS = ("weight", "bias", "scale", "threshold", "tau", "tau_mem", "tau_syn", "r", "v_leak",
                   "v_threshold", "v_reset", "w_in")
_WEIGHT_RANK = {"Affine": 2, "Linear": 2, "Conv2d": 4}


def supported_types_text() -> str:
    return ", ".join(sorted(REQUIRED_FIELDS))


def _numeric(node_name: str, type_name: str, field: str, value: Any) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"node {node_name!r} ({type_name}): field {field!r} is not numeric "
                         f"({type(value).__name__})") from error
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"node {node_name!r} ({type_name}): field {field!r} holds {bad} NaN/Inf value(s)")
    return array


def check_fields(node_name: str, type_name: str, fields: Mapping[str, Any]) -> None:
    """Check one node given as ``{field: value}``: supported type, required fields present and not None,
    numeric fields finite, taus > 0, per-neuron parameters of one shape, weights of the right rank."""
    if type_name not in REQUIRED_FIELDS:
        raise ValueError(f"node {node_name!r} has type {type_name!r}, which the importer does not support; "
                         f"supported types: {supported_types_text()}")
    for field in REQUIRED_FIELDS[type_name]:
        if fields.get(field) is None:
            raise ValueError(f"node {node_name!r} ({type_name}) lacks the required field {field!r}")
    arrays = {f: _numeric(node_name, type_name, f, fields[f]) for f in _NUMERIC_FIELDS
              if fields.get(f) is not None}
    for field in _POSITIVE:
        if field in arrays and not np.all(arrays[field] > 0):
            raise ValueError(f"node {node_name!r} ({type_name}): field {field!r} must be > 0 seconds, "
                             f"min is {float(np.min(arrays[field]))}")
    group = [f for f in _SAME_SHAPE.get(type_name, ()) if f in arrays]
    shapes = {f: arrays[f].shape for f in group}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"node {node_name!r} ({type_name}): per-neuron parameters differ in shape: {shapes}")
    if type_name in _WEIGHT_RANK and arrays["weight"].ndim != _WEIGHT_RANK[type_name]:
        raise ValueError(f"node {node_name!r} ({type_name}): field 'weight' must have "
                         f"{_WEIGHT_RANK[type_name]} dimensions, got shape {arrays['weight'].shape}")
    if "bias" in arrays and type_name in ("Affine", "Conv2d"):
        expected = (arrays["weight"].shape[0],)
        if arrays["bias"].shape != expected:
            raise ValueError(f"node {node_name!r} ({type_name}): field 'bias' has shape {arrays['bias'].shape}, "
                             f"expected {expected} to match weight shape {arrays['weight'].shape}")


def check_raw_graph(raw: Mapping[str, Any], prefix: str = "") -> None:
    """Check a graph dictionary as read from an HDF5 file (``nir.serialization.hdf2dict`` output)."""
    for field in ("nodes", "edges"):
        if field not in raw:
            where = f"subgraph {prefix.rstrip('.')!r}" if prefix else "the graph"
            raise ValueError(f"{where} lacks the required field {field!r}")
    edges = np.asarray(raw["edges"])
    if edges.size and (edges.ndim != 2 or edges.shape[1] != 2):
        raise ValueError(f"edges of {prefix.rstrip('.') or 'the graph'} must be (source, target) pairs, "
                         f"got an array of shape {edges.shape}")
    for name, node in raw["nodes"].items():
        full_name = f"{prefix}{name}"
        if not isinstance(node, Mapping) or "type" not in node:
            raise ValueError(f"node {full_name!r} lacks the required field 'type'")
        type_name = str(node["type"].decode("utf8") if isinstance(node["type"], bytes) else node["type"])
        renames = _RAW_RENAMES.get(type_name, {})
        fields = {key: node.get(renames.get(key, key)) for key in REQUIRED_FIELDS.get(type_name, ())}
        fields.update({key: node[key] for key in _NUMERIC_FIELDS if key in node})
        check_fields(full_name, type_name, fields)
        if type_name == "NIRGraph":
            check_raw_graph(node, prefix=f"{full_name}.")


def check_node(node_name: str, node: Any) -> None:
    """Check an in-memory ``nir`` node object."""
    type_name = type(node).__name__
    names = set(REQUIRED_FIELDS.get(type_name, ())) | set(_NUMERIC_FIELDS)
    fields = {name: getattr(node, name) for name in names if hasattr(node, name)}
    if type_name == "Input":
        fields["input_type"] = (node.input_type or {}).get("input")
    if type_name == "Output":
        fields["output_type"] = (node.output_type or {}).get("output")
    check_fields(node_name, type_name, fields)
