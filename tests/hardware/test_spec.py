"""Tests for hardware/spec.py: the spec's numbers, the doc's table, Lava's declared widths, the profiles."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest
from bso_deploy.hardware.spec import (
    CONNECTION_KINDS,
    PROFILES,
    RESET_MODES,
    SPEC,
    FixedPointSpec,
    Profile,
    decay_from_tau,
    get_profile,
)
from conftest import require, require_lava

DOC = Path(__file__).resolve().parents[2] / "docs" / "fixed-point.md"


def _doc_table() -> dict[str, int]:
    rows = re.findall(r"^\| `(\w+)` \| (\d+) \|", DOC.read_text(), flags=re.MULTILINE)
    return {name: int(value) for name, value in rows}


def test_doc_table_lists_every_width_with_the_spec_value() -> None:
    table = _doc_table()
    widths = {item.name: getattr(SPEC, item.name) for item in dataclasses.fields(SPEC)}
    assert table == widths


DOCS = {"fixed-point": DOC, "onchip-learning": DOC.parent / "onchip-learning.md"}
# "fixed-point.md §4.6", "FP §4.6" (the learning code's short form), "onchip-learning.md §11", or a bare "§3.1",
# which refers to the file's own document: docs/onchip-learning.md for the rule's modules, else the spec
# ("§5, §11" after a document name cites both sections in that document)
SECTION = r"§(?:\d+\.\d+|\d+)"
CITATION = re.compile(rf"(?:(fixed-point|onchip-learning)\.md |(FP) )?({SECTION}(?:(?:, | - ){SECTION})*)")
LEARNING_RULE_MODULES = ("learning.py", "learning_rule.py", "learning_float.py", "learner.py", "learners.py",
                         "torch_learning.py", "learning_readout.py", "learning_arithmetic.py", "learning_feedback.py",
                         "learning_counter.py")
# bare § = onchip-learning.md in LEARNING_RULE_MODULES


def _defined_sections(doc: Path) -> set[str]:
    text = doc.read_text()
    return set(re.findall(r"^\*\*§(\d+\.\d+)", text, flags=re.MULTILINE)) | set(
        re.findall(r"^## (\d+)\.", text, flags=re.MULTILINE))


def test_doc_has_the_sections_the_code_cites() -> None:
    defined = {name: _defined_sections(doc) for name, doc in DOCS.items()}
    cited = {name: set() for name in DOCS}
    for path in Path(__file__).resolve().parents[2].joinpath("hardware").rglob("*.py"):
        own = "onchip-learning" if path.name in LEARNING_RULE_MODULES else "fixed-point"
        for named, short, sections in CITATION.findall(path.read_text()):
            cited["fixed-point" if short else named or own].update(re.findall(r"§([\d.]*\d)", sections))
    for name in DOCS:
        assert cited[name], f"no code cites docs/{name}.md"
        missing = sorted(cited[name] - defined[name])
        assert not missing, f"docs/{name}.md: cited but not defined: {missing}"


def test_derived_ranges_follow_from_the_widths() -> None:
    assert SPEC.decay_unity == 2**SPEC.decay_bits == SPEC.decay_max + 1
    assert SPEC.u_max - SPEC.u_min + 1 == SPEC.u_modulus == 2**SPEC.state_bits
    assert SPEC.u_max == 2 ** (SPEC.state_bits - 1)  # Lava's interval (-2**23, 2**23] (§3.2)
    assert SPEC.v_max == -SPEC.v_min == 2 ** (SPEC.state_bits - 1) - 1
    assert SPEC.vth_max << SPEC.state_shift < SPEC.v_max  # a saturated v can still fire (§3.7)
    assert (SPEC.bias_mant_min, SPEC.bias_mant_max) == (-(2 ** (SPEC.bias_mant_bits - 1)),
                                                        2 ** (SPEC.bias_mant_bits - 1) - 1)
    assert SPEC.weight_min == -(2**SPEC.weight_bits) and SPEC.weight_max == 2**SPEC.weight_bits - 1
    assert 2 * SPEC.weight_mant_max <= SPEC.weight_max and -2 * SPEC.weight_mant_max >= SPEC.weight_min
    assert SPEC.binary_weight_values == (-1, 1)
    assert SPEC.input_max == 2**SPEC.input_bits - 1
    assert (SPEC.activation_max + 1) << (SPEC.state_shift + 1) <= SPEC.u_max  # §8: one wrap suffices


def test_spec_matches_lavas_declared_precisions() -> None:
    require_lava()
    lif = require("lava.proc.lif.models").PyLifModelBitAcc
    dense = require("lava.proc.dense.models").PyDenseModelBitAcc
    assert lif.u.precision == lif.v.precision == SPEC.state_bits
    assert lif.du.precision == lif.dv.precision == SPEC.decay_bits
    assert lif.vth.precision == SPEC.threshold_bits
    assert lif.bias_mant.precision == SPEC.bias_mant_bits
    assert lif.a_in.precision == SPEC.activation_bits
    assert dense.weights.precision == SPEC.weight_bits
    # Lava declares bias_exp unsigned 3-bit; the spec's signed range contains it (docs/fixed-point.md §2).
    assert SPEC.bias_exp_min < 0 and SPEC.bias_exp_max == 2**lif.bias_exp.precision - 1
    model = lif({})
    assert (model.uv_bitwidth, model.decay_shift) == (SPEC.state_bits, SPEC.decay_bits)
    assert model.vth_shift == model.act_shift == SPEC.state_shift


def test_spec_rejects_non_positive_widths() -> None:
    with pytest.raises(ValueError, match="state_bits"):
        FixedPointSpec(state_bits=0)
    with pytest.raises(ValueError, match="decay_bits"):
        FixedPointSpec(decay_bits=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        SPEC.state_bits = 32  # type: ignore[misc]


def test_profiles_and_lookup() -> None:
    assert set(PROFILES) == {"loihi", "bso"}
    assert get_profile("loihi") is PROFILES["loihi"]
    loihi, bso = get_profile("loihi"), get_profile("bso")
    assert loihi.connection_kinds == ("dense",) and loihi.reset_modes == ("zero",)
    assert not loihi.per_neuron_threshold and not loihi.pooling
    assert set(bso.connection_kinds) == set(CONNECTION_KINDS) and set(bso.reset_modes) == set(RESET_MODES)
    assert bso.per_neuron_threshold and bso.pooling
    assert bso.delayed_bias and not loihi.delayed_bias  # Lava's LIF adds its bias from step 0 (§3.4, §6.1)
    assert loihi.spec is bso.spec is SPEC
    with pytest.raises(TypeError):
        PROFILES["mine"] = loihi  # type: ignore[index]


@pytest.mark.parametrize("name", ["Loihi", "", "lava", None])
def test_unknown_profile_lists_the_valid_names(name) -> None:
    with pytest.raises(ValueError, match=r"valid profiles: loihi, bso"):
        get_profile(name)


def test_profile_validation() -> None:
    with pytest.raises(ValueError, match="connection_kinds"):
        Profile("x", "", connection_kinds=("pool",), reset_modes=("zero",), per_neuron_threshold=True,
                pooling=False)
    with pytest.raises(ValueError, match="reset_modes"):
        Profile("x", "", connection_kinds=("dense",), reset_modes=(), per_neuron_threshold=True, pooling=False)


def test_decay_from_tau() -> None:
    assert decay_from_tau(2) == SPEC.decay_unity // 2  # BSO's default tau: an exact halving (§7.1)
    assert decay_from_tau(4.0) == SPEC.decay_unity // 4
    assert decay_from_tau(3) == round(SPEC.decay_unity / 3)
    assert decay_from_tau(math.inf) == 0  # no leak
    assert decay_from_tau(SPEC.decay_unity / (SPEC.decay_max + 0.25)) == SPEC.decay_max
    for bad in (1.0, 0.5, 0, -2, math.nan, "2", True):
        with pytest.raises(ValueError, match="tau"):
            decay_from_tau(bad)
