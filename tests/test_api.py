"""bso_deploy/__init__.py: the public API. Every name resolves to the object its module defines, ``dir`` and
``__all__`` list them, an unknown name is an AttributeError naming the valid ones, ``import bso_deploy``
loads neither torch nor NumPy, and README.md's "Python API" example runs as it stands."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require, require_lava

import bso_deploy

README = Path(__file__).resolve().parents[1] / "README.md"
EXPECTED_NAMES = {"to_nir", "from_nir", "compile_nir", "FixedPointNetwork", "simulate", "TorchReference", "deploy",
                  "check_parity", "TrainingRun", "QuantizationReport", "from_netx", "quantize_inputs",
                  "append_zero_steps", "TrainConfig", "dataset_samples"}


def test_every_public_name_resolves_to_its_module_attribute(nir) -> None:
    assert EXPECTED_NAMES <= set(bso_deploy.__all__)
    for name, module in bso_deploy._PUBLIC.items():
        assert getattr(bso_deploy, name) is getattr(importlib.import_module(module), name), name
    assert bso_deploy.__version__ == "0.1.0"


def test_dir_lists_the_public_names() -> None:
    assert EXPECTED_NAMES | {"__version__"} <= set(dir(bso_deploy))
    assert set(bso_deploy.__all__) == set(bso_deploy._PUBLIC) | {"__version__"}


def test_an_unknown_name_is_an_attribute_error_naming_the_valid_ones() -> None:
    with pytest.raises(AttributeError, match=r"has no attribute 'compile'; its public names are .*compile_nir"):
        bso_deploy.compile  # noqa: B018 - the attribute access is what is tested
    assert not hasattr(bso_deploy, "to_nirr")


def test_import_bso_deploy_loads_neither_torch_nor_numpy() -> None:
    code = "import sys, bso_deploy; print(sorted({'torch', 'numpy', 'nir'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def readme_blocks(heading: str) -> list[str]:
    """The ```python blocks of README.md's section ``heading`` (up to the next ``## `` heading)."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end if end >= 0 else None], flags=re.DOTALL)


@pytest.fixture(scope="module")
def readme_example(nir, tmp_path_factory) -> dict:
    """README's "Python API" example, run in a fresh folder (it writes runs/api/): its variables."""
    require("bso_deploy.export.nir")
    blocks = readme_blocks("Python API")
    assert len(blocks) == 2, "the Python API section has the end-to-end block and the Lava block"
    namespace: dict = {"__name__": "readme_example"}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("readme"))
        exec(compile(blocks[0], "README.md (Python API)", "exec"), namespace)
        namespace["out_dir"] = Path("runs/api").resolve()
    return namespace


def test_readme_example_trains_compiles_simulates_and_checks_parity(readme_example) -> None:
    ns = readme_example
    assert (ns["out_dir"] / "checkpoint.pt").is_file() and (ns["out_dir"] / "metrics.json").is_file()
    fx_net, report, parity = ns["fx_net"], ns["report"], ns["parity"]
    assert isinstance(fx_net, bso_deploy.FixedPointNetwork) and isinstance(report, bso_deploy.QuantizationReport)
    assert len(report.layers) == len(fx_net.layers) and report.time_steps == 4
    assert report.to_dicts() == [dict(entry) for entry in fx_net.quantization]
    assert parity.mismatches == 0 and parity.compared_spikes > 0
    # check_parity compiled the graph with the same options: its accuracy is the example's own simulation
    assert parity.fixed_accuracy == float(np.mean(ns["predictions"] == ns["y"]))
    assert parity.fixed_accuracy > 0.3  # one epoch of a tiny network: well above chance (0.1)


def test_readme_lava_block_gives_the_simulator_output(readme_example) -> None:
    require_lava()
    blocks = readme_blocks("Python API")
    exec(compile(blocks[1], "README.md (Python API, Lava)", "exec"), readme_example)
    np.testing.assert_array_equal(readme_example["on_lava"].output, readme_example["result"].output)
