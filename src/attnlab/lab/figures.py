"""Where the report's PNG figures go, and the few figures no other module draws."""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure

from attnlab.viz import save_figure

FIGURE_DIR = "figures"


class Figures:
    """Figure files under ``out/figures``, named by the report; paths handed out are relative
    to ``out`` so that index.html refers to them relatively and opens from disk."""

    def __init__(self, out: Path):
        self.out = out
        self.directory = out / FIGURE_DIR
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.png"

    def relative(self, name: str) -> str:
        return f"{FIGURE_DIR}/{name}.png"


def loss_figure(evaluations: list[dict], uniform_loss: float, path: Path) -> Path:
    """Training and validation loss against the step, with the uniform-guess level."""
    figure = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = figure.add_subplot()
    steps = [e["iter"] for e in evaluations]
    ax.plot(steps, [e["train_loss"] for e in evaluations], marker="o", label="training")
    ax.plot(steps, [e["val_loss"] for e in evaluations], marker="o", label="validation")
    ax.axhline(uniform_loss, color="grey", lw=1, ls="--", label="uniform guess, ln V")
    ax.set(xlabel="step", ylabel="cross-entropy (nats per character)", title="loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(figure, path)


def loglog_figure(
    series: dict[str, tuple[list[float], list[float]]],
    path: Path,
    *,
    xlabel: str,
    ylabel: str,
    title: str,
) -> Path:
    """Several measured curves on log-log axes (memory or time against the sequence length)."""
    figure = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = figure.add_subplot()
    for name, (xs, ys) in series.items():
        kept = [(x, y) for x, y in zip(xs, ys, strict=True) if y and math.isfinite(y) and y > 0]
        if kept:
            ax.loglog(*zip(*kept, strict=True), marker="o", label=name)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return save_figure(figure, path)
