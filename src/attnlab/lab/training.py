"""Train the lab's character GPT, or reuse the checkpoint an earlier run left in ``DIR/model``.

The randomly initialised twin is rebuilt from the training seed (the trainer seeds torch with
it right before building the model), so "before" and "after" are the same network.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from attnlab.data import load_text
from attnlab.nn import GPT, GPTConfig
from attnlab.train import TrainConfig, load_checkpoint, read_metrics, train
from attnlab.train.trainer import CHECKPOINT_DIR, METRICS_FILE

from .config import LabConfig

MODEL_DIR = "model"
WORD = re.compile(r"[A-Za-z']+")
IDENTITY_FILE = "lab.json"  # the settings the checkpoint in DIR/model was trained with


@dataclass
class Trained:
    """The trained model, its random-init twin, the tokenizer and the run's record."""

    model: GPT
    initial: GPT
    tokenizer: object
    text: str
    metrics: list[dict]
    status: str  # "trained", "resumed" or "reused"
    message: str
    seconds: float
    tokens_per_s: float | None


def model_config(config: LabConfig, vocab_size: int) -> GPTConfig:
    return GPTConfig(
        vocab_size=vocab_size,
        context=config.context,
        n_layers=config.layers,
        d_model=config.d_model,
        n_heads=config.heads,
    )


def train_config(config: LabConfig, out: Path) -> TrainConfig:
    return TrainConfig(
        text_file=config.text_file,
        batch_size=config.batch_size,
        max_iters=config.steps,
        lr=config.lr,
        min_lr=config.min_lr,
        warmup_iters=min(config.warmup_iters, config.steps // 2),
        eval_interval=config.eval_interval,
        eval_iters=config.eval_iters,
        seed=config.seed,
        out=str(out / MODEL_DIR),
    )


def initial_model(gpt_config: GPTConfig, seed: int) -> GPT:
    """The network as training found it: same seed, same construction order as the trainer.

    ``fork_rng`` restores the caller's global random state afterwards.
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return GPT(gpt_config).eval()


def _saved_identity(model_dir: Path) -> dict | None:
    path = model_dir / IDENTITY_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _differences(saved: dict, wanted: dict) -> str:
    changed = [k for k in wanted if saved.get(k) != wanted[k]]
    return ", ".join(f"{k}: {saved.get(k)!r} there vs {wanted[k]!r} now" for k in changed)


def train_or_reuse(
    config: LabConfig,
    out: Path,
    *,
    retrain: bool = False,
    on_iteration: Callable[[int, float, float], None] | None = None,
    on_evaluation: Callable[[dict], None] | None = None,
) -> Trained:
    """Train (or reuse, or finish) the lab model under ``out/model``.

    A complete checkpoint trained with the same settings is reused; an interrupted one is
    resumed (exact resume: the losses equal an uninterrupted run's). A checkpoint trained with
    other settings is an error unless ``retrain``: silently replacing hours of training, or
    silently reporting on a model the options do not describe, would both surprise.
    """
    started = time.perf_counter()
    model_dir = out / MODEL_DIR
    checkpoint_dir = model_dir / CHECKPOINT_DIR
    wanted = config.training_identity()
    text = load_text(config.text_file)
    status, resume = "trained", False
    if not retrain and (checkpoint_dir / "checkpoint.json").is_file():
        saved = _saved_identity(model_dir)
        if saved != wanted:
            why = _differences(saved, wanted) if saved else "no record of its settings"
            raise ValueError(
                f"--out: {model_dir} holds a model trained with other settings ({why}); "
                "pass --retrain to replace it, or choose another --out"
            )
        done = load_checkpoint(checkpoint_dir).train_state["iteration"]
        status, resume = ("reused", False) if done >= config.steps else ("resumed", True)
    if status == "reused":
        checkpoint = load_checkpoint(checkpoint_dir)
        model, tokenizer = checkpoint.model.eval(), checkpoint.tokenizer
        metrics = read_metrics(model_dir / METRICS_FILE)
        message = (
            f"reused the checkpoint in {checkpoint_dir} ({config.steps} steps, same settings); "
            "pass --retrain to train again"
        )
    else:
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / IDENTITY_FILE).write_text(json.dumps(wanted, indent=2) + "\n")
        gpt_config = model_config(config, vocab_size=1)  # the trainer sets the vocabulary
        result = train(
            gpt_config,
            train_config(config, out),
            resume=resume,
            on_iteration=on_iteration,
            on_evaluation=on_evaluation,
        )
        checkpoint = load_checkpoint(checkpoint_dir)
        model, tokenizer = checkpoint.model.eval(), checkpoint.tokenizer
        metrics = read_metrics(model_dir / METRICS_FILE)
        verb = "resumed and finished" if resume else "trained"
        message = f"{verb} {config.steps} steps; checkpoint in {checkpoint_dir}"
        del result
    # the training throughput is the one the run measured, also when the model is reused
    speeds = [m["tokens_per_s"] for m in metrics if m.get("tokens_per_s")]
    return Trained(
        model=model,
        initial=initial_model(model.config, config.seed),
        tokenizer=tokenizer,
        text=text,
        metrics=metrics,
        status=status,
        message=message,
        seconds=time.perf_counter() - started,
        tokens_per_s=speeds[-1] if speeds else None,
    )


def prompt_for(text: str, tokenizer) -> str:
    """The corpus's first line (for Shakespeare a speaker, "THESEUS:\\n"), or its first
    characters: text the tokenizer surely knows."""
    end = text.find("\n")
    prompt = text[: end + 1] if 0 < end < 40 else text[:16]
    return prompt if tokenizer.encode(prompt) else text[:1]


def known_word_share(sample: str, vocabulary: set[str]) -> float:
    """The share of a sample's words that occur in the corpus (0 when it has no words)."""
    words = WORD.findall(sample)
    return sum(w in vocabulary for w in words) / len(words) if words else 0.0


def samples(trained: Trained, config: LabConfig) -> dict:
    """Text sampled from the random-init and the trained model with the same seed, and the
    share of each sample's words that are words of the corpus (a number for "looks like
    English now")."""
    prompt = prompt_for(trained.text, trained.tokenizer)
    ids = torch.tensor([trained.tokenizer.encode(prompt)])
    out = {"prompt": prompt, "temperature": config.temperature, "seed": config.seed}
    for name, model in (("before", trained.initial), ("after", trained.model)):
        tokens = model.generate(
            ids, config.sample_tokens, temperature=config.temperature, seed=config.seed
        )
        out[name] = trained.tokenizer.decode(tokens[0, ids.shape[1] :].tolist())
    vocabulary = set(WORD.findall(trained.text))
    for name in ("before", "after"):
        out[f"{name}_known_words"] = known_word_share(out[name], vocabulary)
    return out


def training_summary(trained: Trained, config: LabConfig) -> dict:
    """The numbers of the training run for report.json."""
    evaluations = [
        {k: m.get(k) for k in ("iter", "train_loss", "val_loss", "tokens_per_s")}
        for m in trained.metrics
    ]
    vocab = trained.model.config.vocab_size
    first, last = evaluations[0], evaluations[-1]
    return {
        "status": trained.status,
        "message": trained.message,
        "steps": config.steps,
        "batch_size": config.batch_size,
        "context": config.context,
        "tokens_seen": config.steps * config.batch_size * config.context,
        "tokens_per_s": trained.tokens_per_s,
        "seconds": trained.seconds,
        "vocab_size": vocab,
        "uniform_loss": math.log(vocab),  # cross-entropy of guessing uniformly
        "parameters": trained.model.num_parameters(),
        "evaluations": evaluations,
        "initial": first,
        "final": last,
        "val_loss_drop": first["val_loss"] - last["val_loss"],
        "val_loss_reduction": 1 - last["val_loss"] / first["val_loss"],
        "generalisation_gap": last["val_loss"] - last["train_loss"],
        "generalisation_gap_abs": abs(last["val_loss"] - last["train_loss"]),
    }
