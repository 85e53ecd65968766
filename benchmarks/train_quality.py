"""Validation loss and training speed on tiny Shakespeare with nanoGPT's small CPU configuration.

nanoGPT's README trains a character-level model on the classic 1,115,394-byte tiny-Shakespeare
file on a CPU with: 4 layers, 4 heads, d_model 128, context 64, batch 12, 2000 iterations,
learning rate 1e-3 with 100 warm-up iterations and cosine decay to 1e-4 at iteration 2000,
dropout 0 (AdamW with weight decay 0.1 and betas (0.9, 0.99), gradients clipped at norm 1), and
reports a validation loss of 1.88. This script runs the same recipe through
``attnlab.train.train`` (90/10 contiguous split of the text, as nanoGPT's ``prepare.py``) and
checks the final validation loss against that figure. nanoGPT's Linear and LayerNorm layers
have no biases (``bias=False``, its default); ``--bias`` uses attnlab's default biases instead.

``--reference`` trains instead the straightforward PyTorch GPT of
``benchmarks/train_throughput.py`` with nanoGPT's own training loop re-created here (one global
torch seed drives the initial weights, the training batches and the evaluation batches, which
are drawn in between; the next batch is sampled right after the forward pass, as nanoGPT does):
what the published recipe itself gives on this machine, to judge the attnlab figure against.

The final validation loss is the mean over ``--eval-iters`` random batches of the validation
text (nanoGPT's README command uses 20; the default here is 200, a less noisy estimate).
Iterations/s and tokens/s come from the trainer: the median optimizer-step time, evaluations
excluded, batch sampling included. Wall time covers the whole run, evaluations included.

    .venv/bin/python benchmarks/train_quality.py [--text-file PATH] [--eval-iters 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch

from attnlab.bench import format_machine_line, load_average, machine_line, wait_for_idle
from attnlab.nn import GPTConfig
from attnlab.train import TrainConfig, train

TARGET = 1.88  # nanoGPT's published validation loss for this configuration
DISTURBED_LOAD = 2.5  # 1-minute load average after a run that shared the CPUs
DEFAULT_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--text-file", default=str(DEFAULT_TEXT), help="tiny-Shakespeare text")
    p.add_argument("--max-iters", type=int, default=2000)
    p.add_argument("--eval-interval", type=int, default=250)
    p.add_argument("--eval-iters", type=int, default=200, help="batches per evaluation")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument(
        "--bias", action="store_true", help="biases in Linear/LayerNorm (attnlab's default)"
    )
    p.add_argument(
        "--positions",
        default="learned",
        choices=("learned", "sinusoidal", "rope", "alibi", "none"),
        help="position scheme (default learned, nanoGPT's)",
    )
    p.add_argument(
        "--norm-kind", default="layernorm", choices=("layernorm", "rmsnorm"), help="normalisation"
    )
    p.add_argument("--ffn", default="gelu", choices=("gelu", "swiglu"), help="feed-forward kind")
    p.add_argument(
        "--reference",
        action="store_true",
        help="train the plain PyTorch baseline with nanoGPT's loop instead of attnlab's trainer",
    )
    p.add_argument("--out", help="output directory (default: a temporary one, removed after)")
    p.add_argument("--idle-wait", type=float, default=60.0, help="seconds to wait for an idle CPU")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return p.parse_args(argv)


def configs(args, out: str) -> tuple[GPTConfig, TrainConfig]:
    model = GPTConfig(
        context=64,
        n_layers=4,
        n_heads=4,
        d_model=128,
        dropout=0.0,
        bias=args.bias,
        positions=args.positions,
        norm_kind=args.norm_kind,
        ffn=args.ffn,
    )  # vocab_size is set from the text by the trainer (65 characters)
    run = TrainConfig(
        text_file=args.text_file,
        tokenizer="char",
        batch_size=12,
        max_iters=args.max_iters,
        lr=1e-3,
        min_lr=1e-4,
        warmup_iters=100,
        weight_decay=0.1,
        beta1=0.9,
        beta2=0.99,
        grad_clip=1.0,
        eval_interval=args.eval_interval,
        eval_iters=args.eval_iters,
        val_fraction=0.1,
        seed=args.seed,
        out=out,
    )
    return model, run


def run(args, out: str, verbose: bool) -> dict:
    model_config, train_config = configs(args, out)

    def report(record: dict) -> None:
        if verbose:
            print(
                f"  iter {record['iter']:5d}  train {record['train_loss']:.4f}  "
                f"val {record['val_loss']:.4f}  lr {record['lr']:.2e}",
                flush=True,
            )

    started = time.perf_counter()
    result = train(model_config, train_config, on_evaluation=report)
    wall = time.perf_counter() - started
    final = result.evaluations[-1]
    return {
        "final_iter": final["iter"],
        "final_train_loss": final["train_loss"],
        "final_val_loss": final["val_loss"],
        "best_val_loss": min(r["val_loss"] for r in result.evaluations),
        "iterations_per_s": result.iterations_per_s,
        "tokens_per_s": result.tokens_per_s,
        "wall_s": wall,
        "evaluations": [
            {k: r[k] for k in ("iter", "train_loss", "val_loss", "lr")} for r in result.evaluations
        ],
    }


def run_reference(args, verbose: bool) -> dict:
    """nanoGPT's ``train.py`` loop (single process, CPU) around the plain baseline model."""
    from train_throughput import BaselineGPT, baseline_optimizer

    text = Path(args.text_file).read_text(encoding="utf-8")
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([index[c] for c in text], dtype=torch.long)
    cut = int(len(data) * 0.9)
    splits = {"train": data[:cut], "val": data[cut:]}
    batch, context, warmup, lr, min_lr = 12, 64, 100, 1e-3, 1e-4
    torch.manual_seed(args.seed)

    def get_batch(split: str):
        d = splits[split]
        ix = torch.randint(len(d) - context, (batch,))
        x = torch.stack([d[i : i + context] for i in ix])
        y = torch.stack([d[i + 1 : i + 1 + context] for i in ix])
        return x, y

    def get_lr(it: int) -> float:
        if it < warmup:
            return lr * (it + 1) / (warmup + 1)
        if it > args.max_iters:
            return min_lr
        ratio = (it - warmup) / (args.max_iters - warmup)
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)

    model = BaselineGPT(len(chars), context, 4, 128, 4, args.bias)
    _, train_config = configs(args, out="")
    optimizer = baseline_optimizer(model, train_config)

    @torch.no_grad()
    def estimate_loss() -> dict:
        model.eval()
        out = {}
        for split in ("train", "val"):
            losses = [model(*get_batch(split))[1].item() for _ in range(args.eval_iters)]
            out[split] = sum(losses) / len(losses)
        model.train()
        return out

    evaluations, step_times = [], []
    started = time.perf_counter()
    x, y = get_batch("train")
    for it in range(args.max_iters + 1):
        for group in optimizer.param_groups:
            group["lr"] = get_lr(it)
        if it % args.eval_interval == 0 or it == args.max_iters:
            losses = estimate_loss()
            record = {"iter": it, "train_loss": losses["train"], "val_loss": losses["val"]}
            evaluations.append({**record, "lr": get_lr(it)})
            if verbose:
                print(
                    f"  iter {it:5d}  train {losses['train']:.4f}  val {losses['val']:.4f}  "
                    f"lr {get_lr(it):.2e}",
                    flush=True,
                )
        if it == args.max_iters:
            break
        began = time.perf_counter()
        _, loss = model(x, y)
        x, y = get_batch("train")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step_times.append(time.perf_counter() - began)
    wall = time.perf_counter() - started
    step = statistics.median(step_times)
    final = evaluations[-1]
    return {
        "final_iter": final["iter"],
        "final_train_loss": final["train_loss"],
        "final_val_loss": final["val_loss"],
        "best_val_loss": min(r["val_loss"] for r in evaluations),
        "iterations_per_s": 1.0 / step,
        "tokens_per_s": batch * context / step,
        "wall_s": wall,
        "evaluations": evaluations,
    }


def fmt_load(load) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def main(argv=None) -> None:
    args = parse_args(argv)
    if not Path(args.text_file).is_file():
        raise SystemExit(f"--text-file: no such file: {args.text_file}")
    busy = wait_for_idle(args.idle_wait)
    load_before = load_average()
    machine = machine_line()
    verbose = not args.json
    if verbose:
        print(format_machine_line(machine))
        trainer = (
            "the plain PyTorch baseline in nanoGPT's training loop (--reference)"
            if args.reference
            else "attnlab.train.train"
        )
        print(
            f"{trainer}: tiny Shakespeare ({Path(args.text_file).stat().st_size:,} bytes), "
            "char-level, "
            f"4 layers, 4 heads, d_model 128, context 64, batch 12, {args.max_iters} iterations, "
            f"lr 1e-3 (warm-up 100, cosine to 1e-4), AdamW wd 0.1 betas (0.9, 0.99), clip 1.0, "
            f"dropout 0, bias {args.bias}, positions {args.positions}, {args.norm_kind}, "
            f"{args.ffn}, eval every {args.eval_interval} on "
            f"{args.eval_iters} batches, seed {args.seed}"
        )
        print(f"CPU busy before: {busy:.0%}; load average before: {fmt_load(load_before)}")
    if args.reference:
        row = run_reference(args, verbose)
    elif args.out:
        row = run(args, args.out, verbose)
    else:
        with tempfile.TemporaryDirectory(prefix="attnlab-train-quality-") as out:
            row = run(args, out, verbose)
    load_after = load_average()
    met = row["final_val_loss"] <= TARGET
    if args.json:
        print(
            json.dumps(
                {
                    "machine": machine,
                    "cpu_busy_before": busy,
                    "load_before": load_before,
                    "load_after": load_after,
                    "trainer": "reference" if args.reference else "attnlab",
                    "bias": args.bias,
                    "eval_iters": args.eval_iters,
                    "target": TARGET,
                    "met": met,
                    **row,
                },
                indent=2,
            )
        )
        return
    print(f"load average after: {fmt_load(load_after)}")
    if busy > 0.1:
        print(
            f"WARNING: the CPUs were {busy:.0%} busy before the run (waited {args.idle_wait:.0f} s "
            "for them to go idle); rerun before quoting the times"
        )
    if load_after[0] > DISTURBED_LOAD:
        print(
            f"WARNING: the 1-minute load rose to {load_after[0]:.2f} (this run's 2 threads "
            "account for about 2): something else was running; rerun before quoting the times"
        )
    print()
    print("| final val loss | final train loss | iterations/s | tokens/s | wall time |")
    print("|---:|---:|---:|---:|---:|")
    print(
        f"| {row['final_val_loss']:.4f} | {row['final_train_loss']:.4f} | "
        f"{row['iterations_per_s']:.1f} | {row['tokens_per_s']:,.0f} | {row['wall_s']:.1f} s |"
    )
    verdict = "met" if met else "NOT met"
    print(f"\ntarget val loss ≤ {TARGET} at iteration {row['final_iter']}: {verdict}")


if __name__ == "__main__":
    main()
