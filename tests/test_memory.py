"""Online training memory is constant in T; BPTT's grows (so the meter can see growth)."""

import torch

from bso_deploy.memory import SavedTensorMeter
from bso_deploy.models import build_mlp


def peak_saved_bytes(time_steps: int, online: bool) -> int:
    torch.manual_seed(0)
    model = build_mlp((16, 32, 32, 4), binary="hidden")
    model.set_online(online)
    x = torch.rand(8, 16) * 2
    with SavedTensorMeter(list(model.parameters())) as meter:
        model.reset_state()
        total = 0
        for _ in range(time_steps):
            out = model.step(x)
            if online:
                out.sum().backward()
                meter.release()
            else:
                total = total + out.sum()
        if not online:
            total.backward()
            meter.release()
    return meter.peak_bytes


def test_online_activation_memory_is_independent_of_time_steps():
    short, long = peak_saved_bytes(2, online=True), peak_saved_bytes(32, online=True)
    assert short > 0
    assert long == short


def test_bptt_activation_memory_grows_with_time_steps():
    short, long = peak_saved_bytes(2, online=False), peak_saved_bytes(32, online=False)
    assert long >= 10 * short
