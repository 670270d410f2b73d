"""bso_deploy.plots: the training figure is a PNG, written atomically; without matplotlib, one clear error."""

from __future__ import annotations

import sys

import pytest

from bso_deploy.extras import MissingExtraError
from bso_deploy.plots import plot_training, pyplot

HISTORY = [{"epoch": epoch, "loss": 1.0 / epoch, "train_accuracy": 0.5 + 0.1 * epoch,
            "test_accuracy": 0.45 + 0.1 * epoch, "flip_rate": {"layers.2": 1e-3 / epoch}} for epoch in (1, 2, 3)]


def test_plot_training_writes_a_png(tmp_path):
    path = plot_training(HISTORY, tmp_path / "training.png", title="tbso on digits")
    assert path == tmp_path / "training.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["training.png"]  # no temporary file left behind


def test_pyplot_uses_the_file_only_backend():
    assert pyplot().get_backend().lower() == "agg"


def test_without_matplotlib_drawing_names_the_plots_extra(monkeypatch, tmp_path):
    for name in ["matplotlib", *(name for name in sys.modules if name.startswith("matplotlib."))]:
        monkeypatch.setitem(sys.modules, name, None)  # matplotlib absent: importing it or its parts fails
    with pytest.raises(MissingExtraError) as caught:
        plot_training(HISTORY, tmp_path / "training.png")
    assert str(caught.value) == "drawing figures needs matplotlib: pip install 'bso-deploy[plots]'"
    assert isinstance(caught.value, ImportError) and caught.value.extra == "plots"
    assert not (tmp_path / "training.png").exists()
