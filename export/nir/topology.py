"""Graph plumbing for the executor: inline nested NIRGraph nodes, order the nodes, find recurrent edges.

NIR sums the inputs of a node that has several incoming edges. A cycle can only be run step by step if it
is broken by a delay: we read an edge that leaves a stateful neuron node and closes a cycle from that
node's output at the previous time step (zero at the first step), which is how snnTorch's recurrent
layers behave. A cycle without a neuron node on it (an algebraic loop) cannot be run and is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import nir

from bso_deploy.errors import InvalidInputError

Edge = tuple[str, str]


def _text(name: str | bytes) -> str:
    return name.decode("utf8") if isinstance(name, bytes) else str(name)


def _endpoint(name: str, subgraphs: Mapping[str, nir.NIRGraph], kind: type, role: str) -> str:
    """Resolve an edge endpoint that names a subgraph (to its single Input/Output) or 'sub.inner'."""
    if name in subgraphs:
        graph = subgraphs[name]
        inner = [key for key, node in graph.nodes.items() if isinstance(node, kind)]
        if len(inner) != 1:
            raise InvalidInputError(f"edge {role} subgraph {name!r}, which has {len(inner)} {kind.__name__} nodes; "
                             f"name the inner node as '{name}.<node>'")
        return f"{name}.{inner[0]}"
    return name


def inline_subgraphs(graph: nir.NIRGraph, prefix: str = "") -> tuple[dict[str, nir.NIRNode], list[Edge]]:
    """Flatten nested graphs: inner node 'x' of subgraph 's' becomes 's.x'; an edge into (out of) 's'
    goes to (from) its Input (Output) node. Such inner Input/Output nodes then have incoming (outgoing)
    edges, which is how the executor tells them from the graph's own Input/Output nodes."""
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[Edge] = []
    subgraphs = {name: node for name, node in graph.nodes.items() if isinstance(node, nir.NIRGraph)}
    for name, node in graph.nodes.items():
        if name in subgraphs:
            inner_nodes, inner_edges = inline_subgraphs(node, prefix=f"{prefix}{name}.")
            nodes.update(inner_nodes)
            edges.extend(inner_edges)
        else:
            nodes[f"{prefix}{name}"] = node
    for source, target in graph.edges:
        source = _endpoint(_text(source), subgraphs, nir.Output, "from")
        target = _endpoint(_text(target), subgraphs, nir.Input, "into")
        edges.append((f"{prefix}{source}", f"{prefix}{target}"))
    for source, target in edges:
        for end in (source, target):
            if end not in nodes:
                raise InvalidInputError(f"edge ({source!r}, {target!r}) names node {end!r}, which is not in the graph")
    return nodes, edges


def strongly_connected(names: list[str], edges: list[Edge]) -> dict[str, int]:
    """Component index of every node (Tarjan's algorithm, iterative)."""
    successors: dict[str, list[str]] = {name: [] for name in names}
    for source, target in edges:
        successors[source].append(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    component: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = 0
    for root in names:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            if child < len(successors[node]):
                work.append((node, child + 1))
                nxt = successors[node][child]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component[member] = index[node]
                    if member == node:
                        break
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return component


def execution_order(names: list[str], edges: list[Edge], is_stateful: Callable[[str], bool]
                    ) -> tuple[list[str], list[Edge]]:
    """Return (order, delayed edges). Delayed edges leave a stateful node inside a cycle and carry the
    previous step's value; the remaining edges must form a DAG, ordered by Kahn's algorithm (ties in
    the order of ``names``)."""
    component = strongly_connected(names, edges)
    delayed = [(s, t) for s, t in edges if component[s] == component[t] and is_stateful(s)]
    direct = [edge for edge in edges if edge not in delayed]
    indegree = {name: 0 for name in names}
    for _, target in direct:
        indegree[target] += 1
    position = {name: i for i, name in enumerate(names)}
    ready = sorted((n for n in names if indegree[n] == 0), key=position.__getitem__)
    order: list[str] = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        for source, target in direct:
            if source == node:
                indegree[target] -= 1
                if indegree[target] == 0:
                    ready.append(target)
                    ready.sort(key=position.__getitem__)
    if len(order) != len(names):
        sizes: dict[int, int] = {}
        for name in names:
            sizes[component[name]] = sizes.get(component[name], 0) + 1
        stuck = [n for n in names if n not in order and (sizes[component[n]] > 1 or (n, n) in direct)]
        raise InvalidInputError(f"nodes {stuck} form a cycle without a neuron node to delay it (an algebraic loop); "
                         "no backend can run it step by step; put a neuron node on the loop or remove the edge")
    return order, delayed
