"""What importing a layer loads, in a fresh interpreter (docs/architecture.md): NIR graph reading, the netx
and ONNX packages and the compiler load no training module; ``import bso_deploy`` loads neither torch nor
NumPy; the exporters stay reachable through the packages' lazy tables."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

TRAINING = ("bso_deploy.layers", "bso_deploy.neuron", "bso_deploy.network", "bso_deploy.models", "bso_deploy.ste",
            "bso_deploy.optim", "bso_deploy.training", "bso_deploy.encoding", "bso_deploy.data", "bso_deploy.config",
            "bso_deploy.checkpoint", "bso_deploy.memory", "bso_deploy.distributed", "bso_deploy.run",
            "bso_deploy.hardware_aware")


def loaded_after(statement: str, watched: tuple[str, ...]) -> list[str]:
    """The modules among ``watched`` (and their submodules) that a fresh interpreter has loaded after
    running ``statement``."""
    code = (f"import json, sys\n{statement}\nwatched = {watched!r}\n"
            "print(json.dumps(sorted(m for m in sys.modules if any(m == w or m.startswith(w + '.') "
            "for w in watched))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("module", ["bso_deploy.export.nir", "bso_deploy.export.netx", "bso_deploy.export.onnx",
                                    "bso_deploy.hardware.compiler"])
def test_reading_graphs_and_files_loads_no_training_module(module):
    assert loaded_after(f"import {module}", TRAINING) == []


def test_nir_reading_loads_no_hardware():
    assert loaded_after("import bso_deploy.export.nir", ("bso_deploy.hardware",)) == []


def test_import_bso_deploy_loads_neither_torch_nor_numpy():
    assert loaded_after("import bso_deploy", ("torch", "numpy", "nir", "lava")) == []


def test_the_exporters_load_on_first_use_of_their_names():
    statement = ("import bso_deploy.export.nir as package\n"
                 "assert {'to_nir', 'export_checkpoint_to_nir', 'from_nir'} <= set(dir(package))\n"
                 "from bso_deploy.export.nir import to_nir\n"
                 "from bso_deploy.export.nir.export import to_nir as defined\n"
                 "assert to_nir is defined")
    assert "bso_deploy.export.nir.export" in loaded_after(statement, ("bso_deploy.export.nir.export",))


def test_an_unknown_name_is_an_attribute_error():
    import bso_deploy.export.nir as package

    with pytest.raises(AttributeError, match=re.escape("'bso_deploy.export.nir' has no attribute 'to_onnx'")):
        package.to_onnx  # noqa: B018
