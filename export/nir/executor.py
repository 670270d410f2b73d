"""Run a NIR graph step by step in PyTorch: one op per node, in topological order, state per neuron node.

Per time step: the graph's Input node receives x; every other node receives its predecessors' outputs
(summed for stateless nodes; one term each for neuron nodes, :mod:`.dynamics`); an edge that closes a
recurrent loop carries its source's output of the previous step (zero at the first step,
:func:`.topology.execution_order`). Each op returns its output and new state. The value of the graph's
Output node is the step's output. The graph is checked, as for every backend, by
:func:`.validate.check_graph`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from bso_deploy.errors import InvalidInputError

from .dynamics import NeuronState
from .ops import NodeOp
from .shapes import Shape
from .validate import CheckedGraph


class NIRExecutor(nn.Module):
    """A float torch module that runs a checked NIR graph with forward Euler at a fixed dt.

    - :meth:`reset_state` before each new batch of sequences;
    - :meth:`step` ``(batch, *input_shape) -> (batch, *output_shape)`` advances one time step and leaves
      every node's output of that step in :attr:`last_outputs` (node name -> tensor) and each neuron's
      state in :meth:`node_state`;
    - :meth:`forward` runs a whole sequence ``(T, batch, ...)``; :meth:`record` also returns every node's
      outputs stacked over time.
    """

    def __init__(self, ops: Mapping[str, NodeOp], graph: CheckedGraph, dt: float | None) -> None:
        super().__init__()
        self.node_names = list(graph.order)
        self.ops = nn.ModuleList([ops[name] for name in self.node_names])
        self.node_types = {name: type(node).__name__ for name, node in graph.nodes.items()}
        self.input_name, self.output_name, self.dt = graph.input_name, graph.output_name, dt
        self.shapes: dict[str, Shape] = dict(graph.shapes)
        self._direct_inputs: dict[str, list[str]] = {}
        self._delayed_inputs: dict[str, list[str]] = {}
        for name in self.node_names:
            self._direct_inputs[name], self._delayed_inputs[name] = graph.sources(name)
        self._state: dict[str, NeuronState | None] = {}
        self._previous: dict[str, Tensor] = {}
        self.last_outputs: dict[str, Tensor] = {}

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

    def _incoming(self, name: str, values: dict[str, Tensor], like: Tensor) -> list[Tensor]:
        """This step's values of the node's direct sources, then the previous step's of its loop sources."""
        parts = [values[source] for source in self._direct_inputs[name]]
        for source in self._delayed_inputs[name]:
            previous = self._previous.get(source)
            parts.append(like.new_zeros((like.shape[0], *self.shapes[source])) if previous is None else previous)
        return parts

    def step(self, x: Tensor) -> Tensor:
        """Advance one time step; x: (batch, *input_shape). Returns the Output node's value."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise InvalidInputError(f"input has shape {tuple(x.shape)}; expected (batch, *{self.input_shape}) for "
                             f"Input node {self.input_name!r}")
        values: dict[str, Tensor] = {}
        for name, op in zip(self.node_names, self.ops):
            if name == self.input_name:
                values[name], _ = op(x, None)
                continue
            parts = self._incoming(name, values, x)
            if op.stateful:
                state = self._state.get(name)
                values[name], self._state[name] = op(tuple(parts), op.initial_state(parts[0]) if state is None
                                                     else state)
                continue
            total = parts[0]
            for part in parts[1:]:
                total = total + part
            values[name], _ = op(total, None)
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
