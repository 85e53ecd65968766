"""PE(pos + k) is a linear map of PE(pos) that depends on k only: built, fitted and checked.

Column pair i of the sinusoidal encoding is ``(sin(pos·ω_i), cos(pos·ω_i))`` with
``ω_i = base^(−2i/d)`` (Vaswani et al., 2017, section 3.5). The angle-sum identities

    sin((pos + k)ω) =  cos(kω)·sin(posω) + sin(kω)·cos(posω)
    cos((pos + k)ω) = −sin(kω)·sin(posω) + cos(kω)·cos(posω)

give ``PE(pos + k) = M_k · PE(pos)`` with ``M_k`` block-diagonal, one 2×2 rotation
``[[cos kω_i, sin kω_i], [−sin kω_i, cos kω_i]]`` per pair, and no ``pos`` anywhere in it
(seed 004 exercise 13.26; the property the paper gives for choosing sinusoids). The experiment
builds ``M_k`` from this closed form and measures ``max |PE(pos + k) − M_k PE(pos)|`` with
:func:`attnlab.functional.sinusoidal_encoding` at many positions; independently, it fits
``M_k`` by least squares from two disjoint sets of positions, and finds the same matrix
from both, equal to the closed form.
"""

from __future__ import annotations

import math

import torch

from attnlab.functional import sinusoidal_encoding

from .registry import ExperimentResult, Progress, check_positive, check_positive_ints, register

COLUMNS = ["offset", "pos", "closed_form_error", "fitted_error"]


def frequencies(d_model: int, base: float = 10000.0) -> torch.Tensor:
    """``ω_i = base^(−2i/d_model)`` for each column pair i, float64 ``(d_model // 2,)``."""
    return base ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)


def offset_map(k: int, d_model: int, base: float = 10000.0) -> torch.Tensor:
    """The closed-form ``(d_model, d_model)`` float64 ``M_k`` with ``PE(pos+k) = M_k PE(pos)``."""
    omega = frequencies(d_model, base)
    c, s = torch.cos(k * omega), torch.sin(k * omega)
    m = torch.zeros(d_model, d_model, dtype=torch.float64)
    m[0::2, 0::2] = torch.diag(c)  # new sine   from old sine
    m[0::2, 1::2] = torch.diag(s)  # new sine   from old cosine
    m[1::2, 0::2] = torch.diag(-s)  # new cosine from old sine
    m[1::2, 1::2] = torch.diag(c)  # new cosine from old cosine
    return m


def _encode(positions, d_model: int, base: float) -> torch.Tensor:
    """``(len(positions), d_model)`` float64 encodings at arbitrary (not consecutive) positions."""
    rows = [
        sinusoidal_encoding(1, d_model, offset=int(p), base=base, dtype=torch.float64)
        for p in positions
    ]
    return torch.cat(rows)


def _fit(positions: torch.Tensor, k: int, d_model: int, base: float):
    """Least-squares ``M`` with ``PE(pos + k) ≈ M PE(pos)`` over ``positions``; and cond(X)."""
    x = _encode(positions.tolist(), d_model, base)  # (n, d)
    y = _encode((positions + k).tolist(), d_model, base)  # (n, d)
    solution = torch.linalg.lstsq(x, y, driver="gelsd").solution  # x · Mᵀ = y
    return solution.T, float(torch.linalg.cond(x))


def _figure(fig, result: ExperimentResult) -> None:
    left, right = fig.subplots(1, 2)
    k0 = result.rows[0]["offset"]
    m = offset_map(k0, result.params["d_model"], result.params["base"])
    image = left.imshow(m.numpy(), cmap="RdBu", vmin=-1, vmax=1)
    fig.colorbar(image, ax=left, shrink=0.8)
    left.set(title=f"closed-form M_k, k = {k0} (2×2 rotations)", xlabel="from", ylabel="to")
    floor = 1e-18  # an exact 0 cannot sit on a log axis; it is drawn at the floor
    for k in dict.fromkeys(r["offset"] for r in result.rows):
        rows = [r for r in result.rows if r["offset"] == k]
        pos = [r["pos"] for r in rows]
        right.semilogy(
            pos, [max(r["closed_form_error"], floor) for r in rows], "o-", label=f"k={k}"
        )
        right.semilogy(pos, [max(r["fitted_error"], floor) for r in rows], "x:", color="grey")
    right.set_xscale("symlog")
    right.set(xlabel="pos", ylabel="max |PE(pos+k) − M_k PE(pos)|", title="o closed form, x fitted")
    right.legend(fontsize=7)


@register(
    "sinusoidal-offset",
    title="PE(pos + k) = M_k · PE(pos) with M_k independent of pos",
    question="seed 004 13.26: a fixed offset is a linear map of the sinusoidal encoding",
    description="build M_k (2×2 rotations), check PE(pos+k) = M_k PE(pos) at many pos, fit M_k",
    help={
        "d_model": "width of the encoding (even)",
        "offsets": "offsets k",
        "positions": "positions pos at which the map is checked",
        "fit_positions": "random positions per least-squares fit (two disjoint sets)",
        "base": "the base of the frequencies (10000 in the paper)",
    },
    figure=_figure,
)
def run(
    *,
    seed: int = 0,
    progress: Progress,
    d_model: int = 16,
    offsets: tuple[int, ...] = (1, 5, 20, 100),
    positions: tuple[int, ...] = (0, 1, 7, 50, 300, 1000, 5000),
    fit_positions: int = 256,
    base: float = 10000.0,
) -> ExperimentResult:
    check_positive_ints("d_model", (d_model,), minimum=2)
    if d_model % 2:
        raise ValueError(
            f"d_model: expected an even width (with an odd one the last sine has no cosine "
            f"partner, and no linear map exists), got {d_model}"
        )
    check_positive_ints("offsets", offsets, minimum=0)
    check_positive_ints("positions", positions, minimum=0)
    check_positive_ints("fit_positions", (fit_positions,), minimum=d_model)
    check_positive("base", base)
    rng = torch.Generator().manual_seed(seed)
    # One period of the slowest pair, 2π·base^((d−2)/d), so every column varies over the fit.
    span = math.ceil(2 * math.pi * base ** ((d_model - 2) / d_model)) + 1
    low = torch.randint(0, span, (fit_positions,), generator=rng)
    high = torch.randint(span, 2 * span, (fit_positions,), generator=rng)

    rows, fit_vs_closed, low_vs_high, condition = [], 0.0, 0.0, 0.0
    for k in offsets:
        progress(f"k = {k}")
        m = offset_map(k, d_model, base)
        fitted_low, cond_low = _fit(low, k, d_model, base)
        fitted_high, cond_high = _fit(high, k, d_model, base)
        fit_vs_closed = max(
            fit_vs_closed,
            float((fitted_low - m).abs().max()),
            float((fitted_high - m).abs().max()),
        )
        low_vs_high = max(low_vs_high, float((fitted_low - fitted_high).abs().max()))
        condition = max(condition, cond_low, cond_high)
        here = _encode(positions, d_model, base)  # (n, d)
        there = _encode([p + k for p in positions], d_model, base)
        closed = (there - here @ m.T).abs().amax(-1)  # (n,)
        fitted = (there - here @ fitted_low.T).abs().amax(-1)
        for p, e_closed, e_fitted in zip(positions, closed, fitted, strict=True):
            rows.append(
                {
                    "offset": k,
                    "pos": p,
                    "closed_form_error": float(e_closed),
                    "fitted_error": float(e_fitted),
                }
            )
    summary = {
        "max_closed_form_error": max(r["closed_form_error"] for r in rows),
        "max_fitted_error": max(r["fitted_error"] for r in rows),
        "max_fit_vs_closed_form": fit_vs_closed,
        "max_fit_low_vs_high": low_vs_high,
        "fit_condition_number": condition,
    }
    details = {
        "frequencies": frequencies(d_model, base).tolist(),
        "fit_positions_low": [0, span - 1],
        "fit_positions_high": [span, 2 * span - 1],
    }
    return ExperimentResult(columns=COLUMNS, rows=rows, summary=summary, details=details)
