"""Tests for bso_deploy.encoding: direct and rate coding, seeding, input validation."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bso_deploy.encoding import ENCODERS, DirectEncoder, EventFramesEncoder, RateEncoder, make_encoder, step_seed


def _batch(seed: int = 0, shape=(4, 3, 5)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- registry


def test_encoder_names():
    assert set(ENCODERS) == {"direct", "rate", "frames"}
    assert isinstance(make_encoder("direct"), DirectEncoder)
    assert isinstance(make_encoder("frames", seed=3), EventFramesEncoder)
    assert make_encoder("rate", seed=7) == RateEncoder(seed=7)


def test_unknown_encoder_lists_valid_names():
    with pytest.raises(ValueError, match="unknown encoder 'latency'") as error:
        make_encoder("latency")
    assert "direct" in str(error.value) and "rate" in str(error.value)


@pytest.mark.parametrize("seed, error", [(-1, ValueError), (2**64, ValueError), (0.5, TypeError),
                                         (False, TypeError)])
def test_bad_seed_rejected(seed, error):
    with pytest.raises(error, match="seed"):
        RateEncoder(seed=seed)
    with pytest.raises(error, match="seed"):
        make_encoder("direct", seed=seed)


# ---------------------------------------------------------------- input validation


@pytest.mark.parametrize("encoder", [DirectEncoder(), RateEncoder(seed=1)], ids=["direct", "rate"])
@pytest.mark.parametrize("bad, word", [(math.nan, "NaN"), (math.inf, "Inf"), (-math.inf, "Inf")])
def test_non_finite_input_rejected(encoder, bad, word):
    x = _batch()
    x[1, 2, 3] = bad
    with pytest.raises(ValueError, match=word):
        encoder(x, 0)


@pytest.mark.parametrize("encoder", [DirectEncoder(), RateEncoder()], ids=["direct", "rate"])
def test_bad_arguments_rejected(encoder):
    with pytest.raises(TypeError, match="floating-point"):
        encoder(torch.ones(3, dtype=torch.int64), 0)
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        encoder([0.5, 0.5], 0)
    with pytest.raises(ValueError, match="t must"):
        encoder(_batch(), -1)
    with pytest.raises(ValueError, match="key must"):
        encoder(_batch(), 0, key=-2)


# ---------------------------------------------------------------- direct


def test_direct_returns_input_at_every_step():
    x = _batch(seed=3)
    encoder = DirectEncoder()
    for t in range(4):
        out = encoder(x, t, key=t + 1)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert torch.equal(out, x)


# ---------------------------------------------------------------- rate


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rate_is_binary_with_input_shape_and_dtype(dtype):
    x = _batch().to(dtype)
    spikes = RateEncoder(seed=2)(x, 0)
    assert spikes.shape == x.shape and spikes.dtype == dtype
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}


def test_rate_is_reproducible_and_independent_of_call_order():
    x = _batch()
    encoder = RateEncoder(seed=5)
    forward = [encoder(x, t, key=2) for t in range(6)]
    backward = [RateEncoder(seed=5)(x, t, key=2) for t in reversed(range(6))][::-1]
    for first, second in zip(forward, backward):
        assert torch.equal(first, second)
    assert any(not torch.equal(forward[0], later) for later in forward[1:])


def test_rate_depends_on_seed_key_and_step():
    x = torch.full((64, 64), 0.5)
    reference = RateEncoder(seed=1)(x, 3, key=4)
    assert not torch.equal(reference, RateEncoder(seed=2)(x, 3, key=4))
    assert not torch.equal(reference, RateEncoder(seed=1)(x, 3, key=5))
    assert not torch.equal(reference, RateEncoder(seed=1)(x, 4, key=4))


def test_rate_clamps_probability():
    x = torch.tensor([-3.0, 0.0, 1.0, 2.5]).repeat(50, 1)
    encoder = RateEncoder(seed=0)
    for t in range(5):
        spikes = encoder(x, t)
        assert torch.equal(spikes, torch.tensor([0.0, 0.0, 1.0, 1.0]).repeat(50, 1))


def test_rate_mean_matches_probability():
    probabilities = torch.tensor([0.05, 0.25, 0.5, 0.8, 0.97])
    x = probabilities.view(1, -1).repeat(400, 1)  # 400 elements per probability
    steps = 50
    encoder = RateEncoder(seed=123)
    total = sum(encoder(x, t, key=1) for t in range(steps))
    draws = x.shape[0] * steps
    rate = total.sum(dim=0) / draws
    binomial_std = torch.sqrt(probabilities * (1 - probabilities) / draws)
    assert torch.all((rate - probabilities).abs() <= 5 * binomial_std), (rate, probabilities)
    # Each element on its own also tracks its probability (looser: fewer draws per element).
    per_element = total / steps
    element_std = torch.sqrt(probabilities * (1 - probabilities) / steps)
    assert (per_element - probabilities).abs().max() <= 6 * element_std.max()


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.floats(min_value=-2.0, max_value=3.0, width=32), min_size=1, max_size=30),
       seed=st.integers(0, 2**64 - 1), key=st.integers(0, 10**6), t=st.integers(0, 10**4))
def test_rate_spikes_only_where_probability_allows(values, seed, key, t):
    x = torch.tensor(values, dtype=torch.float32)
    spikes = RateEncoder(seed=seed)(x, t, key=key)
    assert torch.all(spikes[x <= 0] == 0)
    assert torch.all(spikes[x >= 1] == 1)
    assert torch.equal(spikes, RateEncoder(seed=seed)(x.clone(), t, key=key))


def test_step_seed_range_and_no_linear_collisions():
    seeds = {step_seed(0, key, t) for key in range(50) for t in range(200)}
    assert len(seeds) == 50 * 200
    assert all(0 <= value < 2**63 for value in seeds)
    assert step_seed(2**64 - 1, 2**64 - 1, 2**64 - 1) < 2**63
    assert step_seed(3, 0, 9_973) != step_seed(3, 1, 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_rate_on_cuda_is_reproducible_and_stays_on_device():
    x = _batch(shape=(32, 100)).cuda()
    encoder = RateEncoder(seed=8)
    spikes = encoder(x, 2, key=1)
    assert spikes.device == x.device and spikes.dtype == x.dtype and spikes.shape == x.shape
    assert torch.equal(spikes, encoder(x, 2, key=1))
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(DirectEncoder()(x, 0), x)


# ---------------------------------------------------------------- frames (samples with a time axis)


def test_frames_feed_frame_t_at_step_t_unchanged():
    x = torch.randint(0, 9, (3, 4, 2, 5, 5)).to(torch.float32)  # (batch, T, P, H, W) event counts
    encoder = EventFramesEncoder()
    for t in range(4):
        frame = encoder(x, t, key=11)
        assert frame.shape == (3, 2, 5, 5) and frame.dtype == x.dtype
        assert torch.equal(frame, x[:, t])  # counts larger than 1 pass as they are
        assert torch.equal(encoder(x, t, key=0), frame)  # deterministic: the key plays no part


def test_frames_reject_bad_inputs():
    encoder = EventFramesEncoder()
    x = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"time step 3 asked, but the samples hold 3 frames; use --time-steps 3"):
        encoder(x, 3)
    with pytest.raises(ValueError, match=r"takes samples with a time axis"):
        encoder(torch.zeros(2, 4), 0)
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        encoder([[0.0]], 0)
    with pytest.raises(TypeError, match="floating-point"):
        encoder(torch.zeros(2, 3, 4, dtype=torch.int64), 0)
    x[1, 2, 0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        encoder(x, 2)
    with pytest.raises(ValueError, match="t must"):
        encoder(x, -1)
