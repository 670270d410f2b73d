"""export/nir/conversions.py: dt/tau conventions of bso-deploy, snnTorch and Norse."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require


@pytest.fixture(scope="module")
def conversions():
    require("nir")
    return require("bso_deploy.export.nir.conversions")


def test_euler_coefficients_by_hand(conversions):
    # tau = 4 ms, dt = 1 ms, r = 2: decay 1 - 1/4, leak 1/4, gain 2/4
    coefficients = conversions.euler_coefficients(4e-3, 2.0, 1e-3)
    assert coefficients.decay == pytest.approx(0.75, rel=1e-15)
    assert coefficients.leak == pytest.approx(0.25, rel=1e-15)
    assert coefficients.gain == pytest.approx(0.5, rel=1e-15)
    assert conversions.decay_from_tau(4e-3, 1e-3) == pytest.approx(0.75, rel=1e-15)
    assert conversions.input_gain(4e-3, 2.0, 1e-3) == pytest.approx(0.5, rel=1e-15)


def test_snntorch_convention_has_unit_gain_and_beta_decay(conversions):
    for beta in (0.5, 0.8, 0.9, 0.95, 0.99):
        tau, r = conversions.snntorch_leaky_to_nir(beta)  # dt = 1e-4 as snnTorch hard-codes
        assert tau == pytest.approx(1e-4 / (1 - beta), rel=1e-14)
        assert conversions.decay_from_tau(tau, conversions.SNNTORCH_DT) == pytest.approx(beta, rel=1e-14)
        assert conversions.input_gain(tau, r, conversions.SNNTORCH_DT) == pytest.approx(1.0, rel=1e-14)


def test_norse_convention_has_gain_dt_over_tau(conversions):
    tau, r = conversions.norse_lif_to_nir(np.array([100.0, 200.0]))  # tau_mem_inv in 1/s
    np.testing.assert_allclose(tau, [0.01, 0.005])
    np.testing.assert_array_equal(r, [1.0, 1.0])
    np.testing.assert_allclose(conversions.input_gain(tau, r, 1e-3), [0.1, 0.2], rtol=1e-14)
    np.testing.assert_allclose(conversions.decay_from_tau(tau, 1e-3), [0.9, 0.8], rtol=1e-14)


def test_tau_from_decay_inverts_decay_from_tau(conversions):
    decay = np.array([0.0, 0.5, 0.9, 0.999])
    tau = conversions.tau_from_decay(decay, 1e-3)
    np.testing.assert_allclose(conversions.decay_from_tau(tau, 1e-3), decay, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(conversions.unit_gain_r(tau, 1e-3), tau / 1e-3)
    assert conversions.lif_steps_from_tau(2e-3, 1e-3) == pytest.approx(2.0)


@pytest.mark.parametrize("dt", [1e-3, 1e-4, 1.0, 0.7e-3])
def test_lif_tau_r_reproduce_trained_decay_bit_exactly(conversions, dt):
    steps = [1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 8.0, 10.0, 16.0, 100.0, *np.round(np.arange(1.1, 6.0, 0.1), 2)]
    exact = 0
    for tau_steps in steps:
        tau, r = conversions.lif_tau_r_for_steps(float(tau_steps), dt)
        coefficients = conversions.euler_coefficients(tau, r, dt)
        assert tau == pytest.approx(dt * tau_steps, rel=1e-14)
        assert r == pytest.approx(tau_steps, rel=1e-14)
        assert float(coefficients.gain) == pytest.approx(1.0, rel=1e-15)
        assert float(coefficients.decay) == pytest.approx(1.0 - 1.0 / tau_steps, rel=1e-15)
        bit_exact = float(coefficients.decay) == 1.0 - 1.0 / float(tau_steps) and float(coefficients.gain) == 1.0
        if tau_steps in (2.0, 3.0, 4.0, 5.0, 8.0, 10.0, 16.0, 100.0):  # integer time constants
            assert bit_exact, tau_steps
        exact += bit_exact
    # other values: nearly all (float64 cannot always hit both targets; the others are 1 ulp away)
    assert exact >= 0.9 * len(steps)


def test_bad_arguments_raise(conversions):
    with pytest.raises(ValueError, match="dt"):
        conversions.euler_coefficients(1e-3, 1.0, 0.0)
    with pytest.raises(ValueError, match="tau"):
        conversions.euler_coefficients(-1e-3, 1.0, 1e-3)
    with pytest.raises(ValueError, match="decay"):
        conversions.tau_from_decay(1.0, 1e-3)
    with pytest.raises(ValueError, match="tau_steps"):
        conversions.lif_tau_r_for_steps(1.0, 1e-3)
    with pytest.raises(ValueError, match="dt"):
        conversions.lif_tau_r_for_steps(2.0, float("nan"))
