"""prenorm-vs-postnorm: same weights, different functions (seed 004 13.31)."""

import pytest

from attnlab.experiments import run_experiment


@pytest.fixture(scope="module")
def result():
    return run_experiment("prenorm-vs-postnorm")


def test_same_weights_different_outputs(result):
    assert result.summary["max_abs_pre_minus_post"] > 1e-3
    pre = [r["output"] for r in result.rows if r["norm"] == "pre"]
    post = [r["output"] for r in result.rows if r["norm"] == "post"]
    assert pre != post


def test_post_norm_output_is_normalised_and_pre_norm_is_not(result):
    for row in result.rows:
        if row["norm"] == "post":
            assert abs(row["mean"]) < 1e-12 and row["std"] == pytest.approx(1.0, abs=1e-4)
    assert result.summary["pre_min_abs_std_minus_1"] > 0.1


def test_pre_norm_keeps_an_identity_path(result):
    assert result.summary["identity_error_pre_zeroed"] <= 1e-15
    assert result.summary["identity_error_post_zeroed"] > 0.1


def test_counterexample_is_small_enough_to_print(result):
    assert len(result.details["input"]) == 3 and len(result.details["input"][0]) == 4
    assert "attn.q_proj.weight" in result.details["weights"]
    assert result.params["d_model"] == 4 and result.params["heads"] == 1


def test_other_seeds_differ_too():
    for seed in (1, 2):
        summary = run_experiment("prenorm-vs-postnorm", seed=seed).summary
        assert summary["max_abs_pre_minus_post"] > 1e-3
