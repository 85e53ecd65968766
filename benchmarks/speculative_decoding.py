"""Speculative decoding on Shakespeare: a 1-layer draft proposes k tokens, a 4-layer target
verifies them (seed 004 exercise 13.25). Throughput against the target's own KV-cached decoding.

Both models are character-level GPTs trained here on the shipped Shakespeare corpus with
attnlab's trainer (checkpoints kept under ``--out`` and reused on a second run). Prompts are
passages of the validation text. For each temperature and k, plain ``target.generate`` and
``speculative_generate`` run interleaved on every prompt; greedy runs must give the same text.
Besides the measured speedup the script prints the cost model it follows: with draft step
``c_d``, target step ``c_t`` and a verifying pass over k + 1 tokens ``c_v``, a round costs
``k·c_d + c_v`` and yields ``tokens_per_round`` tokens, so the expected speedup is
``tokens_per_round · c_t / (k·c_d + c_v)`` (Leviathan et al., 2023, Section 3.4).

    .venv/bin/python benchmarks/speculative_decoding.py [--ks 2 4 6] [--json]
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from attnlab.bench import format_machine_line, load_average, machine_line, others_share
from attnlab.data import load_text
from attnlab.nn import GPT, GPTConfig, speculative_generate
from attnlab.train import TrainConfig, load_checkpoint, train


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target-layers", type=int, default=4)
    p.add_argument("--draft-layers", type=int, default=1)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--iters", type=int, default=2000, help="training steps of each model")
    p.add_argument("--ks", type=int, nargs="+", default=[1, 2, 3, 4, 6])
    p.add_argument("--temperatures", type=float, nargs="+", default=[0.0, 1.0])
    p.add_argument("--prompts", type=int, default=8, help="validation passages (default 8)")
    p.add_argument("--prompt-len", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=96)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", default="out/speculative", help="where the checkpoints live")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    return p.parse_args(argv)


def trained(args, name: str, layers: int) -> tuple[GPT, float, object]:
    """The model ``name`` trained (or reused from ``--out``), its validation loss, tokenizer."""
    out = Path(args.out) / name
    if not (out / "checkpoint").exists():
        config = GPTConfig(
            vocab_size=256,  # replaced by the tokenizer's size
            context=args.context,
            n_layers=layers,
            d_model=args.d_model,
            n_heads=args.heads,
        )
        train(config, TrainConfig(max_iters=args.iters, eval_interval=args.iters, out=str(out)))
    checkpoint = load_checkpoint(out / "checkpoint")
    lines = (out / "metrics.jsonl").read_text().splitlines()
    val = json.loads(lines[-1])["val_loss"]
    return checkpoint.model.eval(), val, checkpoint.tokenizer


def prompts(args, tokenizer) -> list[torch.Tensor]:
    text = load_text()
    val = text[int(len(text) * 0.9) :]
    step = len(val) // (args.prompts + 1)
    return [
        torch.tensor([tokenizer.encode(val[(i + 1) * step : (i + 1) * step + args.prompt_len])])
        for i in range(args.prompts)
    ]


def step_costs(target: GPT, draft: GPT, prompt: torch.Tensor, k: int) -> dict:
    """Median seconds of a cached draft step, target step and target pass over k + 1 tokens."""

    def cached_call(model: GPT, new: int) -> float:
        cache = model.new_cache(1, prompt.shape[1] + new)
        model(prompt, cache=cache)
        ids = prompt[:, :new]
        start = time.perf_counter()
        model(ids, cache=cache)
        return time.perf_counter() - start

    with torch.no_grad():
        costs = {
            "draft_step": [cached_call(draft, 1) for _ in range(30)],
            "target_step": [cached_call(target, 1) for _ in range(30)],
            "verify_pass": [cached_call(target, k + 1) for _ in range(30)],
        }
    return {name: statistics.median(values) for name, values in costs.items()}


def run_prompts(args, target, draft, prompt_list, temperature: float, k: int):
    """Plain and speculative decoding of every prompt, interleaved: their times and stats."""
    plain_s, spec_s, stats_all = [], [], []
    for i, prompt in enumerate(prompt_list):
        start = time.perf_counter()
        plain = target.generate(prompt, args.new_tokens, temperature, seed=i)
        plain_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        out, stats = speculative_generate(
            target, draft, prompt, args.new_tokens, k=k, temperature=temperature, seed=i
        )
        spec_s.append(time.perf_counter() - start)
        stats_all.append(stats)
        if temperature == 0 and not torch.equal(out, plain):
            raise AssertionError("greedy speculative text differs from the target's")
    return plain_s, spec_s, stats_all


def measure(args, target, draft, prompt_list) -> list[dict]:
    rows = []
    for temperature in args.temperatures:
        for k in args.ks:
            run = functools.partial(run_prompts, args, target, draft, prompt_list, temperature, k)
            (plain_s, spec_s, stats_all), others = others_share(run)
            costs = step_costs(target, draft, prompt_list[0], k)
            rounds = sum(s.rounds for s in stats_all)
            per_round = sum(s.new_tokens for s in stats_all) / rounds
            accepted = sum(s.accepted for s in stats_all) / sum(s.proposed for s in stats_all)
            model = per_round * costs["target_step"]
            model /= k * costs["draft_step"] + costs["verify_pass"]
            plain_tps = args.new_tokens / statistics.median(plain_s)
            spec_tps = args.new_tokens / statistics.median(spec_s)
            rows.append(
                {
                    "temperature": temperature,
                    "k": k,
                    "acceptance": accepted,
                    "tokens_per_round": per_round,
                    "target_tok_s": plain_tps,
                    "speculative_tok_s": spec_tps,
                    "speedup": spec_tps / plain_tps,
                    "model_speedup": model,
                    "draft_step_ms": costs["draft_step"] * 1e3,
                    "target_step_ms": costs["target_step"] * 1e3,
                    "verify_pass_ms": costs["verify_pass"] * 1e3,
                    "others": others,
                }
            )
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    console = Console(stderr=True)
    console.print("training (or loading) the target and the draft …")
    target, target_val, tokenizer = trained(args, "target", args.target_layers)
    draft, draft_val, draft_tokenizer = trained(args, "draft", args.draft_layers)
    if draft_tokenizer.to_dict() != tokenizer.to_dict():
        raise SystemExit("the draft and the target were trained with different tokenizers")
    line = machine_line()
    before = load_average()
    rows = measure(args, target, draft, prompts(args, tokenizer))
    result = {
        "machine": line,
        "threads": args.threads,
        "load_before": before,
        "load_after": load_average(),
        "target": {"layers": args.target_layers, "val_loss": target_val,
                   "parameters": target.num_parameters()},
        "draft": {"layers": args.draft_layers, "val_loss": draft_val,
                  "parameters": draft.num_parameters()},
        "rows": rows,
    }  # fmt: skip
    if args.json:
        print(json.dumps(result))
        return 0
    print(format_machine_line(line), f"| torch threads {args.threads}")
    print(f"load average before: {before}; after: {result['load_after']}")
    for name in ("target", "draft"):
        info = result[name]
        print(f"{name}: {info['layers']} layers, d_model {args.d_model}, "
              f"{info['parameters']:,} parameters, val loss {info['val_loss']:.3f}")  # fmt: skip
    table = Table(
        title=f"{args.prompts} prompts of {args.prompt_len} chars, {args.new_tokens} new tokens; "
        "medians over the prompts"
    )
    columns = list(rows[0])
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(f"{row[c]:.3g}" if isinstance(row[c], float) else str(row[c])
                        for c in columns))  # fmt: skip
    Console(width=200).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
