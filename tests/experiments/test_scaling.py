"""quadratic-scaling: measured naive-attention time grows like T² (slope asserted, times never)."""

import pytest
import torch

from attnlab.calc import attention_ops
from attnlab.experiments import run_experiment


def test_rows_flops_and_thread_setting_on_tiny_lengths():
    threads = torch.get_num_threads()
    labels = []
    result = run_experiment(
        "quadratic-scaling", lengths=(16, 32, 64), heads=2, repeats=1, progress=labels.append
    )
    assert torch.get_num_threads() == threads  # the timing setting is undone
    assert [r["seq_len"] for r in result.rows] == [16, 32, 64] and labels[-1] == "round 1/1"
    for row in result.rows:
        t = row["seq_len"]
        assert row["matmul_flops"] == 2 * 2 * t * t * (64 + 64)
        assert row["matmul_flops"] == attention_ops(t, t, 64, n_heads=2).matmul_flops
        assert row["time_ms"] > 0
    assert result.rows[0]["ratio_to_previous"] is None
    assert result.summary["flop_slope"] == pytest.approx(2.0, abs=1e-12)
    assert result.summary["fit_lengths"] == [32, 64]


@pytest.mark.slow
def test_measured_slope_is_near_two_at_large_t():
    # 8 heads make every (T, T) matrix at least 32 MiB from T = 1024 on: past glibc's largest
    # mmap threshold, each call pays the same page faults per entry at both lengths, so the
    # per-entry cost is one regime and the slope is the algorithm's, not the allocator's.
    # The lengths are timed in interleaved rounds, so load from elsewhere hits both alike.
    result = run_experiment("quadratic-scaling", lengths=(1024, 2048), heads=8, repeats=3, warmup=1)
    assert 1.5 <= result.summary["fitted_slope_upper_half"] <= 2.5, result.rows
    assert result.summary["flop_slope"] == pytest.approx(2.0, abs=1e-12)


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"lengths": (64,)}, "lengths"),
        ({"lengths": (64, 32)}, "lengths"),
        ({"repeats": 0}, "repeats"),
    ],
)
def test_bad_parameters_name_themselves(params, words):
    with pytest.raises(ValueError, match=words):
        run_experiment("quadratic-scaling", **params)
