"""hardware/network.py: the recurrent synapse fields of FixedPointLayer (docs/fixed-point.md §4.9, §9):
validation, equality, dict and file round trips, and files without them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork
from bso_deploy.hardware.spec import SPEC


def layer(**kwargs) -> FixedPointLayer:
    defaults = dict(name="r", kind="dense", input_shape=(4,), weight=np.ones((3, 4), np.int64), vth=2)
    return FixedPointLayer(**{**defaults, **kwargs})


def network() -> FixedPointNetwork:
    rng = np.random.default_rng(0)
    first = layer(recurrent_weight=rng.choice([-1, 1], (3, 3)), recurrent_binary=True, recurrent_weight_mant=9,
                  recurrent_weight_exp=-2, shift_rounding="nearest")
    second = layer(name="s", input_shape=(3,), weight=np.ones((2, 3), np.int64),
                   recurrent_weight=rng.integers(-256, 256, (2, 2)), recurrent_weight_exp=1)
    readout = layer(name="out", input_shape=(2,), weight=np.ones((2, 2), np.int64), spiking=False, vth=0)
    return FixedPointNetwork("bso", (4,), (first, second, readout))


def test_defaults_mean_no_recurrent_synapse() -> None:
    plain = layer()
    assert plain.recurrent_weight is None and not plain.recurrent and not plain.recurrent_binary
    assert (plain.recurrent_weight_mant, plain.recurrent_weight_exp) == (1, 0)
    rec = layer(recurrent_weight=np.eye(3, dtype=np.int32))
    assert rec.recurrent and rec.recurrent_weight.dtype == np.int64 and not rec.recurrent_weight.flags.writeable
    assert rec != plain and rec == layer(recurrent_weight=np.eye(3, dtype=np.int64))
    assert rec != layer(recurrent_weight=np.eye(3, dtype=np.int64), recurrent_weight_exp=-1)


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(recurrent_weight=np.ones((3, 2), np.int64)), r"recurrent_weight has shape \(3, 2\).*\(3, 3\)"),
    (dict(recurrent_weight=np.full((3, 3), 256)), r"recurrent_weight has values in \[256, 256\]"),
    (dict(recurrent_weight=np.full((3, 3), 2), recurrent_binary=True), "signs -1/\\+1"),
    (dict(recurrent_weight=np.zeros((3, 3), np.int64), recurrent_binary=True), "-1/\\+1 only"),
    (dict(recurrent_weight=np.ones((3, 3)) * 0.5), "must hold integers"),
    (dict(recurrent_weight=np.ones((3, 3), np.int64), recurrent_weight_mant=2), "recurrent_weight_mant = 2"),
    (dict(recurrent_weight=np.ones((3, 3), np.int64), recurrent_binary=True, recurrent_weight_mant=128),
     "recurrent_weight_mant = 128"),
    (dict(recurrent_weight=np.ones((3, 3), np.int64), recurrent_weight_exp=SPEC.weight_exp_max + 1),
     "recurrent_weight_exp"),
    (dict(recurrent_weight_exp=-1), "need a recurrent_weight"),
    (dict(recurrent_binary=True), "need a recurrent_weight"),
    (dict(recurrent_weight=np.ones((3, 3), np.int64), spiking=False), "needs a spiking layer"),
    (dict(recurrent_weight=np.ones((3, 3), np.int64), recurrent_binary="yes"), "recurrent_binary must be a bool"),
])
def test_bad_recurrent_fields_name_the_layer_and_the_fix(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        layer(**kwargs)


def test_conv_layers_cannot_be_recurrent() -> None:
    with pytest.raises(ValueError, match="dense layers only"):
        FixedPointLayer(name="c", kind="conv", input_shape=(1, 3, 3), weight=np.ones((1, 1, 3, 3), np.int64),
                        recurrent_weight=np.ones((1, 1), np.int64))


def test_loihi_profile_admits_recurrent_layers() -> None:
    net = network()
    loihi = [FixedPointLayer.from_dict({**item.to_dict(), "shift_rounding": "floor"}) for item in net.layers]
    assert FixedPointNetwork("loihi", (4,), tuple(loihi)).layers[0].recurrent


def test_dict_and_file_round_trips(tmp_path: Path) -> None:
    net = network()
    assert FixedPointNetwork.from_dict(net.to_dict()) == net
    path = net.save(tmp_path / "net.npz")
    with np.load(path, allow_pickle=False) as archive:
        keys = set(archive.files)
    assert {"layers/0/recurrent_weight", "layers/1/recurrent_weight"} <= keys
    assert "layers/2/recurrent_weight" not in keys  # None: no array key (§9)
    loaded = FixedPointNetwork.load(path)
    assert loaded == net and loaded.layers[2].recurrent_weight is None
    np.testing.assert_array_equal(loaded.layers[0].recurrent_weight, net.layers[0].recurrent_weight)
    assert (loaded.layers[0].recurrent_binary, loaded.layers[0].recurrent_weight_mant) == (True, 9)


def test_files_without_the_recurrent_fields_load_without_recurrence(tmp_path: Path) -> None:
    """A file written before the fields existed has neither the meta keys nor the arrays: no recurrence."""
    plain = FixedPointNetwork("bso", (4,), (layer(),))
    path = plain.save(tmp_path / "net.npz")
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(str(arrays["meta"]))
    for item in meta["layers"]:
        for name in ("recurrent_binary", "recurrent_weight_mant", "recurrent_weight_exp"):
            del item[name]
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **arrays)
    assert FixedPointNetwork.load(tmp_path / "old.npz") == plain
