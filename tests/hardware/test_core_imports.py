"""The fixed-point core (L1a, docs/architecture.md) stays NumPy only: importing its modules in a fresh
interpreter loads neither torch, nir, Lava, the export package nor the training modules."""

from __future__ import annotations

import json
import subprocess
import sys

CORE_MODULES = (
    "spec", "checks", "layer", "simulation_result", "network", "step_functions", "fused", "simulator", "rounding",
    "input_quantization", "float_layer", "layer_bounds", "quantize", "learning_float", "learning_rule", "learner",
    "learning",
)
FORBIDDEN = ("torch", "nir", "lava", "bso_deploy.export", "bso_deploy.layers", "bso_deploy.neuron",
             "bso_deploy.network", "bso_deploy.models", "bso_deploy.ste", "bso_deploy.optim", "bso_deploy.training",
             "bso_deploy.encoding", "bso_deploy.data", "bso_deploy.config", "bso_deploy.checkpoint",
             "bso_deploy.memory", "bso_deploy.distributed")


def test_core_imports_no_torch_and_no_training_module() -> None:
    imports = "; ".join(f"import bso_deploy.hardware.{name}" for name in CORE_MODULES)
    code = (f"import json, sys; {imports}; forbidden = {FORBIDDEN!r}; "
            "print(json.dumps(sorted(m for m in sys.modules if any(m == f or m.startswith(f + '.') "
            "for f in forbidden))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
