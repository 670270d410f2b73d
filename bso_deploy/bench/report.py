"""Tables and plots for the benchmarks."""

from __future__ import annotations

from pathlib import Path

from ..plots import pyplot, save_figure


def format_table(records: list[dict]) -> str:
    header = (f"{'method':<9} {'T':>3} {'activation KiB':>15} {'state bits/w':>13} {'ckpt bits/w':>12} "
              f"{'epoch s':>8} {'test acc':>9}")
    lines = [header, "-" * len(header)]
    for r in records:
        ckpt = "-" if r["checkpoint_bits_per_weight"] is None else f"{r['checkpoint_bits_per_weight']:.1f}"
        seconds = "-" if r["epoch_seconds"] is None else f"{r['epoch_seconds']:.2f}"
        accuracy = "-" if r["test_accuracy"] is None else f"{r['test_accuracy']:.4f}"
        lines.append(f"{r['method']:<9} {r['time_steps']:>3} {r['activation_bytes'] / 1024:>15.1f} "
                     f"{r['state_bits_per_weight']:>13.3f} {ckpt:>12} {seconds:>8} {accuracy:>9}")
    return "\n".join(lines)


def plot_train_bench(records: list[dict], out_dir: Path, stem: str) -> None:
    plt = pyplot()
    methods = sorted({r["method"] for r in records})
    styles = ["-", "--", ":", "-."]
    fig, ax = plt.subplots(figsize=(6, 4))
    for index, method in enumerate(methods):
        rows = sorted((r for r in records if r["method"] == method), key=lambda r: r["time_steps"])
        ax.loglog([r["time_steps"] for r in rows], [r["activation_bytes"] for r in rows], marker="o", label=method,
                  base=2, linestyle=styles[index % len(styles)], markersize=8 - 1.5 * index)
    ax.set(xlabel="time steps T", ylabel="bytes saved for backward per step",
           title="activation memory per training step")
    ax.legend()
    save_figure(fig, out_dir / ("train_memory.png" if stem == "train" else f"{stem}.png"))
    if any(r["test_accuracy"] is not None for r in records):
        fig, ax = plt.subplots(figsize=(6, 4))
        for method in methods:
            rows = sorted((r for r in records if r["method"] == method), key=lambda r: r["time_steps"])
            ax.plot([r["time_steps"] for r in rows], [r["test_accuracy"] for r in rows], marker="o", label=method)
        ax.set_xscale("log", base=2)
        ax.set(xlabel="time steps T", ylabel="test accuracy", title=f"accuracy after {records[0]['epochs']} epochs")
        ax.legend()
        save_figure(fig, out_dir / "train_accuracy.png")
