"""Parameter counts of a decoder-only Transformer: exact per component, and the rule of thumb.

Every count is what ``sum(p.numel() for p in model.parameters())`` gives for the module the
:class:`~attnlab.calc.architecture.Architecture` describes, with a tied embedding counted once.
Checked against GPT-2 and Llama built by ``transformers`` and against ``attnlab.nn``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .architecture import Architecture
from .figures import Figures, Part, check_bool, check_divides, check_positive_int, figure


def rule_of_thumb_params(
    n_layers: int, d_model: int, vocab_size: int, *, tie_embeddings: bool = False
) -> int:
    """``12·L·d² + 2·V·d`` (untied) or ``12·L·d² + V·d`` (tied).

    Each block holds ``4·d²`` attention weights (``W_q, W_k, W_v, W_o``) and ``8·d²`` in a
    ``d → 4d → d`` MLP (or a SwiGLU with ``d_ff = 8d/3``), hence ``12·L·d²`` (Kaplan et al., 2020,
    section 2.1). The embedding adds ``V·d`` once when the output layer reuses it, and ``2·V·d``
    when the input and output matrices are separate: the ``2·V·d`` rule as usually quoted
    (e.g. exercise 13.12) is right only for untied embeddings. Biases, norms and positions are
    left out.
    """
    n_layers = check_positive_int("n_layers", n_layers)
    d_model = check_positive_int("d_model", d_model)
    vocab_size = check_positive_int("vocab_size", vocab_size)
    check_bool("tie_embeddings", tie_embeddings)
    return 12 * n_layers * d_model**2 + (1 if tie_embeddings else 2) * vocab_size * d_model


@dataclass(frozen=True)
class ParamCount(Figures):
    """Exact parameters of an :class:`Architecture`, per component, and the rule of thumb."""

    architecture: Architecture
    total_params: int = figure("sum of the breakdown (a tied embedding counted once)")
    per_layer_params: int = figure("attention + feed-forward + 2 norms, one block")
    attention_params_per_layer: int = figure("d·(h + 2·n_kv)·d_head + h·d_head·d (+ biases)")
    ffn_params_per_layer: int = figure("m·d·d_ff (+ biases), m = 2 (GELU) or 3 (SwiGLU)")
    embedding_params: int = figure("V·d (+ context·d learned positions) (+ V·d untied output)")
    non_embedding_params: int = figure("total − embedding (Kaplan et al.'s N)")
    rule_of_thumb_params: int = figure("12·L·d² + V·d (tied) or 12·L·d² + 2·V·d (untied)")
    rule_relative_error: float = figure("(rule − exact) / exact", "fraction")
    parts: tuple[Part, ...] = ()


def _linear(d_in: int, d_out: int, bias: bool) -> int:
    return d_in * d_out + (d_out if bias else 0)


def count_params(architecture: Architecture | None = None, **fields) -> ParamCount:
    """Count the parameters of a decoder-only Transformer, exactly, per component.

    Pass an :class:`Architecture` or its fields as keywords (``count_params(n_layers=24, ...)``);
    with neither, GPT-2 small: 124,439,808.

    Per block: ``W_q`` ``d × h·d_head``, ``W_k`` and ``W_v`` ``d × n_kv·d_head`` (smaller under
    GQA/MQA), ``W_o`` ``h·d_head × d``, the feed-forward matrices ``d × d_ff`` (two for GELU,
    three for SwiGLU), and two norms of ``d`` gains (plus ``d`` shifts for LayerNorm with biases).
    """
    if architecture is None:
        architecture = Architecture(**fields)
    elif fields:
        raise TypeError("count_params: pass an Architecture or keyword fields, not both")
    a = architecture
    d, L, bias = a.d_model, a.n_layers, a.bias
    b = " + biases" if bias else ""

    q = _linear(d, a.d_attention, bias)
    k = _linear(d, a.d_kv, bias)
    v = _linear(d, a.d_kv, bias)
    out = _linear(a.d_attention, d, bias)
    up = _linear(d, a.d_ff, bias)
    gate = up if a.ffn == "swiglu" else 0
    down = _linear(a.d_ff, d, bias)
    norm = d * (2 if a.norm_kind == "layernorm" and bias else 1)
    norm_formula = "d (gain)" if norm == d else "2·d (gain and shift)"

    token_embedding = a.vocab_size * d
    positions = a.context * d if a.positions == "learned" else 0
    unembedding = 0 if a.tie_embeddings else a.vocab_size * d
    final_norm = norm if a.final_norm else 0

    parts = (
        Part("token_embedding", token_embedding, "V·d"),
        Part("position_embedding", positions, "context·d (learned) or 0"),
        Part("query_projection", L * q, f"L·d·h·d_head{b}"),
        Part("key_projection", L * k, f"L·d·n_kv·d_head{b}"),
        Part("value_projection", L * v, f"L·d·n_kv·d_head{b}"),
        Part("output_projection", L * out, f"L·h·d_head·d{b}"),
        Part("ffn_gate", L * gate, f"L·d·d_ff{b} (SwiGLU only)"),
        Part("ffn_up", L * up, f"L·d·d_ff{b}"),
        Part("ffn_down", L * down, f"L·d_ff·d{b}"),
        Part("block_norms", L * 2 * norm, f"L·2·{norm_formula}"),
        Part("final_norm", final_norm, norm_formula if a.final_norm else "none"),
        Part("unembedding", unembedding, "0 (tied) or V·d (untied)"),
    )
    total = sum(part.value for part in parts)
    embedding = token_embedding + positions + unembedding
    rule = rule_of_thumb_params(L, d, a.vocab_size, tie_embeddings=a.tie_embeddings)
    return ParamCount(
        architecture=a,
        total_params=total,
        per_layer_params=q + k + v + out + gate + up + down + 2 * norm,
        attention_params_per_layer=q + k + v + out,
        ffn_params_per_layer=gate + up + down,
        embedding_params=embedding,
        non_embedding_params=total - embedding,
        rule_of_thumb_params=rule,
        rule_relative_error=(rule - total) / total,
        parts=parts,
    )


@dataclass(frozen=True)
class AttentionParams(Figures):
    """Parameters of one attention layer (exercise 13.30: ``4·d²`` for any number of heads)."""

    d_model: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    bias: bool
    total_params: int = figure("sum of the four projections")
    per_query_head_params: int = figure("d·d_head (+ d_head): one head's slice of W_q")
    per_kv_head_params: int = figure("2·(d·d_head (+ d_head)): one head's slices of W_k, W_v")
    mha_rule_params: int = figure("4·d² (MHA, no biases): h·3·d·(d/h) + d·d")
    parts: tuple[Part, ...] = ()


def attention_params(
    d_model: int,
    n_heads: int,
    n_kv_heads: int | None = None,
    *,
    head_dim: int | None = None,
    bias: bool = True,
) -> AttentionParams:
    """Parameters of multi-head attention, per projection.

    Written per head (exercise 13.30): head ``i`` owns a ``d × d/h`` slice of each of ``W_q``,
    ``W_k``, ``W_v``, i.e. ``3·d²/h``; summed over ``h`` heads that is ``3·d²``, and ``W_o`` adds
    ``d²``: ``4·d²`` whatever ``h`` is. GQA and MQA shrink ``W_k`` and ``W_v`` to
    ``d × n_kv·d_head``. Matches ``attnlab.nn.MultiHeadAttention`` (which has a bias on each
    projection when ``bias``).
    """
    d_model = check_positive_int("d_model", d_model)
    n_heads = check_positive_int("n_heads", n_heads)
    check_bool("bias", bias)
    if head_dim is None:
        check_divides("n_heads", n_heads, "d_model", d_model)
        head_dim = d_model // n_heads
    head_dim = check_positive_int("head_dim", head_dim)
    n_kv_heads = n_heads if n_kv_heads is None else check_positive_int("n_kv_heads", n_kv_heads)
    check_divides("n_kv_heads", n_kv_heads, "n_heads", n_heads)
    b = " + biases" if bias else ""
    q = _linear(d_model, n_heads * head_dim, bias)
    k = _linear(d_model, n_kv_heads * head_dim, bias)
    v = _linear(d_model, n_kv_heads * head_dim, bias)
    out = _linear(n_heads * head_dim, d_model, bias)
    parts = (
        Part("query_projection", q, f"d·h·d_head{b}"),
        Part("key_projection", k, f"d·n_kv·d_head{b}"),
        Part("value_projection", v, f"d·n_kv·d_head{b}"),
        Part("output_projection", out, f"h·d_head·d{b}"),
    )
    return AttentionParams(
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        head_dim=head_dim,
        bias=bias,
        total_params=q + k + v + out,
        per_query_head_params=_linear(d_model, head_dim, bias),
        per_kv_head_params=2 * _linear(d_model, head_dim, bias),
        mha_rule_params=4 * d_model**2,
        parts=parts,
    )
