"""Pre-norm and post-norm blocks with the same weights compute different functions.

A post-norm block (the original Transformer) is ``y = LN(h + FFN(h))``, ``h = LN(x + A(x))``;
a pre-norm block (GPT-2 and later) is ``y = h + FFN(LN(h))``, ``h = x + A(LN(x))``, where A is
causal self-attention. Same parameters, different compositions (seed 004 exercise 13.31). The
counterexample here is small enough to print: ``d_model = 4``, one head, three positions,
random weights shared through ``load_state_dict``, LayerNorm gains 1 and biases 0. Three
facts are measured, not assumed:

1. the outputs differ;
2. the post-norm output ends in a LayerNorm, so each position has mean 0 and variance
   ``v/(v + ε)`` ≈ 1; the pre-norm output has no final norm and keeps the input's scale;
3. the pre-norm residual stream carries the input through untouched: with the two sublayers'
   output projections zeroed, the pre-norm block is exactly the identity, while the post-norm
   block still returns ``LN(LN(x)) ≠ x``. That identity path is why deep pre-norm stacks train
   without warm-up (Xiong et al., 2020).
"""

from __future__ import annotations

import torch

from attnlab.nn import Block

from .registry import ExperimentResult, Progress, check_positive, check_positive_ints, register

COLUMNS = [
    "position",
    "norm",
    "input",
    "output",
    "mean",
    "std",
    "change_over_output",
]


def _blocks(d_model: int, heads: int, d_ff: int, scale: float, rng) -> tuple[Block, Block]:
    """A pre-norm and a post-norm block holding the same random float64 weights."""
    with torch.random.fork_rng(devices=[]):  # construction draws from the global RNG
        pre = Block(d_model, heads, d_ff=d_ff, norm="pre").double().eval()
        post = Block(d_model, heads, d_ff=d_ff, norm="post").double().eval()
    with torch.no_grad():
        for name, p in pre.named_parameters():
            if not name.startswith("norm"):  # LayerNorms stay at gain 1, bias 0
                p.copy_(scale * torch.randn(p.shape, generator=rng, dtype=torch.float64))
    post.load_state_dict(pre.state_dict())
    return pre, post


def _zero_sublayer_outputs(block: Block) -> Block:
    """Zero the last projection of attention and feed-forward: both sublayers output 0."""
    with torch.no_grad():
        for layer in (block.attn.out_proj, block.ffn.down):
            layer.weight.zero_()
            if layer.bias is not None:
                layer.bias.zero_()
    return block


def _weights_summary(block: Block) -> dict[str, str]:
    return {
        name: f"{'×'.join(map(str, p.shape))}, ‖·‖ = {float(p.detach().norm()):.4f}"
        for name, p in block.named_parameters()
    }


def _rounded(values, digits: int = 4) -> list[float]:
    return [round(float(v), digits) for v in values]


def _figure(fig, result: ExperimentResult) -> None:
    left, right = fig.subplots(1, 2)
    positions = sorted({r["position"] for r in result.rows})
    width = 0.38
    for offset, norm in ((-width / 2, "pre"), (width / 2, "post")):
        rows = [r for r in result.rows if r["norm"] == norm]
        x = [p + offset for p in positions]
        left.bar(x, [r["mean"] for r in rows], width, label=f"{norm}-norm")
        right.bar(x, [r["std"] for r in rows], width, label=f"{norm}-norm")
    left.set(xlabel="position", ylabel="mean over features", title="output mean per position")
    right.axhline(1.0, color="grey", lw=1)
    right.set(xlabel="position", ylabel="std over features", title="output std per position")
    for ax in (left, right):
        ax.set_xticks(positions)
        ax.legend(fontsize=8)


@register(
    "prenorm-vs-postnorm",
    title="same weights, pre-norm vs post-norm: a small counterexample",
    question="seed 004 13.31: pre-norm and post-norm Transformers are not equivalent",
    description="Block(norm='pre') vs Block(norm='post') with shared weights on a tiny input",
    help={
        "d_model": "width of the block",
        "heads": "attention heads",
        "d_ff": "hidden width of the feed-forward layer",
        "seq_len": "positions in the input",
        "weight_scale": "standard deviation of the random weights",
        "input_mean": "mean of the input entries (non-zero, so the norm has work to do)",
        "input_std": "standard deviation of the input entries",
    },
    figure=_figure,
)
def run(
    *,
    seed: int = 0,
    progress: Progress,
    d_model: int = 4,
    heads: int = 1,
    d_ff: int = 8,
    seq_len: int = 3,
    weight_scale: float = 0.5,
    input_mean: float = 1.0,
    input_std: float = 2.0,
) -> ExperimentResult:
    check_positive_ints("d_model", (d_model,), minimum=2)
    check_positive_ints("heads", (heads,))
    check_positive_ints("d_ff", (d_ff,))
    check_positive_ints("seq_len", (seq_len,))
    check_positive("weight_scale", weight_scale)
    check_positive("input_std", input_std)
    if d_model % heads:
        raise ValueError(f"heads: expected a divisor of d_model={d_model}, got {heads}")
    rng = torch.Generator().manual_seed(seed)
    progress("building blocks")
    pre, post = _blocks(d_model, heads, d_ff, weight_scale, rng)
    weights = _weights_summary(pre)  # before the identity check zeroes two of them
    x = input_mean + input_std * torch.randn(
        1, seq_len, d_model, generator=rng, dtype=torch.float64
    )
    rows = []
    with torch.no_grad():
        outputs = {"pre": pre(x)[0], "post": post(x)[0]}  # (seq_len, d_model)
        for position in range(seq_len):
            for norm, y in outputs.items():
                out, inp = y[position], x[0, position]
                rows.append(
                    {
                        "position": position,
                        "norm": norm,
                        "input": _rounded(inp),
                        "output": _rounded(out),
                        "mean": float(out.mean()),
                        "std": float(out.std(unbiased=False)),  # LayerNorm's own (biased) std
                        "change_over_output": float((out - inp).norm() / out.norm()),
                    }
                )
        progress("zeroed sublayers")
        identity = {
            norm: float((_zero_sublayer_outputs(block)(x) - x).abs().max())
            for norm, block in (("pre", pre), ("post", post))
        }

    pre_rows = [r for r in rows if r["norm"] == "pre"]
    post_rows = [r for r in rows if r["norm"] == "post"]
    summary = {
        "max_abs_pre_minus_post": float((outputs["pre"] - outputs["post"]).abs().max()),
        "post_max_abs_mean": max(abs(r["mean"]) for r in post_rows),
        "post_max_abs_std_minus_1": max(abs(r["std"] - 1) for r in post_rows),
        "pre_min_abs_std_minus_1": min(abs(r["std"] - 1) for r in pre_rows),
        "pre_max_abs_mean": max(abs(r["mean"]) for r in pre_rows),
        "identity_error_pre_zeroed": identity["pre"],
        "identity_error_post_zeroed": identity["post"],
    }
    details = {"input": [_rounded(row) for row in x[0]], "weights": weights}
    return ExperimentResult(columns=COLUMNS, rows=rows, summary=summary, details=details)
