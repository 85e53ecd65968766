"""The measurement helpers measure what they claim: bounds are loose enough for a busy machine."""

import sys
import time

import pytest
import torch

from attnlab import bench

linux_proc = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="peak_rss_delta reads Linux /proc"
)
MB = 1_000_000


@linux_proc
def test_peak_rss_delta_sees_a_200_mb_tensor():
    result, grown = bench.peak_rss_delta(lambda: torch.ones(50_000_000))  # 200 MB, all touched
    assert result.numel() == 50_000_000
    del result
    assert grown >= 190 * MB


@linux_proc
def test_peak_rss_delta_counts_a_freed_temporary():
    # The high-water mark, not the RSS after: the tensor is gone when fn returns.
    def temporary():
        return float(torch.ones(50_000_000).sum())

    _, grown = bench.peak_rss_delta(temporary)
    assert grown >= 190 * MB


@linux_proc
def test_peak_rss_delta_of_nothing_is_small():
    result, grown = bench.peak_rss_delta(lambda: 7)
    assert result == 7
    assert grown < 10 * MB


def test_peak_rss_delta_without_proc_raises(monkeypatch):
    def no_proc(*args, **kwargs):
        raise FileNotFoundError("/proc/self/clear_refs")

    monkeypatch.setattr(bench, "open", no_proc, raising=False)
    with pytest.raises(RuntimeError, match="/proc"):
        bench.peak_rss_delta(lambda: None)


def test_compare_ratio_of_6_ms_to_2_ms_sleeps():
    # A sleep lasts at least its argument; on a busy machine both overshoot, pulling the ratio
    # towards 1, so the bounds are wide.
    r = bench.compare(lambda: time.sleep(0.006), lambda: time.sleep(0.002), repeats=7, warmup=1)
    assert r["candidate_s"] >= 0.006
    assert r["baseline_s"] >= 0.002
    assert 2 < r["ratio"] < 4
    assert 2 < r["pair_ratio"] < 4
    assert r["ratio"] == pytest.approx(r["candidate_s"] / r["baseline_s"])


def test_compare_interleaves_baseline_first():
    calls = []
    bench.compare(lambda: calls.append("c"), lambda: calls.append("b"), repeats=3, warmup=1)
    assert calls == ["b", "c"] * 4


def test_median_time_runs_warmup_plus_repeats():
    calls = []
    t = bench.median_time(lambda: (calls.append(1), time.sleep(0.002)), repeats=5, warmup=2)
    assert len(calls) == 7
    assert t >= 0.002


@pytest.mark.parametrize("fn", [bench.median_time, bench.compare])
def test_zero_repeats_is_refused(fn):
    args = (lambda: None,) * (2 if fn is bench.compare else 1)
    with pytest.raises(ValueError, match="repeats"):
        fn(*args, repeats=0, warmup=0)


def test_machine_line_measures_positive_ceilings():
    d = bench.machine_line(matmul_n=256, copy_mib=16)
    assert d["matmul_gflops"] > 0
    assert d["bandwidth_gbs"] > 0
    assert d["threads"] == torch.get_num_threads()
    assert isinstance(d["avx512f"], bool) and d["cpu"]
    line = bench.format_machine_line(d)
    assert "\n" not in line
    assert "GFLOP/s" in line and "GB/s" in line and d["torch"] in line


def test_load_average_is_three_non_negative_numbers():
    load = bench.load_average()
    assert len(load) == 3
    assert all(x >= 0 for x in load)


def test_cpu_shares_are_fractions_of_the_machine():
    from attnlab.bench import others_share, wait_for_idle

    result, share = others_share(lambda: sum(range(200_000)))
    assert result == sum(range(200_000)) and 0.0 <= share <= 1.0
    assert 0.0 <= wait_for_idle(0, sample_s=0.05) <= 1.0
