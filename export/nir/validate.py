"""Checks of NIR graphs and nodes, shared by every backend: :func:`check_graph`.

The float importer (:func:`.importer.from_nir`) and the fixed-point compiler accept and reject the same
graphs for the same reasons by both calling :func:`check_graph`, which checks every node's fields
(:func:`check_node`), the edges, that there is exactly one Input and one Output, the cycles (legal only
through a neuron node, :func:`.topology.execution_order`) and every node's shape (:mod:`.shapes`). A
backend then refuses what it cannot run (node types, branches) with its own message.

The field checks also run on the raw dictionaries read from an HDF5 file (before ``nir`` constructs nodes,
whose own checks are bare asserts). Every error names the node and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nir
import numpy as np

from bso_deploy.errors import InvalidInputError

from .metadata import ALPHA, BINARY, SIGNS, check_metadata
from .shapes import Shape, declared_shape, input_shape_candidates, output_shape
from .topology import Edge, execution_order, inline_subgraphs

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
_OPTIONAL_RAW_FIELDS = {"Flatten": ("input_type",), "Conv2d": ("input_shape",)}
# Per-neuron parameters of one node must share a shape.
_SAME_SHAPE = {
    "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset"),
    "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak"),
    "IF": ("r", "v_threshold", "v_reset"),
    "LI": ("tau", "r", "v_leak"),
}
# Nodes that hold state from one step to the next: a cycle through one of them is a recurrent loop.
NEURON_TYPE_NAMES = ("LIF", "CubaLIF", "CubaLI", "IF", "LI", "I")
_POSITIVE = ("tau", "tau_mem", "tau_syn")
_NUMERIC_FIELDS = ("weight", "bias", "scale", "threshold", "tau", "tau_mem", "tau_syn", "r", "v_leak",
                   "v_threshold", "v_reset", "w_in")
_WEIGHT_RANK = {"Affine": 2, "Linear": 2, "Conv2d": 4}
_SHAPE_FIELDS = {"Input": "input_type", "Output": "output_type", "Flatten": "input_type", "Conv2d": "input_shape"}
MAX_SAMPLE_ELEMENTS = 1 << 24  # values per sample a declared shape may name (16 Mi: far past any network here)


def supported_types_text() -> str:
    return ", ".join(sorted(REQUIRED_FIELDS))


def _numeric(node_name: str, type_name: str, field: str, value: Any) -> np.ndarray:
    """A parameter as float64: real numbers only (no text, bool-free objects or complex values), all finite."""
    where = f"node {node_name!r} ({type_name}): field {field!r}"
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise InvalidInputError(f"{where} is not numeric ({type(value).__name__})") from error
    if raw.dtype.kind == "c":
        raise InvalidInputError(f"{where} holds complex numbers; NIR parameters are real")
    if raw.dtype.kind not in "biuf":
        raise InvalidInputError(f"{where} is not numeric (dtype {raw.dtype}, {type(value).__name__})")
    array = raw.astype(np.float64)
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise InvalidInputError(f"{where} holds {bad} NaN/Inf value(s)")
    return array


def check_declared_shape(node_name: str, type_name: str, field: str, value: Any) -> None:
    """A declared per-sample shape (Input/Output/Flatten ``input_type``, Conv2d ``input_shape``): a non-empty
    list of integers >= 1 whose product is at most :data:`MAX_SAMPLE_ELEMENTS`; None or nir's undeclared
    placeholder (an object array of None) passes, the graph check then says what is missing."""
    if isinstance(value, Mapping):  # nir writes a Flatten's input_type as a group {"input": shape}
        for item in value.values():
            check_declared_shape(node_name, type_name, field, item)
        return
    raw = np.asarray(value) if value is not None else None
    if raw is None or (raw.dtype.kind == "O" and all(item is None for item in raw.reshape(-1))):
        return
    where = f"node {node_name!r} ({type_name}): declared shape {field!r}"
    if raw.dtype.kind not in "iuf" or raw.ndim != 1 or raw.size == 0:
        raise InvalidInputError(f"{where} must be a list of integers >= 1, got {str(value)[:80]!r}")
    sizes = raw.astype(np.float64)
    if not np.all(np.isfinite(sizes)) or np.any(sizes != np.round(sizes)) or np.any(sizes < 1):
        raise InvalidInputError(f"{where} must be a list of integers >= 1, got {raw.tolist()}")
    if float(np.prod(sizes)) > MAX_SAMPLE_ELEMENTS:
        raise InvalidInputError(f"{where} {raw.astype(np.int64).tolist()} has {float(np.prod(sizes)):.3g} values per "
                                f"sample; the limit is {MAX_SAMPLE_ELEMENTS}")


def check_binary_metadata(node_name: str, type_name: str, metadata: Any, weight: np.ndarray | None) -> None:
    """A synapse whose metadata says ``binary``: ``signs`` all -1/+1 in the weight's shape, ``alpha`` one value
    >= 0 per output unit (0 only where a BatchNorm gamma was 0)."""
    if not isinstance(metadata, Mapping) or BINARY not in metadata or weight is None:
        return
    where = f"node {node_name!r} ({type_name}) metadata"
    if np.asarray(metadata[BINARY]).dtype.kind not in "biu" or np.asarray(metadata[BINARY]).size != 1:
        raise InvalidInputError(f"{where} 'binary' must be a boolean, got {str(metadata[BINARY])[:40]!r}")
    if not bool(np.asarray(metadata[BINARY]).reshape(())):
        return
    for key in (SIGNS, ALPHA):
        if metadata.get(key) is None:
            raise InvalidInputError(f"{where}: binary=True needs {key!r}")
    signs = _numeric(node_name, type_name, f"metadata {SIGNS}", metadata[SIGNS])
    alpha = _numeric(node_name, type_name, f"metadata {ALPHA}", metadata[ALPHA])
    if signs.shape != weight.shape or not np.all(np.abs(signs) == 1):
        raise InvalidInputError(f"{where}: binary=True needs signs of -1/+1 in the weight's shape {weight.shape}, "
                                f"got shape {signs.shape}")
    if alpha.reshape(-1).shape != (weight.shape[0],) or np.any(alpha < 0):
        raise InvalidInputError(f"{where}: binary=True needs alpha >= 0, one per output unit ({weight.shape[0]}), "
                                f"got shape {alpha.shape}, min {float(alpha.min(initial=0.0))}")


def check_fields(node_name: str, type_name: str, fields: Mapping[str, Any], metadata: Any = None) -> None:
    """Check one node given as ``{field: value}``: supported type, required fields present and not None,
    numeric fields real and finite, taus > 0, per-neuron parameters of one shape, weights of the right rank,
    its metadata (:func:`.metadata.check_metadata`, binary layers' signs and alpha)."""
    if type_name not in REQUIRED_FIELDS:
        raise InvalidInputError(f"node {node_name!r} has type {type_name!r}, which the importer does not support; "
                         f"supported types: {supported_types_text()}")
    for field in REQUIRED_FIELDS[type_name]:
        if fields.get(field) is None:
            raise InvalidInputError(f"node {node_name!r} ({type_name}) lacks the required field {field!r}")
    if type_name in _SHAPE_FIELDS:
        check_declared_shape(node_name, type_name, _SHAPE_FIELDS[type_name], fields.get(_SHAPE_FIELDS[type_name]))
    arrays = {f: _numeric(node_name, type_name, f, fields[f]) for f in _NUMERIC_FIELDS
              if fields.get(f) is not None}
    for field in _POSITIVE:
        if field in arrays and not np.all(arrays[field] > 0):
            raise InvalidInputError(f"node {node_name!r} ({type_name}): field {field!r} must be > 0 seconds, "
                             f"min is {float(np.min(arrays[field]))}")
    group = [f for f in _SAME_SHAPE.get(type_name, ()) if f in arrays]
    shapes = {f: arrays[f].shape for f in group}
    if len(set(shapes.values())) > 1:
        raise InvalidInputError(f"node {node_name!r} ({type_name}): per-neuron parameters differ in shape: {shapes}")
    if type_name in _WEIGHT_RANK and arrays["weight"].ndim != _WEIGHT_RANK[type_name]:
        raise InvalidInputError(f"node {node_name!r} ({type_name}): field 'weight' must have "
                         f"{_WEIGHT_RANK[type_name]} dimensions, got shape {arrays['weight'].shape}")
    if "bias" in arrays and type_name in ("Affine", "Conv2d"):
        expected = (arrays["weight"].shape[0],)
        if arrays["bias"].shape != expected:
            raise InvalidInputError(f"node {node_name!r} ({type_name}): field 'bias' has shape {arrays['bias'].shape}, "
                             f"expected {expected} to match weight shape {arrays['weight'].shape}")

    check_metadata(metadata, f"node {node_name!r} ({type_name})")
    check_binary_metadata(node_name, type_name, metadata, arrays.get("weight"))

def _text(value: Any) -> str | None:
    """A string read from a file (str, bytes or a 0-d string array), or None for anything else."""
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "SUO":
        value = value[()]
    if isinstance(value, bytes):
        try:
            return value.decode("utf8")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def _raw_edges(raw: Mapping[str, Any], where: str) -> None:
    edges = np.asarray(raw["edges"])
    if edges.size == 0:
        return
    if edges.ndim != 2 or edges.shape[1] != 2:
        raise InvalidInputError(f"edges of {where} must be (source, target) pairs, got an array of shape "
                                f"{edges.shape}")
    if any(_text(end) is None for end in edges.reshape(-1)):
        raise InvalidInputError(f"edges of {where} must name nodes as strings, got dtype {edges.dtype}")


def check_raw_graph(raw: Mapping[str, Any], prefix: str = "") -> None:
    """Check a graph dictionary as read from an HDF5 file (:func:`.files.read_raw_graph` output)."""
    where = f"subgraph {prefix.rstrip('.')!r}" if prefix else "the graph"
    for field in ("nodes", "edges"):
        if field not in raw:
            raise InvalidInputError(f"{where} lacks the required field {field!r}")
    if not isinstance(raw["nodes"], Mapping):
        raise InvalidInputError(f"'nodes' of {where} must be a group of nodes, not a {type(raw['nodes']).__name__}")
    if isinstance(raw["edges"], Mapping):
        raise InvalidInputError(f"'edges' of {where} must be a dataset of (source, target) pairs, not a group")
    _raw_edges(raw, where)
    check_metadata(raw.get("metadata"), where)
    for name, node in raw["nodes"].items():
        full_name = f"{prefix}{name}"
        if not isinstance(node, Mapping) or "type" not in node:
            raise InvalidInputError(f"node {full_name!r} lacks the required field 'type'")
        type_name = _text(node["type"])
        if type_name is None:
            raise InvalidInputError(f"node {full_name!r}: field 'type' must be a string naming the node type; "
                                    f"supported types: {supported_types_text()}")
        renames = _RAW_RENAMES.get(type_name, {})
        fields = {key: node.get(renames.get(key, key)) for key in REQUIRED_FIELDS.get(type_name, ())}
        fields.update({key: node[key] for key in (*_NUMERIC_FIELDS, *_OPTIONAL_RAW_FIELDS.get(type_name, ()))
                       if key in node})
        check_fields(full_name, type_name, fields, node.get("metadata"))
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
    if type_name == "Flatten":
        fields["input_type"] = (node.input_type or {}).get("input")
    if type_name == "Conv2d":
        fields["input_shape"] = node.input_shape
    check_fields(node_name, type_name, fields, getattr(node, "metadata", None))


@dataclass(frozen=True)
class CheckedGraph:
    """A NIR graph that passed :func:`check_graph`, flattened (nested graphs inlined as ``sub.node``).

    ``order``: the nodes in the order one time step evaluates them; ``delayed``: the edges that close a
    recurrent loop, which carry their source's output of the previous step (zero at the first step);
    ``shapes``: every node's output shape per sample (batch excluded); ``input_shape`` is the shape the
    graph's Input feeds (its declared shape, without leading size-1 axes where the next node needs that)."""

    nodes: Mapping[str, nir.NIRNode]
    edges: tuple[Edge, ...]
    input_name: str
    output_name: str
    order: tuple[str, ...]
    delayed: frozenset[Edge]
    shapes: Mapping[str, Shape]

    @property
    def input_shape(self) -> Shape:
        return self.shapes[self.input_name]

    @property
    def output_shape(self) -> Shape:
        return self.shapes[self.output_name]

    def sources(self, name: str) -> tuple[list[str], list[str]]:
        """(sources of this step, sources of the previous step) of node ``name``, in edge order."""
        direct = [s for s, t in self.edges if t == name and (s, t) not in self.delayed]
        return direct, [s for s, t in self.edges if t == name and (s, t) in self.delayed]


def is_neuron(node: Any) -> bool:
    return type(node).__name__ in NEURON_TYPE_NAMES


def _endpoint(nodes: Mapping[str, Any], edges: list[Edge], kind: type, incoming: bool) -> str:
    """The graph's own Input (no incoming edge) or Output (no outgoing edge); inlined subgraphs' are linked."""
    linked = {target if incoming else source for source, target in edges}
    names = [name for name, node in nodes.items() if isinstance(node, kind) and name not in linked]
    if len(names) != 1:
        raise InvalidInputError(f"the graph has {len(names)} {kind.__name__} nodes {names}; a graph must have "
                                "exactly one")
    return names[0]


def _infer_shapes(nodes: Mapping[str, Any], edges: list[Edge], order: list[str], input_name: str,
                  fed: Shape) -> dict[str, Shape]:
    """Output shape of every node when the Input feeds ``fed``. A node's input shape is taken from the
    first of its sources whose shape is known (in recurrent graphs that may be a loop edge), repeating until
    nothing changes; then every source must agree."""
    sources = {name: [s for s, t in edges if t == name] for name in order}
    shapes: dict[str, Shape] = {}
    received: dict[str, Shape] = {}
    pending = list(order)
    while pending:
        remaining = []
        for name in pending:
            known = [shapes[source] for source in sources[name] if source in shapes]
            if name == input_name:
                received[name] = fed
            elif known:
                received[name] = known[0]
            else:
                remaining.append(name)
                continue
            shapes[name] = output_shape(name, nodes[name], received[name])
        if len(remaining) == len(pending):
            raise InvalidInputError(f"nodes {remaining} are not reachable from the Input node {input_name!r}; "
                             "their shapes cannot be inferred")
        pending = remaining
    for name in order:
        for source in sources[name]:
            if shapes[source] != received[name]:
                raise InvalidInputError(f"node {name!r} ({type(nodes[name]).__name__}) sums inputs of different "
                                        f"shapes: {received[name]} and {shapes[source]} (from {source!r})")
    return shapes


def check_graph(graph: nir.NIRGraph) -> CheckedGraph:
    """Check a whole NIR graph the same way for every backend; ValueError naming the node otherwise.

    Checks, in order: nested graphs and edge endpoints (:func:`.topology.inline_subgraphs`); every node's
    fields (:func:`check_node`); exactly one Input without incoming and one Output without outgoing edge;
    an incoming edge for every other node; cycles only through a neuron node (else an algebraic loop, naming
    its nodes); every node's shape, where a declared Input/Output/Flatten/Conv2d shape may differ from the
    actual one by size-1 axes only (:func:`.shapes.same_up_to_singletons`)."""
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"expected a nir.NIRGraph, not {type(graph).__name__}")
    check_metadata(graph.metadata, "the graph")
    nodes, edges = inline_subgraphs(graph)
    for name, node in nodes.items():
        check_node(name, node)
    input_name = _endpoint(nodes, edges, nir.Input, incoming=True)
    output_name = _endpoint(nodes, edges, nir.Output, incoming=False)
    targets = {target for _, target in edges}
    for name, node in nodes.items():
        if name != input_name and name not in targets:
            raise InvalidInputError(f"node {name!r} ({type(node).__name__}) has no incoming edge")
    order, delayed = execution_order(list(nodes), edges, lambda name: is_neuron(nodes[name]))
    declared = declared_shape(nodes[input_name])
    if not declared:
        raise InvalidInputError(f"Input node {input_name!r} declares no shape; set its input_type to the per-sample "
                         "shape, e.g. nir.Input(input_type=np.array([784]))")
    errors = []
    for fed in input_shape_candidates(declared):
        try:
            shapes = _infer_shapes(nodes, edges, order, input_name, fed)
            break
        except ValueError as error:
            errors.append(error)
    else:
        raise errors[0]
    return CheckedGraph(nodes=dict(nodes), edges=tuple(edges), input_name=input_name, output_name=output_name,
                        order=tuple(order), delayed=frozenset(delayed), shapes=shapes)
