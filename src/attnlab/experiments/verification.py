"""Self-verification: attnlab's attention against independent references, on fresh random
inputs, plus the hand-worked exercises of the seed sheets.

Each check reports the largest absolute difference from its reference and the tolerance it
must meet, so a user can see for themselves how far the implementation can be trusted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from attnlab import ref
from attnlab.functional import (
    argmax_attention,
    compiled,
    kernel_attention,
    linear_attention,
    scaled_dot_product_attention,
)


@dataclass(frozen=True)
class Check:
    """One comparison: attnlab's result against a reference."""

    name: str
    reference: str
    cases: int
    max_abs_error: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_abs_error <= self.tolerance

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def _random_case(rng: torch.Generator, dtype: torch.dtype) -> dict:
    """Random shapes and a random mask kind for one SDPA comparison."""

    def draw(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (1,), generator=rng))

    batch, kv_heads, group = draw(1, 3), draw(1, 3), draw(1, 3)
    seq_q, seq_k, head_dim, d_value = draw(1, 12), draw(1, 12), draw(1, 16), draw(1, 16)
    gqa = group > 1
    heads = kv_heads * group

    def randn(*shape):
        return torch.randn(*shape, generator=rng, dtype=dtype)

    case = {
        "query": randn(batch, heads, seq_q, head_dim),
        "key": randn(batch, kv_heads, seq_k, head_dim),
        "value": randn(batch, kv_heads, seq_k, d_value),
        "enable_gqa": gqa,
    }
    kind = draw(0, 3)
    if kind == 1:
        case["is_causal"] = True
    elif kind == 2:
        case["attn_mask"] = torch.rand(batch, 1, seq_q, seq_k, generator=rng) > 0.3
    elif kind == 3:
        case["attn_mask"] = randn(seq_q, seq_k)
    return case


def _max_error(a, b) -> float:
    a = a.detach().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, float)
    b = b.detach().double().numpy() if isinstance(b, torch.Tensor) else np.asarray(b, float)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def _sdpa_checks(rng: torch.Generator, cases: int) -> Iterator[Check]:
    for dtype, tolerance in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        fused = explicit = 0.0
        for _ in range(cases):
            case = _random_case(rng, dtype)
            expected = F.scaled_dot_product_attention(**case)
            fused = max(fused, _max_error(scaled_dot_product_attention(**case), expected))
            output, _ = scaled_dot_product_attention(**case, return_weights=True)
            explicit = max(explicit, _max_error(output, expected))
        name = str(dtype).removeprefix("torch.")
        reference = "torch.nn.functional.scaled_dot_product_attention"
        yield Check(f"functional SDPA, {name}, fused path", reference, cases, fused, tolerance)
        yield Check(
            f"functional SDPA, {name}, explicit path", reference, cases, explicit, tolerance
        )


def _reference_checks(rng: torch.Generator, cases: int) -> Iterator[Check]:
    forward = backward = mha = block = 0.0
    for _ in range(cases):
        q, k, v, dout = (torch.randn(2, 5, 8, generator=rng, dtype=torch.float64) for _ in "qkvd")
        causal = ref.create_causal_mask(5)
        expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        forward = max(forward, _max_error(ref.masked_attention(q, k, v, causal), expected))

        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        grads = torch.autograd.grad(
            F.scaled_dot_product_attention(*leaves, is_causal=True), leaves, dout
        )
        mine = ref.attention_backward(q.numpy(), k.numpy(), v.numpy(), dout.numpy(), causal)
        backward = max(backward, *(_max_error(m, g) for m, g in zip(mine, grads, strict=True)))

        mha = max(mha, _mha_error(rng))
        block = max(block, _autograd_block_error(rng))
    yield Check("ref.masked_attention (causal)", "torch SDPA", cases, forward, 1e-12)
    yield Check("ref.attention_backward (causal)", "torch autograd", cases, backward, 1e-10)
    yield Check("ref.MultiHeadAttention", "torch.nn.MultiheadAttention", cases, mha, 1e-12)
    yield Check(
        "ref.transformer.pre_ln_block gradients (NumPy autograd)",
        "torch autograd on nn.Block",
        cases,
        block,
        1e-10,
    )


def _autograd_block_error(rng: torch.Generator) -> float:
    """A causal Pre-LN block's output and every gradient, by attnlab's NumPy autograd and by
    torch's autograd on :class:`attnlab.nn.Block` with the same weights."""
    from attnlab.nn import Block
    from attnlab.ref.autograd import Tensor, parameters
    from attnlab.ref.transformer import pre_ln_block

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=rng)))
        block = Block(16, 4, norm="pre").double()
    x = torch.randn(2, 6, 16, generator=rng, dtype=torch.float64, requires_grad=True)
    dout = torch.randn(2, 6, 16, generator=rng, dtype=torch.float64)
    out = block(x)
    (out * dout).sum().backward()
    params, mine_x = parameters(block.state_dict()), Tensor(x.detach().numpy())
    mine = pre_ln_block(mine_x, params, 4)
    mine.backward(dout.numpy())
    errors = [_max_error(mine.data, out), _max_error(mine_x.grad, x.grad)]
    errors += [_max_error(params[name].grad, p.grad) for name, p in block.named_parameters()]
    return max(errors)


def _mha_error(rng: torch.Generator) -> float:
    """Copy the reference's weights into ``torch.nn.MultiheadAttention`` and compare."""
    d_model, n_heads = 12, 3
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=rng))
    mine = ref.MultiHeadAttention(d_model, n_heads, seed=seed)
    theirs = torch.nn.MultiheadAttention(d_model, n_heads, bias=False, batch_first=True)
    theirs = theirs.double()
    with torch.no_grad():  # torch applies x @ W.T, the reference x @ W
        theirs.in_proj_weight.copy_(
            torch.from_numpy(np.concatenate([mine.W_q, mine.W_k, mine.W_v], 1).T)
        )
        theirs.out_proj.weight.copy_(torch.from_numpy(mine.W_o.T))
    x = torch.randn(2, 6, d_model, generator=rng, dtype=torch.float64)
    out, weights = theirs(x, x, x, average_attn_weights=False)
    return max(
        _max_error(mine.forward(x.numpy()), out),
        _max_error(mine.attention_weights, weights),
    )


def _gradcheck_check(rng: torch.Generator) -> Check:
    leaves = [
        torch.randn(1, 2, 3, 4, generator=rng, dtype=torch.float64, requires_grad=True)
        for _ in range(3)
    ]
    mask = torch.tensor([[True, False, True], [True, True, False], [False, False, False]])

    def explicit(q, k, v):
        return scaled_dot_product_attention(q, k, v, attn_mask=mask, return_weights=True)[0]

    passed = torch.autograd.gradcheck(explicit, leaves, raise_exception=False)
    return Check(
        "functional SDPA gradients (masked, one empty row)",
        "finite differences (gradcheck)",
        1,
        0.0 if passed else float("inf"),
        0.0,
    )


def _linear_checks(rng: torch.Generator, cases: int) -> Iterator[Check]:
    """Linear attention against the quadratic kernel form ``Σ_j sim(q, k_j) v_j / Σ_j sim``,
    computed in float64: elu in float32 (the compiled, fused kernel where it is built) and the
    exact degree-2 polynomial map in float64, plain and causal, on random shapes."""

    def draw(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (1,), generator=rng))

    errors = {"elu": 0.0, "poly2": 0.0}
    for _ in range(cases):
        batch, kv_heads, group = draw(1, 2), draw(1, 3), draw(1, 2)
        seq, head_dim, d_value = draw(1, 300), draw(1, 40), draw(1, 70)
        causal, gqa = bool(draw(0, 1)), group > 1
        q = torch.randn(batch, kv_heads * group, seq, head_dim, generator=rng, dtype=torch.float64)
        k = torch.randn(batch, kv_heads, seq, head_dim, generator=rng, dtype=torch.float64)
        v = torch.randn(batch, kv_heads, seq, d_value, generator=rng, dtype=torch.float64)
        for name, dtype in (("elu", torch.float32), ("poly2", torch.float64)):
            reference = kernel_attention(q, k, v, name, causal=causal, enable_gqa=gqa)
            with torch.no_grad():
                got = linear_attention(
                    q.to(dtype), k.to(dtype), v.to(dtype), name, causal=causal, enable_gqa=gqa
                )
            scale = max(1.0, float(reference.abs().max()))
            errors[name] = max(errors[name], _max_error(got, reference) / scale)
    how = "compiled kernel" if compiled.library() is not None else "PyTorch path"
    yield Check(
        f"linear_attention elu, float32 ({how})",
        "quadratic kernel form",
        cases,
        errors["elu"],
        1e-5,
    )
    yield Check(
        "linear_attention poly2, float64", "quadratic kernel form", cases, errors["poly2"], 1e-10
    )


def _exercise_checks() -> Iterator[Check]:
    """The hand-worked answers of the seed sheets, at the precision they are printed with."""
    h = torch.tensor([[1.0, 2, 3], [1, 2, 1], [0, 1, -1]], dtype=torch.float64)
    s = torch.tensor([[1.0, 2, 1]], dtype=torch.float64)
    c, a = scaled_dot_product_attention(s, h, h, scale=1.0, return_weights=True)
    error = max(_max_error(a, [[0.88, 0.12, 0.00]]), _max_error(c, [[1.00, 2.00, 2.76]]))
    yield Check("seed 002 exercise 1 (unscaled)", "printed solution", 1, error, 0.005)

    q = torch.tensor([[1.0, 2], [3, 1]], dtype=torch.float64)
    k = torch.tensor([[2.0, 1], [1, 1], [0, 1]], dtype=torch.float64)
    v = torch.tensor([[1.0, 2, -2], [1, 1, 2], [0, 1, -1]], dtype=torch.float64)
    expected = [[0.86, 1.58, -0.72], [0.99, 1.88, -1.56]]
    error = _max_error(scaled_dot_product_attention(q, k, v), expected)
    yield Check("seed 002 exercise 3", "printed solution", 1, error, 0.005)

    q = torch.tensor([[1.0, 1, 2]], dtype=torch.float64)
    k = torch.tensor([[1.0, 2, 0], [0, 3, 4], [5, 0, 0], [0, 0, 1]], dtype=torch.float64)
    v = torch.tensor([[2.0, 0, 1], [1, 4, 3], [0, -1, 4], [1, 0, -1]], dtype=torch.float64)
    error = _max_error(argmax_attention(q, k, v), [[1.0, 4, 3]])
    yield Check("seed 003 problem 2 (argmax)", "printed solution", 1, error, 0.0)


def run_verification(
    seed: int = 0, cases: int = 50, progress: Callable[[str], None] | None = None
) -> list[Check]:
    """Run every check on fresh random inputs drawn from ``seed``; return the results."""
    if cases < 1:
        raise ValueError(f"cases: expected a positive integer, got {cases}")
    rng = torch.Generator().manual_seed(seed)
    groups = [
        ("SDPA against torch", lambda: list(_sdpa_checks(rng, cases))),
        ("reference against torch", lambda: list(_reference_checks(rng, max(1, cases // 5)))),
        ("gradients", lambda: [_gradcheck_check(rng)]),
        ("linear attention", lambda: list(_linear_checks(rng, max(1, cases // 5)))),
        ("seed exercises", lambda: list(_exercise_checks())),
    ]
    results: list[Check] = []
    for label, group in groups:
        if progress is not None:
            progress(label)
        results.extend(group())
    return results
