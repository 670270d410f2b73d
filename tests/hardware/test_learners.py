"""hardware/learners.py: the learner table is an immutable mapping of the three learners, its unknown-name
error lists the valid names, and the Lava learner's module is imported only when that learner is built."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from bso_deploy.hardware.learners import LEARNERS, get_learner, lava_learner
from bso_deploy.hardware.learning import SimLearner
from bso_deploy.hardware.torch_learning import TorchLearner


def test_table_names_the_three_learners():
    assert dict(LEARNERS) == {"sim": SimLearner, "torch": TorchLearner, "lava": lava_learner}
    assert get_learner("sim") is SimLearner and get_learner("torch") is TorchLearner
    assert get_learner("lava") is lava_learner


def test_table_is_immutable():
    with pytest.raises(TypeError):
        LEARNERS["fpga"] = SimLearner  # type: ignore[index]
    with pytest.raises(TypeError):
        del LEARNERS["sim"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["fpga", None, ["sim"]])
def test_unknown_name_lists_the_valid_ones(name):
    message = f"unknown learner backend {name!r}; valid: lava, sim, torch"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        get_learner(name)


def test_lava_is_imported_only_for_the_lava_learner():
    code = ("import sys; import bso_deploy.hardware.learners; "
            "print(any(m == 'lava' or m.startswith(('lava.', 'bso_deploy.hardware.lava')) for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "False"
