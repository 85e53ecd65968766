"""The theory experiments (dot-product variance, softmax saturation, quadratic scaling), run
small with the lab's seed; their tables stay in ``attnlab experiment``, the report keeps the
summaries and the figures."""

from __future__ import annotations

from attnlab.experiments import run_experiment

from .figures import Figures

EXPERIMENTS = ("dot-product-variance", "softmax-saturation", "quadratic-scaling")


def run(config, figures: Figures, progress=None) -> dict:
    out = {}
    for name in EXPERIMENTS:
        if progress is not None:
            progress(name)
        params = config.experiments.get(name, {})
        result = run_experiment(name, seed=config.seed, **params)
        path = result.plot(figures.path(f"experiment-{name}"))
        data = result.to_dict()
        out[name] = {
            "title": data["title"],
            "question": data["question"],
            "params": data["params"],
            "summary": data["summary"],
            "figure": figures.relative(path.stem),
            "command": f"attnlab experiment {name}",
        }
    return out
