"""Plots people would rather see than read (PNG, written atomically).

matplotlib is optional (the ``plots`` extra): :func:`pyplot` imports it when a figure is drawn and raises
:class:`~bso_deploy.extras.MissingExtraError` without it. Every module that draws gets pyplot from here.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from types import ModuleType

from .extras import MissingExtraError
from .io import atomic_write_bytes


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend (files only, no display); MissingExtraError without
    matplotlib."""
    try:
        import matplotlib  # optional (extra "plots"): imported only when a figure is drawn
    except ImportError as error:
        raise MissingExtraError("drawing figures", "matplotlib", "plots") from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write a matplotlib figure as PNG atomically and close it."""
    data = _figure_bytes(fig)
    pyplot().close(fig)
    return atomic_write_bytes(path, data)


def plot_training(history: list[dict], path: str | os.PathLike, title: str = "training") -> Path:
    """Loss, train/test accuracy and per-layer flip rate against epoch."""
    plt = pyplot()
    epochs = [record["epoch"] for record in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(epochs, [r["loss"] for r in history], marker="o")
    axes[0].set(xlabel="epoch", ylabel="loss (sum over steps)", title="training loss")
    axes[1].plot(epochs, [r["train_accuracy"] for r in history], marker="o", label="train")
    axes[1].plot(epochs, [r["test_accuracy"] for r in history], marker="s", label="test")
    axes[1].set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    axes[1].legend()
    for layer in history[0]["flip_rate"] if history else []:
        rates = [max(r["flip_rate"][layer], 1e-12) for r in history]
        axes[2].semilogy(epochs, rates, marker="o", label=layer)
    axes[2].set(xlabel="epoch", ylabel="flips per weight per step", title="flip rate")
    if history and history[0]["flip_rate"]:
        axes[2].legend(fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, path)
