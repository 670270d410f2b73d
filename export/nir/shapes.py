"""Per-sample shapes of NIR nodes: a lookup table from node type to a rule ``(node, input_shape) -> output_shape``.

Shapes exclude the batch dimension (NIR's convention). Every rule raises ValueError on a shape that does not
fit the node; :func:`output_shape` prefixes the node's name and type. The rules read the ``nir`` node itself,
so every backend (the float importer, the fixed-point compiler) checks shapes the same way
(:func:`.validate.check_graph`).

Declared shapes (Input/Output ``input_type``/``output_type``, Flatten ``input_type``, Conv2d ``input_shape``)
agree with the shape a node receives when they are equal after dropping size-1 axes
(:func:`same_up_to_singletons`): exporters built on nirtorch record the sample they traced, batch and time
axes included (Rockpool 3.1.0 declares an Output of shape (1, 1, 1) for one neuron).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import nir
import numpy as np

from bso_deploy.errors import InvalidInputError

Shape = tuple[int, ...]


def pair(value: Any, field: str) -> Shape:
    """An int or a pair of ints as a pair (kernel_size, stride, padding, dilation)."""
    array = np.asarray(value).reshape(-1)
    if array.size == 1:
        array = np.repeat(array, 2)
    if array.size != 2:
        raise InvalidInputError(f"field {field!r} must be an int or a pair of ints, got {value!r}")
    return (int(array[0]), int(array[1]))


def optional_shape(value: Any) -> Shape | None:
    """A declared shape as a tuple, or None where the node declares none."""
    if value is None:
        return None
    array = np.asarray(value)
    if array.dtype == object:  # nir keeps {"input": None} for undeclared shapes
        return None
    return tuple(int(size) for size in array.reshape(-1))


def declared_shape(node: nir.NIRNode) -> Shape | None:
    """The shape an Input, Output or Flatten node declares (None or () when it declares none)."""
    if isinstance(node, nir.Output):
        return optional_shape((node.output_type or {}).get("output"))
    return optional_shape((node.input_type or {}).get("input"))


def same_up_to_singletons(first: Shape, second: Shape) -> bool:
    """True when the shapes are equal after dropping their size-1 axes: (1, 1, 1) ~ (1,), (1, 3) ~ (3,)."""
    return [size for size in first if size != 1] == [size for size in second if size != 1]


def input_shape_candidates(declared: Shape) -> list[Shape]:
    """Shapes an Input declaring ``declared`` may feed: as declared, then without its leading size-1 axes
    one at a time (a traced batch axis), so (1, 3) may feed a Linear of 3 inputs."""
    candidates = [declared]
    while len(candidates[-1]) > 1 and candidates[-1][0] == 1:
        candidates.append(candidates[-1][1:])
    return candidates


def conv_padding(node: nir.Conv2d) -> Shape | str:
    if isinstance(node.padding, (str, bytes)):
        padding = node.padding.decode() if isinstance(node.padding, bytes) else node.padding
        if padding not in ("same", "valid"):
            raise InvalidInputError(f"padding must be 'same', 'valid' or ints, got {padding!r}")
        if padding == "same" and pair(node.stride, "stride") != (1, 1):
            raise InvalidInputError(f"padding='same' needs stride 1, got {pair(node.stride, 'stride')}")
        return padding
    return pair(node.padding, "padding")


def _check_declared(node: nir.NIRNode, received: Shape) -> None:
    declared = declared_shape(node)
    if declared and not same_up_to_singletons(received, declared):
        raise InvalidInputError(f"receives shape {received} but declares shape {declared}")


def _identity(node: nir.NIRNode, shape: Shape) -> Shape:
    _check_declared(node, shape)
    return shape


def _affine(node: nir.Affine | nir.Linear, shape: Shape) -> Shape:
    n_out, n_in = np.shape(node.weight)
    if len(shape) != 1 or shape[0] != n_in:
        raise InvalidInputError(f"receives shape {shape} but its weight {np.shape(node.weight)} expects ({n_in},); "
                         "insert a Flatten node before it if the input is multi-dimensional")
    return (int(n_out),)


def _conv2d(node: nir.Conv2d, shape: Shape) -> Shape:
    c_out, c_in_group, k_h, k_w = (int(size) for size in np.shape(node.weight))
    groups = int(np.asarray(node.groups))
    if len(shape) != 3 or shape[0] != c_in_group * groups:
        raise InvalidInputError(f"receives shape {shape} but its weight {np.shape(node.weight)} with groups={groups} "
                         f"expects ({c_in_group * groups}, H, W)")
    declared_hw = optional_shape(node.input_shape)
    if declared_hw and not same_up_to_singletons(shape[1:], declared_hw):
        raise InvalidInputError(f"receives H, W = {shape[1:]} but declares input_shape {declared_hw}")
    padding = conv_padding(node)
    if padding == "same":
        return (c_out, *shape[1:])
    padding = (0, 0) if padding == "valid" else padding
    stride, dilation = pair(node.stride, "stride"), pair(node.dilation, "dilation")
    sizes = []
    for axis, kernel in enumerate((k_h, k_w)):
        span = shape[1 + axis] + 2 * padding[axis] - dilation[axis] * (kernel - 1) - 1
        if span < 0:
            raise InvalidInputError(f"input {shape[1:]} is smaller than the dilated kernel")
        sizes.append(span // stride[axis] + 1)
    return (c_out, *sizes)


def _pool(node: nir.SumPool2d | nir.AvgPool2d, shape: Shape) -> Shape:
    if len(shape) != 3:
        raise InvalidInputError(f"receives shape {shape}; 2-D pooling needs (C, H, W)")
    kernel = pair(node.kernel_size, "kernel_size")
    stride = kernel if node.stride is None else pair(node.stride, "stride")
    padding = pair(node.padding, "padding")
    sizes = []
    for axis in range(2):
        span = shape[1 + axis] + 2 * padding[axis] - kernel[axis]
        if span < 0:
            raise InvalidInputError(f"input {shape[1:]} is smaller than the kernel {kernel}")
        sizes.append(span // stride[axis] + 1)
    return (shape[0], *sizes)


def _flatten(node: nir.Flatten, shape: Shape) -> Shape:
    _check_declared(node, shape)
    start_dim, end_dim = int(np.asarray(node.start_dim)), int(np.asarray(node.end_dim))
    rank = len(shape)
    if rank == 0:
        raise InvalidInputError("receives a scalar; Flatten needs at least one dimension")
    if not (-rank <= start_dim < rank and -rank <= end_dim < rank) or start_dim % rank > end_dim % rank:
        raise InvalidInputError(f"cannot flatten dims {start_dim}..{end_dim} of shape {shape}")
    start, end = start_dim % rank, end_dim % rank
    return (*shape[:start], int(np.prod(shape[start:end + 1])), *shape[end + 1:])


def _broadcast(description: str, values: list[Any], shape: Shape) -> Shape:
    """Per-neuron (or elementwise) parameters must match the input shape or be single values."""
    for value in values:
        if value is not None and np.size(value) != 1 and tuple(np.shape(value)) != shape:
            raise InvalidInputError(f"receives shape {shape} but its {description} have shape {tuple(np.shape(value))}")
    return shape


def _scale(node: nir.Scale, shape: Shape) -> Shape:
    return _broadcast("values (scale)", [node.scale], shape)


def _threshold(node: nir.Threshold, shape: Shape) -> Shape:
    return _broadcast("values (threshold)", [node.threshold], shape)


_NEURON_FIELDS = ("tau", "tau_mem", "tau_syn", "r", "v_leak", "v_threshold", "v_reset", "w_in")


def _neuron(node: nir.NIRNode, shape: Shape) -> Shape:
    return _broadcast("per-neuron parameters", [getattr(node, field, None) for field in _NEURON_FIELDS], shape)


SHAPE_RULES: dict[type, Callable[[Any, Shape], Shape]] = {
    nir.Input: _identity, nir.Output: _identity, nir.Affine: _affine, nir.Linear: _affine, nir.Conv2d: _conv2d,
    nir.SumPool2d: _pool, nir.AvgPool2d: _pool, nir.Flatten: _flatten, nir.Scale: _scale, nir.Threshold: _threshold,
    nir.LIF: _neuron, nir.CubaLIF: _neuron, nir.CubaLI: _neuron, nir.IF: _neuron, nir.LI: _neuron, nir.I: _neuron,
}


def output_shape(name: str, node: nir.NIRNode, received: Shape) -> Shape:
    """Output shape of node ``name`` given the shape it receives; ValueError naming the node otherwise."""
    try:
        return tuple(int(size) for size in SHAPE_RULES[type(node)](node, received))
    except ValueError as error:
        raise InvalidInputError(f"node {name!r} ({type(node).__name__}): {error}") from error
