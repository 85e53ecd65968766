"""Self-attention without positions is permutation-equivariant; with positions it is not.

For ``f(X) = softmax(X W_q (X W_k)ᵀ / √d) X W_v`` and a permutation matrix P,
``f(PX) = P f(X)``: permuting the rows of X permutes the rows of the scores and, because the
softmax runs over the (equally permuted) keys, the columns too, ``S(PX) = P S(X) Pᵀ``, and
``softmax(P S Pᵀ) P V = P softmax(S) V`` (seed 004 exercise 13.2). So a Transformer without
positional information cannot tell word order: it sees a bag of tokens. Anything that ties a
row to its index breaks the identity: sinusoidal encodings added to the input, RoPE rotations
of the queries and keys, or a causal mask. The experiment measures
``max |f(PX) − P f(X)|`` over random permutations in float64, for the functional form above
and for :class:`attnlab.nn.MultiHeadAttention` itself.
"""

from __future__ import annotations

import torch

from attnlab.functional import apply_rope, scaled_dot_product_attention, sinusoidal_encoding
from attnlab.nn import MultiHeadAttention

from .registry import ExperimentResult, Progress, check_positive_ints, register

COLUMNS = ["setting", "positions", "max_error", "mean_error", "equivariant"]
TOLERANCE = 1e-12  # float64 rounding of a few dot products is ~1e-16; anything above is real


def _settings(d_model: int, heads: int, rng: torch.Generator):
    """``{name: (description, f)}`` where f maps ``(seq, d_model)`` to ``(seq, d_model)``."""

    def randn(*shape):
        return torch.randn(*shape, generator=rng, dtype=torch.float64) / d_model**0.5

    w_q, w_k, w_v = randn(d_model, d_model), randn(d_model, d_model), randn(d_model, d_model)

    def attention(x, *, rope=False, causal=False):
        q, k, v = x @ w_q, x @ w_k, x @ w_v  # (seq, d_model)
        if rope:
            q, k = apply_rope(q), apply_rope(k)  # row r turned by the angles of position r
        # The explicit path (weights materialised), as the equation above is written; it is
        # also far quicker than the fused kernel's thread start-up on inputs this small.
        return scaled_dot_product_attention(q, k, v, is_causal=causal, return_weights=True)[0]

    def with_sinusoids(x):
        return attention(x + sinusoidal_encoding(*x.shape, dtype=x.dtype))

    def module(positions):
        with torch.random.fork_rng(devices=[]):  # construction draws from the global RNG
            mha = MultiHeadAttention(d_model, heads, backend="naive", positions=positions)
            mha = mha.double().eval()
        with torch.no_grad():
            for p in mha.parameters():
                p.copy_(randn(*p.shape))
        return lambda x: mha(x[None])[0]

    return {
        "none": ("no positions", attention),
        "sinusoidal": ("sinusoids added to the input", with_sinusoids),
        "rope": ("RoPE on queries and keys", lambda x: attention(x, rope=True)),
        "causal": ("causal mask", lambda x: attention(x, causal=True)),
        "module": (f"nn.MultiHeadAttention, {heads} heads", module(None)),
        "module_rope": (f"nn.MultiHeadAttention, {heads} heads, RoPE", module("rope")),
    }


def _permutations(seq_len: int, count: int, rng: torch.Generator) -> list[torch.Tensor]:
    """``count`` random permutations of ``seq_len`` rows, never the identity."""
    identity = torch.arange(seq_len)
    out = []
    while len(out) < count:
        perm = torch.randperm(seq_len, generator=rng)
        if not torch.equal(perm, identity):
            out.append(perm)
    return out


def _figure(fig, result: ExperimentResult) -> None:
    ax = fig.subplots(1, 1)
    floor = 1e-18  # an exact 0 cannot sit on a log axis; it is drawn at the floor
    names = [r["setting"] for r in result.rows]
    errors = [max(r["max_error"], floor) for r in result.rows]
    colours = ["tab:green" if r["equivariant"] else "tab:red" for r in result.rows]
    ax.bar(names, errors, color=colours)
    ax.axhline(TOLERANCE, color="grey", lw=1, ls="--", label=f"tolerance {TOLERANCE:g}")
    ax.set_yscale("log")
    ax.set(ylabel="max |f(PX) − P f(X)|", title="green: equivariant; red: order matters")
    ax.legend(fontsize=8)


@register(
    "permutation-equivariance",
    title="f(PX) = P f(X) for self-attention without positions, and not with them",
    question="seed 004 13.2: self-attention is permutation-equivariant without positions",
    description="max |f(PX) − P f(X)| without positions vs sinusoidal, RoPE and causal masks",
    help={
        "seq_len": "rows of the input X",
        "d_model": "width of X (even, for RoPE)",
        "heads": "heads of the nn.MultiHeadAttention settings",
        "permutations": "random non-identity permutations per setting",
    },
    figure=_figure,
)
def run(
    *,
    seed: int = 0,
    progress: Progress,
    seq_len: int = 4,
    d_model: int = 4,
    heads: int = 2,
    permutations: int = 10,
) -> ExperimentResult:
    check_positive_ints("seq_len", (seq_len,), minimum=2)
    check_positive_ints("d_model", (d_model,), minimum=2)
    check_positive_ints("heads", (heads,))
    check_positive_ints("permutations", (permutations,))
    if d_model % (2 * heads):
        raise ValueError(
            f"d_model: expected a multiple of 2·heads = {2 * heads} (RoPE turns pairs of each "
            f"head's dims), got {d_model}"
        )
    rng = torch.Generator().manual_seed(seed)
    x = torch.randn(seq_len, d_model, generator=rng, dtype=torch.float64)
    perms = _permutations(seq_len, permutations, rng)
    rows = []
    with torch.no_grad():
        for name, (description, f) in _settings(d_model, heads, rng).items():
            progress(name)
            reference = f(x)
            errors = [float((f(x[perm]) - reference[perm]).abs().max()) for perm in perms]
            rows.append(
                {
                    "setting": name,
                    "positions": description,
                    "max_error": max(errors),
                    "mean_error": sum(errors) / len(errors),
                    "equivariant": max(errors) <= TOLERANCE,
                }
            )
    by_name = {r["setting"]: r for r in rows}
    summary = {
        "tolerance": TOLERANCE,
        "max_error_without_positions": max(by_name[n]["max_error"] for n in ("none", "module")),
        "min_error_with_positions": min(
            r["max_error"] for r in rows if r["setting"] not in ("none", "module")
        ),
    }
    details = {"input": x.tolist(), "permutations": [p.tolist() for p in perms]}
    return ExperimentResult(columns=COLUMNS, rows=rows, summary=summary, details=details)
