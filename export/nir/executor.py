"""Run a NIR graph step by step in PyTorch: one op per node, in topological order, state per neuron node.

Per time step: the graph's Input node receives x; every other node receives the sum of its predecessors'
outputs (delayed edges of recurrent graphs carry the previous step's output, see :mod:`.topology`); each
op returns its output and new state. The value of the graph's Output node is the step's output.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from .dynamics import NeuronState
from .ops import NodeOp, Shape
from .topology import Edge, execution_order


class NIRExecutor(nn.Module):
    """A float torch module that runs a NIR graph with forward Euler at a fixed dt.

    - :meth:`reset_state` before each new batch of sequences;
    - :meth:`step` ``(batch, *input_shape) -> (batch, *output_shape)`` advances one time step and leaves
      every node's output of that step in :attr:`last_outputs` (node name -> tensor) and each neuron's
      state in :meth:`node_state`;
    - :meth:`forward` runs a whole sequence ``(T, batch, ...)``; :meth:`record` also returns every node's
      outputs stacked over time.
    """

    def __init__(self, ops: Mapping[str, NodeOp], edges: list[Edge], node_types: Mapping[str, str],
                 input_name: str, output_name: str, dt: float | None) -> None:
        super().__init__()
        names = list(ops)
        self.node_names, self._delayed = execution_order(names, edges, lambda name: ops[name].stateful)
        self.ops = nn.ModuleList([ops[name] for name in self.node_names])
        self.node_types = dict(node_types)
        self.input_name, self.output_name, self.dt = input_name, output_name, dt
        self._direct_inputs: dict[str, list[str]] = {name: [] for name in self.node_names}
        self._delayed_inputs: dict[str, list[str]] = {name: [] for name in self.node_names}
        for source, target in edges:
            table = self._delayed_inputs if (source, target) in self._delayed else self._direct_inputs
            table[target].append(source)
        for name in self.node_names:
            if name != input_name and not self._direct_inputs[name] and not self._delayed_inputs[name]:
                raise ValueError(f"node {name!r} ({self.node_types[name]}) has no incoming edge")
        self.shapes = self._infer_shapes()
        self._state: dict[str, NeuronState | None] = {}
        self._previous: dict[str, Tensor] = {}
        self.last_outputs: dict[str, Tensor] = {}

    def _describe(self, name: str) -> str:
        return f"node {name!r} ({self.node_types[name]})"

    def _infer_shapes(self) -> dict[str, Shape]:
        """Output shape (without batch) of every node; ValueError naming the node on a mismatch.

        A node's input shape is taken from the first of its sources whose shape is known (in recurrent
        graphs that may be a delayed source), repeating until nothing changes; then every source must agree."""
        shapes: dict[str, Shape] = {}
        incoming: dict[str, Shape] = {}
        pending = list(zip(self.node_names, self.ops))
        while pending:
            remaining = []
            for name, op in pending:
                sources = self._direct_inputs[name] + self._delayed_inputs[name]
                known = [shapes[source] for source in sources if source in shapes]
                if name == self.input_name:
                    incoming[name] = tuple(op.declared_shape)
                elif known:
                    incoming[name] = known[0]
                else:
                    remaining.append((name, op))
                    continue
                try:
                    shapes[name] = tuple(int(size) for size in op.output_shape(incoming[name]))
                except ValueError as error:
                    raise ValueError(f"{self._describe(name)}: {error}") from error
            if len(remaining) == len(pending):
                names = [name for name, _ in remaining]
                raise ValueError(f"nodes {names} are not reachable from the Input node {self.input_name!r}; "
                                 "the importer cannot infer their shapes")
            pending = remaining
        for name in self.node_names:
            for source in self._direct_inputs[name] + self._delayed_inputs[name]:
                if shapes[source] != incoming[name]:
                    raise ValueError(f"{self._describe(name)} sums inputs of different shapes: {incoming[name]} "
                                     f"and {shapes[source]} (from {source!r})")
        return shapes

    @property
    def input_shape(self) -> Shape:
        return self.shapes[self.input_name]

    @property
    def output_shape(self) -> Shape:
        return self.shapes[self.output_name]

    def node_state(self, name: str) -> NeuronState | None:
        """State of neuron node ``name`` after the last step (v after reset, i_syn); None before the first
        step and for stateless nodes."""
        if name not in self.shapes:
            raise KeyError(f"no node {name!r}; nodes: {', '.join(self.node_names)}")
        return self._state.get(name)

    def reset_state(self) -> None:
        self._state = {}
        self._previous = {}
        self.last_outputs = {}

    def _incoming(self, name: str, values: dict[str, Tensor], batch: int, like: Tensor) -> Tensor:
        parts = [values[source] for source in self._direct_inputs[name]]
        for source in self._delayed_inputs[name]:
            previous = self._previous.get(source)
            if previous is None:
                previous = like.new_zeros((batch, *self.shapes[source]))
            parts.append(previous)
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total

    def step(self, x: Tensor) -> Tensor:
        """Advance one time step; x: (batch, *input_shape). Returns the Output node's value."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"input has shape {tuple(x.shape)}; expected (batch, *{self.input_shape}) for "
                             f"Input node {self.input_name!r}")
        values: dict[str, Tensor] = {}
        for name, op in zip(self.node_names, self.ops):
            incoming = x if name == self.input_name else self._incoming(name, values, x.shape[0], x)
            state = self._state.get(name)
            if op.stateful and state is None:
                state = op.initial_state(incoming)
            values[name], self._state[name] = op(incoming, state)
        self._previous = {source: values[source] for inputs in self._delayed_inputs.values() for source in inputs}
        self.last_outputs = values
        return values[self.output_name]

    def forward(self, inputs: Tensor) -> Tensor:
        """Run a sequence from rest: inputs (T, batch, *input_shape) -> outputs (T, batch, *output_shape)."""
        self.reset_state()
        return torch.stack([self.step(x_t) for x_t in inputs])

    def record(self, inputs: Tensor) -> dict[str, Tensor]:
        """Run a sequence from rest and return every node's outputs, each (T, batch, *node_shape)."""
        self.reset_state()
        steps: list[dict[str, Tensor]] = []
        for x_t in inputs:
            self.step(x_t)
            steps.append(self.last_outputs)
        return {name: torch.stack([outputs[name] for outputs in steps]) for name in self.node_names}

    def extra_repr(self) -> str:
        return f"dt={self.dt}, nodes={len(self.node_names)}, input={self.input_shape}, output={self.output_shape}"
