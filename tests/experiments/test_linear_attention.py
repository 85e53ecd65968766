"""favor-error and linear-timing: FAVOR+'s error against r, and linear attention against SDPA."""

import math

import pytest
import torch

from attnlab.calc import linear_attention_ops
from attnlab.experiments import linear_attention, run_experiment


def test_favor_error_falls_with_the_number_of_features():
    result = run_experiment(
        "favor-error", n_features=(16, 64, 256), input_std=(0.25,), seq=64, heads=2, draws=4
    )
    assert [(r["orthogonal"], r["n_features"]) for r in result.rows] == [
        (o, r) for o in (True, False) for r in (16, 64, 256)
    ]
    for row in result.rows:
        assert list(row) == result.columns
        assert row["score_std"] == 0.0625
        assert row["error_x_sqrt_r"] == pytest.approx(
            row["mean_rel_error"] * math.sqrt(row["n_features"])
        )
    for kind in ("orthogonal", "iid"):
        # scores of std 1/16: the 1/√r regime, error ×1/4 from r = 16 to 256 (measured ≈ 0.23)
        assert result.summary[f"error_ratio_std_0.25_{kind}"] < 0.45
        assert -0.8 < result.summary[f"slope_std_0.25_{kind}"] < -0.3
    assert result.summary["sqrt_r_ratio"] == 0.25


def test_favor_error_is_reproducible_and_seeded():
    small = {"n_features": (16, 32), "input_std": (0.5,), "seq": 16, "heads": 1, "draws": 2}
    first, again = run_experiment("favor-error", **small), run_experiment("favor-error", **small)
    other = run_experiment("favor-error", seed=1, **small)
    assert first.rows == again.rows and first.rows != other.rows


def test_linear_timing_rows_flops_and_crossover():
    threads = torch.get_num_threads()
    labels = []
    result = run_experiment(
        "linear-timing",
        lengths=(64, 128),
        heads=2,
        head_dim=16,
        n_features=16,
        repeats=1,
        threads=1,
        progress=labels.append,
    )
    assert torch.get_num_threads() == threads  # the timing setting is undone
    assert labels == ["checking the FLOP closed forms", "T = 64", "T = 128"]
    methods = ("sdpa", "elu", "poly2", "favor+")
    assert [(r["seq"], r["method"], r["causal"]) for r in result.rows] == [
        (t, m, c) for t in (64, 128) for m in methods for c in (False, True)
    ]
    r_of = {"elu": 16, "poly2": 1 + 16 + 16 * 17 // 2, "favor+": 16}
    for row in result.rows:
        assert list(row) == result.columns
        assert row["ms"] > 0 and row["repeats"] == 1 and row["sdpa_ms"] > 0
        assert row["speedup"] == pytest.approx(row["sdpa_ms"] / row["ms"])
        t, method, causal = row["seq"], row["method"], row["causal"]
        if method == "sdpa":
            assert row["complexity"] == "O(N²·D)" and row["flop_ratio"] == 1.0
            pairs = t * (t + 1) // 2 if causal else t * t
            assert row["gflop"] * 1e9 == pytest.approx(2 * 2 * pairs * 32)
            continue
        assert row["complexity"] == f"O(N·r·D), r={r_of[method]}"
        ops = linear_attention_ops(
            t, 16, r_of[method], causal=causal, projection=method == "favor+", n_heads=2
        )
        assert row["gflop"] == ops.matmul_flops / 1e9
        assert row["flop_ratio"] == pytest.approx(ops.flop_ratio)
    # the closed forms equal FlopCounterMode's count of real calls (at T = 64, in the run)
    assert result.summary["flops_match_counter"] is True
    assert len(result.details["flop_check"]) == 6
    for method in ("elu", "poly2", "favor+"):
        for suffix in ("", "_causal"):
            crossover = result.summary[f"crossover_{method}{suffix}"]
            speedup = result.summary[f"speedup_at_longest_{method}{suffix}"]
            assert crossover is None or crossover in (64, 128)
            assert (crossover is not None) == (speedup > 1)  # at the longest it beats SDPA or not
    assert result.summary["longest"] == 128


def test_counted_flops_equal_the_closed_form_for_every_method():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 96, 8, generator=g) for _ in range(3))
    maps = linear_attention.feature_maps(8, 16, 0)
    for method in linear_attention.METHODS:
        for causal in (False, True):  # 96 = one chunk of 64 and one of 32
            closed = linear_attention.matmul_flops(
                method, 96, causal, head_dim=8, maps=maps, n_heads=2
            )
            counted = linear_attention.counted_flops(method, q, k, v, causal, maps)
            if method == "sdpa":  # torch 2.13 has no formula for its CPU kernel (0); the
                assert counted in (0, 4 * 2 * 96 * 96 * 8)  # GPU ones count all T² pairs
            else:
                assert closed == counted, (method, causal)


def test_crossover_is_the_start_of_the_last_winning_run():
    def rows(speedups):
        return [
            {"seq": 2**i, "method": "elu", "causal": False, "speedup": s}
            for i, s in enumerate(speedups, start=9)
        ]

    assert linear_attention.crossover_length(rows([0.5, 1.5, 0.9, 2.0, 3.0]), "elu", False) == 4096
    assert linear_attention.crossover_length(rows([1.2, 1.5]), "elu", False) == 512
    assert linear_attention.crossover_length(rows([1.2, 0.8]), "elu", False) is None
    assert linear_attention.crossover_length(rows([1.2]), "elu", True) is None


@pytest.mark.parametrize(
    ("name", "params", "words"),
    [
        ("favor-error", {"n_features": (16,)}, "n_features"),
        ("favor-error", {"n_features": (64, 16)}, "n_features"),
        ("favor-error", {"input_std": (0.0,)}, "input_std"),
        ("favor-error", {"input_std": (0.5, 0.5)}, "input_std"),
        ("favor-error", {"draws": 0}, "draws"),
        ("linear-timing", {"lengths": (128, 64)}, "lengths"),
        ("linear-timing", {"n_features": 0}, "n_features"),
        ("linear-timing", {"sdpa_budget_s": 0.0}, "sdpa_budget_s"),
        ("linear-timing", {"threads": -1}, "threads"),
    ],
)
def test_bad_parameters_name_themselves(name, params, words):
    with pytest.raises(ValueError, match=words):
        run_experiment(name, **params)
