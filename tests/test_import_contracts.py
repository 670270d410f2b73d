"""The ``acyclic_modules`` contract of .ci/import_contracts.py on hand-made import graphs."""

import ast
import importlib.util
from pathlib import Path

import grimp

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter depends on tomli there
    import tomli as tomllib

SPEC = importlib.util.spec_from_file_location(
    "import_contracts", Path(__file__).resolve().parents[1] / ".ci" / "import_contracts.py")
contracts = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(contracts)


def graph_of(*imports: str) -> grimp.ImportGraph:
    graph = grimp.ImportGraph()
    for module in ("pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.sub", "pkg.sub.d", "other"):
        graph.add_module(module)
    for line, text in enumerate(imports, start=1):
        importer, imported = text.split(" -> ")
        graph.add_import(importer=importer, imported=imported, line_number=line, line_contents=text)
    return graph


def check(graph: grimp.ImportGraph):
    contract = contracts.AcyclicModulesContract(name="acyclic", session_options={},
                                                contract_options={"package": "pkg"})
    return contract.check(graph, verbose=False)


def test_a_chain_and_packages_importing_each_other_through_acyclic_modules_are_kept():
    # pkg.sub imports pkg.a, pkg.b imports pkg.sub.d: the packages depend on each other, the modules do not.
    result = check(graph_of("pkg.a -> pkg.b", "pkg.b -> pkg.c", "pkg.sub -> pkg.a", "pkg.b -> pkg.sub.d"))
    assert result.kept and result.metadata["cycles"] == []


def test_a_cycle_is_found_with_its_shortest_path_and_lines():
    result = check(graph_of("pkg.a -> pkg.b", "pkg.b -> pkg.sub.d", "pkg.sub.d -> pkg.a", "pkg.b -> pkg.c",
                            "pkg.c -> pkg.a"))
    assert not result.kept
    (found,) = result.metadata["cycles"]
    assert found["modules"] == ["pkg.a", "pkg.b", "pkg.c", "pkg.sub.d"]
    assert found["cycle"] == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]  # breadth first: c before sub.d
    assert found["lines"] == [[1], [4], [5]]


def test_two_separate_cycles_and_a_self_import_are_each_reported():
    result = check(graph_of("pkg.a -> pkg.b", "pkg.b -> pkg.a", "pkg.c -> pkg.sub", "pkg.sub -> pkg.c",
                            "pkg.sub.d -> pkg.sub.d"))
    assert [found["cycle"] for found in result.metadata["cycles"]] == [
        ["pkg.a", "pkg.b", "pkg.a"], ["pkg.c", "pkg.sub", "pkg.c"], ["pkg.sub.d", "pkg.sub.d"]]


def test_modules_outside_the_package_are_not_checked():
    assert check(graph_of("other -> pkg.a", "pkg.a -> other")).kept


ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"bso_deploy": "bso_deploy", "export": "bso_deploy.export", "hardware": "bso_deploy.hardware"}


def installed_modules() -> list[str]:
    """Every module of the three folders under the name it is installed as (pyproject's package-dir),
    package ``__init__`` files left out: they only re-export, eagerly from below or lazily."""
    names = []
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name != "__init__.py":
                names.append(".".join([package, *path.relative_to(ROOT / folder).with_suffix("").parts]))
    return names


def layered_modules() -> list[str]:
    """The modules and packages named in the layers contract of pyproject.toml."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return [name.strip().strip("()") for layer in contract["layers"] for name in layer.split(":")]


def test_every_module_has_a_layer():
    """A new module must be placed in docs/architecture.md's layers (pyproject.toml), or the contracts would
    not see what it imports."""
    layered = layered_modules()
    assert len(layered) == len(set(layered))
    missing = [module for module in installed_modules()
               if not any(module == name or module.startswith(name + ".") for name in layered)]
    assert missing == [], f"add these modules to a layer of the layers contract in pyproject.toml: {missing}"


def function_level_internal_imports(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, imported module) of each import of a bso_deploy module inside a function of ``path``; relative
    imports are resolved against ``package``, the package the file belongs to."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                names = [".".join([*base, node.module] if node.module else base)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found += [(node.lineno, name) for name in names if name.split(".")[0] == "bso_deploy"]
    return sorted(set(found))


def test_function_level_imports_are_found_and_resolved(tmp_path):
    source = tmp_path / "module.py"
    source.write_text("import numpy\nfrom . import top\n\n"
                      "def f():\n    import numpy\n    from .. import spec\n    from .lava.deploy import deploy\n\n"
                      "class C:\n    def g(self):\n        import bso_deploy.io, os\n")
    assert function_level_internal_imports(source, "bso_deploy.hardware.x") == [
        (6, "bso_deploy.hardware"), (7, "bso_deploy.hardware.x.lava.deploy"), (11, "bso_deploy.io")]


def test_internal_modules_are_imported_at_the_top():
    """docs/architecture.md: function-level imports only for optional, slow dependencies. Lava's modules
    (bso_deploy.hardware.lava.*) import Lava itself, so they may load on first use; nothing else may."""
    late = []
    for folder, root_package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            # the package relative imports resolve against: the folder of the file (for __init__.py its own)
            package = ".".join([root_package, *path.relative_to(ROOT / folder).parts[:-1]])
            late += [f"{path.relative_to(ROOT)}:{line} imports {name}"
                     for line, name in function_level_internal_imports(path, package)
                     if not name.startswith("bso_deploy.hardware.lava")]
    assert late == [], "import these at the top of the module (docs/architecture.md):\n" + "\n".join(late)


def test_every_package_is_listed_for_installation():
    """pyproject.toml lists the packages explicitly: a package missing there works in an editable install
    and is absent from a wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [".".join([package, *path.relative_to(ROOT / folder).parts[:-1]])
                for folder, package in FOLDERS.items() for path in sorted((ROOT / folder).rglob("__init__.py"))]
    assert sorted(packages) == sorted(config["tool"]["setuptools"]["packages"])
