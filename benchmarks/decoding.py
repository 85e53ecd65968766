"""Decoding with and without the KV cache on a small GPT (random weights).

Greedy generation of N new tokens after a short prompt: with the cache each step runs one
position through the model; without it each step recomputes the whole prefix, so the total
cost grows like N² instead of N. Both runs are interleaved (cached, recomputed, cached, …) and
must produce the same tokens. Also reports the cache's bytes for MHA, GQA (4 → 2) and MQA,
measured from the allocated tensors.

    .venv/bin/python benchmarks/decoding.py [--new-tokens 256 1024] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from attnlab.bench import format_machine_line, load_average, machine_line
from attnlab.nn import GPT, GPTConfig

TARGET = 20.0  # cached speedup wanted at 1024 new tokens


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--new-tokens", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--prompt", type=int, default=16, help="prompt length (default 16)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each path (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    return p.parse_args(argv)


def build(args, n_kv_heads=None, context=None) -> GPT:
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=args.vocab,
        context=context or args.prompt + max(args.new_tokens),
        n_layers=args.layers,
        d_model=args.d_model,
        n_heads=args.heads,
        n_kv_heads=n_kv_heads,
    )
    return GPT(config).eval()


def timed_generate(model: GPT, prompt: torch.Tensor, n: int, use_cache: bool):
    start = time.perf_counter()
    out = model.generate(prompt, n, temperature=0, use_cache=use_cache)
    return time.perf_counter() - start, out


def measure_speed(args) -> list[dict]:
    model = build(args)
    prompt = torch.randint(
        0, args.vocab, (1, args.prompt), generator=torch.Generator().manual_seed(1)
    )
    rows = []
    for n in args.new_tokens:
        timed_generate(model, prompt, 8, True)  # warm-up: allocator and kernel choice
        timed_generate(model, prompt, 8, False)
        cached, recomputed = [], []
        for _ in range(args.repeats):
            t_cached, out_cached = timed_generate(model, prompt, n, True)
            t_full, out_full = timed_generate(model, prompt, n, False)
            if not torch.equal(out_cached, out_full):
                raise RuntimeError(f"cached and recomputed generation differ at {n} new tokens")
            cached.append(t_cached)
            recomputed.append(t_full)
        t_c, t_r = statistics.median(cached), statistics.median(recomputed)
        rows.append(
            {
                "new_tokens": n,
                "cached_s": t_c,
                "recomputed_s": t_r,
                "cached_tokens_per_s": n / t_c,
                "recomputed_tokens_per_s": n / t_r,
                "speedup": t_r / t_c,
                "same_tokens": True,
            }
        )
    return rows


def measure_cache_bytes(args) -> list[dict]:
    rows = []
    context = args.prompt + max(args.new_tokens)
    for name, kv in (("MHA", args.heads), ("GQA", max(1, args.heads // 2)), ("MQA", 1)):
        model = build(args, n_kv_heads=kv, context=context)
        cache = model.new_cache(1, context)
        rows.append(
            {
                "layout": f"{name} ({args.heads}→{kv})",
                "kv_heads": kv,
                "max_len": context,
                "bytes": cache.nbytes,
                "bytes_per_token": cache.nbytes // context,
            }
        )
    return rows


def main(argv=None) -> None:
    args = parse_args(argv)
    machine = machine_line()
    load_before = load_average()
    speed = measure_speed(args)
    cache = measure_cache_bytes(args)
    load_after = load_average()
    if args.json:
        print(json.dumps({"machine": machine, "speed": speed, "cache": cache}, indent=2))
        return
    print(format_machine_line(machine))
    print(
        f"GPT {args.layers} layers, d_model {args.d_model}, {args.heads} heads, vocab "
        f"{args.vocab}, random weights, batch 1, prompt {args.prompt}, greedy, float32; "
        f"median of {args.repeats} interleaved runs"
    )
    print(f"load average before: {load_before}; after: {load_after}")
    print()
    print("| new tokens | cached tok/s | recomputed tok/s | speedup | same tokens |")
    print("|---:|---:|---:|---:|:---:|")
    for r in speed:
        print(
            f"| {r['new_tokens']} | {r['cached_tokens_per_s']:.0f} | "
            f"{r['recomputed_tokens_per_s']:.0f} | {r['speedup']:.1f}× | yes |"
        )
    print()
    print("| layout | KV heads | cache bytes at max_len | bytes per token |")
    print("|---|---:|---:|---:|")
    for r in cache:
        print(f"| {r['layout']} | {r['kv_heads']} | {r['bytes']:,} | {r['bytes_per_token']:,} |")
    last = speed[-1]
    verdict = "met" if last["speedup"] >= TARGET else "NOT met"
    print(f"\ntarget ≥ {TARGET:.0f}× at {last['new_tokens']} new tokens: {verdict}")


if __name__ == "__main__":
    main()
