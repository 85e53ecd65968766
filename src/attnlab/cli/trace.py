"""``attnlab trace``: the shape of every intermediate of a real forward pass, step by step.

Head splitting is the most error-prone part of implementing attention (seed 000, exercise 14);
this command runs the module on random input, records each step through its ``recorder`` and
prints the shapes it saw, with the meaning of every axis. Nothing is computed from formulas:
a shape that is printed is a shape that occurred.
"""

from __future__ import annotations

import argparse
import json

import torch

from attnlab.nn import MultiHeadAttention

MODULES = ("mha",)

EXAMPLE = """examples:
  attnlab trace mha --d-model 512 --heads 8 --seq 16
  attnlab trace mha --d-model 512 --heads 8 --kv-heads 2 --seq 16      (grouped-query)
  attnlab trace mha --d-model 512 --heads 8 --seq 16 --d-value 1024
  attnlab trace mha --d-model 512 --heads 8 --seq 16 --context-len 10  (cross attention)
"""


def register(sub) -> None:
    parser = sub.add_parser(
        "trace",
        help="shapes of every step of a real attention forward pass",
        description="Build a module with a fixed seed, run it on random input and print the "
        "shape of each intermediate (projections, heads split, weights, heads merged, "
        "output) with what each axis means.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("module", help=f"the module to trace, one of: {', '.join(MODULES)}")
    parser.add_argument("--d-model", type=int, default=512, help="model width (default 512)")
    parser.add_argument("--heads", type=int, default=8, help="query heads (default 8)")
    parser.add_argument(
        "--kv-heads", type=int, help="key/value heads (default: --heads; 1 is multi-query)"
    )
    parser.add_argument(
        "--d-value", type=int, help="total value width across heads (default: --d-model)"
    )
    parser.add_argument("--seq", type=int, default=16, help="tokens per sequence (default 16)")
    parser.add_argument("--batch", type=int, default=2, help="sequences (default 2)")
    parser.add_argument(
        "--context-len",
        type=int,
        help="cross attention over a context of this many tokens (default: self attention)",
    )
    parser.add_argument("--causal", action="store_true", help="causal mask on the scores")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and input")
    parser.add_argument(
        "--json", action="store_true", help='print {"config": ..., "steps": [...]} as JSON'
    )
    parser.set_defaults(run=run)


def _axes(step: str, cross: bool) -> tuple[str, ...]:
    """What each axis of a recorded step means; seq_q/seq_k where they may differ, and always
    for the weights, whose rows are queries and columns keys."""
    seq_q, seq_k = ("seq_q", "seq_k") if cross else ("seq", "seq")
    return {
        "x": ("batch", seq_q, "d_model"),
        "q = x W_q": ("batch", seq_q, "heads·head_dim"),
        "k = x W_k": ("batch", seq_k, "kv_heads·head_dim"),
        "v = x W_v": ("batch", seq_k, "kv_heads·value_head_dim"),
        "q split into heads": ("batch", "heads", seq_q, "head_dim"),
        "k split into heads": ("batch", "kv_heads", seq_k, "head_dim"),
        "v split into heads": ("batch", "kv_heads", seq_k, "value_head_dim"),
        "k with cache": ("batch", "kv_heads", "cached + new", "head_dim"),
        "v with cache": ("batch", "kv_heads", "cached + new", "value_head_dim"),
        "weights": ("batch", "heads", "seq_q", "seq_k"),
        "context per head": ("batch", "heads", seq_q, "value_head_dim"),
        "heads merged": ("batch", seq_q, "d_value"),
        "output = merged W_o": ("batch", seq_q, "d_model"),
    }.get(step, ())


def _positive(flag: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{flag}: expected a positive integer, got {value}")


def trace_mha(args) -> dict:
    """Run ``MultiHeadAttention`` once and return its config and the recorded steps."""
    for flag, value in (
        ("--seq", args.seq),
        ("--batch", args.batch),
        ("--context-len", args.context_len),
    ):
        _positive(flag, value)
    # Seed the module's initialisation without leaving the caller's global RNG changed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        module = MultiHeadAttention(
            args.d_model, args.heads, args.kv_heads, d_value=args.d_value, backend="naive"
        )
    module.eval()
    generator = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch, args.seq, args.d_model, generator=generator)
    context = None
    if args.context_len is not None:
        context = torch.randn(args.batch, args.context_len, module.d_context, generator=generator)

    steps: list[dict] = []
    cross = context is not None

    def record(name: str, tensor: torch.Tensor) -> None:
        axes = _axes(name, cross)
        steps.append(
            {
                "name": name,
                "shape": list(tensor.shape),
                "axes": list(axes) if len(axes) == tensor.dim() else None,
            }
        )

    module.recorder = record
    with torch.no_grad():
        module(x, context, is_causal=args.causal)
    module.recorder = None

    layout = (
        "MHA" if module.n_kv_heads == module.n_heads else "MQA" if module.n_kv_heads == 1 else "GQA"
    )
    config = {
        "module": "MultiHeadAttention",
        "layout": layout,
        "d_model": module.d_model,
        "n_heads": module.n_heads,
        "n_kv_heads": module.n_kv_heads,
        "head_dim": module.head_dim,
        "d_value": module.d_value,
        "value_head_dim": module.value_head_dim,
        "batch": args.batch,
        "seq": args.seq,
        "context_len": args.context_len,
        "causal": args.causal,
        "parameters": sum(p.numel() for p in module.parameters()),
        "seed": args.seed,
    }
    return {"config": config, "steps": steps}


def _shape(shape: list[int]) -> str:
    return str(tuple(shape))


def _describe(axes: list[str] | None) -> str:
    return "(" + ", ".join(axes) + ")" if axes else ""


def run(args) -> int:
    tracers = {"mha": trace_mha}
    if args.module not in tracers:
        raise ValueError(f"module: expected one of {', '.join(MODULES)}, got {args.module!r}")
    result = tracers[args.module](args)
    if args.json:
        print(json.dumps(result))
        return 0
    c = result["config"]
    kind = (
        f"cross attention over {c['context_len']} context tokens"
        if c["context_len"]
        else "self attention"
    )
    print(
        f"{c['module']} ({c['layout']}, {kind}{', causal' if c['causal'] else ''}): "
        f"d_model={c['d_model']}, heads={c['n_heads']}, "
        f"head_dim={c['d_model']}/{c['n_heads']}={c['head_dim']}, kv_heads={c['n_kv_heads']}, "
        f"d_value={c['d_value']}, parameters={c['parameters']:,}"
    )
    context = f", context_len={c['context_len']}" if c["context_len"] else ""
    print(f"input: batch={c['batch']}, seq={c['seq']}{context}, seed={c['seed']}")
    rows = [("step", "shape", "axes")]
    rows += [
        (step["name"], _shape(step["shape"]), _describe(step["axes"])) for step in result["steps"]
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for i, (name, shape, axes) in enumerate(rows):
        print(f"{name.ljust(widths[0])}  {shape.ljust(widths[1])}  {axes}".rstrip())
        if i == 0:
            print(f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * len('axes')}")
    return 0
