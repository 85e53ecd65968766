"""Positional information for attention: sinusoidal encodings, rotary embeddings (RoPE), ALiBi
biases and Transformer-XL relative-position attention, as torch functions without parameters.

Angles and biases are computed in float64 (float32 on MPS, which has no float64) and cast to the
requested dtype at the end: near position 10⁵ a float32 angle ``pos · θ`` is only good to about
4·10⁻³ radians (half a float32 step there), while rounding the finished sine once costs only the
target dtype's epsilon.
"""

from __future__ import annotations

import math

import torch

from .masks import causal_mask
from .sdpa import scaled_dot_product_attention
from .validation import FLOAT_DTYPES, check_length, check_mask, check_qkv, check_scale, check_tensor


def _check_offset(offset) -> int:
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset: expected a non-negative integer, got {offset!r}")
    return offset


def _check_base(base) -> float:
    if isinstance(base, bool) or not isinstance(base, int | float):
        raise TypeError(f"base: expected a positive number, got {type(base).__name__}")
    if not (math.isfinite(base) and base > 0):
        raise ValueError(f"base: expected a finite positive number, got {base!r}")
    return float(base)


def _check_dtype(dtype) -> None:
    if dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"dtype: expected a floating-point dtype (float16, bfloat16, float32 or float64), "
            f"got {dtype!r}"
        )


def _work_dtype(device) -> tuple[torch.dtype, torch.device]:
    device = torch.empty(0, device=device).device  # resolves None to the default device
    return (torch.float32 if device.type == "mps" else torch.float64), device


def _angles(seq_len: int, dim: int, n_freq: int, offset: int, base: float, device):
    """``(seq_len, n_freq)`` angles ``pos / base^(2i/dim)`` for pos = offset, offset+1, …"""
    work, device = _work_dtype(device)
    position = torch.arange(offset, offset + seq_len, dtype=work, device=device)
    two_i = torch.arange(0, 2 * n_freq, 2, dtype=work, device=device)
    return position[:, None] / base ** (two_i / dim)


def sinusoidal_encoding(
    seq_len: int,
    d_model: int,
    *,
    offset: int = 0,
    base: float = 10000.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The sinusoidal positional encoding (Vaswani et al., 2017, section 3.5).

    ``PE(pos, 2i) = sin(pos / base^(2i/d_model))`` and ``PE(pos, 2i+1) = cos(pos /
    base^(2i/d_model))``. Each column pair turns at its own frequency, so ``PE(pos + k)`` is a
    fixed rotation of ``PE(pos)``. An odd ``d_model`` keeps the last sine without its cosine,
    as :func:`attnlab.ref.positional_encoding` does.

    Returns:
        ``(seq_len, d_model)``; row r is position ``offset + r``.
    """
    check_length("seq_len", seq_len)
    check_length("d_model", d_model)
    _check_offset(offset)
    base = _check_base(base)
    _check_dtype(dtype)
    angle = _angles(seq_len, d_model, (d_model + 1) // 2, offset, base, device)
    encoding = angle.new_empty(seq_len, d_model)
    encoding[:, 0::2] = angle.sin()
    encoding[:, 1::2] = angle[:, : d_model // 2].cos()
    return encoding.to(dtype)


def rope_angles(
    seq_len: int,
    head_dim: int,
    *,
    offset: int = 0,
    base: float = 10000.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosines and sines of the rotary angles ``pos · θ_i`` with ``θ_i = base^(−2i/head_dim)``,
    ``i = 0 … head_dim/2 − 1`` (Su et al., RoFormer, 2021, eq. 15).

    Returns:
        ``(cos, sin)``, each ``(seq_len, head_dim // 2)``; row r is position ``offset + r``.
    """
    check_length("seq_len", seq_len)
    check_length("head_dim", head_dim)
    if head_dim % 2:
        raise ValueError(f"head_dim: expected an even number (dims turn in pairs), got {head_dim}")
    _check_offset(offset)
    base = _check_base(base)
    _check_dtype(dtype)
    angle = _angles(seq_len, head_dim, head_dim // 2, offset, base, device)
    return angle.cos().to(dtype), angle.sin().to(dtype)


def apply_rope(
    x: torch.Tensor, *, offset: int = 0, base: float = 10000.0, interleaved: bool = False
) -> torch.Tensor:
    """Rotary position embedding (Su et al., RoFormer, 2021, eq. 14–15).

    Each pair of head dims is rotated by the angle ``pos · θ_i``, ``θ_i = base^(−2i/head_dim)``,
    where ``pos = offset + row index``. Because ``R_mᵀ R_n = R_{n−m}``, the score between a
    rotated query at m and a rotated key at n depends on ``n − m`` only. Two layouts of the
    pairs are in use, and they are the same rotation up to a fixed permutation of the head dims
    (weights trained with one need that permutation to run with the other):

    - ``interleaved=True``: pair i is dims ``(2i, 2i+1)``, as in RoFormer and GPT-J.
    - ``interleaved=False``: pair i is dims ``(i, i + head_dim/2)``, the "rotate_half" layout of
      GPT-NeoX and Llama.

    Args:
        x: queries or keys ``(..., seq, head_dim)`` with an even ``head_dim``.
        offset: position of the first row (the number of cached tokens when decoding).

    Returns:
        a tensor like ``x``. The rotation runs in float32 (float64 for float64 input), so
        bfloat16 and float16 inputs are rounded once, at the end.
    """
    check_tensor("x", x)
    seq_len, head_dim = x.shape[-2:]
    if head_dim % 2:
        raise ValueError(
            f"x: expected an even head_dim (last dim; dims turn in pairs), got shape "
            f"{tuple(x.shape)}"
        )
    _check_offset(offset)
    base = _check_base(base)
    if not isinstance(interleaved, bool):
        raise TypeError(f"interleaved: expected a bool, got {type(interleaved).__name__}")

    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    angle = _angles(seq_len, head_dim, head_dim // 2, offset, base, x.device)
    cos, sin = angle.cos().to(compute), angle.sin().to(compute)  # (seq, head_dim/2)
    y = x.to(compute)
    half = head_dim // 2
    first, second = (y[..., 0::2], y[..., 1::2]) if interleaved else (y[..., :half], y[..., half:])
    turned_first = first * cos - second * sin
    turned_second = first * sin + second * cos
    if interleaved:
        out = torch.stack((turned_first, turned_second), dim=-1).flatten(-2)  # (..., seq, hd)
    else:
        out = torch.cat((turned_first, turned_second), dim=-1)  # (..., seq, head_dim)
    return out.to(x.dtype)


def alibi_slopes(
    n_heads: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """The per-head ALiBi slopes (Press et al., 2022, section 3).

    For ``n_heads`` a power of two: the geometric sequence that starts at ``2^(−8/n)`` with ratio
    ``2^(−8/n)`` (8 heads: 1/2, 1/4, …, 1/256). Otherwise, as in the paper's code: the slopes of
    the largest power of two ``c < n_heads``, then every other slope (indices 0, 2, 4, …) of the
    ``2c`` sequence, ``n_heads − c`` of them.

    Returns:
        ``(n_heads,)``.
    """
    check_length("n_heads", n_heads)
    _check_dtype(dtype)

    def geometric(n: int) -> list[float]:
        return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]

    closest = 1 << (n_heads.bit_length() - 1)  # the largest power of two ≤ n_heads
    slopes = geometric(closest) + geometric(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(slopes, dtype=dtype, device=device)


def alibi_bias(
    n_heads: int,
    seq_q: int,
    seq_k: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The ALiBi bias added to the attention scores (Press et al., 2022, eq. in section 3).

    ``bias[h, i, j] = −slope_h · (i + seq_k − seq_q − j)``: query i sits at absolute position
    ``i + seq_k − seq_q`` (bottom-right alignment, so the last query lines up with the last key,
    as when decoding after a cache), and the penalty grows linearly with the distance back to
    key j. Entries for future keys (``j > i + seq_k − seq_q``) come out *positive*; they are not
    meant to be used, and the causal mask (``causal_mask(seq_q, seq_k, align="bottom_right")``)
    removes them.

    Returns:
        ``(n_heads, seq_q, seq_k)``, to be added to scores ``(batch, n_heads, seq_q, seq_k)``.
    """
    check_length("n_heads", n_heads)
    check_length("seq_q", seq_q)
    check_length("seq_k", seq_k)
    _check_dtype(dtype)
    work, device = _work_dtype(device)
    slopes = alibi_slopes(n_heads, dtype=work, device=device)
    query_position = torch.arange(seq_q, dtype=work, device=device) + (seq_k - seq_q)
    key_position = torch.arange(seq_k, dtype=work, device=device)
    # slope · (j − pos_i) is −slope · distance, written so that distance 0 gives +0.0, not −0.0
    bias = slopes[:, None, None] * (key_position[None, :] - query_position[:, None])
    return bias.to(dtype)


def relative_shift(x: torch.Tensor) -> torch.Tensor:
    """Move scores from (query, distance-row) to (query, key) position (Dai et al., 2019, app. B).

    ``x[..., i, m]`` holds query i against distance ``seq_k − 1 − m`` (descending). The result
    holds at ``[..., i, j]`` the entry for distance ``(i + seq_k − seq_q) − j``, i.e.
    ``x[..., i, j + seq_q − 1 − i]``, for every ``j ≤ i + seq_k − seq_q``; entries for future
    keys are left-over values that the causal mask removes. Same as
    :func:`attnlab.ref.relative_shift`: pad a zero column on the left, read the
    ``(seq_q, seq_k + 1)`` block as ``(seq_k + 1, seq_q)``, drop its first row, read it back.

    Args:
        x: ``(..., seq_q, seq_k)``.

    Returns:
        ``(..., seq_q, seq_k)``.
    """
    check_tensor("x", x, min_dim=0)
    if x.dim() < 2:
        raise ValueError(f"x: expected at least 2 dims (..., seq_q, seq_k), got {tuple(x.shape)}")
    *lead, seq_q, seq_k = x.shape
    padded = torch.nn.functional.pad(x, (1, 0))  # (..., seq_q, seq_k + 1)
    padded = padded.reshape(*lead, seq_k + 1, seq_q)
    return padded[..., 1:, :].reshape(*lead, seq_q, seq_k)


def _check_relative(query, pos_embed, biases, seq_k: int | None) -> None:
    """Shapes of Transformer-XL's positional inputs against a ``(..., heads, seq_q, d)`` query."""
    heads, seq_q, head_dim = query.shape[-3:]
    check_tensor("pos_embed", pos_embed, min_dim=0)
    expected_k = f"seq_k={seq_k}" if seq_k is not None else f"seq_k ≥ seq_q={seq_q}"
    if (
        pos_embed.dim() != 3
        or pos_embed.shape[0] != heads
        or pos_embed.shape[2] != head_dim
        or (seq_k is not None and pos_embed.shape[1] != seq_k)
        or pos_embed.shape[1] < seq_q
    ):
        raise ValueError(
            f"pos_embed: expected shape (heads={heads}, {expected_k}, head_dim={head_dim}), "
            f"got {tuple(pos_embed.shape)}"
        )
    tensors = {"pos_embed": pos_embed}
    for name, bias in biases.items():
        check_tensor(name, bias, min_dim=0)
        if bias.shape != (heads, head_dim):
            raise ValueError(
                f"{name}: expected shape (heads, head_dim) = ({heads}, {head_dim}), got "
                f"{tuple(bias.shape)}"
            )
        tensors[name] = bias
    for name, tensor in tensors.items():
        if tensor.dtype != query.dtype:
            raise TypeError(f"{name}: expected the query's dtype {query.dtype}, got {tensor.dtype}")
        if tensor.device != query.device:
            raise ValueError(f"{name}: expected device {query.device}, got {tensor.device}")


def _position_scores(query, pos_embed, bias_v) -> torch.Tensor:
    by_distance = (query + bias_v[:, None, :]) @ pos_embed.transpose(-2, -1)  # (..., h, sq, sk)
    return relative_shift(by_distance)


def relative_position_scores(
    query: torch.Tensor, pos_embed: torch.Tensor, bias_v: torch.Tensor
) -> torch.Tensor:
    """Transformer-XL's position terms (b) + (d), ``(q_i + v)ᵀ r_{i−j}``, unscaled
    (Dai et al., 2019, section 3.3).

    Computed for every (query, distance) pair as one product and moved into (query, key)
    position by :func:`relative_shift`; query i sits at position ``i + seq_k − seq_q``.

    Args:
        query: ``(batch, heads, seq_q, head_dim)`` (any leading dims before ``heads``).
        pos_embed: projected sinusoids ``W_{k,R} R`` ``(heads, seq_k, head_dim)``, ``seq_k ≥
            seq_q``, in descending order: row m encodes distance ``seq_k − 1 − m``.
        bias_v: the global position bias v, ``(heads, head_dim)``.

    Returns:
        ``(..., heads, seq_q, seq_k)``; entries for future keys are left-overs to be masked.
    """
    check_tensor("query", query, min_dim=3)
    _check_relative(query, pos_embed, {"bias_v": bias_v}, seq_k=None)
    return _position_scores(query, pos_embed, bias_v)


def relative_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    pos_embed: torch.Tensor,
    bias_u: torch.Tensor,
    bias_v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Causal attention with Transformer-XL relative positions (Dai et al., 2019, section 3.3).

    The score of query i against key j is the sum of the paper's four terms,
    ``(a) q_iᵀk_j + (b) q_iᵀr_{i−j} + (c) uᵀk_j + (d) vᵀr_{i−j}``, times ``scale``. Terms (a) and
    (c) are ``(q_i + u)ᵀ k_j``, the ordinary score of a shifted query; (b) and (d) come from
    :func:`relative_position_scores` and enter :func:`scaled_dot_product_attention` as an
    additive mask, together with −inf on future keys. Query i sits at absolute position
    ``i + seq_k − seq_q`` (bottom-right alignment): the first ``seq_k − seq_q`` keys may be a
    memory of earlier segments.

    Args:
        query: ``(batch, heads, seq_q, head_dim)`` (any leading dims before ``heads``).
        key: ``(batch, heads, seq_k, head_dim)``, ``seq_k ≥ seq_q``.
        value: ``(batch, heads, seq_k, d_value)``.
        pos_embed: ``(heads, seq_k, head_dim)``, row m = distance ``seq_k − 1 − m``.
        bias_u, bias_v: the global content and position biases u, v, ``(heads, head_dim)``.
        attn_mask: optional extra mask (bool, True = may attend, or additive in the query's
            dtype) that broadcasts to ``(batch, heads, seq_q, seq_k)``.
        scale: factor on the scores; default ``1/√head_dim``, as in the paper's code.

    Returns:
        ``(batch, heads, seq_q, d_value)``.
    """
    check_qkv(query, key, value)
    if query.dim() < 3:
        raise ValueError(
            f"query: expected (batch, heads, seq_q, head_dim), got shape {tuple(query.shape)}"
        )
    seq_q, head_dim = query.shape[-2:]
    seq_k = key.shape[-2]
    if seq_k < seq_q:
        raise ValueError(
            f"key: expected seq_k ≥ seq_q={seq_q} (queries are the last seq_q positions), got "
            f"shape {tuple(key.shape)}"
        )
    _check_relative(query, pos_embed, {"bias_u": bias_u, "bias_v": bias_v}, seq_k=seq_k)
    check_scale(scale)
    if attn_mask is not None:
        check_mask(attn_mask, query, key)
    if scale is None:
        scale = head_dim**-0.5

    position = _position_scores(query, pos_embed, bias_v) * scale  # (..., h, seq_q, seq_k)
    # The shift leaves stale values on future keys, so the causal mask is part of the method.
    allowed = causal_mask(seq_q, seq_k, align="bottom_right", device=query.device)
    mask = position.masked_fill(~allowed, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            mask = mask.masked_fill(~attn_mask, float("-inf"))
        else:
            mask = mask + attn_mask
    content_query = query + bias_u[:, None, :]  # (q_i + u)ᵀ k_j gives terms (a) and (c)
    return scaled_dot_product_attention(content_query, key, value, attn_mask=mask, scale=scale)
