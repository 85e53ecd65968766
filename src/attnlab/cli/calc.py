"""``attnlab calc``: transformer arithmetic from the command line, every input a flag."""

from __future__ import annotations

import argparse
import json
import math
import re

from rich.console import Console, Group
from rich.table import Table

from attnlab import calc
from attnlab.calc.figures import check_divides, check_positive_int, format_figure, plain

EXAMPLE = """topics and the exercises they answer:
  attnlab calc params                                   # GPT-2 small: 124,439,808
  attnlab calc params --layers 32 --d-model 4096 --heads 32 --vocab 32000 --d-ff 11008 \\
      --ffn swiglu --norm rmsnorm --no-bias --positions none --untied     # 13.17 (Llama 7B)
  attnlab calc flops --params 13B --tokens 2T                         # 13.13: 6·N·D
  attnlab calc kv-cache --layers 80 --heads 64 --head-dim 128 --context 32768   # 13.14
  attnlab calc chinchilla --compute 1e22                              # 13.18
  attnlab calc attention-ops --seq-q 2048 --compare-length 32768      # 000 Ex 9: 256×
  attnlab calc decode --batch 8 --context 4096 --d-model 4096 --heads 32   # 003 P4
  attnlab calc linear-ops --seq 16384 --map elu --heads 8       # 003 P6: O(N·r·D) vs O(N²·D)

Counts accept 13e9 or the suffixes M, B (or G) and T (10⁶, 10⁹, 10¹²).
"""

# Library argument names → the flags that set them, so an error names what the user typed.
FLAGS = {
    "n_layers": "--layers", "d_model": "--d-model", "n_heads": "--heads",
    "n_kv_heads": "--kv-heads", "head_dim": "--head-dim", "d_ff": "--d-ff",
    "ff_mult": "--ff-mult", "vocab_size": "--vocab", "context": "--context", "batch": "--batch",
    "dtype": "--dtype", "params": "--params", "tokens": "--tokens", "compute": "--compute",
    "n_q": "--seq-q", "n_k": "--seq-k", "d_k": "--head-dim", "d_v": "--d-value",
    "tokens_per_param": "--tokens-per-param", "n_to": "--compare-length", "seq": "--seq",
    "n_features": "--n-features", "chunk": "--chunk",
}  # fmt: skip
SUFFIXES = {"M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}


def count(text: str) -> int:
    """A whole number written as 4096, 13e9, 1_000 or 13B (the value is checked later)."""
    match = re.fullmatch(r"\s*(-?[0-9][0-9_.eE+-]*)\s*([MBGT]?)\s*", text)
    try:
        value = float(match.group(1)) * SUFFIXES.get(match.group(2), 1) if match else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not value.is_integer():
        raise argparse.ArgumentTypeError(
            f"expected a whole number such as 4096, 13e9 or 13B, got {text!r}"
        )
    return int(value)


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 1e22, got {text!r}") from None


def register(sub) -> None:
    parser = sub.add_parser(
        "calc",
        help="transformer arithmetic: parameters, FLOPs, KV cache, Chinchilla, op counts",
        description="Transformer arithmetic with every input a flag: exact counts per part "
        "beside the rules of thumb. Each topic prints a table, or JSON with --json.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    topics = parser.add_subparsers(dest="topic", metavar="<topic>")
    parser.set_defaults(run=lambda args: parser.print_help() or 0)
    for name, helptext, add_flags, run_topic in TOPICS:
        examples = _examples(name)
        topic = topics.add_parser(
            name,
            help=helptext,
            description=helptext,
            epilog=f"example:\n{examples}" if examples else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_flags(topic)
        topic.add_argument("--json", action="store_true", help="print the figures as JSON")
        topic.set_defaults(run=_runner(run_topic))


def _examples(topic: str) -> str:
    """The lines of EXAMPLE that run ``topic``, with their continuation lines."""
    lines, keep = [], False
    for line in EXAMPLE.splitlines():
        keep = f"calc {topic} " in line or (keep and lines[-1].endswith("\\"))
        if keep:
            lines.append(line)
    return "\n".join(lines)


def _runner(run_topic):
    def run(args) -> int:
        try:
            result = run_topic(args)
        except (ValueError, TypeError) as error:
            name, sep, rest = str(error).partition(": ")
            if sep and name in FLAGS:  # name the flag, not the library argument
                for arg, flag in FLAGS.items():
                    if "_" in arg:  # plain words such as "context" stay as they are
                        rest = re.sub(
                            rf"\b{arg}\b( = )?", lambda m, f=flag: f + (" " if m[1] else ""), rest
                        )
                raise type(error)(f"{FLAGS[name]}: {rest}") from None
            raise
        title, figures, extra = result
        if args.json:
            print(json.dumps({**figures.to_dict(), **{k: plain(v) for k, v in extra.items()}}))
        else:
            _print(title, figures, extra)
        return 0

    return run


# ── flags ─────────────────────────────────────────────────────────────────────────────────────


def _model_flags(p, *, shape_only: bool = False) -> None:
    p.add_argument("--layers", type=count, metavar="N", help="Transformer blocks L (default 12)")
    p.add_argument("--d-model", type=count, metavar="N", help="residual width d (default 768)")
    p.add_argument("--heads", type=count, metavar="N", help="query heads h (default 12)")
    p.add_argument(
        "--kv-heads", type=count, metavar="N", help="key/value heads (default: --heads; 1 = MQA)"
    )
    p.add_argument(
        "--head-dim", type=count, metavar="N", help="width of a head (default d_model / heads)"
    )
    p.add_argument(
        "--context", type=count, metavar="N", help="context length in tokens (default 1024)"
    )
    if shape_only:
        return
    p.add_argument("--vocab", type=count, metavar="N", help="vocabulary size V (default 50257)")
    p.add_argument(
        "--d-ff", type=count, metavar="N", help="feed-forward hidden width (default 4·d)"
    )
    p.add_argument(
        "--ff-mult", type=number, metavar="X", help="d_ff as a multiple of d (instead of --d-ff)"
    )
    p.add_argument("--ffn", choices=calc.FFN_KINDS, help="gelu (2 matrices) or swiglu (3)")
    p.add_argument("--norm", choices=calc.NORM_KINDS, help="layernorm (default) or rmsnorm")
    p.add_argument(
        "--positions",
        choices=calc.POSITION_KINDS,
        help="learned (context·d parameters; the default); the others have none",
    )
    p.add_argument(
        "--bias", action=argparse.BooleanOptionalAction, help="biases in linears and LayerNorm"
    )
    p.add_argument("--untied", action="store_true", help="separate output matrix (Llama)")
    p.add_argument("--no-final-norm", action="store_true", help="no norm after the last block")


def _architecture(args) -> calc.Architecture:
    given = {
        "n_layers": args.layers, "d_model": args.d_model, "n_heads": args.heads,
        "n_kv_heads": args.kv_heads, "head_dim": args.head_dim, "d_ff": args.d_ff,
        "ff_mult": args.ff_mult, "vocab_size": args.vocab, "context": args.context,
        "ffn": args.ffn, "norm_kind": args.norm, "positions": args.positions, "bias": args.bias,
    }  # fmt: skip
    fields = {k: v for k, v in given.items() if v is not None}
    if args.untied:
        fields["tie_embeddings"] = False
    if args.no_final_norm:
        fields["final_norm"] = False
    return calc.Architecture(**fields)


def _params_flags(p) -> None:
    _model_flags(p)


def _flops_flags(p) -> None:
    _model_flags(p)
    p.add_argument(
        "--params", type=count, metavar="N", help="parameters N: use 2·N and 6·N·D alone"
    )
    p.add_argument(
        "--tokens", type=count, metavar="N", default=1, help="tokens D (default 1: per token)"
    )


def _kv_flags(p) -> None:
    _model_flags(p, shape_only=True)
    p.add_argument("--batch", type=count, metavar="N", default=1, help="sequences (default 1)")
    p.add_argument("--dtype", default="fp16", help="fp32, fp16, bf16, int8 or fp8 (default fp16)")


def _chinchilla_flags(p) -> None:
    p.add_argument(
        "--compute", type=number, metavar="X", required=True, help="compute budget C in FLOPs"
    )
    p.add_argument(
        "--tokens-per-param", type=number, metavar="X", default=20.0, help="rule's D/N (20)"
    )


def _ops_flags(p) -> None:
    p.add_argument("--seq-q", type=count, metavar="N", required=True, help="queries n_q")
    p.add_argument("--seq-k", type=count, metavar="N", help="keys n_k (default: --seq-q)")
    p.add_argument(
        "--head-dim", type=count, metavar="N", default=64, help="query/key width d_k (64)"
    )
    p.add_argument(
        "--d-value", type=count, metavar="N", help="value width d_v (default: --head-dim)"
    )
    p.add_argument(
        "--heads", type=count, metavar="N", default=1, help="heads, compared with one wide head"
    )
    p.add_argument(
        "--compare-length", type=count, metavar="N", help="cost ratio from --seq-q to this length"
    )


def _linear_flags(p) -> None:
    p.add_argument("--seq", type=count, metavar="N", required=True, help="tokens T")
    p.add_argument("--head-dim", type=count, metavar="N", default=64, help="query/key width d (64)")
    p.add_argument(
        "--d-value", type=count, metavar="N", help="value width d_v (default: --head-dim)"
    )
    p.add_argument(
        "--map",
        choices=calc.linear.FEATURE_MAPS,
        default="elu",
        help="feature map φ: r = d (elu, relu), 1 + d + d(d+1)/2 (poly2), --n-features (favor+)",
    )
    p.add_argument(
        "--n-features", type=count, metavar="R", default=256, help="FAVOR+ features r (256)"
    )
    p.add_argument("--causal", action="store_true", help="causal: chunked prefix sums")
    p.add_argument("--chunk", type=count, metavar="C", default=64, help="causal chunk (64)")
    p.add_argument("--heads", type=count, metavar="N", default=1, help="heads × batch (1)")


def _decode_flags(p) -> None:
    p.add_argument("--batch", type=count, metavar="N", default=1, help="sequences b (default 1)")
    p.add_argument("--context", type=count, metavar="N", default=1024, help="cached keys n (1024)")
    p.add_argument("--d-model", type=count, metavar="N", default=768, help="width d (default 768)")
    p.add_argument(
        "--heads", type=count, metavar="N", default=12, help="query heads h (default 12)"
    )
    p.add_argument(
        "--kv-heads", type=count, metavar="N", help="key/value heads (default: all three layouts)"
    )
    p.add_argument(
        "--layers", type=count, metavar="N", default=1, help="layers (default 1: per layer)"
    )
    p.add_argument("--dtype", default="fp16", help="fp32, fp16, bf16, int8 or fp8 (default fp16)")


# ── topics: each returns (title, figures, extra JSON/table sections) ─────────────────────────


def _params(args):
    result = calc.count_params(_architecture(args))
    a = result.architecture
    title = (
        f"parameters: L={a.n_layers} d={a.d_model} h={a.n_heads} n_kv={a.n_kv_heads} "
        f"d_ff={a.d_ff} V={a.vocab_size} {a.ffn} {a.norm_kind} positions={a.positions} "
        f"{'bias' if a.bias else 'no bias'} {'tied' if a.tie_embeddings else 'untied'}"
    )
    return title, result, {}


def _flops(args):
    if args.params is not None:
        model_only = ("vocab", "d_ff", "ff_mult", "ffn", "norm", "positions", "bias", "heads")
        extra = [f"--{n.replace('_', '-')}" for n in model_only if getattr(args, n) is not None]
        if extra or args.untied or args.kv_heads is not None or args.head_dim is not None:
            raise ValueError(
                "--params: counts from N alone (with --layers, --d-model, --context for the "
                f"attention term); drop --params or {', '.join(extra) or 'the model flags'}"
            )
        result = calc.flops_from_params(
            args.params, args.tokens, n_layers=args.layers, d_model=args.d_model,
            context=args.context,
        )  # fmt: skip
        return f"FLOPs from N = {args.params:,}, D = {args.tokens:,}", result, {}
    result = calc.flops(_architecture(args), args.tokens)
    title = f"FLOPs: N = {result.params:,}, D = {result.tokens:,}, context {result.context}"
    return title, result, {}


def _kv_cache(args):
    heads = check_positive_int("n_heads", 12 if args.heads is None else args.heads)
    if args.head_dim is None:
        d_model = check_positive_int("d_model", 768 if args.d_model is None else args.d_model)
        check_divides("n_heads", heads, "d_model", d_model)
        head_dim = d_model // heads
    else:
        head_dim = args.head_dim
    layers = 12 if args.layers is None else args.layers
    kw = {
        "context": 1024 if args.context is None else args.context,
        "batch": args.batch,
        "dtype": args.dtype,
    }
    chosen = calc.kv_cache(layers, heads, head_dim, args.kv_heads, **kw)
    layouts = calc.kv_cache_layouts(layers, heads, head_dim, args.kv_heads, **kw)
    title = (
        f"KV cache: L={layers} h={heads} n_kv={chosen.n_kv_heads} d_head={head_dim} "
        f"context={chosen.context} batch={chosen.batch} {chosen.dtype}"
    )
    return title, chosen, {"layouts": {s.layout: s for s in layouts}}


def _chinchilla(args):
    result = calc.chinchilla(args.compute, args.tokens_per_param)
    return f"compute-optimal (N, D) for C = {args.compute:.3g} FLOPs", result, {}


def _attention_ops(args):
    n_k = args.seq_q if args.seq_k is None else args.seq_k
    result = calc.attention_ops(args.seq_q, n_k, args.head_dim, args.d_value, n_heads=args.heads)
    extra = {}
    if args.heads > 1:
        extra["head_split"] = calc.head_split(
            args.seq_q, n_k, args.head_dim, args.heads, args.d_value
        )
    if args.compare_length is not None:
        if args.seq_k not in (None, args.seq_q):
            raise ValueError("--compare-length: compares self-attention; drop --seq-k")
        extra["length_ratio"] = calc.length_ratio(
            args.seq_q, args.compare_length, args.head_dim, args.d_value, n_heads=args.heads
        )
    title = (
        f"SDPA operations: n_q={result.n_q} n_k={result.n_k} d_k={result.d_k} "
        f"d_v={result.d_v} heads={result.n_heads}"
    )
    return title, result, extra


def _linear_ops(args):
    r, projection = calc.feature_dim(args.map, args.head_dim, args.n_features)
    result = calc.linear_attention_ops(
        args.seq, args.head_dim, r, d_value=args.d_value, causal=args.causal, chunk=args.chunk,
        projection=projection, n_heads=args.heads,
    )  # fmt: skip
    title = (
        f"linear attention ({args.map}, r = {r}) against softmax attention: T={result.seq} "
        f"d={result.head_dim} d_v={result.d_value} heads={result.n_heads}"
        f"{' causal' if result.causal else ''}"
    )
    return title, result, {}


def _decode(args):
    kw = {"n_layers": args.layers, "dtype": args.dtype}
    shape = (args.batch, args.context, args.d_model, args.heads)
    chosen = calc.decode_step(*shape, args.kv_heads, **kw)
    layouts = calc.decode_layouts(*shape, args.kv_heads, **kw)
    title = (
        f"one decoding step: b={args.batch} n={args.context} d={args.d_model} h={args.heads} "
        f"L={args.layers} {chosen.dtype}"
    )
    return title, chosen, {"layouts": {s.layout: s for s in layouts}}


TOPICS = (
    ("params", "exact parameter count per component, and the 12·L·d² rule", _params_flags,
     _params),
    ("flops", "FLOPs per token by part; training 6·N·D", _flops_flags, _flops),
    ("kv-cache", "KV cache bytes per token, sequence and batch; MHA/GQA/MQA", _kv_flags,
     _kv_cache),
    ("chinchilla", "compute-optimal N and D for a compute budget", _chinchilla_flags,
     _chinchilla),
    ("attention-ops", "exact multiply/add/divide/exp counts of attention", _ops_flags,
     _attention_ops),
    ("decode", "compute, memory traffic and intensity of one decoding step", _decode_flags,
     _decode),
    ("linear-ops", "matmul FLOPs of linear attention beside softmax attention", _linear_flags,
     _linear_ops),
)  # fmt: skip


# ── output ───────────────────────────────────────────────────────────────────────────────────


def _print(title: str, figures, extra: dict) -> None:
    console = Console(width=max(Console().width, 110))
    console.print(_figures_table(title, figures))
    for name, value in extra.items():
        if isinstance(value, dict):  # layouts side by side
            console.print(_layouts_table(name, list(value.values())))
        else:
            console.print(_figures_table(name.replace("_", " "), value))


def _figures_table(title: str, figures) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("formula")
    for name, value, formula, unit in figures.rows():
        table.add_row(name, format_figure(value, unit), formula)
    parts = getattr(figures, "parts", ())
    if parts:
        table.add_section()
        for part in parts:
            table.add_row(f"  {part.name}", format_figure(part.value, part.unit), part.formula)
    if isinstance(figures, calc.HeadSplit):
        for label, ops in (("multi_head", figures.multi_head), ("one_head", figures.one_head)):
            table.add_section()
            for name, value, _, unit in ops.rows():
                table.add_row(f"  {label}.{name}", format_figure(value, unit), "")
    return table


def _layouts_table(title: str, rows: list) -> Table:
    """One row per head layout; big-O strings go to a second table so both stay narrow."""
    table = Table(title=title.replace("_", " ") + " side by side", title_justify="left")
    table.add_column("layout")
    table.add_column("kv heads", justify="right")
    names = [name for name, _, _, unit in rows[0].rows() if unit != "text"]
    for name in names:
        table.add_column(name, justify="right")
    text_names = [name for name, _, _, unit in rows[0].rows() if unit == "text"]
    big_o = Table(title="big-O terms (Shazeer, 2019)", title_justify="left")
    big_o.add_column("layout")
    for name in text_names:
        big_o.add_column(name.removesuffix("_big_o"))
    for row in rows:
        figures = row.rows()
        values = [
            format_figure(v, unit, compact=True) for _, v, _, unit in figures if unit != "text"
        ]
        table.add_row(row.layout, str(row.n_kv_heads), *values)
        big_o.add_row(row.layout, *(v for _, v, _, unit in figures if unit == "text"))
    return Group(table, big_o) if text_names else table
