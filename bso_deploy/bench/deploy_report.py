"""Table and plot of ``bso-deploy bench deploy`` (:mod:`.deploy`), and the issue's targets they print."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..plots import pyplot, save_figure

__all__ = ["TARGETS", "format_deploy_table", "plot_deploy_bench"]

TARGETS = {"spike_ratio": [0.9, 1.1], "accuracy_drop_max": 0.01, "prediction_agreement_min": 0.99,
           "mismatches": 0, "netx_mismatches": 0}


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _mark(value: bool | None) -> str:
    return "-" if value is None else ("met" if value else "MISSED")


def _ratios(values: dict[str, float | None]) -> str:
    return " ".join("-" if v is None else f"{v:.2f}" for v in values.values()) or "-"


def _lowest(values: dict[str, float | None]) -> str:
    present = [v for v in values.values() if v is not None]
    return f"{min(present):.3f}" if present else "-"


def format_deploy_table(rows: list[dict[str, Any]]) -> str:
    """One line per row: accuracies (framework, float, fixed), prediction agreement, spike ratio per layer,
    the lowest spike precision and recall over the layers, v saturation, mismatches; then the targets."""
    low, high = TARGETS["spike_ratio"]
    header = (f"{'network':<13} {'scaling':<10} {'T':>4} {'fw %':>5} {'float %':>7} {'fixed %':>7} {'agree %':>7} "
              f"{'8b-w %':>6} {'spike ratio/layer':<18} {'prec':>5} {'recall':>6} {'v sat':>6} {'mismatches':>11}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lead = (f"{r['network']:<13} {r['scaling']:<10} {r['time_steps']:>4} {_percent(r['framework_accuracy']):>5} "
                f"{_percent(r['float_accuracy']):>7}")
        if r["error"] is not None and r["fixed_accuracy"] is None:
            lines.append(f"{lead}  error: {r['error'][:140]}")
            continue
        saturated = sum(s.get("v_steps", 0) for s in r["saturation"].values())
        counts = r["mismatches"] or {}
        second = r["netx_mismatches"] if "netx_mismatches" in r else counts.get("sim_lava")
        mismatch = f"{counts.get('sim_torch', '-')}/{'-' if second is None else second}"
        rounding = (r.get("weight_rounding") or {}).get("agreement")
        lines.append(f"{lead} {_percent(r['fixed_accuracy']):>7} {_percent(r['prediction_agreement']):>7} "
                     f"{_percent(rounding):>6} {_ratios(r['spike_ratio']):<18} {_lowest(r['spike_precision']):>5} "
                     f"{_lowest(r['spike_recall']):>6} {saturated:>6} {mismatch:>11}")
        if r.get("lava_error"):
            lines.append(f"{'':<13} lava_error: {r['lava_error'][:150]}")
    lines += ["fw: the framework's own forward pass (lava-dl: slayer, also the netx row's float); 8b-w: agreement of "
              "the float model with its weights alone rounded to 8 bits; prec, recall: the lowest over the layers; "
              "v sat: neuron-steps where v saturated (simulator, test split)",
              "mismatches: sim/torch on the test split, then sim/Lava on the Lava subset (netx row: from_netx in "
              "the simulator against lava-dl's own netx on Lava)",
              f"targets: spike ratio in [{low}, {high}] per layer; fixed within "
              f"{100 * TARGETS['accuracy_drop_max']:.0f} point of float; agreement >= "
              f"{100 * TARGETS['prediction_agreement_min']:.0f}%; 0 mismatches; netx import 0 mismatches"]
    for r in rows:
        met = r.get("targets_met") or {}
        lines.append(f"  {r['network']:<13} {r['scaling']:<10} " + ", ".join(
            f"{name} {_mark(value)}" for name, value in met.items()))
    return "\n".join(lines)


def plot_deploy_bench(rows: list[dict[str, Any]], path: Path) -> None:
    """Left: spike ratio per layer and row, with the target band; right: spike precision and recall."""
    plt = pyplot()
    low, high = TARGETS["spike_ratio"]
    colors = {"worst-case": "tab:red", "calibrated": "tab:blue", "netx": "tab:green"}
    bars = [(f"{r['network']} {name}\n{r['scaling']}", r, name) for r in rows for name in r["spike_ratio"]]
    fig, (ratio_ax, match_ax) = plt.subplots(1, 2, figsize=(13, 5))
    index = np.arange(len(bars))
    ratios = [np.nan if r["spike_ratio"][name] is None else r["spike_ratio"][name] for _, r, name in bars]
    ratio_ax.bar(index, ratios, color=[colors.get(r["scaling"], "gray") for _, r, _ in bars])
    for x, value in zip(index, ratios):
        if np.isfinite(value):
            ratio_ax.annotate(f"{value:.2f}", (x, value), ha="center", va="bottom", fontsize=6)
    ratio_ax.axhspan(low, high, color="tab:green", alpha=0.15, label=f"target [{low}, {high}]")
    ratio_ax.axhline(1.0, color="black", linewidth=0.8)
    ratio_ax.set_ylim(0, max(1.3, np.nanmax(ratios) * 1.1 if np.isfinite(ratios).any() else 1.3))
    ratio_ax.set(ylabel="fixed spikes / float spikes", title="spike ratio per layer: red worst-case, blue "
                 "calibrated, green netx (float = slayer)")
    ratio_ax.legend(fontsize=7, loc="lower right")
    shown = [(label, r, name) for label, r, name in bars if name in r["spike_precision"]]
    where = np.arange(len(shown))
    for offset, key, color in ((-0.2, "spike_precision", "tab:purple"), (0.2, "spike_recall", "tab:orange")):
        values = [np.nan if r[key][name] is None else r[key][name] for _, r, name in shown]
        match_ax.bar(where + offset, values, width=0.4, color=color, label=key.removeprefix("spike_"))
    match_ax.set_ylim(0.5, 1.0)
    match_ax.set(ylabel="fraction of spikes", title="same neuron, sample and step: precision (fixed spikes the "
                 "float model emits too), recall")
    match_ax.legend(fontsize=7, loc="lower right")
    for ax, ticks, names in ((ratio_ax, index, bars), (match_ax, where, shown)):
        ax.set_xticks(ticks, [label for label, _, _ in names], fontsize=6, rotation=60, ha="right")
        ax.title.set_fontsize(8)
    save_figure(fig, path)
