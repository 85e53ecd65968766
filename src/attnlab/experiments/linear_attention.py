"""Linear attention against exact softmax attention: FAVOR+'s error, and time against T.

``favor-error`` (seed 003 problem 6, seed 004 exercise 13.32): FAVOR+ estimates the softmax
kernel ``exp(qᵀk/√d)`` with ``r`` positive random features (Choromanski et al., 2021), so its
output is exact only on average over the draws of the features. The experiment measures the
mean relative error ``‖out − exact‖ / ‖exact‖`` against :func:`kernel_attention` with the
``"softmax"`` kernel (equal to softmax attention), in float64, for queries and keys N(0, s²)
(scores ``qᵀk/√d`` of std s²), orthogonal and i.i.d. features, averaged over draws of the
features, and fits the log-log slope of error against r. A Monte Carlo estimate's error falls
like 1/√r (slope −0.5), but the estimator's variance grows like ``exp(‖q + k‖²/√d)`` (their
Lemma 2): for larger inputs the 1/√r regime starts at larger r, and over r = 16…1024 the slope
is much flatter.

``linear-timing`` (the same exercises, and 13.9's O(T²)): the forward time and peak RSS growth
of ``torch.nn.functional.scaled_dot_product_attention`` (torch's fused softmax kernel) against
:func:`attnlab.functional.linear_attention` with the ``elu``, ``poly2`` and ``favor+`` maps,
plain and causal, interleaved call by call at each length (:func:`linear_vs_softmax_timing`).
Beside each measured time is its complexity from :func:`attnlab.calc.linear_attention_ops`:
softmax attention's ``O(N²·D)`` matmul FLOPs against linear attention's ``O(N·r·D)``, with
``r`` the feature dimension of the map (d for elu, ``1 + d + d·(d+1)/2`` = 2145 at d = 64 for
poly2, the number of random features for FAVOR+), and the FLOP ratio that predicts the speedup.
The closed forms are checked against ``torch.utils.flop_counter.FlopCounterMode`` on the
shortest length in the same run. The crossover of a method is the shortest measured length from
which it beats SDPA at every longer length. Times depend on the machine and its load; the
``others_cpu`` column says how much of the CPU other processes took while a length ran.

``benchmarks/linear_attention.py`` runs both for BENCHMARKS.md and adds its roofline.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from attnlab.bench import others_share, peak_rss_delta
from attnlab.calc import linear_attention_ops
from attnlab.functional.compiled import use_compiled
from attnlab.functional.feature_maps import FavorPlusFeatureMap, feature_map
from attnlab.functional.linear import CHUNK, kernel_attention, linear_attend, linear_attention

from .fitting import loglog_line, loglog_slope
from .registry import ExperimentResult, Progress, check_positive, check_positive_ints, register

# "elu, unchecked" is linear_attend, the path a module calls: no finiteness check of Q, K, V
# beyond what the kernels flag. "elu, eager" is linear_attention with the compiled kernels off
# (attnlab.functional.compiled.use_compiled(False)): the PyTorch-only path, for comparison.
METHODS = ("sdpa", "elu", "elu, unchecked", "elu, eager", "poly2", "favor+")
LINEAR = ("elu", "poly2", "favor+")  # the experiment's linear methods, beside "sdpa"
LENGTHS = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
N_FEATURES = (16, 32, 64, 128, 256, 512, 1024)


# ── FAVOR+ error against exact softmax attention ──────────────────────────────────────────────


def favor_error_vs_features(
    n_features=N_FEATURES,
    *,
    input_std=(0.25, 0.5, 1.0),
    seq: int = 256,
    head_dim: int = 64,
    heads: int = 4,
    draws: int = 8,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[dict]:
    """FAVOR+ mean relative error ``‖out − exact‖ / ‖exact‖`` against softmax attention.

    Queries and keys are N(0, s²) for each ``s`` in ``input_std`` (scores ``qᵀk/√d`` then have
    std s²; s = 1 is seed 003 problem 1's unit-variance case), values N(0, 1), float64; each r
    is averaged over ``draws`` feature draws (seeds ``seed + 1000·draw + r``), orthogonal and
    i.i.d. Each row also holds ``slope``, the least-squares slope of log error against log r
    over its group (−0.5: error ∝ 1/√r).
    """
    rows = []
    for s in input_std:
        g = torch.Generator().manual_seed(seed)
        shape = (1, heads, seq, head_dim)
        q, k, v = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3))
        q, k = q * s, k * s
        exact = kernel_attention(q, k, v, "softmax")
        for orthogonal in (True, False):
            if progress is not None:
                progress(f"input std {s:g}, {'orthogonal' if orthogonal else 'i.i.d.'}")
            group = []
            for r in n_features:
                errors = []
                for draw in range(draws):
                    fm = FavorPlusFeatureMap(r, orthogonal=orthogonal, seed=seed + 1000 * draw + r)
                    approx = linear_attention(q, k, v, fm)
                    errors.append(float((approx - exact).norm() / exact.norm()))
                mean = statistics.fmean(errors)
                group.append(
                    {
                        "input_std": s,
                        "score_std": s * s,
                        "orthogonal": orthogonal,
                        "n_features": r,
                        "mean_rel_error": mean,
                        "std_rel_error": statistics.stdev(errors) if draws > 1 else 0.0,
                        "error_x_sqrt_r": mean * math.sqrt(r),
                    }
                )
            slope = loglog_slope(
                [row["n_features"] for row in group], [row["mean_rel_error"] for row in group]
            )
            rows += [{**row, "slope": slope} for row in group]
    return rows


def _group_key(s: float, orthogonal: bool) -> str:
    return f"std_{s:g}_{'orthogonal' if orthogonal else 'iid'}"


def _favor_figure(fig, result: ExperimentResult) -> None:
    import numpy as np

    panels = fig.subplots(1, 2, sharey=True)
    for ax, orthogonal in zip(panels, (True, False), strict=True):
        stds = result.params["input_std"]
        for s in stds:
            group = [
                r for r in result.rows if r["input_std"] == s and r["orthogonal"] == orthogonal
            ]
            r = np.array([row["n_features"] for row in group], float)
            error = np.array([row["mean_rel_error"] for row in group])
            slope = f"slope {group[0]['slope']:.2f}"
            ax.loglog(r, error, "o-", label=f"s = {s:g} (score std {s * s:.3g}), {slope}")
            if s == min(stds):  # 1/√r through the first point of the smallest inputs
                guide = error[0] * np.sqrt(r[0] / r)
        ax.loglog(r, guide, ":", color="grey", label="∝ 1/√r")
        ax.set(
            xlabel="random features r",
            ylabel="mean relative error vs exact softmax",
            title=f"{'orthogonal' if orthogonal else 'i.i.d.'} features",
        )
        ax.set_xticks(r, [str(int(x)) for x in r], minor=False)
        ax.minorticks_off()
        ax.legend(fontsize=7)


@register(
    "favor-error",
    title="FAVOR+ relative error against exact softmax attention vs the number of features",
    question="seed 003 problem 6, seed 004 13.32: FAVOR+ approximates softmax attention",
    description="FAVOR+ error vs exact softmax as r grows, orthogonal and i.i.d., log-log slope",
    help={
        "n_features": "numbers of random features r (ascending)",
        "input_std": "std s of the queries and keys (scores have std s²)",
        "seq": "sequence length T",
        "head_dim": "width of each head d",
        "heads": "attention heads",
        "draws": "feature draws averaged per r",
    },
    figure=_favor_figure,
)
def run_favor_error(
    *,
    seed: int = 0,
    progress: Progress,
    n_features: tuple[int, ...] = N_FEATURES,
    input_std: tuple[float, ...] = (0.25, 0.5, 1.0),
    seq: int = 256,
    head_dim: int = 64,
    heads: int = 4,
    draws: int = 8,
) -> ExperimentResult:
    check_positive_ints("n_features", n_features)
    if len(n_features) < 2 or list(n_features) != sorted(set(n_features)):
        raise ValueError(f"n_features: expected two or more increasing numbers, got {n_features}")
    for s in input_std:
        check_positive("input_std", s)
    if len(set(input_std)) < len(input_std):
        raise ValueError(f"input_std: expected distinct values, got {input_std}")
    for name, value in (("seq", seq), ("head_dim", head_dim), ("heads", heads), ("draws", draws)):
        check_positive_ints(name, (value,))
    rows = favor_error_vs_features(
        n_features,
        input_std=input_std,
        seq=seq,
        head_dim=head_dim,
        heads=heads,
        draws=draws,
        seed=seed,
        progress=progress,
    )
    summary = {}
    for s in input_std:
        for orthogonal in (True, False):
            group = [r for r in rows if r["input_std"] == s and r["orthogonal"] == orthogonal]
            key = _group_key(s, orthogonal)
            summary[f"slope_{key}"] = group[0]["slope"]
            summary[f"error_ratio_{key}"] = group[-1]["mean_rel_error"] / group[0]["mean_rel_error"]
    summary["sqrt_r_ratio"] = math.sqrt(n_features[0] / n_features[-1])  # the 1/√r prediction
    columns = list(rows[0])
    return ExperimentResult(columns=columns, rows=rows, summary=summary)


# ── time and memory of softmax SDPA against linear attention ──────────────────────────────────


def feature_maps(head_dim: int, n_features: int, seed: int) -> dict:
    """The linear methods' feature maps: elu, poly2 and FAVOR+ with ``n_features`` features."""
    favor = FavorPlusFeatureMap(n_features, head_dim=head_dim, seed=seed)
    return {"elu": feature_map("elu"), "poly2": feature_map("poly2"), "favor+": favor}


def attention_call(method: str, q, k, v, causal: bool, maps: dict):
    """A no-argument call of ``method`` (``"sdpa"``, a map name, ``"elu, unchecked"`` or
    ``"elu, eager"``)."""
    if method == "sdpa":
        return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    if method == "elu, unchecked":
        return lambda: linear_attend(q, k, v, maps["elu"], causal=causal)
    if method == "elu, eager":

        def eager():
            with use_compiled(False):
                return linear_attention(q, k, v, maps["elu"], causal=causal)

        return eager
    return lambda: linear_attention(q, k, v, maps[method], causal=causal)


def map_name(method: str) -> str:
    """The feature map a linear method uses: ``"elu, eager"`` → ``"elu"``."""
    return method.split(",")[0]


def method_ops(method: str, seq: int, causal: bool, *, head_dim: int, maps: dict, n_heads: int):
    """:func:`attnlab.calc.linear_attention_ops` for ``method``'s map (any map for SDPA, whose
    figure is the object's ``softmax_matmul_flops``)."""
    fm = maps[map_name(method)] if method != "sdpa" else maps["elu"]
    return linear_attention_ops(
        seq,
        head_dim,
        fm.output_dim(head_dim),
        causal=causal,
        chunk=CHUNK,
        projection=isinstance(fm, FavorPlusFeatureMap),
        n_heads=n_heads,
    )


def matmul_flops(method: str, seq: int, causal: bool, **kwargs) -> int:
    """The closed-form matmul FLOPs of one forward call of ``method`` (see :func:`method_ops`)."""
    ops = method_ops(method, seq, causal, **kwargs)
    return ops.softmax_matmul_flops if method == "sdpa" else ops.matmul_flops


def complexity(method: str, head_dim: int, maps: dict) -> str:
    """``O(N²·D)`` for SDPA, ``O(N·r·D), r = …`` for a linear method."""
    if method == "sdpa":
        return "O(N²·D)"
    return f"O(N·r·D), r={maps[map_name(method)].output_dim(head_dim)}"


def _inplace_mm(self_shape, a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]


def _inplace_bmm(self_shape, a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * a_shape[0] * a_shape[1] * a_shape[2] * b_shape[2]


def flop_counter():
    """A ``FlopCounterMode`` that also counts the in-place products ``addmm_`` and
    ``baddbmm_`` (``2·m·k·n`` each, as their out-of-place forms): torch's registry lists only
    the out-of-place ops, so an accumulation written in place would count as zero FLOPs.

    Inside it the compiled kernels are off (:func:`attnlab.functional.compiled.use_compiled`):
    torch cannot see into them, so the count is of the eager path's products. The fused elu
    kernel computes the same products, with the normaliser as a matrix-vector product and
    without the zero upper triangle of a causal chunk's ``tril(φ(Q)φ(K)ᵀ)·V``.
    """
    from torch.utils.flop_counter import FlopCounterMode

    class _EagerFlopCounter(FlopCounterMode):
        def __enter__(self):
            self._eager = use_compiled(False)
            self._eager.__enter__()
            return super().__enter__()

        def __exit__(self, *exc):
            try:
                return super().__exit__(*exc)
            finally:
                self._eager.__exit__(*exc)

    aten = torch.ops.aten
    inplace = {aten.addmm_: _inplace_mm, aten.baddbmm_: _inplace_bmm}
    return _EagerFlopCounter(display=False, custom_mapping=inplace)


def counted_flops(method: str, q, k, v, causal: bool, maps: dict) -> int:
    """Matmul FLOPs of one call of ``method`` as :func:`flop_counter` counts them (SDPA on the
    CPU counts as 0: torch registers no formula for its CPU kernel)."""
    counter = flop_counter()
    with torch.inference_mode(), counter:
        attention_call(method, q, k, v, causal, maps)()
    return counter.get_total_flops()


@dataclass
class _Plan:
    fn: object
    warm: bool
    repeats: int
    times: list = field(default_factory=list)
    peak: int = 0


def linear_vs_softmax_timing(
    lengths=LENGTHS,
    *,
    methods=METHODS,
    causal=(False, True),
    batch: int = 1,
    heads: int = 8,
    head_dim: int = 64,
    n_features: int = 256,
    repeats: int = 5,
    sdpa_budget_s: float = 40.0,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[dict]:
    """Median forward time and peak RSS growth of each method at each length, interleaved.

    At each length every (method, causal) pair runs once per round (one untimed warm-up round,
    then ``repeats`` timed ones), so load from elsewhere hits all alike. SDPA's repeats shrink
    at long lengths to fit ``sdpa_budget_s`` per form (at least 2), estimated from the previous
    length's time × 4; where that estimate exceeds 5 s it gets no warm-up call (its kernels are
    warm from the shorter lengths). Rows: ``seq, method, causal, ms, sdpa_ms, speedup`` (SDPA's
    time over the method's, same causal form; None without SDPA), ``complexity`` and ``gflop``
    (closed-form matmul FLOPs, :func:`matmul_flops`), ``flop_ratio`` (SDPA's FLOPs over the
    method's: the speedup the FLOPs alone predict), ``peak_mib`` (largest RSS growth during a
    call, :func:`attnlab.bench.peak_rss_delta`), ``repeats``, and ``others_cpu``, the share of
    the machine's CPU time that other processes took while this length ran (from /proc/stat):
    above a few percent, the times were disturbed. ``progress`` is called with ``"T = …"``
    before each length.
    """
    g = torch.Generator().manual_seed(seed)
    maps = feature_maps(head_dim, n_features, seed)
    rows, sdpa_seconds = [], {}
    with torch.inference_mode():
        for T in lengths:
            if progress is not None:
                progress(f"T = {T}")
            q, k, v = (torch.randn(batch, heads, T, head_dim, generator=g) for _ in range(3))
            plan = {}
            for method in methods:
                for c in causal:
                    n, warm = repeats, True
                    if method == "sdpa" and c in sdpa_seconds:
                        estimate = 4 * sdpa_seconds[c]
                        n = max(2, min(repeats, int(sdpa_budget_s / estimate)))
                        warm = estimate <= 5
                    plan[(method, c)] = _Plan(attention_call(method, q, k, v, c, maps), warm, n)
            _, others = others_share(lambda plan=plan: _run_rounds(plan, repeats))
            for (method, c), entry in plan.items():
                seconds = statistics.median(entry.times)
                if method == "sdpa":
                    sdpa_seconds[c] = seconds
                shape = {"head_dim": head_dim, "maps": maps, "n_heads": batch * heads}
                flops = matmul_flops(method, T, c, **shape)
                sdpa_flops = matmul_flops("sdpa", T, c, **shape)
                rows.append(
                    {
                        "seq": T,
                        "method": method,
                        "causal": c,
                        "ms": seconds * 1e3,
                        "sdpa_ms": None,
                        "speedup": None,
                        "complexity": complexity(method, head_dim, maps),
                        "gflop": flops / 1e9,
                        "flop_ratio": sdpa_flops / flops,
                        "peak_mib": entry.peak / 2**20,
                        "repeats": len(entry.times),
                        "others_cpu": others,
                    }
                )
            for r in rows:
                if r["seq"] == T and r["causal"] in sdpa_seconds and "sdpa" in methods:
                    r["sdpa_ms"] = sdpa_seconds[r["causal"]] * 1e3
                    r["speedup"] = r["sdpa_ms"] / r["ms"]
            del q, k, v
    return rows


def _run_rounds(plan: dict, repeats: int) -> None:
    """Every entry of ``plan`` once per round, round −1 warming up; times and peaks recorded.

    Round r starts r entries further along the plan, so that the slot after the long SDPA
    calls, where a call can find the machine's caches and free memory in another state, falls
    to a different entry each round instead of to the same one every time.
    """
    entries = list(plan.values())
    for round_ in range(-1, repeats):
        shift = max(0, round_) % len(entries)
        for entry in entries[shift:] + entries[:shift]:
            if (round_ < 0 and not entry.warm) or len(entry.times) >= entry.repeats:
                continue
            clock = []
            _, grown = peak_rss_delta(lambda e=entry, c=clock: _timed(e.fn, c))
            entry.peak = max(entry.peak, grown)
            if round_ >= 0:
                entry.times.append(clock[0])


def _timed(fn, clock: list) -> None:
    start = time.perf_counter()
    fn()
    clock.append(time.perf_counter() - start)


def crossover_length(rows: list[dict], method: str, causal: bool) -> int | None:
    """The shortest measured length from which ``method`` beats SDPA at every longer length
    (None where it does not beat SDPA at the longest)."""
    mine = sorted(
        (r["seq"], r["speedup"]) for r in rows if r["method"] == method and r["causal"] == causal
    )
    best = None
    for seq, speedup in reversed(mine):
        if speedup is None or speedup <= 1.0:
            break
        best = seq
    return best


def check_flop_closed_forms(
    *, seq: int = 1024, heads: int = 8, head_dim: int = 64, n_features: int = 256, seed: int = 0
) -> list[dict]:
    """The closed-form matmul FLOPs of each linear method, plain and causal, beside
    ``FlopCounterMode``'s count of a real call: rows ``method, causal, closed_form, counted``."""
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(1, heads, seq, head_dim, generator=g) for _ in range(3))
    maps = feature_maps(head_dim, n_features, seed)
    shape = {"head_dim": head_dim, "maps": maps, "n_heads": heads}
    return [
        {
            "method": method,
            "causal": c,
            "closed_form": matmul_flops(method, seq, c, **shape),
            "counted": counted_flops(method, q, k, v, c, maps),
        }
        for method in LINEAR
        for c in (False, True)
    ]


def _name(method: str, causal: bool) -> str:
    return f"{method}_causal" if causal else method


def _timing_figure(fig, result: ExperimentResult) -> None:
    panels = fig.subplots(1, 2, sharey=True)
    for ax, causal in zip(panels, (False, True), strict=True):
        for method in ("sdpa", *LINEAR):
            mine = [r for r in result.rows if r["method"] == method and r["causal"] == causal]
            t = [r["seq"] for r in mine]
            ms = [r["ms"] for r in mine]
            label = method if method == "sdpa" else f"{method}, {mine[0]['complexity']}"
            if len(mine) > 1:
                slope, _ = loglog_line(t, ms)
                label += f", slope {slope:.2f}"
            ax.loglog(t, ms, "o-", label=label, base=2)
        ax.set(
            xlabel="sequence length T",
            ylabel="forward time (ms)",
            title=f"{'causal' if causal else 'not causal'}, H={result.params['heads']}, "
            f"D={result.params['head_dim']}, float32",
        )
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)


@register(
    "linear-timing",
    title="time and memory of softmax SDPA vs linear attention (elu, poly2, FAVOR+) against T",
    question="seed 003 problem 6, seed 004 13.32 (and 13.9): linear attention is O(N·r·D)",
    description="time SDPA vs linear attention for growing T, with FLOPs and the crossover length",
    help={
        "lengths": "sequence lengths T (ascending)",
        "batch": "sequences per call",
        "heads": "attention heads",
        "head_dim": "width of each head",
        "n_features": "FAVOR+ random features r",
        "repeats": "timed rounds, each calling every method once (the median is kept)",
        "sdpa_budget_s": "seconds of SDPA calls per length and form at long T (at least 2 calls)",
        "threads": "torch threads while timing (0 keeps the current setting)",
    },
    figure=_timing_figure,
)
def run_linear_timing(
    *,
    seed: int = 0,
    progress: Progress,
    lengths: tuple[int, ...] = LENGTHS,
    batch: int = 1,
    heads: int = 8,
    head_dim: int = 64,
    n_features: int = 256,
    repeats: int = 5,
    sdpa_budget_s: float = 40.0,
    threads: int = 0,
) -> ExperimentResult:
    check_positive_ints("lengths", lengths)
    if list(lengths) != sorted(set(lengths)):
        raise ValueError(f"lengths: expected increasing lengths, got {lengths}")
    for name, value in (
        ("batch", batch),
        ("heads", heads),
        ("head_dim", head_dim),
        ("n_features", n_features),
        ("repeats", repeats),
    ):
        check_positive_ints(name, (value,))
    check_positive("sdpa_budget_s", sdpa_budget_s)
    check_positive_ints("threads", (threads,), minimum=0)
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        progress("checking the FLOP closed forms")
        checks = check_flop_closed_forms(
            seq=lengths[0], heads=batch * heads, head_dim=head_dim, n_features=n_features, seed=seed
        )
        rows = linear_vs_softmax_timing(
            lengths,
            methods=("sdpa", *LINEAR),
            batch=batch,
            heads=heads,
            head_dim=head_dim,
            n_features=n_features,
            repeats=repeats,
            sdpa_budget_s=sdpa_budget_s,
            seed=seed,
            progress=progress,
        )
    finally:
        torch.set_num_threads(previous_threads)

    longest = lengths[-1]
    summary: dict = {"longest": longest}
    for method in LINEAR:
        for c in (False, True):
            summary[f"crossover_{_name(method, c)}"] = crossover_length(rows, method, c)
    for method in LINEAR:
        for c in (False, True):
            at = next(
                r for r in rows if (r["seq"], r["method"], r["causal"]) == (longest, method, c)
            )
            summary[f"speedup_at_longest_{_name(method, c)}"] = at["speedup"]
    summary["flops_match_counter"] = all(x["closed_form"] == x["counted"] for x in checks)
    details = {
        "flop_check": {
            f"{_name(x['method'], x['causal'])} at T={lengths[0]}": (
                f"closed form {x['closed_form']}, FlopCounterMode {x['counted']}"
            )
            for x in checks
        }
    }
    return ExperimentResult(columns=list(rows[0]), rows=rows, summary=summary, details=details)
