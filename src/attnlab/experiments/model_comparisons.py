"""Train model variants with the same budget and seed and compare their validation curves.

``positions`` (seed 004 exercise 13.21): learned vs sinusoidal vs RoPE vs ALiBi positions.
``norm-ffn`` (13.22): LayerNorm + GELU MLP vs RMSNorm + SwiGLU. Every variant sees the same
batches (one sampler seed), starts from the same seed and runs the same number of steps; only
the flag under study changes. The exercise's 5000 steps run with ``--steps 5000``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from attnlab.nn import GPTConfig
from attnlab.train import TrainConfig, train

from .registry import ExperimentResult, Progress, check_positive_ints, register

COLUMNS = [
    "variant",
    "parameters",
    "final_train_loss",
    "final_val_loss",
    "best_val_loss",
    "tokens_per_s",
]

HELP = {
    "steps": "training iterations per variant (the exercise uses 5000)",
    "eval_interval": "iterations between validation estimates",
    "eval_iters": "batches per validation estimate",
    "layers": "transformer blocks",
    "d_model": "model width",
    "heads": "attention heads",
    "context": "tokens of context",
    "batch_size": "sequences per step",
    "lr": "peak learning rate (cosine decay to lr/10)",
    "text_file": "UTF-8 text to train on ('' = Shakespeare's plays)",
}


def _train_variants(
    variants: dict[str, dict], params: dict, seed: int, progress
) -> ExperimentResult:
    rows, curves = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        for i, (name, flags) in enumerate(variants.items(), 1):
            progress(f"training {name} ({i}/{len(variants)})")
            model_config = GPTConfig(
                context=params["context"],
                n_layers=params["layers"],
                d_model=params["d_model"],
                n_heads=params["heads"],
                **flags,
            )
            config = TrainConfig(
                text_file=params["text_file"] or None,
                batch_size=params["batch_size"],
                max_iters=params["steps"],
                lr=params["lr"],
                min_lr=params["lr"] / 10,
                warmup_iters=min(100, params["steps"] // 10),
                eval_interval=params["eval_interval"],
                eval_iters=params["eval_iters"],
                seed=seed,
                out=str(Path(scratch) / name),
            )
            result = train(model_config, config)
            evaluations = result.evaluations
            curves[name] = [(e["iter"], e["train_loss"], e["val_loss"]) for e in evaluations]
            rows.append(
                {
                    "variant": name,
                    "parameters": result.parameters,
                    "final_train_loss": round(evaluations[-1]["train_loss"], 4),
                    "final_val_loss": round(evaluations[-1]["val_loss"], 4),
                    "best_val_loss": round(min(e["val_loss"] for e in evaluations), 4),
                    "tokens_per_s": round(result.tokens_per_s),
                }
            )
    best = min(rows, key=lambda r: r["final_val_loss"])
    summary = {
        "best_variant": best["variant"],
        "best_final_val_loss": best["final_val_loss"],
        "spread_final_val_loss": round(
            max(r["final_val_loss"] for r in rows) - best["final_val_loss"], 4
        ),
    }
    return ExperimentResult(columns=COLUMNS, rows=rows, summary=summary, details={"curves": curves})


def _figure(fig, result: ExperimentResult) -> None:
    ax = fig.subplots()
    for name, curve in result.details["curves"].items():
        ax.plot([c[0] for c in curve], [c[2] for c in curve], marker="o", label=name)
    ax.set_xlabel("iteration")
    ax.set_ylabel("validation loss (nats per token)")
    ax.set_title(result.title)
    ax.grid(alpha=0.3)
    ax.legend()


def _check(steps, eval_interval, eval_iters, layers, d_model, heads, context, batch_size):
    for name, value in (
        ("steps", steps),
        ("eval_interval", eval_interval),
        ("eval_iters", eval_iters),
        ("layers", layers),
        ("d_model", d_model),
        ("heads", heads),
        ("context", context),
        ("batch_size", batch_size),
    ):
        check_positive_ints(name, (value,))


@register(
    "positions",
    title="Positional encodings: learned vs sinusoidal vs RoPE vs ALiBi",
    question="seed 004 exercise 13.21: which positional scheme trains best on tiny Shakespeare?",
    description="Trains one GPT per positional scheme with the same seed, data and budget.",
    help=HELP,
    figure=_figure,
)
def run_positions(
    *,
    seed: int = 0,
    progress: Progress,
    steps: int = 500,
    eval_interval: int = 100,
    eval_iters: int = 20,
    layers: int = 4,
    d_model: int = 128,
    heads: int = 4,
    context: int = 64,
    batch_size: int = 12,
    lr: float = 1e-3,
    text_file: str = "",
) -> ExperimentResult:
    _check(steps, eval_interval, eval_iters, layers, d_model, heads, context, batch_size)
    variants = {name: {"positions": name} for name in ("learned", "sinusoidal", "rope", "alibi")}
    params = dict(
        steps=steps,
        eval_interval=eval_interval,
        eval_iters=eval_iters,
        layers=layers,
        d_model=d_model,
        heads=heads,
        context=context,
        batch_size=batch_size,
        lr=lr,
        text_file=text_file,
    )
    return _train_variants(variants, params, seed, progress)


@register(
    "norm-ffn",
    title="LayerNorm + GELU vs RMSNorm + SwiGLU",
    question="seed 004 exercise 13.22: does the Llama-style block train better than GPT-2's?",
    description="Trains a GPT-2-style and a Llama-style block stack with the same seed and budget.",
    help=HELP,
    figure=_figure,
)
def run_norm_ffn(
    *,
    seed: int = 0,
    progress: Progress,
    steps: int = 500,
    eval_interval: int = 100,
    eval_iters: int = 20,
    layers: int = 4,
    d_model: int = 128,
    heads: int = 4,
    context: int = 64,
    batch_size: int = 12,
    lr: float = 1e-3,
    text_file: str = "",
) -> ExperimentResult:
    _check(steps, eval_interval, eval_iters, layers, d_model, heads, context, batch_size)
    variants = {
        "layernorm+gelu": {"norm_kind": "layernorm", "ffn": "gelu"},
        # SwiGLU's three matrices at d_ff = 8/3·d keep the parameter count of a 4·d GELU MLP
        "rmsnorm+swiglu": {"norm_kind": "rmsnorm", "ffn": "swiglu", "d_ff": 8 * d_model // 3},
    }
    params = dict(
        steps=steps,
        eval_interval=eval_interval,
        eval_iters=eval_iters,
        layers=layers,
        d_model=d_model,
        heads=heads,
        context=context,
        batch_size=batch_size,
        lr=lr,
        text_file=text_file,
    )
    return _train_variants(variants, params, seed, progress)
