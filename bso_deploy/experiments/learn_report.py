"""What ``bso-deploy learn`` writes and prints for an on-chip adaptation run (bso_deploy.experiments.adaptation).

- :func:`save_learn_outputs`: ``learn.json`` (the result's ``to_dict()``, made JSON-safe) and ``learn.png``
  (accuracy on the shifted test set along the adaptation stream, fixed-point rule against float T-BSO / BSO),
  both written atomically into the output directory.
- :func:`format_learn_summary`: the few lines the command prints.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write_json
from ..plots import pyplot, save_figure

__all__ = ["format_learn_summary", "jsonable", "plot_adaptation", "save_learn_outputs"]


def jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars and arrays as Python numbers and lists, tuples as lists, and non-finite
    floats as None (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def plot_adaptation(result: dict[str, Any], path: str | os.PathLike) -> Path:
    """Test accuracy (shifted inputs) against adaptation samples seen: fixed point vs float."""
    plt = pyplot()
    curve = result.get("curve") or []
    samples = [point["samples"] for point in curve]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(samples, [point["accuracy"] for point in curve], marker="o",
            label=f"fixed point, on-chip rule ({result.get('backend', '?')})")
    ax.plot(samples, [point["float_accuracy"] for point in curve], marker="s", linestyle="--",
            label="float optimizer")
    unshifted = result.get("accuracy_unshifted")
    if unshifted is not None:
        ax.axhline(unshifted, color="grey", linestyle=":", label="fixed point, unshifted inputs")
    config = result.get("config", {})
    ax.set(xlabel="adaptation samples", ylabel="test accuracy (shifted inputs)",
           title=f"on-chip adaptation: {config.get('dataset', '?')}, shift {config.get('shift', '?')}, "
                 f"{config.get('variant', '?')}")
    ax.set_ylim(0.0, 1.0)
    ax.legend(loc="best")
    return save_figure(fig, path)


def save_learn_outputs(result: dict[str, Any], out_dir: str | os.PathLike) -> dict[str, str]:
    """Write ``learn.json`` and ``learn.png`` into ``out_dir`` (atomically); returns their paths."""
    out = Path(out_dir)
    json_path = atomic_write_json(out / "learn.json", jsonable(result))
    plot_path = plot_adaptation(result, out / "learn.png")
    return {"json": str(json_path), "plot": str(plot_path)}


def format_learn_summary(result: dict[str, Any]) -> str:
    def percent(value: Any) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    if result.get("details", {}).get("float_rule_comparable", True):
        agreement = (f"flip agreement with float: {percent(result['flip_agreement'])} (precision "
                     f"{percent(result.get('flip_precision'))}, recall {percent(result.get('flip_recall'))}; "
                     f"{result.get('flips', '?')} fixed vs {result.get('float_flips', '?')} float flips)")
    else:  # the float rule is one neuron per class without a bias: its flips do not pair with this learner's
        agreement = (f"flip agreement with float: not comparable ({result.get('flips', '?')} fixed flips; the float "
                     "rule has one readout neuron per class, no learned bias and no hidden learning)")
    lines = [
        f"on-chip adaptation on {result['backend']}: accuracy on shifted inputs (fixed point) "
        f"{percent(result['accuracy_before'])} -> {percent(result['accuracy_after'])}",
        f"float {result.get('config', {}).get('variant', '')} on the same stream: "
        f"{percent(result.get('float_accuracy_before'))} -> {percent(result['float_accuracy_after'])}",
        agreement,
        f"learning state per synapse: {result['bits_per_synapse']} bits (float BSO: "
        f"{result.get('float_bits_per_synapse', 33)})",
        f"scenario {result.get('scenario', '?')}: reference (float logistic regression of the same parameters on "
        f"the chip's spike counts, docs/onchip-learning.md §16) {percent(result.get('reference_accuracy'))}; "
        f"population {result.get('config', {}).get('population', 1)}, learned-bias bits per neuron "
        f"{result.get('bits_per_bias', 0)}",
    ]
    return "\n".join(lines)
