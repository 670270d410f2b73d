"""Tests for hardware/layer.py: a FixedPointLayer's validation (errors name the layer, the parameter and the
fix) and normalisation (read-only int64 copies, scalars broadcast)."""

from __future__ import annotations

import numpy as np
import pytest
from bso_deploy.hardware.layer import FixedPointLayer
from bso_deploy.hardware.spec import SPEC


def dense(name: str = "fc", n_in: int = 4, n_out: int = 3, **kwargs) -> FixedPointLayer:
    weight = kwargs.pop("weight", np.arange(n_out * n_in).reshape(n_out, n_in) % 5 - 2)
    return FixedPointLayer(name=name, kind=kwargs.pop("kind", "dense"),
                           input_shape=kwargs.pop("input_shape", (n_in,)), weight=weight, **kwargs)


def test_scalars_broadcast_to_read_only_int64_arrays() -> None:
    layer = dense(vth=7, bias_mant=-3, bias_exp=np.int16(2), du=np.uint16(12))
    for name in ("vth", "bias_mant", "bias_exp", "weight"):
        array = getattr(layer, name)
        assert array.dtype == np.int64 and not array.flags.writeable
    assert layer.vth.shape == layer.bias_exp.shape == (3,) and (layer.vth == 7).all()
    assert layer.du == 12 and type(layer.du) is int
    assert layer.bias_delay == 0 and dense(bias_delay=np.int32(5)).bias_delay == 5
    assert type(dense(bias_delay=np.int32(5)).bias_delay) is int
    assert layer.output_shape == (3,) and layer.num_neurons == 3


def test_layer_copies_its_inputs() -> None:
    weight = np.ones((2, 2), dtype=np.int32)
    layer = dense(n_in=2, n_out=2, weight=weight)
    weight[0, 0] = 5
    assert layer.weight[0, 0] == 1


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"weight": np.ones((3, 4))}, r"'fc': weight must hold integers.*quantize"),
    ({"weight": np.full((3, 4), SPEC.weight_max + 1)},
     rf"'fc': weight has values .* outside \[{SPEC.weight_min}, {SPEC.weight_max}\]"),
    ({"weight": np.ones((3, 5), int)}, r"'fc': weight has shape \(3, 5\).*\(n_out, 4\)"),
    ({"binary": True, "weight": np.zeros((3, 4), int)}, r"binary layer must be -1/\+1"),
    ({"binary": True, "weight": np.ones((3, 4), int), "weight_mant": SPEC.weight_mant_max + 1},
     rf"weight_mant = {SPEC.weight_mant_max + 1}.*\[1, {SPEC.weight_mant_max}\]"),
    ({"weight_mant": 2}, r"weight_mant = 2 is outside \[1, 1\].*full-precision"),
    ({"weight_exp": SPEC.weight_exp_max + 1},
     rf"weight_exp = .* outside \[{SPEC.weight_exp_min}, {SPEC.weight_exp_max}\]"),
    ({"du": SPEC.decay_unity}, rf"du = {SPEC.decay_unity} is outside \[0, {SPEC.decay_max}\]"),
    ({"dv": -1}, r"dv = -1"),
    ({"dv": 1.0}, r"dv must be an integer"),
    ({"du": True}, r"du must be an integer"),
    ({"vth": -1}, rf"vth has values .* outside \[0, {SPEC.vth_max}\]"),
    ({"vth": np.array([1, 2])}, r"vth has shape \(2,\).*output shape \(3,\)"),
    ({"bias_mant": SPEC.bias_mant_max + 1}, rf"bias_mant .* outside \[{SPEC.bias_mant_min}, {SPEC.bias_mant_max}\]"),
    ({"bias_exp": np.array([0, SPEC.bias_exp_min - 1, 0])},
     rf"bias_exp .* outside \[{SPEC.bias_exp_min}, {SPEC.bias_exp_max}\]"),
    ({"bias_delay": -1}, r"'fc': bias_delay = -1 is outside \[0, .*first step"),
    ({"bias_delay": 1.0}, r"bias_delay must be an integer"),
    ({"bias_delay": True}, r"bias_delay must be an integer"),
    ({"reset": "hold"}, r"reset must be one of"),
    ({"kind": "pool"}, r"kind must be one of"),
    ({"spiking": 1}, r"spiking must be a bool"),
    ({"stride": (2, 2)}, r"stride/padding apply to conv layers only"),
    ({"pool": (2, 2)}, r"pool needs a \(C, H, W\) input"),
    ({"input_shape": (0,)}, r"input_shape must be a tuple of integers >= 1"),
    ({"name": ""}, r"layer name must be a non-empty string"),
])
def test_layer_errors_name_layer_parameter_and_fix(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        dense(**kwargs)


def test_conv_layer_errors() -> None:
    with pytest.raises(ValueError, match=r"'c': weight has shape .*\(C_out, 2, kh, kw\)"):
        FixedPointLayer(name="c", kind="conv", input_shape=(2, 4, 4), weight=np.ones((1, 3, 3, 3), int))
    with pytest.raises(ValueError, match="larger than the padded input"):
        FixedPointLayer(name="c", kind="conv", input_shape=(1, 2, 2), weight=np.ones((1, 1, 3, 3), int))
    with pytest.raises(ValueError, match=r"pool \(2, 2\) does not divide"):
        FixedPointLayer(name="c", kind="conv", input_shape=(1, 5, 4), weight=np.ones((1, 1, 1, 1), int),
                        pool=(2, 2))
