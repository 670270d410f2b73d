"""The import-linter contract type ``acyclic_modules``: no import cycle between the modules of a package.

import-linter 2.16's ``acyclic_siblings`` compares packages, which cannot work here: ``bso_deploy.export``
and ``bso_deploy.hardware`` each span several layers (docs/architecture.md), so the two folders import
each other by design while their modules do not form a cycle. This contract looks at modules: a package's
``__init__`` is a module like any other, and imports inside functions count (grimp sees them).

The Makefile links this file into the folder lint-imports runs in, which puts it on lint-imports' path
(``contract_types`` in pyproject.toml's ``[tool.importlinter]``).
"""

from __future__ import annotations

from collections import deque
from itertools import pairwise

from grimp import ImportGraph
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


def strongly_connected_components(graph: ImportGraph, modules: set[str]) -> list[list[str]]:
    """Tarjan's algorithm on the imports among ``modules``: the components of more than one module, and
    single modules that import themselves, each sorted; components in sorted order."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = lowlink[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module) & modules):
            if imported not in index:
                visit(imported)
                lowlink[module] = min(lowlink[module], lowlink[imported])
            elif imported in on_stack:
                lowlink[module] = min(lowlink[module], index[imported])
        if lowlink[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1 or module in graph.find_modules_directly_imported_by(module):
                components.append(sorted(component))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return sorted(components)


def shortest_cycle(graph: ImportGraph, component: list[str]) -> list[str]:
    """One shortest cycle through the first module of ``component`` (breadth first, inside it): the
    modules in import order, the first one repeated at the end."""
    start, members = component[0], set(component)
    parents: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for imported in sorted(graph.find_modules_directly_imported_by(module) & members):
            if imported == start:
                path = [module]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return [*reversed(path), start]
            if imported not in parents:
                parents[imported] = module
                queue.append(imported)
    raise ValueError(f"{start} is in no cycle of {component}")


class AcyclicModulesContract(Contract):
    """Kept when the imports among ``package`` and its descendants have no cycle."""

    type_name = "acyclic_modules"

    package = fields.StringField()

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        package = str(self.package)
        modules = graph.find_descendants(package) | {package}
        cycles = []
        for component in strongly_connected_components(graph, modules):
            cycle = shortest_cycle(graph, component)
            lines = [sorted(detail["line_number"] for detail in graph.get_import_details(importer=a, imported=b))
                     for a, b in pairwise(cycle)]
            cycles.append({"modules": component, "cycle": cycle, "lines": lines})
        return ContractCheck(kept=not cycles, metadata={"cycles": cycles})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for found in check.metadata["cycles"]:
            output.print_error(f"{len(found['modules'])} modules import each other in a cycle, for example:")
            for (importer, imported), lines in zip(pairwise(found["cycle"]), found["lines"]):
                output.print_error(f"  {importer} -> {imported} (l.{', '.join(map(str, lines))})")
            output.new_line()
