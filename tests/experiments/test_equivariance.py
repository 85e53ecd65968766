"""permutation-equivariance: f(PX) = P f(X) without positions, not with them (seed 004 13.2)."""

import pytest

from attnlab.experiments import run_experiment

WITHOUT = {"none", "module"}


@pytest.mark.parametrize("seed", [0, 1])
def test_equivariant_without_positions_only(seed):
    result = run_experiment("permutation-equivariance", seed=seed, permutations=5)
    rows = {r["setting"]: r for r in result.rows}
    assert set(rows) == {"none", "sinusoidal", "rope", "causal", "module", "module_rope"}
    for name, row in rows.items():
        if name in WITHOUT:
            assert row["max_error"] <= 1e-12 and row["equivariant"] is True
        else:
            assert row["max_error"] > 1e-3 and row["equivariant"] is False
    assert result.summary["max_error_without_positions"] <= 1e-12
    assert result.summary["min_error_with_positions"] > 1e-3


def test_the_three_by_three_case_of_the_exercise():
    result = run_experiment("permutation-equivariance", seq_len=3, d_model=4, heads=1)
    assert len(result.details["input"]) == 3
    assert all(p != [0, 1, 2] for p in result.details["permutations"])
    assert result.summary["max_error_without_positions"] <= 1e-12


def test_rope_needs_even_head_widths():
    with pytest.raises(ValueError, match="d_model"):
        run_experiment("permutation-equivariance", d_model=6, heads=2)
