"""The loss-curve figure of a training run, drawn from its ``metrics.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path


def read_metrics(path: str | Path) -> list[dict]:
    """The evaluation records of a run, one dict per line of ``metrics.jsonl``."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_loss_curve(metrics: list[dict], path: str | Path, title: str = "training") -> Path:
    """Training and validation loss against iteration, written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    iters = [m["iter"] for m in metrics]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(iters, [m["train_loss"] for m in metrics], marker="o", label="train")
    ax.plot(iters, [m["val_loss"] for m in metrics], marker="o", label="validation")
    ax.set_xlabel("iteration")
    ax.set_ylabel("cross-entropy loss (nats per token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
