"""flash-memory: naive attention's peak memory grows faster with T than tiled attention's."""

import pytest

from attnlab.experiments import flash_memory, run_experiment


def test_naive_grows_faster_than_flash_on_small_lengths(tmp_path):
    # One subprocess per point, ~1.6 s each (mostly importing torch): naive and flash only, two
    # lengths, both passes.
    labels = []
    result = run_experiment(
        "flash-memory",
        lengths=(256, 1024),
        methods="naive,flash",
        heads=2,
        head_dim=16,
        progress=labels.append,
    )
    assert len(labels) == 8 and labels[0] == "forward, naive, T = 256"
    assert result.columns == flash_memory.COLUMNS
    assert [(r["passes"], r["method"], r["seq"]) for r in result.rows] == [
        (p, m, t)
        for p in ("forward", "forward+backward")
        for m in ("naive", "flash")
        for t in (256, 1024)
    ]
    for row in result.rows:
        assert list(row) == result.columns and row["skipped"] is None, row
        assert row["peak_bytes"] > 0 and row["peak_mib"] == row["peak_bytes"] / 2**20
    s = result.summary
    for passes in ("forward", "forward+backward"):
        naive, flash = s[f"exponent_naive_{passes}"], s[f"exponent_flash_{passes}"]
        assert naive > flash + 0.3, result.rows
        assert naive > 1.3  # the (T, T) matrices dominate already at T = 1024
        assert s[f"exponent_longest_3_naive_{passes}"] == naive  # only 2 lengths
        assert s[f"flash_growth_4096_to_16384_{passes}"] is None  # not measured
    assert "exponent_sdpa_forward" not in s  # not run
    assert s["longest_common_seq"] == 1024 and 0 < s["flash_over_naive_forward+backward"] < 1
    assert s["skipped_points"] == 0
    assert s["max_abs_diff"] is None  # no two points shared a process
    path = result.plot(tmp_path / "flash_memory.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_one_child_with_a_fixed_mmap_threshold_sees_the_same_growth(tmp_path):
    # All points in one child process (torch imported once); naive and flash forward run on the
    # same inputs there, so the largest difference between their outputs is recorded too.
    labels = []
    result = run_experiment(
        "flash-memory",
        lengths=(256, 512, 1024),
        methods="naive,flash",
        passes="forward",
        heads=2,
        head_dim=16,
        isolation="child",
        progress=labels.append,
    )
    assert labels == ["6 points in one child process"]
    assert [(r["passes"], r["method"], r["seq"]) for r in result.rows] == [
        ("forward", m, t) for m in ("naive", "flash") for t in (256, 512, 1024)
    ]
    for row in result.rows:
        assert row["skipped"] is None and row["peak_bytes"] > 0, row
    s = result.summary
    naive, flash = s["exponent_naive_forward"], s["exponent_flash_forward"]
    assert naive > 1.3 and naive > flash + 0.3, result.rows
    assert s["exponent_naive_forward+backward"] is None  # not run
    assert 0 <= s["max_abs_diff"] < 1e-4
    path = result.plot(tmp_path / "flash_memory.png")  # one panel: the forward pass
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_naive_points_that_do_not_fit_are_reported_not_run(monkeypatch):
    # 40 MiB available: 60% is 24 MiB; the forward's 2 (T, T) matrices at T = 1024 over 2 heads
    # take 16 MiB, the backward's 4 take 32 MiB. No point is run (sdpa and flash are left out).
    monkeypatch.setattr(flash_memory, "available_bytes", lambda: 40 * 2**20)
    monkeypatch.setattr(flash_memory.subprocess, "run", _no_subprocess)
    rows, diff = flash_memory.measure((2048,), heads=2, head_dim=16, methods=("naive",))
    assert diff is None
    assert [r["skipped"] is not None for r in rows] == [True, True]
    assert "needs ~0.1 GiB, more than 60% of the 0.0 GiB available: not run" in rows[1]["skipped"]
    assert all(r["peak_bytes"] is None for r in rows)
    assert flash_memory.naive_bytes("forward", 1024, 2) == 16 * 2**20 < 0.6 * 40 * 2**20
    assert flash_memory.naive_bytes("forward+backward", 1024, 2) == 32 * 2**20


def _no_subprocess(*args, **kwargs):
    raise AssertionError("a skipped point must not start a subprocess")


def test_summary_from_rows():
    def row(method, passes, seq, mib):
        peak = None if mib is None else int(mib * 2**20)
        skipped = "not run" if mib is None else None
        return {"passes": passes, "method": method, "seq": seq, "peak_bytes": peak,
                "peak_mib": mib, "skipped": skipped}  # fmt: skip

    lengths = (4096, 8192, 16384)
    rows = [row("naive", "forward+backward", t, 64 * (t / 4096) ** 2) for t in lengths[:2]]
    rows += [row("naive", "forward+backward", 16384, None)]
    rows += [row("flash", p, t, 8 * t / 4096) for p in flash_memory.PASSES for t in lengths]
    s = flash_memory.summarise(rows)
    assert s["exponent_naive_forward+backward"] == pytest.approx(2.0)
    assert s["exponent_naive_forward"] is None  # no point
    assert s["exponent_flash_forward"] == pytest.approx(1.0)
    assert s["longest_common_seq"] == 8192  # naive was not run at 16384
    assert s["flash_over_naive_forward+backward"] == pytest.approx(16 / 256)
    assert s["flash_growth_4096_to_16384_forward+backward"] == pytest.approx(4.0)
    assert s["skipped_points"] == 1


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"lengths": (512,)}, "lengths"),
        ({"lengths": (512, 256)}, "lengths"),
        ({"methods": "naive,fast"}, "methods"),
        ({"methods": ""}, "methods"),
        ({"heads": 0}, "heads"),
        ({"passes": "backward"}, "passes"),
        ({"isolation": "thread"}, "isolation"),
    ],
)
def test_bad_parameters_name_themselves(params, words):
    with pytest.raises(ValueError, match=words):
        run_experiment("flash-memory", **params)
