"""Kernelized attention: the quadratic reference for any similarity, linear attention by feature
maps, its causal form by chunked prefix sums, and the recurrent twin for decoding.

For a similarity ``sim(q, k) = φ(q)ᵀφ(k)`` attention is (seed 003 problem 6; Katharopoulos et
al., 2020, Section 3.2)

    V'_i = Σ_j sim(Q_i, K_j) V_j / Σ_j sim(Q_i, K_j)
         = φ(Q_i)ᵀ (Σ_j φ(K_j) V_jᵀ) / φ(Q_i)ᵀ (Σ_j φ(K_j)),

and the right-hand side costs O(T · r · d) instead of O(T² · d): linear in the length T, with
``r`` the feature dimension (seed 004 exercise 13.32 for FAVOR+, whose ``r`` does not grow with
T). Causal attention sums only over ``j ≤ i``: the state ``S_i = Σ_{j≤i} φ(K_j) V_jᵀ`` and
``z_i = Σ_{j≤i} φ(K_j)`` are prefix sums, which make the model an RNN (their Section 3.4).

Both sums travel as one tensor ``[S | z]`` of shape ``(r, d_value + 1)``: appending a column of
ones to the values makes every product with them return the normaliser beside the numerator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import compiled
from .feature_maps import EluFeatureMap, FeatureMap, Kernel
from .feature_maps import feature_map as make_feature_map
from .feature_maps import kernel as make_kernel
from .validation import check_finite, check_length, check_qkv, check_tensor

# Smallest normaliser Σ_j sim(q_i, k_j) accepted; below it the output is refused, not divided.
EPS = 1e-6
# Features computed at once, in elements: 2¹⁸ (1 MiB of float32), and at least MIN_BLOCK_ROWS
# tokens. Blocks this size keep a block's temporaries, reused from block to block, in the
# 2 MiB L2 cache of a core here; whole tensors of 32 MiB or more are fresh pages each call,
# and touching them first cost 3–6× the arithmetic. At T = 16384, d = 64, 2¹⁸ measured 0.86–0.94
# of the time of 2²⁰ for elu and FAVOR+; poly2 (r = 2145) wants its 64 rows: 15 rows per block
# took 1.2× as long (benchmarks/linear_attention.py, BENCHMARKS.md).
BLOCK_ELEMENTS = 2**18
MIN_BLOCK_ROWS = 64
# Tokens per chunk of the causal form. A chunk costs 2·C·(r + d) FLOPs per token in its masked
# quadratic form and r·(d + 1)/C state elements per token to write, scan and read; C = 64 was
# fastest of 16…512 for elu and within 3% for FAVOR+ (r = 256) at T = 16384, d = 64 here.
CHUNK = 64


@dataclass(frozen=True)
class LinearAttentionState:
    """The recurrent state of causal linear attention after ``length`` tokens.

    ``sums`` is ``(batch, kv_heads, r, d_value + 1)``: ``S = Σ_j φ(k_j) v_jᵀ`` in the first
    ``d_value`` columns and ``z = Σ_j φ(k_j)`` in the last. Its size does not grow with the
    length: this is the whole "KV cache" of a linear-attention layer.
    """

    sums: torch.Tensor
    length: int = 0

    @classmethod
    def empty(
        cls,
        feature_map: FeatureMap | str,
        batch: int,
        kv_heads: int,
        head_dim: int,
        d_value: int | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> LinearAttentionState:
        """Zeros for ``batch × kv_heads`` heads; ``d_value`` defaults to ``head_dim``."""
        for name, n in (("batch", batch), ("kv_heads", kv_heads), ("head_dim", head_dim)):
            check_length(name, n)
        d_value = head_dim if d_value is None else check_length("d_value", d_value)
        r = make_feature_map(feature_map).output_dim(head_dim)
        sums = torch.zeros(batch, kv_heads, r, d_value + 1, dtype=dtype, device=device)
        return cls(sums, 0)

    @property
    def kv_sum(self) -> torch.Tensor:
        """``S``, ``(batch, kv_heads, r, d_value)``."""
        return self.sums[..., :-1]

    @property
    def key_sum(self) -> torch.Tensor:
        """``z``, ``(batch, kv_heads, r)``."""
        return self.sums[..., -1]

    @property
    def nbytes(self) -> int:
        return self.sums.numel() * self.sums.element_size()


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # Half-precision sums over thousands of tokens would lose their low bits: use float32.
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 < eps < math.inf:
        raise ValueError(f"eps: expected a finite positive number, got {eps!r}")
    return float(eps)


def _check_causal(causal, query, key) -> None:
    if not isinstance(causal, bool):
        raise TypeError(f"causal: expected a bool, got {type(causal).__name__}")
    if causal and query.shape[-2] != key.shape[-2]:
        raise ValueError(
            f"causal: needs seq_q == seq_k, got query {tuple(query.shape)} and key "
            f"{tuple(key.shape)}; for new tokens after earlier ones use linear_attention_decode"
        )


def _normalise(numerator, normaliser, eps: float, what, where=None, out=None) -> torch.Tensor:
    """``numerator / normaliser`` after checking every normaliser is finite and above ``eps``.

    A normaliser at or below zero means the query has no positive similarity to the keys it
    sees; dividing would give ±inf or 0/0 = NaN, so the call fails and says why. ``where`` is
    ``(query.shape[:-2], first row)`` when the normaliser is a ``(n, G, rows, 1)`` block.
    ``out``: where to write the quotient (a view of the caller's output), unless autograd needs
    the operation recorded; the written tensor is returned either way.
    """
    if normaliser.numel() == 0:
        return numerator / normaliser
    with torch.no_grad():
        low, high = torch.aminmax(normaliser)  # one pass; NaN propagates into both
        if not (float(low) > eps and float(high) < math.inf):
            ok = (normaliser > eps) & (normaliser < math.inf)
            bad = (~ok).nonzero()
            index = bad[0].tolist()[:-1]
            value = float(normaliser[tuple(bad[0])])
            if where is not None:  # (n, G, row) → (batch…, heads, position)
                lead, offset = where
                flat, heads = index[0] * normaliser.shape[1] + index[1], []
                for size in reversed(lead):
                    flat, h = divmod(flat, size)
                    heads.append(h)
                index = [*reversed(heads), offset + index[2]]
            reason = f"; {what.positivity}" if what.positivity else ""
            raise ValueError(
                f"normaliser: Σ_j sim(q_i, k_j) is not a finite number above eps={eps:g} for "
                f"the query at index {tuple(index)} ({value:g}; {bad.shape[0]} such of the "
                f"{normaliser.numel()} checked with it) with {what.name!r}, so its output would "
                f"be inf or NaN{reason}"
            )
    if out is None:
        return numerator / normaliser
    if torch.is_grad_enabled() and (numerator.requires_grad or normaliser.requires_grad):
        out.copy_(numerator / normaliser)  # out= is not differentiable; copy_ is
        return out
    return torch.div(numerator, normaliser, out=out)


def _expand_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """Repeat key/value heads so that query head h uses key/value head ``h // group``."""
    return x if x.shape[-3] == heads else x.repeat_interleave(heads // x.shape[-3], dim=-3)


def kernel_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    kernel="softmax",
    *,
    causal: bool = False,
    eps: float = EPS,
    enable_gqa: bool = False,
    return_weights: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``V'_i = Σ_j sim(Q_i, K_j) V_j / Σ_j sim(Q_i, K_j)``, quadratic in the length: the reference.

    Args:
        query: ``(..., heads, seq_q, head_dim)``; key ``(..., kv_heads, seq_k, head_dim)``;
            value ``(..., kv_heads, seq_k, d_value)``.
        kernel: ``"softmax"`` (``exp(qᵀk/√d)``: equals softmax attention), ``"poly"`` or
            ``("poly", c, p)`` or a :class:`PolynomialKernel` (``(qᵀk + c)^p``), a feature-map
            name or object (``φ(q)ᵀφ(k)``: ``"elu"``, ``"relu"``, ``"poly2"``, ``"favor+"``), or a
            callable ``sim(query, key)`` returning ``(..., seq_q, seq_k)``.
        causal: query i sums over keys ``j ≤ i`` only (needs ``seq_q == seq_k``).
        eps: smallest accepted normaliser; a smaller one raises ``ValueError`` (never NaN).
        enable_gqa: query head h uses key/value head ``h // (heads // kv_heads)``.
        return_weights: also return the ``(..., heads, seq_q, seq_k)`` normalised weights.

    Returns:
        ``(..., heads, seq_q, d_value)`` in the query's dtype (half inputs computed in float32).
    """
    check_qkv(query, key, value, enable_gqa=enable_gqa)
    sim_fn: Kernel = make_kernel(kernel)
    eps = _check_eps(eps)
    _check_causal(causal, query, key)
    dtype = _compute_dtype(query.dtype)
    q, k, v = query.to(dtype), key.to(dtype), value.to(dtype)
    if enable_gqa:
        k, v = _expand_heads(k, q.shape[-3]), _expand_heads(v, q.shape[-3])
    sim = sim_fn.row_scaled(q, k)  # (..., heads, seq_q, seq_k)
    expected = (*q.shape[:-1], k.shape[-2])
    if not isinstance(sim, torch.Tensor) or tuple(sim.shape) != expected:
        got = tuple(sim.shape) if isinstance(sim, torch.Tensor) else type(sim).__name__
        raise ValueError(f"kernel: expected similarities of shape {expected}, got {got}")
    if causal:
        future = torch.ones(sim.shape[-2:], dtype=torch.bool, device=sim.device).triu(1)
        sim = sim.masked_fill(future, 0.0)
    weights = _normalise(sim, sim.sum(dim=-1, keepdim=True), eps, sim_fn)
    out = (weights @ v).to(query.dtype)
    return (out, weights.to(query.dtype)) if return_weights else out


def _canonical(query, key, value):
    """Views ``q (n, G, seq_q, d)``, ``k (n, seq_k, d)``, ``v (n, seq_k, d_value)``: ``n`` is
    batch × kv_heads and the ``G`` query heads of a group (adjacent, ``h // G``) share one."""
    dtype = _compute_dtype(query.dtype)
    heads = query.shape[-3] if query.dim() >= 3 else 1
    groups = heads // (key.shape[-3] if key.dim() >= 3 else 1)
    n = math.prod(key.shape[:-2])  # not -1: a length of 0 would leave it ambiguous
    q = query.to(dtype).reshape(n, groups, *query.shape[-2:])
    k = key.to(dtype).reshape(n, *key.shape[-2:])
    v = value.to(dtype).reshape(n, *value.shape[-2:])
    return q, k, v


class _Scratch:
    """Buffers that every block of one call reuses, by name: for calls autograd does not record.

    A fresh block-sized temporary (4 MiB) is mapped anew by glibc's allocator when the previous
    one was returned to the system, and every page is then faulted in on first touch; with
    these the pages are touched once per call. Measured at T = 16384 (BENCHMARKS.md): raising
    glibc's thresholds so that nothing was returned made the calls 15–30% faster.
    """

    def __init__(self, like: torch.Tensor):
        self.like, self.buffers = like, {}

    def get(self, name: str, shape) -> torch.Tensor:
        numel = math.prod(shape)
        buffer = self.buffers.get(name)
        if buffer is None or buffer.numel() < numel:
            buffer = self.buffers[name] = self.like.new_empty(numel)
        return buffer[:numel].view(shape)

    @staticmethod
    def of(*tensors) -> _Scratch | None:
        """A scratch for these inputs, or None when autograd records the call."""
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            return None
        return _Scratch(tensors[0])


def _buffer(scratch: _Scratch | None, name: str, shape) -> torch.Tensor | None:
    """``scratch.get(name, shape)``, or None (``out=None``: allocate) without a scratch."""
    return None if scratch is None else scratch.get(name, shape)


def _with_ones(v: torch.Tensor, scratch: _Scratch | None = None) -> torch.Tensor:
    """``[v, 1]``, ``(n, seq, d_value + 1)``, written once (``F.pad`` would fill, then copy)."""
    shape = (*v.shape[:-1], v.shape[-1] + 1)
    out = v.new_empty(shape) if scratch is None else scratch.get("[v, 1]", shape)
    out[..., :-1] = v
    out[..., -1] = 1.0
    return out


def _block_rows(rows_per_token: int, r: int, multiple: int) -> int:
    """Tokens per block: about BLOCK_ELEMENTS features but at least MIN_BLOCK_ROWS tokens, a
    multiple of ``multiple``."""
    rows = max(MIN_BLOCK_ROWS, BLOCK_ELEMENTS // max(1, rows_per_token * r))
    return max(multiple, rows // multiple * multiple)


def _past(c: int, like: torch.Tensor) -> torch.Tensor:
    """``(c, c)`` lower-triangular ones in ``like``'s dtype: 1 where key j ≤ query i."""
    return torch.ones(c, c, dtype=like.dtype, device=like.device).tril_()


def _causal_segment(fq, fk, va, sums, chunk, scratch=None):
    """Causal linear attention over one segment whose length is a multiple of ``chunk``.

    Args:
        fq: ``(n, G, L, r)`` query features; fk ``(n, L, r)``; va ``(n, L, d_value + 1)``.
        sums: ``(n, r, d_value + 1)`` state ``[S | z]`` of the tokens before, or None.
        scratch: buffers to compute into (inference), or None.

    Returns:
        ``(n, G, L, d_value + 1)`` numerators and normalisers, and the state after the segment.
    """
    n, groups, length, r = fq.shape
    c = chunk
    fq = fq.reshape(n, groups, length // c, c, r)  # (n, G, m, C, r)
    fk = fk.reshape(n, length // c, c, r)  # (n, m, C, r)
    va = va.reshape(n, length // c, c, va.shape[-1])  # (n, m, C, d_value + 1)
    width, m = va.shape[-1], length // c
    # (n, m, r, d_value + 1): each chunk's Σ φ(k)[v, 1]ᵀ
    chunk_sums = torch.matmul(fk.transpose(-2, -1), va, out=_buffer(scratch, "Σ", (n, m, r, width)))
    # Exclusive prefix sums over the chunks: the state each chunk starts from. A loop of m adds
    # on (n, r, d_value + 1) slices moves each element once; torch's cumsum along a middle dim
    # took 1.8 times as long here.
    before = torch.empty_like(chunk_sums) if scratch is None else scratch.get("S", (n, m, r, width))
    if sums is None:
        before[:, 0] = 0.0
    else:
        before[:, 0] = sums
    for i in range(1, length // c):  # one add per chunk, written where it is read
        if scratch is None:  # autograd records: out= is not differentiable, slice assignment is
            before[:, i] = before[:, i - 1] + chunk_sums[:, i - 1]
        else:
            torch.add(before[:, i - 1], chunk_sums[:, i - 1], out=before[:, i])
    state = before[:, -1] + chunk_sums[:, -1]
    # (n, G, m, C, d_value + 1): the earlier chunks
    out = torch.matmul(
        fq, before.unsqueeze(1), out=_buffer(scratch, "out", (n, groups, m, c, width))
    )
    keys = fk.unsqueeze(1).transpose(-2, -1)
    scores = torch.matmul(fq, keys, out=_buffer(scratch, "QKᵀ", (n, groups, m, c, c)))
    scores.mul_(_past(c, scores))  # keys j ≤ i of the chunk itself
    # + the chunk itself, accumulated in place (a pass fewer than ``out + …``); expanding the
    # values over the G query heads of a group copies them only when G > 1
    values = va.unsqueeze(1).expand(n, groups, *va.shape[1:]).reshape(-1, c, width)
    out = out.view(-1, c, width).baddbmm_(scores.view(-1, c, c), values)
    return out.view(n, groups, length, -1), state


def _rows(x: torch.Tensor, start: int, stop: int, name: str | None) -> torch.Tensor:
    """Rows ``start:stop`` of ``x`` (dim −2), checked finite first when ``name`` is given.

    The checked entry points check their inputs here, a block at a time, instead of in one
    pass over each whole tensor before the work: the block is then read again from cache.
    """
    block = x[..., start:stop, :]
    if name is not None:
        check_finite(name, block)
    return block


def _fused(fm, q, k, v, sums=None) -> bool:
    """Whether the compiled elu kernels take this call (:mod:`attnlab.functional.compiled`).

    They run φ, the products and the normalisation in one pass over each block, checking the
    inputs as they read them. When they flag a non-finite input or normaliser, the eager path
    below runs instead and raises its error, naming the argument and the position.
    """
    return type(fm) is EluFeatureMap and compiled.fusable(q, k, v, sums)


def _causal(q, k, v, fm, sums, chunk, eps, lead, names=(None, None, None)):
    """``(n, G, T, d_value)`` outputs and the final state ``[S | z]``, block by block.

    Each block of rows is featurised at once and runs as chunks of ``chunk`` tokens (a last,
    shorter chunk as its own segment, without padding copies); the state carries across.
    """
    n, groups, length, d = q.shape
    r = fm.output_dim(d)
    chunk = min(chunk or CHUNK, max(1, length))
    if _fused(fm, q, k, v, sums):
        done = compiled.elu_causal(q, k, v, sums, chunk, eps)
        if done is not None:
            return done
    out = q.new_empty(n, groups, length, v.shape[-1])
    block = _block_rows(n * groups, r, chunk)
    scratch = _Scratch.of(q, k, v, *([] if sums is None else [sums]))
    for start in range(0, length, block):
        stop = min(length, start + block)
        fq = fm.features(_rows(q, start, stop, names[0]), query=True, scratch=scratch, slot="q")
        fk = fm.features(_rows(k, start, stop, names[1]), scratch=scratch, slot="k")
        va = _with_ones(_rows(v, start, stop, names[2]), scratch)
        main = (stop - start) // chunk * chunk
        cuts = [(0, main, chunk)] if main else []
        if main < stop - start:
            cuts.append((main, stop - start, stop - start - main))
        for a, b, c in cuts:
            part, sums = _causal_segment(fq[:, :, a:b], fk[:, a:b], va[:, a:b], sums, c, scratch)
            where, target = (lead, start + a), out[:, :, start + a : start + b]
            _normalise(part[..., :-1], part[..., -1:], eps, fm, where, out=target)
    return out, sums


def _noncausal(q, k, v, fm, chunk, eps, lead, names=(None, None, None)):
    """``φ(Q)ᵀ(Σ_j φ(K_j)[V_j, 1]ᵀ)`` normalised, ``(n, G, seq_q, d_value)``: keys and then
    queries featurised a block of rows at a time."""
    n, groups, length, d = q.shape
    r, d_value = fm.output_dim(d), v.shape[-1]
    if _fused(fm, q, k, v):
        done = compiled.elu_noncausal(q, k, v, eps)
        if done is not None:
            return done
    block = chunk or _block_rows(n * groups, r, 1)
    kv_sum, key_sum = q.new_zeros(n, r, d_value), q.new_zeros(n, r)  # no keys: normaliser 0
    scratch = _Scratch.of(q, k, v)
    for start in range(0, k.shape[1], block):
        fk = fm.features(_rows(k, start, start + block, names[1]), scratch=scratch, slot="k")
        vb = _rows(v, start, start + block, names[2])
        # S and z apart: a pass over φ(K) for z costs less than writing [V, 1]
        kv_sum = torch.baddbmm(kv_sum, fk.transpose(-2, -1), vb)
        key_sum = key_sum + fk.sum(dim=1)
    sums = torch.cat([kv_sum, key_sum.unsqueeze(-1)], dim=-1).unsqueeze(1)  # (n, 1, r, dv + 1)
    out = q.new_empty(n, groups, length, d_value)
    for start in range(0, length, block):
        fq = fm.features(_rows(q, start, start + block, names[0]), query=True, scratch=scratch)
        part = torch.matmul(fq, sums, out=_buffer(scratch, "part", (*fq.shape[:-1], d_value + 1)))
        where, target = (lead, start), out[:, :, start : start + block]
        _normalise(part[..., :-1], part[..., -1:], eps, fm, where, out=target)
    return out


def _check_chunk(chunk_size):
    return None if chunk_size is None else check_length("chunk_size", chunk_size)


def linear_attend(query, key, value, fm: FeatureMap, *, causal=False, eps=EPS, chunk_size=None):
    """:func:`linear_attention` without the boundary checks, for modules whose inputs are
    already known to be well formed. ``fm`` must be a :class:`FeatureMap`; grouped-query
    attention follows from the shapes (fewer key/value heads than query heads)."""
    return _attend(query, key, value, fm, causal, eps, chunk_size)


def _attend(query, key, value, fm, causal, eps, chunk_size, names=(None, None, None)):
    """The work of :func:`linear_attend`; ``names`` given: check each block finite first."""
    q, k, v = _canonical(query, key, value)
    lead = query.shape[:-2]
    if causal:
        out, _ = _causal(q, k, v, fm, None, chunk_size, eps, lead, names)
    else:
        out = _noncausal(q, k, v, fm, chunk_size, eps, lead, names)
    return out.to(query.dtype).reshape(*query.shape[:-1], value.shape[-1])


def linear_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    feature_map: FeatureMap | str = "elu",
    *,
    causal: bool = False,
    eps: float = EPS,
    chunk_size: int | None = None,
    enable_gqa: bool = False,
) -> torch.Tensor:
    """Linear attention ``φ(Q_i)ᵀ(Σ_j φ(K_j) V_jᵀ) / φ(Q_i)ᵀ Σ_j φ(K_j)`` in O(T · r · d).

    Equals :func:`kernel_attention` with the kernel ``φ(q)ᵀφ(k)`` up to rounding (Katharopoulos
    et al., 2020, Section 3.2). Causal: the prefix sums ``S_i, z_i`` are carried across chunks of
    ``chunk_size`` tokens and, within a chunk, the masked quadratic form ``φ(Q_c)φ(K_c)ᵀ`` is
    applied (their Section 3.3, by chunks). Features are computed a block of rows at a time, so
    a forward pass holds the output and O(block · (r + d)); autograd keeps the features and one
    state per chunk, O(T · (r + d)) for C ≈ d, never the O(T · r · d) of every prefix state.

    With ``"elu"``, float32 (or half) inputs and autograd not recording, the call runs one
    compiled, fused kernel (:mod:`attnlab.functional.compiled`), about 3× faster; it checks the
    inputs as it reads them and hands any call it flags to this path, which raises the error.

    Args:
        query: ``(..., heads, seq_q, head_dim)``; key ``(..., kv_heads, seq_k, head_dim)``;
            value ``(..., kv_heads, seq_k, d_value)``.
        feature_map: a :class:`FeatureMap` or a name: ``"elu"``, ``"relu"``, ``"poly2"``,
            ``"favor+"`` (a name builds a fresh map with default options; pass an object to
            keep FAVOR+'s random features across calls).
        causal: query i sees keys ``j ≤ i`` (needs ``seq_q == seq_k``).
        eps: smallest accepted normaliser; smaller ones (a map with non-positive outputs, or
            underflow) raise ``ValueError`` naming the map, never return NaN or inf.
        chunk_size: causal: tokens per chunk (default ``CHUNK`` = 64); not causal: tokens
            featurised at once (default: about ``BLOCK_ELEMENTS`` = 2¹⁸ features per block,
            at least ``MIN_BLOCK_ROWS`` = 64 tokens).
            Any positive size; it need not divide the length.
        enable_gqa: query head h uses key/value head ``h // (heads // kv_heads)``; the sums are
            kept per key/value head, not repeated.

    Returns:
        ``(..., heads, seq_q, d_value)`` in the query's dtype (half inputs computed in float32).
    """
    check_qkv(query, key, value, enable_gqa=enable_gqa, finite=False)  # finite: by blocks
    fm = make_feature_map(feature_map)
    eps, chunk_size = _check_eps(eps), _check_chunk(chunk_size)
    _check_causal(causal, query, key)
    names = ("query", "key", "value")
    return _attend(query, key, value, fm, causal, eps, chunk_size, names)


def linear_attention_decode(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    feature_map: FeatureMap | str,
    state: LinearAttentionState | None = None,
    *,
    eps: float = EPS,
    chunk_size: int | None = None,
    enable_gqa: bool = False,
) -> tuple[torch.Tensor, LinearAttentionState]:
    """Causal linear attention for ``seq_new ≥ 1`` new tokens after those summed in ``state``.

    New query i sees every earlier token and the new keys ``j ≤ i``. Feeding a sequence in
    pieces gives the outputs of :func:`linear_attention` with ``causal=True`` on the whole
    (up to rounding). The state is not modified; the returned one includes the new tokens.

    Args:
        query: ``(batch, heads, seq_new, head_dim)``; key/value ``(batch, kv_heads, seq_new, ·)``.
        state: from a previous call or :meth:`LinearAttentionState.empty`; None starts empty.
        Other arguments as :func:`linear_attention`.

    Returns:
        ``(batch, heads, seq_new, d_value)`` and the new :class:`LinearAttentionState`.
    """
    check_qkv(query, key, value, enable_gqa=enable_gqa)
    if query.dim() != 4:
        raise ValueError(
            f"query: expected (batch, heads, seq_new, head_dim), got shape {tuple(query.shape)}"
        )
    if query.shape[-2] != key.shape[-2]:
        raise ValueError(
            f"query and key: expected the same number of new tokens, got query "
            f"{tuple(query.shape)} and key {tuple(key.shape)}"
        )
    fm = make_feature_map(feature_map)
    eps, chunk_size = _check_eps(eps), _check_chunk(chunk_size)
    dtype = _compute_dtype(query.dtype)
    r = fm.output_dim(query.shape[-1])
    expected = (*key.shape[:2], r, value.shape[-1] + 1)
    if state is None:
        state = LinearAttentionState(query.new_zeros(expected, dtype=dtype), 0)
    if not isinstance(state, LinearAttentionState):
        raise TypeError(f"state: expected a LinearAttentionState, got {type(state).__name__}")
    sums = state.sums
    if (tuple(sums.shape), sums.dtype, sums.device) != (expected, dtype, query.device):
        raise ValueError(
            f"state: expected sums of shape {expected} (batch, kv_heads, r, d_value + 1), "
            f"{dtype} on {query.device} for this input and {fm!r}, got {tuple(sums.shape)}, "
            f"{sums.dtype} on {sums.device}"
        )
    q, k, v = _canonical(query, key, value)
    sums = sums.reshape(-1, r, value.shape[-1] + 1)
    out, sums = _causal(q, k, v, fm, sums, chunk_size, eps, query.shape[:-2])
    out = out.to(query.dtype).reshape(*query.shape[:-1], value.shape[-1])
    return out, LinearAttentionState(sums.reshape(expected), state.length + query.shape[-2])


def linear_attention_step(
    q_t: torch.Tensor,
    k_t: torch.Tensor,
    v_t: torch.Tensor,
    state: LinearAttentionState | None,
    feature_map: FeatureMap | str,
    *,
    eps: float = EPS,
    enable_gqa: bool = False,
) -> tuple[torch.Tensor, LinearAttentionState]:
    """One token of the recurrence (Katharopoulos et al., 2020, Section 3.4):

        S_t = S_{t−1} + φ(k_t) v_tᵀ,   z_t = z_{t−1} + φ(k_t),   out_t = φ(q_t)ᵀS_t / φ(q_t)ᵀz_t.

    Args:
        q_t: ``(batch, heads, head_dim)``; k_t ``(batch, kv_heads, head_dim)``; v_t
            ``(batch, kv_heads, d_value)``.
        state: the state after the previous tokens (None: none yet).

    Returns:
        ``(batch, heads, d_value)`` and the state including token t.
    """
    for name, x in (("q_t", q_t), ("k_t", k_t), ("v_t", v_t)):
        check_tensor(name, x, min_dim=3)
        if x.dim() != 3:
            raise ValueError(f"{name}: expected (batch, heads, dim), got shape {tuple(x.shape)}")
    q, k, v = (x.unsqueeze(-2) for x in (q_t, k_t, v_t))  # (batch, heads, 1, dim)
    out, state = linear_attention_decode(
        q, k, v, feature_map, state, eps=eps, enable_gqa=enable_gqa
    )
    return out.squeeze(-2), state


__all__ = [
    "EPS",
    "LinearAttentionState",
    "kernel_attention",
    "linear_attend",
    "linear_attention",
    "linear_attention_decode",
    "linear_attention_step",
]
