"""The training comparisons: every variant trains on the same data with the same budget."""

import pytest

from attnlab.experiments import run_experiment


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("the rain in spain stays mainly in the plain. " * 50)
    return str(path)


SMALL = dict(
    steps=30,
    eval_interval=15,
    eval_iters=2,
    layers=1,
    d_model=32,
    heads=4,
    context=16,
    batch_size=8,
    lr=3e-3,
)


@pytest.mark.slow
def test_positions_trains_every_scheme(text_file, tmp_path):
    result = run_experiment("positions", seed=1, text_file=text_file, **SMALL)
    assert [r["variant"] for r in result.rows] == ["learned", "sinusoidal", "rope", "alibi"]
    curves = result.details["curves"]
    for name, curve in curves.items():
        assert [c[0] for c in curve] == [0, 15, 30], name
        assert curve[-1][2] < curve[0][2], name  # validation loss fell
    # only learned positions add parameters: context × d_model
    params = {r["variant"]: r["parameters"] for r in result.rows}
    assert params["learned"] - params["sinusoidal"] == 16 * 32
    assert params["sinusoidal"] == params["rope"] == params["alibi"]
    assert result.summary["best_variant"] in curves
    png = result.plot(tmp_path / "positions.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_norm_ffn_compares_the_two_blocks(text_file):
    result = run_experiment("norm-ffn", seed=1, text_file=text_file, **SMALL)
    rows = {r["variant"]: r for r in result.rows}
    assert set(rows) == {"layernorm+gelu", "rmsnorm+swiglu"}
    assert all(r["final_val_loss"] < 4.0 for r in rows.values())
    # SwiGLU at d_ff = 8/3·d is within a few percent of the GELU MLP's parameter count
    ratio = rows["rmsnorm+swiglu"]["parameters"] / rows["layernorm+gelu"]["parameters"]
    assert 0.9 < ratio < 1.05


def test_bad_parameters():
    with pytest.raises(ValueError, match="steps"):
        run_experiment("positions", steps=0)
