"""lava-dl netx import (``from_netx``): files written by lava-dl's own slayer blocks (``export_hdf5``) and loaded
by lava-dl's own ``netx.hdf5.Network`` on Lava fixed_pt give exactly the spikes and v of ``simulate(from_netx(file))``
at every step, every layer; our own ``write_netx`` files come back equal; bad files get one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork
from bso_deploy.hardware.simulator import simulate
from bso_deploy.hardware.spec import SPEC
from conftest import require, require_lava


@pytest.fixture(scope="module")
def slayer():
    """lava-dl (slayer and netx; Lava with the project's fix applied first); fails under CI when missing."""
    require_lava()
    require("lava.lib.dl.netx")
    return require("lava.lib.dl.slayer")


@pytest.fixture(scope="module")
def netx():
    require("h5py")
    return require("bso_deploy.export.netx")


def export_blocks(blocks, path, sample: torch.Tensor) -> None:
    """Run ``sample`` (N, C..., T) through the blocks once (lava-dl learns the shapes there), then write the file
    as lava-dl's tutorials do: ``/layer/<k>`` filled by each block's own ``export_hdf5``."""
    import h5py

    with torch.no_grad():
        x = sample
        for block in blocks:
            x = block(x)
    with h5py.File(path, "w") as file:
        group = file.create_group("layer")
        for index, block in enumerate(blocks):
            block.export_hdf5(group.create_group(str(index)))


def randomise(blocks, seed: int, low: float, high: float) -> None:
    """Seeded uniform float weights in [low, high) (lava-dl quantizes them to even 8-bit integers on export) and
    random BatchNorm means (biases) where a block has a norm."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in blocks:
            synapse = getattr(block, "synapse", None)
            if synapse is not None:
                synapse.weight.copy_(torch.rand(synapse.weight.shape, generator=generator) * (high - low) + low)
            norm = getattr(getattr(block, "neuron", None), "norm", None)
            if norm is not None:
                norm.running_mean.copy_(torch.randn(norm.running_mean.shape, generator=generator) * 0.4)


def assert_same_as_lava_dl(fx_net: FixedPointNetwork, path, inputs: np.ndarray, input_message_bits: int) -> int:
    """Every layer's spikes and v, every step: ``simulate`` == lava-dl on Lava; returns the spikes compared."""
    expected = simulate(fx_net, inputs[:, None], record=True)
    spikes, v = require("bso_deploy.hardware.lava.netx_runner").run_lavadl_netx(path, inputs, input_message_bits)
    assert len(spikes) == len(fx_net.layers)
    for k in range(len(fx_net.layers)):
        np.testing.assert_array_equal(spikes[k], expected.spikes[k][:, 0], err_msg=f"spikes of layer {k}")
        np.testing.assert_array_equal(v[k], expected.v[k][:, 0], err_msg=f"v of layer {k}")
    return sum(int(s.sum()) for s in spikes)


def normed(params: dict, slayer, features: int) -> dict:
    """CUBA parameters with lava-dl's MeanOnlyBatchNorm (its running mean becomes the netx layer's bias)."""
    import functools

    return {**params, "norm": functools.partial(slayer.neuron.norm.MeanOnlyBatchNorm, num_features=features)}


def spike_inputs(seed: int, shape: tuple[int, ...], rate: float = 0.3) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < rate).astype(np.int64)


DENSE_CASES = {  # seed: (neuron parameters, weight range) of lava-dl's CUBA blocks
    0: ({"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.03}, (-1.0, 1.6)),
    1: ({"threshold": 0.5, "current_decay": 1.0, "voltage_decay": 0.1}, (-0.12, 0.2)),  # small weights: exponents
}


@pytest.mark.parametrize("seed", sorted(DENSE_CASES))
def test_slayer_dense_network_runs_as_in_lava_dl(slayer, netx, seed, tmp_path):
    """Dense, Dense with a BatchNorm bias, Affine readout (vThMant 2**18 - 1: never fires) on binary spikes."""
    params, (low, high) = DENSE_CASES[seed]
    cuba = slayer.block.cuba
    blocks = [cuba.Dense(params, 24, 16), cuba.Dense(normed(params, slayer, 12), 16, 12), cuba.Affine(params, 12, 5)]
    randomise(blocks, seed, low, high)
    path = tmp_path / "dense.net"
    export_blocks(blocks, path, torch.zeros(1, 24, 4))
    fx_net = netx.from_netx(path)
    assert fx_net.profile == "loihi" and fx_net.input_shape == (24,) and fx_net.input_scale is None
    assert fx_net.input_max == 1 and [layer.spiking for layer in fx_net.layers] == [True, True, False]
    assert fx_net.layers[1].bias_mant.any() and np.ptp(fx_net.layers[1].bias_mant) > 0  # per-neuron biases
    compared = assert_same_as_lava_dl(fx_net, path, spike_inputs(seed, (50, 24)), input_message_bits=0)
    result = simulate(fx_net, spike_inputs(seed, (50, 1, 24)))
    assert all(int(s.sum()) > 20 for s in result.spikes[:2]) and compared > 200
    if seed == 1:
        assert any(report["weight_exponent"] < 0 for report in fx_net.quantization)  # netx shifted its weights


def test_graded_inputs_run_as_in_lava_dl(slayer, netx, tmp_path):
    """input_message_bits = 8: layer 0 receives graded integers (kept small: |a| < 2**15, docs/fixed-point.md §8)."""
    params = {"threshold": 1.5, "current_decay": 0.5, "voltage_decay": 0.05}
    blocks = [slayer.block.cuba.Dense(params, 10, 8), slayer.block.cuba.Dense(params, 8, 6)]
    randomise(blocks, 4, -0.6, 1.0)
    path = tmp_path / "graded.net"
    export_blocks(blocks, path, torch.zeros(1, 10, 4))
    fx_net = netx.from_netx(path, input_message_bits=8)
    assert fx_net.input_max == SPEC.input_max and fx_net.quantization[0]["input_message_bits"] == 8
    inputs = np.random.default_rng(5).integers(0, 8, size=(40, 10))
    assert assert_same_as_lava_dl(fx_net, path, inputs, input_message_bits=8) > 50


def test_slayer_conv_network_runs_as_in_lava_dl(slayer, netx, tmp_path):
    """Input (C, H, W), Conv (stride 2, padding 1), Conv with a per-channel bias, Flatten, Dense."""
    params = {"threshold": 1.0, "current_decay": 0.5, "voltage_decay": 0.1}
    cuba = slayer.block.cuba
    blocks = [cuba.Input(None, delay_shift=False), cuba.Conv(params, 2, 4, 3, stride=2, padding=1),
              cuba.Conv(normed(params, slayer, 3), 4, 3, (3, 2), padding=(1, 0)), cuba.Flatten(),
              cuba.Dense(params, 3 * 4 * 4, 6)]
    randomise(blocks, 7, -0.8, 1.2)
    path = tmp_path / "conv.net"
    export_blocks(blocks, path, torch.zeros(1, 2, 8, 10, 4))
    fx_net = netx.from_netx(path)
    assert fx_net.profile == "bso" and fx_net.input_shape == (2, 8, 10)  # Lava's Conv is not §4.5's rule (§6.1)
    assert [layer.kind for layer in fx_net.layers] == ["conv", "conv", "dense"]
    assert fx_net.layers[0].stride == (2, 2) and fx_net.layers[1].padding == (1, 0)
    assert fx_net.layers[1].output_shape == (3, 4, 4) and np.ptp(fx_net.layers[1].bias_mant) > 0
    inputs = spike_inputs(8, (40, 2, 8, 10))
    compared = assert_same_as_lava_dl(fx_net, path, inputs, input_message_bits=0)
    result = simulate(fx_net, inputs[:, None])
    assert all(int(s.sum()) > 20 for s in result.spikes) and compared > 500


def test_oxford_tutorial_layout_runs_as_in_lava_dl(slayer, netx, tmp_path):
    """The layers of lava-dl's netx oxford tutorial (tutorials/lava/lib/dl/netx/oxford: CUBA Dense 200 -> 256 ->
    200, threshold 0.1, current_decay 1, voltage_decay 0.1, binary input spikes), with seeded random weights."""
    params = {"threshold": 0.1, "current_decay": 1, "voltage_decay": 0.1}
    blocks = [slayer.block.cuba.Dense(params, 200, 256), slayer.block.cuba.Dense(params, 256, 200)]
    randomise(blocks, 11, -0.08, 0.1)
    path = tmp_path / "oxford.net"
    export_blocks(blocks, path, torch.zeros(1, 200, 4))
    fx_net = netx.from_netx(path)
    assert [(layer.du, layer.dv, int(layer.vth.flat[0])) for layer in fx_net.layers] == [(4095, 410, 6)] * 2
    compared = assert_same_as_lava_dl(fx_net, path, spike_inputs(12, (60, 200), rate=0.05), input_message_bits=0)
    assert compared > 1000


def weight_cases() -> list[np.ndarray]:
    """Mixed, excitatory, inhibitory (with -256), max = 0 with negatives, odd and even, tiny and full-range."""
    rng = np.random.default_rng(21)
    cases = []
    for low, high, step in [(-256, 255, 2), (-128, 128, 1), (-7, 9, 1), (0, 256, 1), (0, 3, 1), (-256, 1, 2),
                            (-255, 1, 1), (-40, 1, 4), (1, 60, 3), (-1, 2, 1), (-200, 200, 2), (-3, 1, 1)]:
        for _ in range(6):
            cases.append(rng.integers(low // step, high // step, size=(5, 7)) * step)
    cases += [np.array([[0, -256], [-2, 0]]), np.array([[-256, 2], [0, 4]]), np.array([[254, -256]]),
              np.array([[1, 0]]), np.array([[-1, 0]]), np.array([[128, -3]])]
    return [case for case in cases if case.any()]


def test_netx_dense_synapse_is_lava_dl_and_lava_exactly(slayer, netx):
    """netx_dense_synapse == lava-dl's optimize_weight_bits followed by Lava's own clip_weights and
    truncate_weights (what PyDenseModelBitAcc applies), on many weight matrices; refused ones are exactly those
    where Lava would truncate by a negative count or netx would clip."""
    import warnings

    from lava.lib.dl.netx.utils import optimize_weight_bits
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    checked = refused = 0
    for weight in weight_cases():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # netx divides 127 by a maximum of 0 for max = 0 (mixed, as it says)
            shifted, bits, exponent, _ = optimize_weight_bits(weight.copy())
        mode = determine_sign_mode(shifted)
        dropped = 8 - bits + int(mode.name == "MIXED")
        try:
            effective, shift, num_weight_bits = netx.netx_dense_synapse(weight)
        except ValueError as error:
            assert dropped < 0 or weight.max() > 254 or weight.min() < -256, str(error)
            refused += 1
            continue
        lava = truncate_weights(clip_weights(shifted, mode, num_bits=8), mode, bits)
        assert (shift, num_weight_bits) == (-exponent, bits)
        np.testing.assert_array_equal(effective, lava, err_msg=str(weight))
        checked += 1
    assert checked > 60 and refused >= 1


def loihi_network(seed: int, binary: bool = False, readout: bool = False) -> FixedPointNetwork:
    """A netx-expressible network as the compiler makes them: 8-bit layers ``2 q`` with exponent -1 (or a binary
    layer), one vth per layer, biases with bias_exp 6, random decays."""
    rng = np.random.default_rng(seed)
    sizes = [int(n) for n in rng.integers(4, 12, size=4)]
    layers = []
    for k in range(3):
        spiking = not (readout and k == 2)
        shape = (sizes[k + 1], sizes[k])
        weights = dict(binary=True, weight=rng.choice([-1, 1], size=shape), weight_mant=int(rng.integers(1, 100))) \
            if binary and k == 1 else dict(weight=2 * rng.integers(-60, 80, size=shape), weight_exp=-1)
        layers.append(FixedPointLayer(
            name=f"hidden{k}", kind="dense", input_shape=(sizes[k],), du=int(rng.integers(0, 4096)),
            dv=int(rng.integers(0, 4096)), vth=int(rng.integers(20, 3000)) if spiking else 0,
            bias_mant=rng.integers(-30, 30, size=sizes[k + 1]), bias_exp=SPEC.state_shift, spiking=spiking, **weights))
    return FixedPointNetwork(profile="loihi", input_shape=(sizes[0],), layers=tuple(layers))


@pytest.mark.parametrize("seed", range(3))
def test_write_netx_round_trip_gives_the_network_back(netx, seed, tmp_path):
    fx_net = loihi_network(seed)
    back = netx.from_netx(netx.write_netx(fx_net, tmp_path / "ours.net"))
    assert back.layers == fx_net.layers  # names from the file's bso_deploy attribute, every integer equal
    assert (back.profile, back.input_shape, back.input_max, back.input_scale) == ("loihi", fx_net.input_shape, 255,
                                                                                  None)


def test_round_trip_of_binary_layers_and_readouts_keeps_the_arithmetic(netx, tmp_path):
    """netx has no binary weights and no non-spiking LIF: a binary layer comes back as its 8-bit equivalent
    (the same a = W x), a readout as a LIF with vThMant = 131071 (what netx runs); the run is the same while the
    readout stays below 2**23 - 64 (docs/fixed-point.md §3.7)."""
    fx_net = loihi_network(5, binary=True, readout=True)
    back = netx.from_netx(netx.write_netx(fx_net, tmp_path / "ours.net"))
    assert not back.layers[1].binary and back.layers[2].spiking and int(back.layers[2].vth.flat[0]) == SPEC.vth_max
    inputs = np.random.default_rng(6).integers(0, SPEC.input_max + 1, size=(30, 3, *fx_net.input_shape))
    ours, theirs = simulate(fx_net, inputs, record=True), simulate(back, inputs, record=True)
    assert int(ours.spikes[0].sum()) > 0 and int(ours.spikes[1].sum()) > 0
    for k in range(3):
        np.testing.assert_array_equal(theirs.spikes[k], ours.spikes[k])
        np.testing.assert_array_equal(theirs.v[k], ours.v[k])


@pytest.fixture(scope="module")
def slayer_file(slayer, tmp_path_factory):
    """A two-layer file written by lava-dl's own blocks, to be broken by the error tests."""
    params = {"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.03}
    blocks = [slayer.block.cuba.Dense(params, 6, 4), slayer.block.cuba.Dense(params, 4, 3)]
    randomise(blocks, 3, -1.0, 1.5)
    path = tmp_path_factory.mktemp("netx") / "base.net"
    export_blocks(blocks, path, torch.zeros(1, 6, 4))
    return path


def _replace(group, key: str, value) -> None:
    del group[key]
    group.create_dataset(key, data=value)


def _input_with_neuron(file) -> None:
    layer = file["layer"]
    for index in (1, 0):
        layer.move(str(index), str(index + 1))
    group = layer.create_group("0")
    group.create_dataset("type", (1,), "S10", [b"input"])
    group.create_dataset("shape", data=np.array([6]))
    file.copy(layer["1/neuron"], group, "neuron")


BREAKAGES = {  # what is done to the file -> the message
    "neuron type": (lambda f: _replace(f["layer/1/neuron"], "type", np.array([b"SDNN"], dtype="S10")),
                    r"layer 1 \(dense\): neuron/type 'SDNN' is not supported"),
    "refractory": (lambda f: _replace(f["layer/0/neuron"], "refDelay", 3),
                   r"layer 0 \(dense\): neuron/refDelay = 3 is outside \[0, 1\]; a refractory period"),
    "graded spikes": (lambda f: _replace(f["layer/0/neuron"], "gradedSpike", True),
                      r"layer 0 \(dense\): neuron/gradedSpike = True: netx 0.6 builds a binary-spiking LIF"),
    "axonal delay": (lambda f: f["layer/1"].create_dataset("delay", data=np.ones(3)),
                     r"layer 1 \(dense\): delay is present: axonal delays"),
    "no current decay": (lambda f: _replace(f["layer/0/neuron"], "iDecay", 0),
                         r"layer 0 \(dense\): neuron/iDecay = 0 is outside \[1, 4096\]"),
    "per-neuron decay": (lambda f: _replace(f["layer/1/neuron"], "vDecay", np.array([3, 4, 5])),
                         r"layer 1 \(dense\): neuron/vDecay = \[3, 4, 5\] must be one integer"),
    "silent hidden layer": (lambda f: _replace(f["layer/0/neuron"], "vThMant", 262143),
                            r"layer 0 \(dense\): neuron/vThMant = 262143: .* never fires"),
    "pooling": (lambda f: _replace(f["layer/1"], "type", np.array([b"pool"], dtype="S10")),
                r"layer 1 \(pool\): type 'pool' is not built by lava-dl's netx 0.6"),
    "input neuron": (_input_with_neuron, r"layer 0 \(input\): neuron is present: netx 0.6 builds an Input block"),
    "wide weights": (lambda f: _replace(f["layer/1"], "weight", np.full((3, 4), 300.0)),
                     r"layer 1 \(dense\): weight cannot be carried: weights in \[300, 300\] leave netx's 8-bit"),
    "wide bias": (lambda f: f["layer/1"].create_dataset("bias", data=np.array([1, 5000, 2])),
                  r"layer 1 \(dense\): bias has values in \[1, 5000\], outside Lava's 13-bit bias_mant"),
    "shapes": (lambda f: _replace(f["layer/1"], "weight", np.ones((3, 5))),
               r"layer 1 \(dense\): weight has 5 inputs, but the layer before gives 4"),
}


@pytest.mark.parametrize("case", sorted(BREAKAGES))
def test_what_netx_does_not_run_as_written_is_refused_in_one_line(netx, slayer_file, case, tmp_path):
    import shutil

    import h5py

    path = shutil.copy(slayer_file, tmp_path / "broken.net")
    change, message = BREAKAGES[case]
    with h5py.File(path, "r+") as file:
        change(file)
    with pytest.raises(ValueError, match=message) as error:
        netx.from_netx(path)
    assert str(error.value).startswith(f"{path}: layer ") and "\n" not in str(error.value)


def test_files_that_are_not_netx_are_refused(netx, tmp_path):
    import h5py

    text = tmp_path / "notes.net"
    text.write_text("not a network")
    with pytest.raises(ValueError, match=f"^{text} is not a lava-dl netx file: it is not HDF5$"):
        netx.from_netx(text)
    empty = tmp_path / "empty.net"
    with h5py.File(empty, "w") as file:
        file.create_group("weights")
    with pytest.raises(ValueError, match=f"^{empty} is not a lava-dl netx file: it has no .*'layer' group$"):
        netx.from_netx(empty)
    only_input = tmp_path / "input.net"
    with h5py.File(only_input, "w") as file:
        file.create_group("layer/0").create_dataset("type", (1,), "S10", [b"input"])
        file["layer/0"].create_dataset("shape", data=np.array([3]))
    with pytest.raises(ValueError, match=f"^{only_input}: the netx file has no dense or conv layer$"):
        netx.from_netx(only_input)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        netx.from_netx(tmp_path / "missing.net")
    with pytest.raises(ValueError, match=r"input_message_bits must be an integer in \[0, 8\]"):
        netx.from_netx(netx.write_netx(loihi_network(0), tmp_path / "ours.net"), input_message_bits=16)


def test_conv_files_netx_cannot_connect_are_refused(slayer, netx, tmp_path):
    params = {"threshold": 1.0, "current_decay": 0.5, "voltage_decay": 0.1}
    cuba = slayer.block.cuba
    no_input = [cuba.Conv(params, 1, 2, 3), cuba.Flatten(), cuba.Dense(params, 2 * 4 * 4, 3)]
    randomise(no_input, 1, -1.0, 1.0)
    export_blocks(no_input, tmp_path / "no_input.net", torch.zeros(1, 1, 6, 6, 2))
    with pytest.raises(ValueError, match=r"layer 0 \(conv\): type 'conv' needs a \(C, H, W\) input"):
        netx.from_netx(tmp_path / "no_input.net")
    no_flatten = [cuba.Input(None, delay_shift=False), cuba.Conv(params, 1, 2, 3), cuba.Dense(params, 32, 3)]
    randomise(no_flatten, 2, -1.0, 1.0)
    export_blocks(no_flatten[:2], tmp_path / "no_flatten.net", torch.zeros(1, 1, 6, 6, 2))
    import h5py

    with h5py.File(tmp_path / "no_flatten.net", "r+") as file:  # a dense layer written straight after the conv
        with torch.no_grad():
            no_flatten[2](torch.zeros(1, 32, 2))
        no_flatten[2].export_hdf5(file["layer"].create_group("2"))
    with pytest.raises(ValueError, match=r"layer 2 \(dense\): type 'dense' follows a \(C, H, W\) = \(2, 4, 4\) "
                                         r"output without a 'flatten' layer"):
        netx.from_netx(tmp_path / "no_flatten.net")
