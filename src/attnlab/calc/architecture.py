"""The shape of a decoder-only Transformer, as far as counting parameters and FLOPs needs it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .figures import (
    check_bool,
    check_choice,
    check_divides,
    check_positive_int,
    check_positive_number,
)

FFN_KINDS = ("gelu", "swiglu")
NORM_KINDS = ("layernorm", "rmsnorm")
# Only learned positions have parameters; the others are fixed functions (sinusoidal), act on
# queries and keys (rotary) or on the scores (ALiBi), or are absent.
POSITION_KINDS = ("learned", "sinusoidal", "rope", "alibi", "none")


@dataclass(frozen=True)
class Architecture:
    """A decoder-only Transformer: every choice that changes a count is a field.

    The defaults are GPT-2 small (Radford et al., 2019): 12 layers, width 768, 12 heads, a GELU
    MLP of width 3072, LayerNorm, biases, learned positions over 1024 tokens and a 50,257-token
    vocabulary whose embedding is reused as the output layer.

    Args:
        n_layers: blocks ``L``.
        d_model: residual width ``d``.
        n_heads: query heads ``h``.
        n_kv_heads: key/value heads (``None``: ``n_heads``, MHA; 1: MQA; between: GQA). Must
            divide ``n_heads``.
        head_dim: width of one head (``None``: ``d_model // n_heads``, which must then divide).
        d_ff: hidden width of the feed-forward layer (``None``: ``ff_mult · d_model``).
        ff_mult: multiplier for ``d_ff`` (``None``: 4, as in GPT-2); give it or ``d_ff``.
        vocab_size: ``V``.
        context: longest sequence; the size of a learned position table.
        ffn: ``"gelu"`` (two matrices, up and down) or ``"swiglu"`` (three: gate, up, down;
            Shazeer, 2020).
        positions: ``"learned"`` (``context · d`` parameters) or ``"sinusoidal"``, ``"rope"``,
            ``"alibi"``, ``"none"`` (no parameters).
        norm_kind: ``"layernorm"`` (a gain and, when ``bias``, a shift per channel) or
            ``"rmsnorm"`` (a gain only; Zhang & Sennrich, 2019).
        bias: biases in every linear layer and in LayerNorm, as nanoGPT's single ``bias`` flag
            (GPT-2: on; Llama: off). The output layer never has one.
        tie_embeddings: the output layer reuses the token embedding (GPT-2) or has its own
            (Llama).
        final_norm: a norm after the last block (pre-norm models have one).

    After construction ``n_kv_heads``, ``head_dim`` and ``d_ff`` hold the resolved integers.
    """

    n_layers: int = 12
    d_model: int = 768
    n_heads: int = 12
    n_kv_heads: int | None = None
    head_dim: int | None = None
    d_ff: int | None = None
    ff_mult: float | None = None
    vocab_size: int = 50257
    context: int = 1024
    ffn: str = "gelu"
    positions: str = "learned"
    norm_kind: str = "layernorm"
    bias: bool = True
    tie_embeddings: bool = True
    final_norm: bool = True

    def __post_init__(self):
        for name in ("n_layers", "d_model", "n_heads", "vocab_size", "context"):
            object.__setattr__(self, name, check_positive_int(name, getattr(self, name)))
        for name in ("n_kv_heads", "head_dim", "d_ff"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, check_positive_int(name, getattr(self, name)))
        check_choice("ffn", self.ffn, FFN_KINDS)
        check_choice("positions", self.positions, POSITION_KINDS)
        check_choice("norm_kind", self.norm_kind, NORM_KINDS)
        for name in ("bias", "tie_embeddings", "final_norm"):
            check_bool(name, getattr(self, name))

        if self.head_dim is None:
            check_divides("n_heads", self.n_heads, "d_model", self.d_model)
            object.__setattr__(self, "head_dim", self.d_model // self.n_heads)
        if self.n_kv_heads is None:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        check_divides("n_kv_heads", self.n_kv_heads, "n_heads", self.n_heads)
        if self.d_ff is not None and self.ff_mult is not None:
            raise ValueError(
                f"ff_mult: give either d_ff or ff_mult, got d_ff = {self.d_ff} and "
                f"ff_mult = {self.ff_mult}"
            )
        if self.d_ff is None:
            mult = 4.0 if self.ff_mult is None else check_positive_number("ff_mult", self.ff_mult)
            d_ff = round(mult * self.d_model)
            if d_ff < 1:
                raise ValueError(
                    f"ff_mult: {mult} × d_model = {mult * self.d_model} leaves no hidden units"
                )
            object.__setattr__(self, "d_ff", d_ff)

    @property
    def d_attention(self) -> int:
        """Total query width ``h · head_dim`` (equal to ``d_model`` unless head_dim is set)."""
        return self.n_heads * self.head_dim

    @property
    def d_kv(self) -> int:
        """Total key (and value) width ``n_kv_heads · head_dim``."""
        return self.n_kv_heads * self.head_dim

    @property
    def ffn_matrices(self) -> int:
        """2 for a GELU MLP (up, down); 3 for SwiGLU (gate, up, down)."""
        return 3 if self.ffn == "swiglu" else 2

    def to_dict(self) -> dict:
        return asdict(self)


def layout_name(n_heads: int, n_kv_heads: int) -> str:
    """``"mha"`` (one key/value head per query head), ``"mqa"`` (one in all) or ``"gqa"``."""
    if n_kv_heads == n_heads:
        return "mha"
    return "mqa" if n_kv_heads == 1 else "gqa"


def head_layouts(n_heads: int, n_kv_heads: int | None = None) -> tuple[tuple[str, int], ...]:
    """The key/value head counts to compare side by side: MHA, GQA and MQA.

    GQA uses ``n_kv_heads`` when it lies strictly between 1 and ``n_heads``; otherwise the
    divisor of ``n_heads`` nearest ``n_heads / 4`` (groups of four query heads where possible),
    and no GQA row when ``n_heads`` has no divisor strictly between 1 and itself.
    """
    if n_kv_heads is None or not 1 < n_kv_heads < n_heads:
        divisors = [g for g in range(2, n_heads) if n_heads % g == 0]
        n_kv_heads = min(divisors, key=lambda g: abs(g - n_heads / 4)) if divisors else None
    rows = [("mha", n_heads)]
    if n_kv_heads is not None:
        rows.append(("gqa", n_kv_heads))
    if n_heads > 1:
        rows.append(("mqa", 1))
    return tuple(rows)
