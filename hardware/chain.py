"""The compiler's view of a NIR graph's topology: a chain of nodes whose neurons may each have one recurrent
loop (docs/fixed-point.md §10.2), after the graph check every backend applies
(``bso_deploy.export.nir.validate.check_graph``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import nir
from bso_deploy.export.nir.validate import check_graph

from bso_deploy.errors import InvalidInputError

__all__ = ["NEURON_TYPES", "RECURRENT_SYNAPSE_TYPES", "Chain", "graph_chain", "node_error", "recurrent_loops"]


def node_error(name: str, node: Any, message: str) -> InvalidInputError:
    """An InvalidInputError (a ValueError) naming the NIR node and its type."""
    return InvalidInputError(f"node {name!r} ({type(node).__name__}): {message}")


NEURON_TYPES = (nir.LIF, nir.CubaLIF, nir.IF)
RECURRENT_SYNAPSE_TYPES = (nir.Affine, nir.Linear)


Edges = list[tuple[str, str]]


def recurrent_loops(nodes: dict[str, Any], edges: Edges) -> tuple[Edges, dict[str, str]]:
    """(edges without the recurrent loops, {neuron name: recurrent synapse name}).

    A recurrent loop is a neuron node N whose spikes feed an Affine/Linear node S that feeds N again and
    nothing else (what snnTorch's RLeaky/RSynaptic export): S becomes N's recurrent synapse, which delivers the
    spikes of step t at step t + 1 (docs/fixed-point.md §4.9, §10.2). Any other cycle is a ValueError."""
    incoming: dict[str, list[str]] = {name: [] for name in nodes}
    outgoing: dict[str, list[str]] = {name: [] for name in nodes}
    for source, target in edges:
        outgoing[source].append(target)
        incoming[target].append(source)
    loops: dict[str, str] = {}
    for name, node in nodes.items():
        if not isinstance(node, RECURRENT_SYNAPSE_TYPES) or len(incoming[name]) != 1 or len(outgoing[name]) != 1:
            continue
        neuron = incoming[name][0]
        if outgoing[name][0] == neuron and isinstance(nodes[neuron], NEURON_TYPES):
            if neuron in loops:
                raise node_error(neuron, nodes[neuron], f"has two recurrent synapses ({loops[neuron]!r}, {name!r}); "
                                  "merge them into one Affine")
            loops[neuron] = name
    removed = {(neuron, synapse) for neuron, synapse in loops.items()} | \
        {(synapse, neuron) for neuron, synapse in loops.items()}
    return [edge for edge in edges if edge not in removed], loops


class Chain(NamedTuple):
    """A graph as the compiler walks it."""

    nodes: dict[str, Any]
    start: str  # the Input node
    chain: list[tuple[str, Any]]  # (name, node) after the Input, in order
    loops: dict[str, str]  # neuron -> its recurrent synapse
    input_shape: tuple[int, ...]


def graph_chain(graph: nir.NIRGraph) -> Chain:
    """The graph as a chain whose neurons may each have one recurrent synapse (:func:`recurrent_loops`),
    after the graph check every backend applies (``export.nir.validate.check_graph``: node fields, one
    Input and Output, loops only through neurons, shapes); ValueError otherwise."""
    checked = check_graph(graph)
    nodes, edges = dict(checked.nodes), list(checked.edges)
    edges, loops = recurrent_loops(nodes, edges)
    successors: dict[str, list[str]] = {name: [] for name in nodes}
    for source, target in edges:
        successors[source].append(target)
    start = checked.input_name
    chain, name = [], start
    while True:
        following = successors[name]
        if len(following) > 1:
            raise InvalidInputError(f"node {name!r} feeds {following}; the compiler supports chains (no branches)")
        if not following:
            break
        name = following[0]
        if any(seen == name for seen, _ in chain):
            raise InvalidInputError(f"node {name!r} closes a cycle that is not a recurrent synapse; the compiler "
                                    "supports loops neuron -> Affine/Linear -> the same neuron only "
                                    "(docs/fixed-point.md §10.2)")
        chain.append((name, nodes[name]))
    unreached = set(nodes) - {start} - {seen for seen, _ in chain} - set(loops.values())
    if unreached:
        raise InvalidInputError(f"nodes {sorted(unreached)} are not on the chain from Input {start!r}")
    if not chain or not isinstance(chain[-1][1], nir.Output):
        raise InvalidInputError("the chain from the Input node does not end in an Output node")
    return Chain(nodes, start, chain, loops, tuple(int(size) for size in checked.input_shape))
