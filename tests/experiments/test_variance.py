"""dot-product-variance: Monte Carlo moments of qᵀk against E = dμ², Var = d(σ⁴ + 2μ²σ²)."""

import math

import pytest

from attnlab.experiments import run_experiment

SAMPLES = 4000
DIMS = (4, 64, 256)


def test_unit_components_give_variance_d_and_scaled_variance_1():
    result = run_experiment("dot-product-variance", dims=DIMS, samples=SAMPLES)
    for row in result.rows:
        d = row["d"]
        factor = 1.0 if row["scale"] == "1" else d**-0.5
        assert row["var_theory"] == pytest.approx(d * factor**2)  # d unscaled, 1 scaled
        assert row["mean_theory"] == 0.0
        # For μ = 0, σ = 1 the sum of d products has kurtosis 3 + 6/d, so the sample variance
        # has relative standard error √((2 + 6/d)/n); five of them is a 1-in-10⁶ tolerance.
        tolerance = 5 * math.sqrt((2 + 6 / d) / SAMPLES)
        assert abs(row["var_ratio"] - 1) < tolerance
        assert row["var_ratio_se"] == pytest.approx(math.sqrt((2 + 6 / d) / SAMPLES), rel=0.3)
        assert abs(row["mean"]) < 5 * math.sqrt(d * factor**2 / SAMPLES)
    assert result.summary["unscaled_var_slope"] == pytest.approx(1.0, abs=0.05)
    assert result.summary["scaled_var_slope"] == pytest.approx(0.0, abs=0.05)


def test_nonzero_mean_follows_the_general_closed_form():
    mu, sigma = 0.5, 2.0
    result = run_experiment("dot-product-variance", dims=DIMS, samples=SAMPLES, mean=mu, std=sigma)
    for row in result.rows:
        d = row["d"]
        factor = 1.0 if row["scale"] == "1" else d**-0.5
        assert row["mean_theory"] == pytest.approx(d * mu**2 * factor)
        assert row["var_theory"] == pytest.approx(d * (sigma**4 + 2 * mu**2 * sigma**2) * factor**2)
        # The tolerance comes from the sample itself: the reported standard errors.
        assert abs(row["var_ratio"] - 1) < 5 * row["var_ratio_se"]
        assert abs(row["mean"] - row["mean_theory"]) < 5 * row["mean_se"]
    assert result.summary["max_var_error_in_se"] < 5


@pytest.mark.parametrize(
    ("params", "words"),
    [({"dims": (0, 4)}, "dims"), ({"std": 0.0}, "std"), ({"samples": 3}, "samples")],
)
def test_bad_parameters_name_themselves(params, words):
    with pytest.raises(ValueError, match=words):
        run_experiment("dot-product-variance", **params)
