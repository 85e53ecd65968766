"""Training throughput of attnlab's GPT against a straightforward PyTorch GPT of the same shape.

The baseline is written below with torch built-ins only, in the shape of nanoGPT's ``model.py``:
token embedding + learned positions, pre-norm blocks with ``nn.LayerNorm``, causal
self-attention with one fused q/k/v projection and the attention written out by hand,
``softmax(q·kᵀ/√d + mask)·v`` with a precomputed additive causal mask (no fused attention
kernel), a GELU MLP of width 4·d_model, a final LayerNorm and an LM head tied to the token
embedding; GPT-2 initialisation (normal 0.02, residual projections 0.02/√(2·layers)).

Both models have the configuration of ``benchmarks/train_quality.py`` (char-level vocabulary of
65, 4 layers, 4 heads, d_model 128, context 64, batch 12, dropout 0, no biases unless
``--bias``) and train with the same step: forward with loss, backward, gradient clipping at
norm 1, AdamW (weight decay 0.1 on matrices, betas (0.9, 0.99)),
``zero_grad(set_to_none=True)``; attnlab's optimizer comes from
``attnlab.train.trainer.make_optimizer``, as the trainer builds it. The two run interleaved step
by step in this process (baseline, attnlab, attnlab, baseline, …) on the same precomputed
batches of tiny Shakespeare; batch sampling is not timed. Tokens/s is batch × context over the
median step time after warm-up. ``--profile`` adds torch.profiler tables of both steps (top
operations by self CPU time).

    .venv/bin/python benchmarks/train_throughput.py [--steps 200] [--profile] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from attnlab.bench import format_machine_line, load_average, machine_line, wait_for_idle
from attnlab.data import CharTokenizer, random_batch
from attnlab.nn import GPT, GPTConfig
from attnlab.train import TrainConfig
from attnlab.train.trainer import make_optimizer

TARGET = 1.1  # attnlab tokens/s over the baseline's
DISTURBED_LOAD = 2.5  # 1-minute load average after a run that shared the CPUs
DEFAULT_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


# ---------------------------------------------------------------- the straightforward baseline


class BaselineAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, context: int, bias: bool):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        mask = torch.full((context, context), float("-inf")).triu(1)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) + self.mask[:T, :T]
        y = torch.softmax(scores, dim=-1) @ v  # (B, H, T, head_dim)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class BaselineBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int, context: int, bias: bool):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model, bias=bias)
        self.attn = BaselineAttention(d_model, n_heads, context, bias)
        self.ln2 = nn.LayerNorm(d_model, bias=bias)
        self.fc = nn.Linear(d_model, 4 * d_model, bias=bias)
        self.proj = nn.Linear(4 * d_model, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.proj(F.gelu(self.fc(self.ln2(x))))


class BaselineGPT(nn.Module):
    def __init__(self, vocab: int, context: int, n_layers: int, d_model: int, n_heads: int, bias):
        super().__init__()
        self.wte = nn.Embedding(vocab, d_model)
        self.wpe = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(
            BaselineBlock(d_model, n_heads, context, bias) for _ in range(n_layers)
        )
        self.ln_f = nn.LayerNorm(d_model, bias=bias)
        self.head = nn.Linear(d_model, vocab, bias=False)
        self.head.weight = self.wte.weight
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * n_layers))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def baseline_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2))


# ---------------------------------------------------------------- measurement


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--text-file", default=str(DEFAULT_TEXT), help="tiny-Shakespeare text")
    p.add_argument("--steps", type=int, default=200, help="timed steps of each model")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps of each model")
    p.add_argument("--bias", action="store_true", help="biases in Linear/LayerNorm (both models)")
    p.add_argument("--profile", action="store_true", help="also profile both training steps")
    p.add_argument("--profile-steps", type=int, default=50)
    p.add_argument("--idle-wait", type=float, default=60.0, help="seconds to wait for an idle CPU")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return p.parse_args(argv)


def batches(args, n: int, batch: int, context: int) -> tuple[int, list]:
    text = Path(args.text_file).read_text(encoding="utf-8")
    tokenizer = CharTokenizer(text)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    train_ids = ids[: int(len(ids) * 0.9)]
    generator = torch.Generator().manual_seed(1337)
    return tokenizer.vocab_size, [
        random_batch(train_ids, batch, context, generator) for _ in range(n)
    ]


def build(args, vocab: int):
    config = GPTConfig(
        vocab_size=vocab, context=64, n_layers=4, n_heads=4, d_model=128, bias=args.bias
    )
    train_config = TrainConfig(batch_size=12, weight_decay=0.1, beta1=0.9, beta2=0.99)
    torch.manual_seed(0)
    ours = GPT(config)
    torch.manual_seed(0)
    base = BaselineGPT(
        vocab, config.context, config.n_layers, config.d_model, config.n_heads, args.bias
    )
    n_ours = sum(p.numel() for p in ours.parameters())
    n_base = sum(p.numel() for p in base.parameters())
    if n_ours != n_base:
        raise RuntimeError(f"parameter counts differ: attnlab {n_ours}, baseline {n_base}")
    ours.train()
    base.train()
    return (
        config,
        (ours, make_optimizer(ours, train_config)),
        (base, baseline_optimizer(base, train_config)),
        n_ours,
    )


def make_step(model: nn.Module, optimizer: torch.optim.Optimizer, clip: float = 1.0):
    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step


def step_flops(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Matmul FLOPs of one forward and backward pass (``FlopCounterMode``)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        _, loss = model(x, y)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def timed(step, x, y) -> tuple[float, float]:
    start = time.perf_counter()
    loss = step(x, y)
    return time.perf_counter() - start, loss


def measure(args, ours_step, base_step, data) -> dict:
    for x, y in data[: args.warmup]:
        base_step(x, y)
        ours_step(x, y)
    t_base, t_ours, last_loss = [], [], None
    for i, (x, y) in enumerate(data[args.warmup :]):
        # Alternate which model goes first, so neither always follows the other's step.
        if i % 2 == 0:
            tb, lb = timed(base_step, x, y)
            to, lo = timed(ours_step, x, y)
        else:
            to, lo = timed(ours_step, x, y)
            tb, lb = timed(base_step, x, y)
        t_base.append(tb)
        t_ours.append(to)
        last_loss = (lb, lo)
    med_base, med_ours = statistics.median(t_base), statistics.median(t_ours)
    return {
        "baseline_step_ms": med_base * 1e3,
        "attnlab_step_ms": med_ours * 1e3,
        "ratio": med_base / med_ours,  # tokens/s attnlab over baseline
        "pair_ratio": statistics.median(b / o for b, o in zip(t_base, t_ours, strict=True)),
        "baseline_iqr_ms": iqr(t_base) * 1e3,
        "attnlab_iqr_ms": iqr(t_ours) * 1e3,
        "loss_last": last_loss,
    }


def iqr(values: list[float]) -> float:
    q = statistics.quantiles(values, n=4)
    return q[2] - q[0]


def profile(step, data, steps: int, row_limit: int = 20) -> str:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    for x, y in data[:5]:
        step(x, y)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for x, y in data[:steps]:
            step(x, y)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=row_limit)


def fmt_load(load) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def main(argv=None) -> None:
    args = parse_args(argv)
    if not Path(args.text_file).is_file():
        raise SystemExit(f"--text-file: no such file: {args.text_file}")
    busy = wait_for_idle(args.idle_wait)
    load_before = load_average()
    machine = machine_line()
    vocab, data = batches(args, args.warmup + args.steps, 12, 64)
    config, (ours, ours_opt), (base, base_opt), n_params = build(args, vocab)
    ours_step, base_step = make_step(ours, ours_opt), make_step(base, base_opt)
    flops = step_flops(base, *data[0])  # the same matmuls in both models
    row = measure(args, ours_step, base_step, data)
    load_after = load_average()
    tokens = 12 * config.context
    row["baseline_tokens_per_s"] = tokens / row["baseline_step_ms"] * 1e3
    row["attnlab_tokens_per_s"] = tokens / row["attnlab_step_ms"] * 1e3
    row["step_gflop"] = flops / 1e9
    for name in ("baseline", "attnlab"):
        row[f"{name}_gflops"] = flops / row[f"{name}_step_ms"] / 1e6
    met = row["ratio"] >= TARGET
    tables = {}
    if args.profile:
        tables["attnlab"] = profile(ours_step, data, args.profile_steps)
        tables["baseline"] = profile(base_step, data, args.profile_steps)
    if args.json:
        out = {
            "machine": machine,
            "cpu_busy_before": busy,
            "load_before": load_before,
            "load_after": load_after,
            "parameters": n_params,
            "bias": args.bias,
            "steps": args.steps,
            "warmup": args.warmup,
            "target": TARGET,
            "met": met,
            **row,
        }
        if tables:
            out["profile"] = tables
        print(json.dumps(out, indent=2))
        return
    print(format_machine_line(machine))
    print(
        f"GPT vocab {vocab}, 4 layers, 4 heads, d_model 128, context 64, batch 12, bias "
        f"{args.bias}, {n_params:,} parameters, float32; one training step = forward + loss, "
        f"backward, clip 1.0, AdamW step, zero_grad; median of {args.steps} interleaved steps "
        f"after {args.warmup} warm-up steps each, same batches, batch sampling not timed"
    )
    print(
        "baseline: nanoGPT-shaped model written with torch built-ins (fused q/k/v Linear, "
        "softmax(q·kᵀ/√d + mask)·v by hand, nn.LayerNorm, GELU MLP, tied head), torch AdamW"
    )
    print(
        f"CPU busy before: {busy:.0%}; load average before: {fmt_load(load_before)}; "
        f"after: {fmt_load(load_after)}"
    )
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
    print(
        f"matmul FLOPs per step (forward + backward, FlopCounterMode): {row['step_gflop']:.2f} "
        "GFLOP"
    )
    print()
    print("| model | step ms (median) | IQR ms | tokens/s | matmul GFLOP/s |")
    print("|---|---:|---:|---:|---:|")
    for name in ("baseline", "attnlab"):
        share = row[f"{name}_gflops"] / machine["matmul_gflops"]
        print(
            f"| {name} | {row[f'{name}_step_ms']:.2f} | {row[f'{name}_iqr_ms']:.2f} | "
            f"{row[f'{name}_tokens_per_s']:,.0f} | {row[f'{name}_gflops']:.0f} "
            f"({share:.0%} of peak) |"
        )
    print(
        f"\nattnlab / baseline tokens/s: {row['ratio']:.3f} (median of per-step ratios "
        f"{row['pair_ratio']:.3f}); target ≥ {TARGET}: {'met' if met else 'NOT met'}"
    )
    lb, lo = row["loss_last"]
    print(f"training loss at the last timed step: baseline {lb:.3f}, attnlab {lo:.3f}")
    for name, table in tables.items():
        print(f"\n{name} training step, {args.profile_steps} steps, top ops by self CPU time:")
        print(table)


if __name__ == "__main__":
    main()
