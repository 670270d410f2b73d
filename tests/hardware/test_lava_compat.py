"""Tests for hardware/lava/compat.py: the Python 3.11 import fix for lava-nc 0.10.0, and Lava's import in a
process whose multiprocessing start method is already fixed.

The end-to-end test runs a RingBuffer -> Dense -> LIF network under Lava's real fixed_pt runtime and
compares u, v and spikes bit for bit with a NumPy re-implementation of the integer semantics in
shared/reference/lava-loihi-fixed-point.md, written here independently of the project's simulator.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from conftest import require

N_IN, N_OUT, NUM_STEPS = 12, 6, 30
U_BITS, V_BITS = 24, 24  # Loihi state widths (two's complement)
DECAY_ONE, DECAY_SHIFT = 4096, 12  # decays are fractions of 4096
STATE_SHIFT = 6  # input and threshold are MSB-aligned by << 6


def _ensure_lava() -> None:
    """Install the fix, or skip (fail under CI=true) naming lava-nc when it is missing."""
    compat = require("bso_deploy.hardware.lava.compat")
    try:
        compat.ensure_lava_importable()
    except ImportError:
        require("lava.magma.compiler.var_model")  # skips/fails with the conftest message
        raise


def _finder_count() -> int:
    return sum(type(finder).__name__ == "_LavaSourceFixFinder" for finder in sys.meta_path)


def _shift_toward_zero(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * (np.abs(x) >> DECAY_SHIFT)


def _lif_reference(a_in, du, dv, vth, bias_mant, bias_exp):
    """Loihi fixed-point CUBA LIF for input a_in (n, T) -> u, v, spikes, each (T, n) int64."""
    u = np.zeros(a_in.shape[0], dtype=np.int64)
    v = np.zeros_like(u)
    bias = np.where(
        bias_exp >= 0, bias_mant << np.maximum(bias_exp, 0), bias_mant >> np.maximum(-bias_exp, 0)
    )
    u_half, v_max = 1 << (U_BITS - 1), (1 << (V_BITS - 1)) - 1
    us, vs, spikes = [], [], []
    for a in a_in.T.astype(np.int64):
        u = _shift_toward_zero(u * (DECAY_ONE - (du + 1))) + (a << STATE_SHIFT)
        u = (u + u_half) % (2 * u_half) - u_half
        v = _shift_toward_zero(v * (DECAY_ONE - dv)) + u + bias
        v = np.clip(v, -v_max, v_max)
        s = v > (vth << STATE_SHIFT)
        v = np.where(s, 0, v)
        us.append(u)
        vs.append(v)
        spikes.append(s.astype(np.int64))
    return np.array(us), np.array(vs), np.array(spikes)


def test_hook_is_idempotent() -> None:
    _ensure_lava()
    compat = require("bso_deploy.hardware.lava.compat")
    compat.ensure_lava_importable()
    compat.ensure_lava_importable()
    assert _finder_count() == 1  # on every version: the start-method fix is not version-bound
    assert compat.lava_version().count(".") >= 1


def test_missing_lava_raises_import_error_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    compat = require("bso_deploy.hardware.lava.compat")
    monkeypatch.delitem(sys.modules, "lava.magma.compiler.var_model", raising=False)
    monkeypatch.setattr(compat.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"lava-nc.*bootstrap\.sh.*--ignore-requires-python"):
        compat.ensure_lava_importable()
    monkeypatch.setattr(compat, "_DISTRIBUTION", "lava-nc-not-installed")
    with pytest.raises(ImportError, match="lava-nc is not installed"):
        compat.lava_version()


def test_half_imported_var_model_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    compat = require("bso_deploy.hardware.lava.compat")
    monkeypatch.setitem(sys.modules, "lava.magma.compiler.var_model", ModuleType("half_imported"))
    with pytest.raises(ImportError, match="incomplete"):
        compat.ensure_lava_importable()


_FAKE_BODY = (
    "from dataclasses import dataclass\n\n\n{decorator}\nclass ByteEncoder:\n    base: int = 0\n\n\n"
    "@dataclass\nclass CoreEncoder:\n    x: ByteEncoder = ByteEncoder()\n"
)


@pytest.mark.parametrize(("decorator", "patched"), [("@dataclass", True), ("@dataclass(frozen=True)", False)])
def test_hook_patches_only_the_known_source(tmp_path: Path, decorator: str, patched: bool) -> None:
    """A var_model.py earlier on sys.path (lava is a namespace package) stands in for other versions."""
    _ensure_lava()
    fake = tmp_path / "lava" / "magma" / "compiler" / "var_model.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(_FAKE_BODY.format(decorator=decorator))
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from bso_deploy.hardware.lava.compat import ensure_lava_importable\n"
        "ensure_lava_importable()\n"
        "import lava.magma.compiler.var_model as vm\n"
        f"assert vm.__file__ == {str(fake)!r}, vm.__file__\n"
        "hash(vm.CoreEncoder().x)\n"
        "print(type(vm.__spec__.loader).__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (result.stdout.strip() == "_PatchedSourceLoader") == (patched and sys.version_info >= (3, 11))


def test_byte_encoder_is_hashable_and_encoders_construct() -> None:
    _ensure_lava()
    var_model = require("lava.magma.compiler.var_model")
    assert hash(var_model.ByteEncoder()) == hash(var_model.ByteEncoder())
    assert var_model.CoreEncoder().x == var_model.ByteEncoder(base=0, len=0, ptr=0)
    assert var_model.ChipEncoder(z=var_model.ByteEncoder(base=1)).z.base == 1
    assert var_model.AxonEncoder().hi.ptr == 0
    # Tracebacks still name the real file in site-packages.
    assert var_model.__file__.endswith(os.path.join("lava", "magma", "compiler", "var_model.py"))


def run_tiny_network_and_check() -> None:
    """Run RingBuffer -> Dense -> LIF under Lava's fixed_pt runtime and compare u, v and spikes bit for bit
    with :func:`_lif_reference`. Also called in subprocesses (tests below), hence a plain function."""
    _ensure_lava()
    source = require("lava.proc.io.source")
    sink = require("lava.proc.io.sink")
    dense_process = require("lava.proc.dense.process")
    lif_process = require("lava.proc.lif.process")
    monitor_process = require("lava.proc.monitor.process")
    run_configs = require("lava.magma.core.run_configs")
    run_conditions = require("lava.magma.core.run_conditions")

    rng = np.random.default_rng(1234)
    spikes_in = (rng.random((N_IN, NUM_STEPS)) < 0.4).astype(np.int32)
    # Even weights: MIXED sign mode drops the lowest bit of each 8-bit weight, so even values pass as is.
    weights = 2 * rng.integers(-25, 26, size=(N_OUT, N_IN))
    du, dv, vth = 410, 273, 400
    bias_mant = np.array([3, -2, 0, 5, 1, -4], dtype=np.int64)
    bias_exp = np.array([2, 3, 0, 1, 4, 2], dtype=np.int64)

    ring = source.RingBuffer(data=spikes_in)
    dense = dense_process.Dense(weights=weights)
    lif = lif_process.LIF(shape=(N_OUT,), du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp)
    spike_sink = sink.RingBuffer(shape=(N_OUT,), buffer=NUM_STEPS)
    ring.s_out.connect(dense.s_in)
    dense.a_out.connect(lif.a_in)
    lif.s_out.connect(spike_sink.a_in)
    monitors = {name: monitor_process.Monitor() for name in ("u", "v")}
    for name, monitor in monitors.items():
        monitor.probe(getattr(lif, name), NUM_STEPS)

    try:
        lif.run(
            condition=run_conditions.RunSteps(num_steps=NUM_STEPS),
            run_cfg=run_configs.Loihi2SimCfg(select_tag="fixed_pt"),
        )
        u_lava, v_lava = (monitors[name].get_data()[lif.name][name] for name in ("u", "v"))
        spikes_lava = spike_sink.data.get().T
    finally:
        lif.stop()

    # Dense sends on step t what it summed on step t-1: one step of delay, zero input on step 1.
    a_in = np.zeros((N_OUT, NUM_STEPS), dtype=np.int64)
    a_in[:, 1:] = weights @ spikes_in[:, :-1]
    u_ref, v_ref, spikes_ref = _lif_reference(a_in, du, dv, vth, bias_mant, bias_exp)

    assert 0 < spikes_ref.sum() < spikes_ref.size  # the run exercises both spiking and silence
    assert (u_ref < 0).any() and (v_ref < 0).any()  # and truncation toward zero of negative states
    np.testing.assert_array_equal(u_lava, u_ref)
    np.testing.assert_array_equal(v_lava, v_ref)
    np.testing.assert_array_equal(spikes_lava, spikes_ref)


def test_fixed_point_network_matches_integer_reference() -> None:
    run_tiny_network_and_check()


_TESTS = Path(__file__).resolve().parent
# How a program fixes its start method before Lava's runtime is imported (Lava then calls
# mp.set_start_method('fork') itself): tqdm's first bar creates a multiprocessing lock, as TrainingRun.fit does.
_FIX_START_METHOD = {
    "tqdm": "import tqdm\nfor _ in tqdm.tqdm(range(3), disable=False): pass\n",
    "rlock": "multiprocessing.RLock()\n",
    "get_start_method": "multiprocessing.get_start_method()\n",
}


@pytest.mark.parametrize("hook_first", [False, True], ids=["fixed-then-hook", "hook-then-fixed"])
@pytest.mark.parametrize("how", sorted(_FIX_START_METHOD))
def test_lava_runs_after_the_start_method_was_fixed(how: str, hook_first: bool) -> None:
    """After a training run (tqdm's lock fixes the start method to 'fork'), Lava still imports and runs."""
    _ensure_lava()
    hook = "from bso_deploy.hardware.lava.compat import ensure_lava_importable\nensure_lava_importable()\n"
    fix = _FIX_START_METHOD[how] + "assert multiprocessing.get_start_method(allow_none=True) == 'fork'\n"
    code = (
        "import multiprocessing, sys\n"
        f"sys.path[:0] = [{str(_TESTS)!r}, {str(_TESTS.parent)!r}]\n"
        + (hook + fix if hook_first else fix + hook)
        + "import test_lava_compat\n"
        "test_lava_compat.run_tiny_network_and_check()\n"
        "import lava.magma.runtime.message_infrastructure.multiprocessing as lava_mp\n"
        "assert type(lava_mp.__spec__.loader).__name__ == '_PatchedSourceLoader'\n"
        "assert multiprocessing.get_start_method() == 'fork'\n"
        "print('ran')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ran")


def test_another_start_method_still_meets_lavas_error() -> None:
    """Lava's runtime needs 'fork': a program that chose 'spawn' gets Lava's own error, as without the fix."""
    _ensure_lava()
    code = (
        "import multiprocessing\n"
        "from bso_deploy.hardware.lava.compat import ensure_lava_importable\n"
        "ensure_lava_importable()\n"
        "multiprocessing.set_start_method('spawn')\n"
        "try:\n"
        "    import lava.magma.runtime.message_infrastructure.multiprocessing\n"
        "except RuntimeError as error:\n"
        "    assert 'context has already been set' in str(error), error\n"
        "    print('refused')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "refused"


def test_fix_works_outside_the_repository(tmp_path: Path) -> None:
    _ensure_lava()
    code = (
        "from bso_deploy.hardware.lava.compat import ensure_lava_importable; "
        "ensure_lava_importable(); import lava.magma.compiler.compiler"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_fix_repairs_an_earlier_failed_import(tmp_path: Path) -> None:
    """Importing lava before the fix fails on 3.11; calling the fix afterwards still recovers."""
    _ensure_lava()
    code = (
        "import sys\n"
        "try:\n"
        "    import lava.magma.compiler.var_model\n"
        "except ValueError:\n"
        "    assert sys.version_info >= (3, 11)\n"
        "from bso_deploy.hardware.lava.compat import ensure_lava_importable\n"
        "ensure_lava_importable()\n"
        "import lava.magma.compiler.compiler\n"
        "from lava.magma.compiler.var_model import ByteEncoder\n"
        "hash(ByteEncoder())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("module", ["lava.magma.compiler.compiler", "lava.proc.lif.models"])
def test_lava_modules_import_after_fix(module: str) -> None:
    _ensure_lava()
    assert require(module).__name__ == module
