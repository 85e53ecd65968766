"""The training loop: AdamW with weight-decay groups, warmup + cosine schedule, clipping,
gradient accumulation, periodic evaluation, checkpoints, exact resume and a metrics log.

Exact resume: the checkpoint written at an evaluation holds the weights, the optimizer moments,
the global torch RNG (dropout) and the batch sampler's generator. Training restarted from it
draws the same batches and dropout masks, so its losses equal those of an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from attnlab.data import build_tokenizer, load_text, random_batch, split_ids
from attnlab.data.batches import check_length_for_context
from attnlab.nn import GPT, GPTConfig

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .distributed import Rank, barrier, mean_across_ranks

CHECKPOINT_DIR = "checkpoint"
METRICS_FILE = "metrics.jsonl"


@dataclass
class TrainConfig:
    """How to train (the model's shape lives in :class:`attnlab.nn.GPTConfig`)."""

    text_file: str | None = None  # None: the Shakespeare corpus
    tokenizer: str = "char"  # char | bpe
    vocab_size: int | None = None  # BPE vocabulary size
    batch_size: int = 12
    max_iters: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    grad_accum: int = 1
    eval_interval: int = 250
    eval_iters: int = 20
    val_fraction: float = 0.1
    seed: int = 1337
    out: str = "out"

    def __post_init__(self):
        for name in ("batch_size", "max_iters", "grad_accum", "eval_interval", "eval_iters"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if self.warmup_iters < 0:
            raise ValueError(f"warmup_iters: expected ≥ 0, got {self.warmup_iters}")
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise ValueError(
                f"lr, min_lr: expected 0 ≤ min_lr ≤ lr, lr > 0, got {self.lr}, {self.min_lr}"
            )


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)  # training loss of each iteration run
    evaluations: list[dict] = field(default_factory=list)
    tokens_per_s: float = 0.0
    iterations_per_s: float = 0.0
    checkpoint: Path | None = None
    parameters: int = 0


def learning_rate(it: int, config: TrainConfig) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``min_lr`` at ``max_iters``."""
    if it < config.warmup_iters:
        return config.lr * (it + 1) / (config.warmup_iters + 1)
    span = max(1, config.max_iters - config.warmup_iters)
    progress = min(1.0, (it - config.warmup_iters) / span)
    return config.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (config.lr - config.min_lr)


def make_optimizer(model: GPT, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not on biases, norm gains or 1-D parameters)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # fused: one kernel for all parameters instead of several small ones per tensor, which is
    # most of the optimizer's cost at this model size (profiled in benchmarks/train_throughput.py)
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2), fused=True)


@torch.no_grad()
def estimate_loss(
    model: GPT, ids: torch.Tensor, config: TrainConfig, context: int, seed: int
) -> float:
    """Mean loss over ``eval_iters`` random batches drawn from their own generator."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(config.eval_iters):
        x, y = random_batch(ids, config.batch_size, context, generator)
        total += model(x, y)[1].item()
    model.train(was_training)
    return total / config.eval_iters


def prepare(model_config: GPTConfig, config: TrainConfig, tokenizer=None):
    """Load the text, fit (or reuse) the tokenizer, and return the split token streams."""
    text = load_text(config.text_file)
    if not text.strip():
        raise ValueError("--text-file: the text is empty")
    if tokenizer is None:
        tokenizer = build_tokenizer(config.tokenizer, text, config.vocab_size)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    train_ids, val_ids = split_ids(ids, config.val_fraction)
    check_length_for_context("training text", train_ids, model_config.context)
    check_length_for_context("validation text", val_ids, model_config.context)
    return tokenizer, train_ids, val_ids


def _check_compatible(saved: GPTConfig, wanted: GPTConfig) -> None:
    differences = {
        k: (v, getattr(wanted, k))
        for k, v in saved.to_dict().items()
        if k != "vocab_size" and getattr(wanted, k) != v
    }
    if differences:
        listed = ", ".join(
            f"{k}: checkpoint {a!r} vs requested {b!r}" for k, (a, b) in differences.items()
        )
        raise CheckpointError(f"--resume: the checkpoint's model config differs ({listed})")


def train(
    model_config: GPTConfig,
    config: TrainConfig,
    *,
    resume: bool = False,
    until: int | None = None,
    on_iteration: Callable[[int, float, float], None] | None = None,
    on_evaluation: Callable[[dict], None] | None = None,
    rank: Rank | None = None,
) -> TrainResult:
    """Train a GPT and write checkpoints and ``metrics.jsonl`` under ``config.out``.

    Args:
        resume: continue from ``out/checkpoint`` (same data, config and schedule).
        until: stop before this iteration as if interrupted (the schedule still follows
            ``max_iters``); the last checkpoint is the one of the last evaluation.
        on_iteration: called as ``(iteration, loss, lr)`` after each optimizer step.
        on_evaluation: called with each metrics record.
        rank: this process's place in a data-parallel group (see
            :mod:`attnlab.train.distributed`). Every rank draws the same global batch from the
            same sampler and trains on its own slice of rows; gradients are averaged, so the
            update equals the single-process one on the whole batch. Rank 0 evaluates, logs and
            writes checkpoints.
    """
    rank = rank or Rank()
    if config.batch_size % rank.world_size:
        raise ValueError(
            f"--batch-size: expected a multiple of the {rank.world_size} processes, got "
            f"{config.batch_size}"
        )
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint_dir = out / CHECKPOINT_DIR
    start = 0
    if resume:
        checkpoint = load_checkpoint(checkpoint_dir)
        _check_compatible(checkpoint.model.config, model_config)
        tokenizer = checkpoint.tokenizer
        tokenizer, train_ids, val_ids = prepare(checkpoint.model.config, config, tokenizer)
        model = checkpoint.model
        optimizer = make_optimizer(model, config)
        optimizer.load_state_dict(checkpoint.optimizer_state)
        start = checkpoint.train_state["iteration"]
        torch.set_rng_state(checkpoint.rng_states["torch"])
        sampler = torch.Generator()
        sampler.set_state(checkpoint.rng_states["sampler"])
        # Records written after this checkpoint (by a run that then crashed) are redone.
        metrics = out / METRICS_FILE
        kept = (
            []
            if not rank.is_main
            else [
                line
                for line in (metrics.read_text().splitlines() if metrics.exists() else [])
                if line.strip() and json.loads(line)["iter"] <= start
            ]
        )
        if rank.is_main:
            metrics.write_text("".join(line + "\n" for line in kept))
    else:
        tokenizer, train_ids, val_ids = prepare(model_config, config)
        model_config = GPTConfig(**{**model_config.to_dict(), "vocab_size": tokenizer.vocab_size})
        torch.manual_seed(config.seed)  # initial weights and dropout masks
        model = GPT(model_config)
        optimizer = make_optimizer(model, config)
        sampler = torch.Generator().manual_seed(config.seed)
        if rank.is_main:
            (out / METRICS_FILE).write_text("")
    trained = model
    if rank.distributed:
        trained = torch.nn.parallel.DistributedDataParallel(model)
    share = config.batch_size // rank.world_size
    rows = slice(rank.rank * share, (rank.rank + 1) * share)
    context = model.config.context
    result = TrainResult(parameters=model.num_parameters())
    stop = config.max_iters if until is None else min(until, config.max_iters)
    step_times: list[float] = []
    tokens_per_step = config.batch_size * context * config.grad_accum

    def evaluate(it: int) -> None:
        if not rank.is_main:
            barrier(rank)  # wait while rank 0 evaluates and writes the checkpoint
            return
        record = {
            "iter": it,
            "train_loss": estimate_loss(model, train_ids, config, context, config.seed + 1),
            "val_loss": estimate_loss(model, val_ids, config, context, config.seed + 2),
            "lr": learning_rate(min(it, config.max_iters - 1), config),
            "tokens_per_s": tokens_per_step / _median(step_times) if step_times else None,
            "processes": rank.world_size,
            "time": time.time(),
        }
        with open(out / METRICS_FILE, "a") as f:
            f.write(json.dumps(record) + "\n")
        result.evaluations.append(record)
        if on_evaluation is not None:
            on_evaluation(record)
        state = {"iteration": it, "train_config": asdict(config), "last_eval": record}
        rng = {"torch": torch.get_rng_state(), "sampler": sampler.get_state()}
        result.checkpoint = save_checkpoint(checkpoint_dir, model, tokenizer, state, optimizer, rng)
        barrier(rank)

    model.train()
    for it in range(start, stop):
        if it % config.eval_interval == 0 and not (resume and it == start):
            evaluate(it)
        lr = learning_rate(it, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        began = time.perf_counter()
        total = 0.0
        for _ in range(config.grad_accum):
            x, y = random_batch(train_ids, config.batch_size, context, sampler)
            _, loss = trained(x[rows], y[rows])
            (loss / config.grad_accum).backward()
            total += loss.item() / config.grad_accum
        total = mean_across_ranks(total, rank)
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip, foreach=True)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step_times.append(time.perf_counter() - began)
        result.losses.append(total)
        if on_iteration is not None:
            on_iteration(it, total, lr)
    if stop == config.max_iters and not (resume and start == config.max_iters):
        evaluate(config.max_iters)
    if step_times:
        result.iterations_per_s = 1.0 / _median(step_times)
        result.tokens_per_s = tokens_per_step * result.iterations_per_s
    return result


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
