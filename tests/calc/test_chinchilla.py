"""Chinchilla-optimal (N, D): the 20-tokens rule and the closed-form minimum of the loss fit."""

import pytest

from attnlab.calc import chinchilla, hoffmann_loss


def test_exercise_13_18_budget_1e22():
    result = chinchilla(1e22)
    assert result.optimal_params == pytest.approx(9.129e9, rel=1e-3)
    assert result.optimal_tokens == pytest.approx(1.826e11, rel=1e-3)
    assert 6 * result.optimal_params * result.optimal_tokens == pytest.approx(1e22)
    assert result.optimal_tokens == pytest.approx(20 * result.optimal_params)
    # the parametric fit prefers a smaller model trained on more tokens
    assert result.fit_optimal_params == pytest.approx(5.16e9, rel=1e-2)
    assert result.fit_optimal_tokens == pytest.approx(3.23e11, rel=1e-2)
    assert 6 * result.fit_optimal_params * result.fit_optimal_tokens == pytest.approx(1e22)


def test_chinchilla_itself_is_on_the_rule():
    """Chinchilla: 70B parameters on 1.4T tokens (20 per parameter)."""
    result = chinchilla(6 * 70e9 * 1.4e12)
    assert result.optimal_params == pytest.approx(70e9)
    assert result.optimal_tokens == pytest.approx(1.4e12)


@pytest.mark.parametrize("compute", [1e18, 1e21, 5.76e23, 1e25])
def test_closed_form_is_the_minimum_along_the_budget(compute):
    """A brute-force scan of L(N, C/6N) over N finds no lower loss than the closed form."""
    result = chinchilla(compute)
    n_opt = result.fit_optimal_params
    grid = [n_opt * 10 ** (k / 400) for k in range(-800, 801)]
    best = min(grid, key=lambda n: hoffmann_loss(n, compute / (6 * n)))
    assert best == pytest.approx(n_opt, rel=0.01)
    assert result.loss_at_fit <= min(hoffmann_loss(n, compute / (6 * n)) for n in grid) + 1e-12
    assert result.loss_at_fit <= result.loss_at_rule
    # stationarity: α·A/N^α = β·B/D^β at the optimum
    alpha, beta, a, b = 0.34, 0.28, 406.4, 410.7
    d_opt = result.fit_optimal_tokens
    assert alpha * a / n_opt**alpha == pytest.approx(beta * b / d_opt**beta)


def test_loss_fit_constants():
    # L → E as N, D → ∞; at N = D = 1 the loss is E + A + B
    assert hoffmann_loss(1, 1) == pytest.approx(1.69 + 406.4 + 410.7)
    assert hoffmann_loss(1e50, 1e50) == pytest.approx(1.69, abs=1e-9)
