"""Multi-head attention: one module for MHA, GQA and MQA, self or cross attention.

The number of key/value heads picks the layout (Shazeer, 2019; Ainslie et al., 2023): equal to
the number of query heads is multi-head attention, 1 is multi-query attention, anything that
divides it is grouped-query attention, where each group of query heads shares one key/value
head. The module projects, splits heads, applies positions, and calls
:func:`attnlab.functional.scaled_dot_product_attention`; it never re-implements the math.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from attnlab.functional.feature_maps import FEATURE_MAPS, feature_map
from attnlab.functional.flash import flash_attention
from attnlab.functional.linear import kernel_attention, linear_attend, linear_attention_decode
from attnlab.functional.masks import causal_mask, merge_masks
from attnlab.functional.positions import relative_position_scores
from attnlab.functional.sdpa import attend
from attnlab.functional.validation import check_length, check_mask

from .cache import LayerKVCache, LayerLinearState
from .positions import ALiBi, RelativePositions, RotaryEmbedding

BACKENDS = ("sdpa", "naive", "flash", *(f"linear:{name}" for name in FEATURE_MAPS))
POSITIONS = (None, "rope", "alibi", "relative")


class MultiHeadAttention(nn.Module):
    """Multi-head attention with a choice of head layout, backend and positions.

    Args:
        d_model: width of the input and of the output.
        n_heads: query heads; must divide ``d_model`` (head width ``d_model // n_heads``).
        n_kv_heads: key/value heads (default ``n_heads``; 1 is MQA); must divide ``n_heads``.
        d_value: total value width across heads (default ``d_model``); ``W_o`` maps it back to
            ``d_model`` so residual connections fit. Must be divisible by ``n_heads``.
        d_context: width of the context in cross attention (default ``d_model``).
        bias: whether the projections have biases (True, as in ``torch.nn.MultiheadAttention``).
        dropout: attention-weight dropout, active in training mode only.
        backend: ``"sdpa"`` (torch's fused kernel unless weights are requested), ``"naive"``
            (the explicit path that materialises the weights), ``"flash"`` (attnlab's tiled
            exact attention, O(T) memory) or ``"linear:<feature map>"`` (kernelized linear
            attention: ``linear:elu``, ``linear:relu``, ``linear:poly2``, ``linear:favor+``; a
            different function from softmax attention, decoded with a constant-size state).
            Flash and linear take no additive biases (ALiBi, relative), no attention dropout
            and no ``attn_mask``; incompatible choices fail at construction.
        positions: ``None``, ``"rope"`` (rotary, applied to queries and keys), ``"alibi"``
            (linear biases per head) or ``"relative"`` (Transformer-XL, causal self-attention).
        rope_base, rope_interleaved: RoPE's frequency base and pairing convention.

    ``forward(x, context=None, *, attn_mask=None, is_causal=False, need_weights=False,
    cache=None)`` takes ``x`` ``(batch, seq_q, d_model)`` and returns ``(batch, seq_q,
    d_model)``, with ``need_weights`` also the ``(batch, n_heads, seq_q, seq_k)`` weights.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_kv_heads: int | None = None,
        *,
        d_value: int | None = None,
        d_context: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
        backend: str = "sdpa",
        positions: str | None = None,
        rope_base: float = 10000.0,
        rope_interleaved: bool = False,
    ):
        super().__init__()
        check_length("d_model", d_model)
        check_length("n_heads", n_heads)
        n_kv_heads = n_heads if n_kv_heads is None else check_length("n_kv_heads", n_kv_heads)
        d_value = d_model if d_value is None else check_length("d_value", d_value)
        d_context = d_model if d_context is None else check_length("d_context", d_context)
        if d_model % n_heads:
            raise ValueError(f"n_heads: expected a divisor of d_model={d_model}, got {n_heads}")
        if n_heads % n_kv_heads:
            raise ValueError(
                f"n_kv_heads: expected a divisor of n_heads={n_heads}, got {n_kv_heads}"
            )
        if d_value % n_heads:
            raise ValueError(f"d_value: expected a multiple of n_heads={n_heads}, got {d_value}")
        if backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
        if positions not in POSITIONS:
            raise ValueError(f"positions: expected one of {POSITIONS}, got {positions!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a number in [0, 1), got {dropout!r}")
        self.kind = backend.split(":")[0]  # sdpa | naive | flash | linear
        if self.kind in ("flash", "linear"):
            if positions in ("alibi", "relative"):
                raise ValueError(
                    f"positions: backend {backend!r} adds no score biases, which "
                    f"positions={positions!r} needs; use backend 'sdpa' or 'naive', or "
                    "positions None or 'rope'"
                )
            if dropout > 0:
                raise ValueError(
                    f"dropout: backend {backend!r} forms no weights to drop; got {dropout}, "
                    "use 0 or backend 'sdpa'"
                )
        self.d_model, self.n_heads, self.n_kv_heads = d_model, n_heads, n_kv_heads
        self.head_dim = d_model // n_heads
        self.d_value, self.value_head_dim = d_value, d_value // n_heads
        self.d_context = d_context
        self.dropout, self.backend, self.positions = dropout, backend, positions
        if positions == "rope" and self.head_dim % 2:
            raise ValueError(
                f"positions: 'rope' rotates pairs of dims and needs an even head width, got "
                f"d_model / n_heads = {self.head_dim}"
            )
        if positions == "relative" and d_context != d_model:
            raise ValueError(
                "positions: 'relative' is a self-attention scheme; it cannot be combined with a "
                f"context width d_context={d_context} different from d_model={d_model}"
            )

        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_context, n_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(d_context, n_kv_heads * self.value_head_dim, bias=bias)
        self.out_proj = nn.Linear(d_value, d_model, bias=bias)
        self.rope = (
            RotaryEmbedding(self.head_dim, rope_base, rope_interleaved)
            if positions == "rope"
            else None
        )
        self.alibi = ALiBi(n_heads) if positions == "alibi" else None
        self.relative = RelativePositions(d_model, n_heads) if positions == "relative" else None
        self.feature_map = None
        if self.kind == "linear":
            name = backend.split(":", 1)[1]
            options = {"head_dim": self.head_dim} if name == "favor+" else {}
            self.feature_map = feature_map(name, **options)
            if name == "favor+":  # the random features move and save with the module
                self.register_buffer("omega", self.feature_map.omega)
        # Called as recorder(name, tensor) at each step of forward: shape traces and captures.
        self.recorder: Callable[[str, torch.Tensor], None] | None = None

    def _record(self, name: str, tensor: torch.Tensor) -> None:
        if self.recorder is not None:
            self.recorder(name, tensor)

    def _check_input(self, name: str, x, width: int) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 3 or x.shape[-1] != width:
            raise ValueError(f"{name}: expected shape (batch, seq, {width}), got {tuple(x.shape)}")

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        *,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = False,
        cache: LayerKVCache | LayerLinearState | None = None,
    ):
        """Attend from ``x`` to itself (or to ``context``).

        Args:
            x: ``(batch, seq_q, d_model)``.
            context: ``(batch, seq_k, d_context)`` for cross attention; ``None`` for self.
            attn_mask: bool (True = may attend) or additive float mask broadcasting to
                ``(batch, n_heads, seq_q, seq_k)``; combined with the causal mask and biases.
            is_causal: each query sees keys at or before its own position. With a cache, the
                new queries are aligned bottom-right after the cached tokens.
            need_weights: also return the ``(batch, n_heads, seq_q, seq_k)`` weights.
            cache: a :class:`LayerKVCache` (self-attention): the new keys and values are
                appended and attention runs over everything cached so far. The linear backends
                take a :class:`LayerLinearState` instead: the running sums of φ(k)vᵀ and φ(k).
        """
        self._check_input("x", x, self.d_model)
        if context is not None:
            self._check_input("context", context, self.d_context)
            if context.shape[0] != x.shape[0]:
                raise ValueError(
                    f"context: expected batch {x.shape[0]} like x, got {tuple(context.shape)}"
                )
            if self.positions is not None or cache is not None:
                raise ValueError(
                    "context: cross attention takes no positions and no cache here, got "
                    f"positions={self.positions!r} and cache={'set' if cache else None}"
                )
        elif self.d_context != self.d_model:
            raise ValueError(
                f"context: required, this module was built for cross attention over a "
                f"context of width {self.d_context}"
            )
        if self.kind in ("flash", "linear") and attn_mask is not None:
            raise ValueError(
                f"attn_mask: backend {self.backend!r} supports is_causal but no explicit mask"
            )
        wanted_cache = LayerLinearState if self.kind == "linear" else LayerKVCache
        if cache is not None and not isinstance(cache, wanted_cache):
            raise TypeError(
                f"cache: backend {self.backend!r} needs a {wanted_cache.__name__}, got "
                f"{type(cache).__name__}"
            )
        if self.positions == "relative" and not is_causal:
            raise ValueError(
                "is_causal: positions='relative' (Transformer-XL) needs is_causal=True"
            )

        batch, seq_q, _ = x.shape
        source = x if context is None else context
        seq_new = source.shape[1]
        self._record("x", x)
        q = self.q_proj(x)  # (B, T, d_model)
        k = self.k_proj(source)  # (B, S, n_kv_heads * head_dim)
        v = self.v_proj(source)  # (B, S, n_kv_heads * value_head_dim)
        self._record("q = x W_q", q)
        self._record("k = x W_k", k)
        self._record("v = x W_v", v)
        q = q.view(batch, seq_q, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
        k = k.view(batch, seq_new, self.n_kv_heads, self.head_dim).transpose(
            1, 2
        )  # (B, Hkv, S, hd)
        v = v.view(batch, seq_new, self.n_kv_heads, self.value_head_dim).transpose(1, 2)
        self._record("q split into heads", q)
        self._record("k split into heads", k)
        self._record("v split into heads", v)

        offset = cache.length if cache is not None else 0
        if self.rope is not None:
            q, k = self.rope(q, offset=offset), self.rope(k, offset=offset)
        gqa = self.n_kv_heads != self.n_heads
        if self.kind == "linear":
            out, weights = self._linear(q, k, v, is_causal, need_weights, cache)
            return self._merge(out, weights, batch, seq_q, need_weights)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, Hkv, offset + S, ·)
            self._record("k with cache", k)
            self._record("v with cache", v)
        seq_k = k.shape[2]
        if self.kind == "flash" and not need_weights:
            # Causal queries sit after the cached tokens: bottom-right alignment.
            out = flash_attention(
                q, k, v, is_causal=is_causal, causal_align="bottom_right", enable_gqa=gqa
            )
            return self._merge(out, None, batch, seq_q, need_weights)
        # The projections above produced q, k, v, so only the user's mask needs checking.
        if attn_mask is not None:
            check_mask(attn_mask, q, k)

        masks = [attn_mask]
        fused_causal = False
        if is_causal:
            if attn_mask is None and self.positions is None and seq_q == seq_k:
                fused_causal = True  # let torch's kernel apply the (square) causal mask
            elif seq_q > 1 or seq_k < seq_q:
                masks.append(causal_mask(seq_q, seq_k, align="bottom_right", device=x.device))
        if self.alibi is not None:
            masks.append(self.alibi(seq_q, seq_k, dtype=q.dtype, device=x.device))
        if self.relative is not None:
            pos_embed = self.relative(seq_k)  # (H, S, hd), distances S−1 … 0
            scale = self.head_dim**-0.5
            masks.append(relative_position_scores(q, pos_embed, self.relative.bias_v) * scale)
            q = q + self.relative.bias_u[:, None, :]  # content bias u joins the query
        mask = merge_masks(*masks, dtype=q.dtype)

        # Flash with need_weights takes this explicit path too: the same softmax, materialised.
        weights_wanted = need_weights or self.backend == "naive"
        result = attend(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=fused_causal,
            enable_gqa=gqa,
            return_weights=weights_wanted,
        )
        out, weights = result if weights_wanted else (result, None)
        return self._merge(out, weights, batch, seq_q, need_weights)

    def _linear(self, q, k, v, is_causal, need_weights, cache):
        """Kernelized attention with φ = ``self.feature_map``; weights from its quadratic form."""
        fm, gqa = self.feature_map, self.n_kv_heads != self.n_heads
        if getattr(self, "omega", None) is not None:
            fm.omega = self.omega  # the buffer, wherever .to() or load_state_dict put it
        if cache is not None:
            if need_weights:
                raise ValueError(
                    "need_weights: a linear-attention state holds sums, not per-token keys; "
                    "capture weights without a cache"
                )
            if not is_causal:
                raise ValueError("is_causal: decoding with a linear-attention state is causal")
            out, cache.state = linear_attention_decode(q, k, v, fm, cache.state, enable_gqa=gqa)
            cache.length += q.shape[2]
            return out, None
        if need_weights:
            return kernel_attention(
                q, k, v, fm, causal=is_causal, enable_gqa=gqa, return_weights=True
            )
        return linear_attend(q, k, v, fm, causal=is_causal), None

    def _merge(self, out, weights, batch, seq_q, need_weights):
        """Heads back together and the output projection."""
        if weights is not None:
            self._record("weights", weights)
        self._record("context per head", out)  # (B, H, T, value_head_dim)
        out = out.transpose(1, 2).reshape(batch, seq_q, self.d_value)  # (B, T, d_value)
        self._record("heads merged", out)
        out = self.out_proj(out)  # (B, T, d_model)
        self._record("output = merged W_o", out)
        return (out, weights) if need_weights else out
