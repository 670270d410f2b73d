"""Tests for hardware/network.py: the layer chain, profiles, serialisation (a layer's own checks: test_layer.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bso_deploy.hardware.network import (
    FORMAT_VERSION,
    FixedPointLayer,
    FixedPointNetwork,
    append_zero_steps,
)
from bso_deploy.hardware.spec import SPEC
from test_layer import dense


def conv_net() -> FixedPointNetwork:
    rng = np.random.default_rng(0)
    conv = FixedPointLayer(name="conv", kind="conv", input_shape=(2, 6, 6),
                           weight=rng.choice([-1, 1], size=(3, 2, 3, 3)), binary=True, weight_mant=5,
                           weight_exp=-2, du=SPEC.decay_max, dv=SPEC.decay_unity // 2,
                           vth=rng.integers(0, 50, size=(3, 6, 6)),
                           bias_mant=rng.integers(-9, 9, size=(3, 6, 6)), bias_exp=-1, bias_delay=1,
                           reset="subtract", padding=(1, 1))
    fc = dense("fc", input_shape=(3, 6, 6), pool=(2, 2),
               weight=rng.integers(SPEC.weight_min, SPEC.weight_max + 1, size=(4, 27)), du=SPEC.decay_max,
               bias_mant=3, bias_delay=2, spiking=False)
    return FixedPointNetwork("bso", (2, 6, 6), (conv, fc), quantization=({"scale": 0.5}, {"scale": 2.0}))


def test_conv_and_pool_shapes() -> None:
    net = conv_net()
    assert net.layers[0].output_shape == (3, 6, 6)
    assert net.layers[1].pooled_shape == (3, 3, 3)
    assert net.output_shape == (4,) and net.latency == 2
    strided = FixedPointLayer(name="s", kind="conv", input_shape=(1, 7, 5), weight=np.ones((2, 1, 3, 2), int),
                              stride=(2, 3), padding=(1, 0))
    assert strided.output_shape == (2, 4, 2)


def test_network_checks_the_shape_chain_and_readout_position() -> None:
    with pytest.raises(ValueError, match=r"'b': input_shape = \(4,\) differs from layer 'a''s output \(3,\)"):
        FixedPointNetwork("bso", (4,), (dense("a"), dense("b")))
    with pytest.raises(ValueError, match="differs from the network input"):
        FixedPointNetwork("bso", (5,), (dense("a"),))
    with pytest.raises(ValueError, match=r"'a': spiking = False is allowed for the last"):
        FixedPointNetwork("bso", (4,), (dense("a", spiking=False), dense("b", n_in=3)))
    with pytest.raises(ValueError, match="unique"):
        FixedPointNetwork("bso", (4,), (dense("a"), dense("a", n_in=3)))
    with pytest.raises(ValueError, match="non-empty"):
        FixedPointNetwork("bso", (4,), ())
    with pytest.raises(ValueError, match="valid profiles: loihi, bso"):
        FixedPointNetwork("truenorth", (4,), (dense(),))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"reset": "subtract"}, r"reset 'subtract' is not in profile 'loihi'.*use profile 'bso'"),
    ({"vth": np.array([1, 2, 1])}, r"vth must be one value per layer in profile 'loihi'"),
])
def test_loihi_profile_restrictions(kwargs, match) -> None:
    FixedPointNetwork("bso", (4,), (dense(**kwargs),))  # fine in bso
    with pytest.raises(ValueError, match=match):
        FixedPointNetwork("loihi", (4,), (dense(**kwargs),))


def test_loihi_profile_delays_no_bias() -> None:
    """Lava's LIF adds its bias from the first step (docs/fixed-point.md §3.4, §6.1): profile loihi takes
    bias_delay > 0 only for layers whose bias_mant is zero, where the delay changes nothing."""
    delayed = dense(bias_mant=np.array([0, 2, 0]), bias_delay=3)
    assert FixedPointNetwork("bso", (4,), (delayed,)).layers[0].bias_delay == 3
    with pytest.raises(ValueError, match=r"'fc': bias_delay = 3 with a nonzero bias is not in profile 'loihi'.*"
                                         r"set it to 0 or use profile 'bso'"):
        FixedPointNetwork("loihi", (4,), (delayed,))
    FixedPointNetwork("loihi", (4,), (dense(bias_mant=0, bias_delay=3),))
    FixedPointNetwork("loihi", (4,), (dense(bias_mant=2, bias_delay=0),))


def test_loihi_profile_has_no_conv_or_pooling() -> None:
    net = conv_net()
    with pytest.raises(ValueError, match=r"'conv': kind 'conv' is not in profile 'loihi'"):
        FixedPointNetwork("loihi", net.input_shape, net.layers[:1])
    pooled = dense("p", input_shape=(1, 4, 4), pool=(2, 2), weight=np.ones((2, 4), int))
    with pytest.raises(ValueError, match=r"'p': pool \(2, 2\): profile 'loihi' has no pooling"):
        FixedPointNetwork("loihi", (1, 4, 4), (pooled,))


def test_quantization_report_validation() -> None:
    with pytest.raises(ValueError, match="one dict per layer"):
        FixedPointNetwork("bso", (4,), (dense(),), quantization=({}, {}))
    with pytest.raises(ValueError, match="JSON-serialisable"):
        FixedPointNetwork("bso", (4,), (dense(),), quantization=({"scale": object()},))
    report = {"scale": 0.25, "max_abs_error": 0.01}
    net = FixedPointNetwork("bso", (4,), (dense(),), quantization=(report,))
    report["scale"] = 9.0
    assert net.quantization[0]["scale"] == 0.25  # a copy


def test_dict_round_trip() -> None:
    net = conv_net()
    data = net.to_dict()
    assert data["format_version"] == FORMAT_VERSION
    assert [layer["bias_delay"] for layer in data["layers"]] == [1, 2]
    json.dumps({**data, "layers": [{k: v for k, v in layer.items() if not isinstance(v, np.ndarray)}
                                   for layer in data["layers"]]})  # everything but the arrays is plain
    again = FixedPointNetwork.from_dict(data)
    assert again == net and again is not net
    assert again.layers[0] == net.layers[0] and again.layers[0] != net.layers[1]
    with pytest.raises(ValueError, match="format_version 99"):
        FixedPointNetwork.from_dict({**data, "format_version": 99})
    with pytest.raises(ValueError, match=r"lacks \['layers'\]"):
        FixedPointNetwork.from_dict({k: v for k, v in data.items() if k != "layers"})
    with pytest.raises(ValueError, match="unknown FixedPointLayer fields"):
        FixedPointLayer.from_dict({**data["layers"][0], "gain": 1})


def test_save_load_round_trip_is_atomic(tmp_path: Path) -> None:
    net = conv_net()
    path = net.save(tmp_path / "sub" / "net.npz")
    assert path == tmp_path / "sub" / "net.npz"
    assert sorted(p.name for p in path.parent.iterdir()) == ["net.npz"]  # no temporary file left behind
    loaded = FixedPointNetwork.load(path)
    assert loaded == net
    assert loaded.quantization == net.quantization and loaded.layers[1].pool == (2, 2)
    assert [layer.bias_delay for layer in loaded.layers] == [1, 2]
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(ValueError, match="not a saved FixedPointNetwork"):
        FixedPointNetwork.load(tmp_path / "other.npz")


def test_files_without_bias_delay_load_with_bias_delay_0(tmp_path: Path) -> None:
    """Files written before bias_delay existed (same format version) load with the old meaning: bias from
    step 0 (docs/fixed-point.md §9)."""
    net = conv_net()
    path = net.save(tmp_path / "net.npz")
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(str(arrays["meta"]))
    for layer in meta["layers"]:
        del layer["bias_delay"]
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **arrays)
    old = FixedPointNetwork.load(tmp_path / "old.npz")
    assert [layer.bias_delay for layer in old.layers] == [0, 0]
    expected = [FixedPointLayer.from_dict({**layer.to_dict(), "bias_delay": 0}) for layer in net.layers]
    assert old.layers == tuple(expected)


def test_network_is_frozen() -> None:
    net = conv_net()
    with pytest.raises(AttributeError):
        net.profile = "loihi"  # type: ignore[misc]
    with pytest.raises(ValueError):
        net.layers[0].vth[0, 0, 0] = 3


def test_append_zero_steps() -> None:
    inputs = np.ones((2, 3, 4), dtype=np.uint8)
    padded = append_zero_steps(inputs, 3)
    assert padded.shape == (5, 3, 4) and padded.dtype == np.uint8
    assert padded[:2].all() and not padded[2:].any()
    with pytest.raises(ValueError, match="steps"):
        append_zero_steps(inputs, -1)
