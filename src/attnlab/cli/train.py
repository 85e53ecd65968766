"""``attnlab train`` and ``attnlab generate``: train a GPT on text, sample from a checkpoint."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from attnlab.nn import GPT, GPTConfig, speculative_generate
from attnlab.nn.attention import BACKENDS
from attnlab.nn.gpt import GPT_POSITIONS
from attnlab.train import TrainConfig, load_checkpoint, plot_loss_curve, read_metrics, train
from attnlab.train.distributed import launch, setup, teardown
from attnlab.train.trainer import CHECKPOINT_DIR, METRICS_FILE


def register(sub) -> None:
    parser = sub.add_parser(
        "train",
        help="train a small GPT on Shakespeare (or any text)",
        description="Train a GPT language model. Writes DIR/checkpoint (safetensors + JSON), "
        "DIR/metrics.jsonl (one record per evaluation) and DIR/loss.png.",
    )
    data = parser.add_argument_group("data")
    data.add_argument("--text-file", help="UTF-8 text to train on (default: Shakespeare's plays)")
    data.add_argument("--tokenizer", choices=("char", "bpe"), default="char")
    data.add_argument("--vocab-size", type=int, help="BPE vocabulary size (default 1024)")
    model = parser.add_argument_group("model")
    model.add_argument("--layers", type=int, default=4)
    model.add_argument("--heads", type=int, default=4)
    model.add_argument("--kv-heads", type=int, help="key/value heads (default: --heads)")
    model.add_argument("--d-model", type=int, default=128)
    model.add_argument("--context", type=int, default=64)
    model.add_argument("--positions", choices=GPT_POSITIONS, default="learned")
    model.add_argument("--norm", choices=("layernorm", "rmsnorm"), default="layernorm")
    model.add_argument("--norm-position", choices=("pre", "post"), default="pre")
    model.add_argument("--ffn", choices=("gelu", "swiglu"), default="gelu")
    model.add_argument("--backend", choices=BACKENDS, default="sdpa")
    model.add_argument("--dropout", type=float, default=0.0)
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--batch-size", type=int, default=12)
    optim.add_argument("--grad-accum", type=int, default=1, help="micro-batches per step")
    optim.add_argument("--max-iters", type=int, default=2000)
    optim.add_argument("--lr", type=float, default=1e-3)
    optim.add_argument("--min-lr", type=float, default=1e-4)
    optim.add_argument("--warmup-iters", type=int, default=100)
    optim.add_argument("--eval-interval", type=int, default=250)
    optim.add_argument("--eval-iters", type=int, default=20)
    optim.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--out", default="out", help="output directory (default: out)")
    parser.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="data-parallel processes on this machine (runs torchrun --standalone); "
        "--batch-size is the global batch, split across them",
    )
    parser.set_defaults(run=run_train)

    gen = sub.add_parser(
        "generate",
        help="sample text from a trained checkpoint",
        description="Continue a prompt with a trained model (KV-cached decoding).",
    )
    gen.add_argument("--checkpoint", required=True, help="a checkpoint directory (DIR/checkpoint)")
    gen.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    gen.add_argument("--max-new-tokens", type=int, default=200)
    gen.add_argument("--temperature", type=float, default=0.8, help="0 is greedy")
    gen.add_argument("--top-k", type=int)
    gen.add_argument("--top-p", type=float)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument(
        "--draft",
        help="a smaller checkpoint with the same tokenizer: speculative decoding, the draft "
        "guesses and the model checks (same output distribution; greedy: the same text)",
    )
    gen.add_argument("--speculate", type=int, default=4, help="draft guesses per round (default 4)")
    gen.set_defaults(run=run_generate)


def configs_from_args(args) -> tuple[GPTConfig, TrainConfig]:
    model_config = GPTConfig(
        vocab_size=256,  # replaced by the tokenizer's size
        context=args.context,
        n_layers=args.layers,
        d_model=args.d_model,
        n_heads=args.heads,
        n_kv_heads=args.kv_heads,
        positions=args.positions,
        norm=args.norm_position,
        norm_kind=args.norm,
        ffn=args.ffn,
        backend=args.backend,
        dropout=args.dropout,
    )
    train_config = TrainConfig(
        text_file=args.text_file,
        tokenizer=args.tokenizer,
        vocab_size=args.vocab_size,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        max_iters=args.max_iters,
        lr=args.lr,
        min_lr=args.min_lr,
        warmup_iters=args.warmup_iters,
        eval_interval=args.eval_interval,
        eval_iters=args.eval_iters,
        seed=args.seed,
        out=args.out,
    )
    return model_config, train_config


def run_train(args) -> int:
    model_config, train_config = configs_from_args(args)
    # Build a throwaway module to surface shape errors (heads vs d_model …) before any data work.
    with torch.device("meta"):
        GPT(model_config)
    if args.nproc < 1:
        raise ValueError(f"--nproc: expected a positive integer, got {args.nproc}")
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        if train_config.batch_size % args.nproc:
            raise ValueError(
                f"--batch-size: expected a multiple of --nproc {args.nproc}, got "
                f"{train_config.batch_size}"
            )
        return launch(args.nproc, _argv_without_nproc(args.argv))
    rank = setup()
    try:
        return _train_here(args, model_config, train_config, rank)
    finally:
        teardown(rank)


def _argv_without_nproc(argv: list[str]) -> list[str]:
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


def _train_here(args, model_config, train_config, rank) -> int:
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        TextColumn("it {task.completed:.0f}/{task.total:.0f}"),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TextColumn("{task.fields[speed]}"),
        TimeRemainingColumn(),
        console=console,
        disable=args.quiet or not rank.is_main,
    )
    with progress:
        task = progress.add_task("train", total=train_config.max_iters, loss=float("nan"), speed="")

        def on_iteration(it, loss, lr):
            progress.update(task, completed=it + 1, loss=loss)

        def on_evaluation(record):
            speed = record["tokens_per_s"]
            progress.update(task, speed=f"{speed:,.0f} tok/s" if speed else "")
            progress.console.print(
                f"iter {record['iter']:>6}  train {record['train_loss']:.4f}  "
                f"val {record['val_loss']:.4f}"
            )

        result = train(
            model_config,
            train_config,
            resume=args.resume,
            on_iteration=on_iteration,
            on_evaluation=on_evaluation,
            rank=rank,
        )
    if not rank.is_main:
        return 0
    out = Path(train_config.out)
    plot_loss_curve(read_metrics(out / METRICS_FILE), out / "loss.png")
    last = result.evaluations[-1] if result.evaluations else None
    if last is not None:
        print(
            f"done: iter {last['iter']}, val loss {last['val_loss']:.4f}, "
            f"{result.tokens_per_s:,.0f} tokens/s; checkpoint {out / CHECKPOINT_DIR}"
        )
    return 0


def run_generate(args) -> int:
    checkpoint = load_checkpoint(args.checkpoint)
    model, tokenizer = checkpoint.model.eval(), checkpoint.tokenizer
    ids = tokenizer.encode(args.prompt)
    if not ids:
        raise ValueError("--prompt: encodes to no tokens; give at least one character")
    if args.draft is not None:
        out = _speculative(args, model, tokenizer, ids)
    else:
        out = model.generate(
            torch.tensor([ids]),
            args.max_new_tokens,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            seed=args.seed,
        )
    sys.stdout.write(args.prompt + tokenizer.decode(out[0, len(ids) :].tolist()) + "\n")
    return 0


def _speculative(args, model, tokenizer, ids) -> torch.Tensor:
    """``attnlab generate --draft``: speculative decoding, its figures on stderr."""
    if args.top_k is not None or args.top_p is not None:
        raise ValueError("--draft: speculative decoding samples the full distribution; drop "
                         "--top-k and --top-p")  # fmt: skip
    draft = load_checkpoint(args.draft)
    if draft.tokenizer.to_dict() != tokenizer.to_dict():
        raise ValueError(f"--draft: {args.draft} has another tokenizer than {args.checkpoint}")
    out, stats = speculative_generate(
        model,
        draft.model.eval(),
        torch.tensor([ids]),
        args.max_new_tokens,
        k=args.speculate,
        temperature=args.temperature,
        seed=args.seed,
    )
    print(
        f"speculative decoding: {stats.rounds} target passes for {stats.new_tokens} tokens "
        f"({stats.tokens_per_round:.2f} per pass), {stats.accepted}/{stats.proposed} draft "
        f"guesses accepted ({stats.acceptance_rate:.0%})",
        file=sys.stderr,
    )
    return out
