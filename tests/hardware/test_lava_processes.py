"""hardware/lava/processes: our Lava processes under Lava's runtime, one process at a time.

A hand-derived trace of one BsoNeuron (strict threshold, subtractive reset, floor of a negative bias exponent,
bias_delay, the restart of a sample), and the synapse processes (binary and full precision, dense and conv
with pooling) against the simulator's ``synapse_step_int`` with the one-step delay and the restart. Inputs
come from Lava's Injector, outputs leave through its Extractor (docs/lava.md).
"""

from __future__ import annotations

import numpy as np
import pytest
from bso_deploy.hardware.network import FixedPointLayer
from bso_deploy.hardware.simulator import (
    NeuronState,
    lif_step_events_int,
    neuron_params,
    synapse_params,
    synapse_step_int,
)
from bso_deploy.hardware.spec import SPEC


def _run(lava_io, source_shape, stream, process_in, process_out, out_shape, tag="fixed_pt"):
    """Send ``stream`` (steps, *source_shape) into ``process_in`` and read ``process_out`` every step."""
    return _run_many(lava_io, source_shape, stream, process_in, [(process_out, out_shape)], tag)[0]


def _run_many(lava_io, source_shape, stream, process_in, outputs, tag="fixed_pt"):
    """:func:`_run` reading every (port, shape) of ``outputs``: one array (steps, *shape) per port."""
    injector = lava_io.Injector(shape=source_shape, buffer_size=len(stream))
    extractors = [lava_io.Extractor(shape=shape, buffer_size=len(stream)) for _, shape in outputs]
    injector.out_port.connect(process_in)
    for (port, _), extractor in zip(outputs, extractors):
        port.connect(extractor.in_port)
    models = {lava_io.Injector: lava_io.PyLoihiInjectorModel, lava_io.Extractor: lava_io.PyLoihiExtractorModel}
    injector.create_runtime(run_cfg=lava_io.Loihi2SimCfg(select_tag=tag, exception_proc_model_map=models))
    try:
        for values in stream:
            injector.send(np.asarray(values, dtype=np.float64))
        injector.run(condition=lava_io.RunSteps(num_steps=len(stream)))
        return [np.stack([extractor.receive() for _ in range(len(stream))]) for extractor in extractors]
    finally:
        injector.stop()


@pytest.fixture(scope="module")
def lava_io():
    from conftest import require_lava

    require_lava()
    from types import SimpleNamespace

    from bso_deploy.hardware.lava.processes import neuron, synapse
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
    from lava.proc.io.injector import Injector, PyLoihiInjectorModel

    return SimpleNamespace(neuron=neuron, synapse=synapse, RunSteps=RunSteps, Loihi2SimCfg=Loihi2SimCfg,
                           Injector=Injector, Extractor=Extractor, PyLoihiInjectorModel=PyLoihiInjectorModel,
                           PyLoihiExtractorModel=PyLoihiExtractorModel)


def test_neuron_hand_trace_with_subtract_reset_bias_delay_and_restart(lava_io) -> None:
    """du = 4095 (u = a << 6), dv = 0, vth = 10 (640), B = -3 >> 1 = -2 from step 2 of each 3-step sample:
    step 0: v = 320; step 1: v = 640, not > 640; step 2: v = 958 fires, 958 - 640 = 318; step 3 restarts
    (u = v = 0); step 4: v = 768 fires (no bias yet) -> 128; step 5: 128 + 0 - 2 = 126."""
    neuron = lava_io.neuron.BsoNeuron(shape=(1,), du=SPEC.decay_max, dv=0, vth=10, bias_mant=-3, bias_exp=-1,
                                      bias_delay=2, reset="subtract", sample_steps=3)
    a = np.array([5, 5, 5, 0, 12, 0]).reshape(6, 1)
    probe = _run(lava_io, (1,), a, neuron.a_in, neuron.probe_out, (3, 1))[:, :, 0]
    np.testing.assert_array_equal(probe[:, 0], [0, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(probe[:, 1], [320, 320, 320, 0, 768, 0])
    np.testing.assert_array_equal(probe[:, 2], [320, 640, 318, 0, 128, 126])


@pytest.mark.parametrize("seed", [0, 1])
def test_neuron_with_random_registers_wraps_and_saturates_as_the_simulator(lava_io, seed: int) -> None:
    """Random per-neuron vth and bias (negative exponents too), both resets, du/dv edge values and synaptic
    inputs up to 2**20 (u wraps, v saturates, |a| > 2**15 - 1) over two samples: spikes, u, v and the running
    counts of §5.6 equal the simulator's ``lif_step_events_int`` step by step."""
    rng = np.random.default_rng(seed)
    shape, sample_steps, steps = (9,), 5, 10
    registers = dict(du=(0, SPEC.decay_max)[seed], dv=(SPEC.decay_unity // 2, 0)[seed],
                     vth=rng.integers(0, SPEC.vth_max + 1, shape) >> 4, bias_mant=rng.integers(-4096, 4096, shape),
                     bias_exp=rng.integers(-8, 8, shape), bias_delay=2, reset=("subtract", "zero")[seed])
    neuron = lava_io.neuron.BsoNeuron(shape=shape, sample_steps=sample_steps, **registers)
    a = rng.integers(-(1 << 20), 1 << 20, (steps, *shape)) >> rng.integers(0, 8, (steps, *shape))
    probe, counts = _run_many(lava_io, shape, a, neuron.a_in, [(neuron.probe_out, (3, *shape)),
                                                               (neuron.saturation_out, (3, *shape))])
    layer = FixedPointLayer("n", "dense", (1,), weight=np.ones((shape[0], 1), np.int64), **registers)
    params = neuron_params(layer)
    seen = np.zeros(3, np.int64)
    for t in range(steps):
        step = t % sample_steps
        if step == 0:
            state, running = NeuronState(u=np.zeros((1, *shape), np.int64), v=np.zeros((1, *shape), np.int64)), 0
        spikes, state, events = lif_step_events_int(a[t][None], state, params, step)
        running = running + np.stack(events)[:, 0].astype(np.int64)  # (v, u, a), as saturation_out stacks them
        np.testing.assert_array_equal(probe[t], np.stack([spikes[0], state.u[0], state.v[0]]), err_msg=f"step {t}")
        np.testing.assert_array_equal(counts[t], running, err_msg=f"step {t}: counts")
        seen += running.sum(axis=1) * (step == sample_steps - 1)
    assert np.all(seen > 0) and probe[:, 0].any(), seen  # it clips, wraps and sees |a| > 2**15 - 1, and fires


def test_non_spiking_readout_sums_and_float_model(lava_io) -> None:
    """§3.7: spiking=False never fires, v is the running sum; floating_pt: v = (1 - dv) v + a + b, zero reset."""
    readout = lava_io.neuron.BsoNeuron(shape=(2,), du=SPEC.decay_max, dv=0, vth=0, bias_mant=[1, -1],
                                       spiking=False)
    a = np.array([[3, -3], [4, 0], [0, 5]])
    probe = _run(lava_io, (2,), a, readout.a_in, readout.probe_out, (3, 2))
    assert not probe[:, 0].any()
    np.testing.assert_array_equal(probe[:, 2], np.cumsum((a << SPEC.state_shift) + [1, -1], axis=0))
    floating = lava_io.neuron.BsoNeuron(shape=(2,), du=1.0, dv=0.5, vth=np.array([1.0, 10.0]), bias_mant=0.25)
    probe = _run(lava_io, (2,), np.array([[0.5, 0.5], [0.5, 0.5], [0.0, 0.0]]), floating.a_in,
                 floating.probe_out, (3, 2), tag="floating_pt")
    v_before = [[0.75, 0.75], [1.125, 1.125], [0.25, 0.8125]]  # 0.5 * 0.75 + 0.75 = 1.125 > 1 fires, then 0
    np.testing.assert_array_equal(probe[:, 0], [[0, 0], [1, 0], [0, 0]])
    np.testing.assert_allclose(probe[:, 2], np.where(probe[:, 0] > 0, 0.0, v_before))


def _expected_synapse(layer: FixedPointLayer, input_max: int, x: np.ndarray, sample_steps: int) -> np.ndarray:
    params = synapse_params(layer, input_max)
    a_next = np.stack([synapse_step_int(step[None], params)[0] for step in x])
    delayed = np.zeros_like(a_next)
    for t in range(1, len(x)):
        if t % sample_steps:  # the first step of each sample delivers an empty buffer (§3.8, §4.8)
            delayed[t] = a_next[t - 1]
    return delayed


@pytest.mark.parametrize("binary", [True, False])
def test_synapse_dense_and_conv_match_the_simulator_with_delay_and_restart(lava_io, binary: bool) -> None:
    rng = np.random.default_rng(int(binary))
    steps, sample_steps = 12, 4
    cases = [  # (kind, input shape, weight shape, pool, stride, padding, input_max, weight_exp, rounding, sign)
        ("dense", (2, 4, 4), (5, 8), (2, 2), (1, 1), (0, 0), 1, -2, "floor", "mixed"),
        ("conv", (3, 6, 6), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), SPEC.input_max, -5, "floor", "mixed"),
        ("conv", (2, 8, 8), (3, 2, 2, 2), (2, 2), (2, 2), (0, 0), 1, 3, "floor", "mixed"),
        ("dense", (12,), (6, 12), (1, 1), (1, 1), (0, 0), SPEC.input_max, -3, "nearest", "excitatory"),
        ("conv", (2, 6, 6), (3, 2, 3, 3), (2, 2), (1, 1), (1, 1), 1, -1, "nearest", "inhibitory"),
    ]
    for kind, in_shape, w_shape, pool, stride, padding, input_max, weight_exp, rounding, sign in cases:
        if binary:
            weight, mant = rng.choice(SPEC.binary_weight_values, size=w_shape), int(rng.integers(1, 128))
        else:
            weight, mant = rng.integers(SPEC.weight_min, SPEC.weight_max + 1, size=w_shape), 1  # odd values too
            if sign != "mixed":  # Lava Dense's other sign modes (§4.5), -256 clipped in the inhibitory one
                weight = np.abs(weight) % (SPEC.weight_max + 1) if sign == "excitatory" else -np.abs(weight)
        layer = FixedPointLayer("s", kind, in_shape, weight=weight, binary=binary, weight_mant=mant,
                                weight_exp=weight_exp, pool=pool, stride=stride, padding=padding,
                                shift_rounding=rounding)
        geometry = dict(input_shape=in_shape, kind=kind, pool=pool, stride=stride, padding=padding,
                        input_max=input_max, sample_steps=sample_steps, shift_rounding=rounding)
        if binary:
            process = lava_io.synapse.BinarySynapse(signs=weight, weight_mant=mant, weight_exp=weight_exp, **geometry)
            assert process.weight_bits.init.dtype == np.uint8 and process.weight_bits.init.size == -(-weight.size // 8)
        else:
            process = lava_io.synapse.FullPrecisionSynapse(weight=weight, weight_exp=weight_exp, **geometry)
        x = rng.integers(0, input_max + 1, size=(steps, *in_shape))
        got = _run(lava_io, in_shape, x, process.s_in, process.a_out, layer.output_shape)
        expected = _expected_synapse(layer, input_max, x, sample_steps)
        assert np.abs(expected).max() > 0
        np.testing.assert_array_equal(got, expected, err_msg=f"{kind} {in_shape} binary={binary} {rounding} {sign}")


def test_packed_signs_round_trip_and_bad_arguments(lava_io) -> None:
    rng = np.random.default_rng(3)
    signs = rng.choice(SPEC.binary_weight_values, size=(7, 3, 3, 3))
    bits = lava_io.synapse.pack_signs(signs)
    assert bits.dtype == np.uint8 and bits.size == -(-signs.size // 8)
    np.testing.assert_array_equal(lava_io.synapse.unpack_signs(bits, signs.shape), signs)
    with pytest.raises(ValueError, match="-1/\\+1"):
        lava_io.synapse.pack_signs(np.array([1, 0, -1]))
    with pytest.raises(ValueError, match="reset"):
        lava_io.neuron.BsoNeuron(shape=(2,), reset="hold")
    with pytest.raises(ValueError, match="sample_steps"):
        lava_io.neuron.BsoNeuron(shape=(2,), sample_steps=-1)
    with pytest.raises(ValueError, match="weight"):
        lava_io.synapse.FullPrecisionSynapse(weight=np.zeros((3, 5), dtype=np.int64), input_shape=(4,))
