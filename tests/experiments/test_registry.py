"""The experiment registry: names, typed parameters, seeds, results as data and figures."""

import json
import math

import pytest

from attnlab.experiments import (
    ExperimentResult,
    get_experiment,
    list_experiments,
    register,
    run_experiment,
)
from attnlab.experiments.registry import EXPERIMENTS, Param

NAMES = [
    "dot-product-variance",
    "softmax-saturation",
    "argmax-vs-softmax",
    "cross-attention-alignment",
    "quadratic-scaling",
    "flash-memory",
    "permutation-equivariance",
    "sinusoidal-offset",
    "rope-relative",
    "prenorm-vs-postnorm",
    "mlm-sentiment",
    "favor-error",
    "linear-timing",
    "positions",
    "norm-ffn",
]


def test_all_are_registered_with_typed_documented_parameters():
    assert [spec.name for spec in list_experiments()] == NAMES
    for spec in list_experiments():
        assert spec.title and spec.description and "seed" in spec.question
        assert spec.params, spec.name
        for param in spec.params:
            assert param.kind in ("int", "float", "bool", "str", "ints", "floats")
            assert param.help
            assert param.coerce(param.default) == param.default  # defaults pass their own check


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="unknown experiment 'nope'") as error:
        get_experiment("nope")
    assert all(name in str(error.value) for name in NAMES)


def test_parameters_are_checked_by_name_and_type():
    with pytest.raises(ValueError, match="bogus: not a parameter of rope-relative"):
        run_experiment("rope-relative", bogus=1)
    with pytest.raises(TypeError, match="head_dim"):
        run_experiment("rope-relative", head_dim=8.5)
    with pytest.raises(TypeError, match="shifts"):
        run_experiment("rope-relative", shifts=[])
    with pytest.raises(ValueError, match="seed"):
        run_experiment("rope-relative", seed=-1)
    with pytest.raises(ValueError, match="head_dim: expected an even width"):
        run_experiment("rope-relative", head_dim=7)
    result = run_experiment("rope-relative", shifts=[2, 3], base=100)  # list → tuple, int → float
    assert result.params["shifts"] == (2, 3) and result.params["base"] == 100.0


def test_command_line_values_parse_by_kind():
    assert Param("x", "ints", (1,), "h").parse("4,16,64") == (4, 16, 64)
    assert Param("x", "floats", (1.0,), "h").parse("1,0.5") == (1.0, 0.5)
    assert Param("x", "bool", True, "h").parse("no") is False
    assert Param("x", "float", 1.0, "h").parse("1e-3") == 1e-3
    for kind, text in (("int", "2.5"), ("ints", "4,a"), ("bool", "maybe")):
        with pytest.raises(ValueError, match=f"x: expected {kind}"):
            Param("x", kind, None, "h").parse(text)


def test_same_seed_same_rows_other_seed_other_rows():
    first = run_experiment("permutation-equivariance", seed=3)
    again = run_experiment("permutation-equivariance", seed=3)
    other = run_experiment("permutation-equivariance", seed=4)
    assert first.rows == again.rows and first.details == again.details
    assert first.details["input"] != other.details["input"]


def test_result_carries_identity_params_and_plain_json():
    labels = []
    result = run_experiment("rope-relative", seed=2, progress=labels.append)
    assert labels == ["interleaved", "half"]
    assert (result.name, result.params["seed"]) == ("rope-relative", 2)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert {"name", "columns", "rows", "summary"} <= set(data)
    assert all(set(row) == set(data["columns"]) for row in data["rows"])
    odd = ExperimentResult(columns=["x"], rows=[{"x": math.inf}], summary={"y": math.nan})
    assert odd.to_dict()["rows"] == [{"x": None}] and odd.to_dict()["summary"] == {"y": None}


def test_plot_needs_a_png_path_in_an_existing_directory(tmp_path):
    result = run_experiment("rope-relative")
    with pytest.raises(ValueError, match=r"\.png"):
        result.plot(tmp_path / "figure.jpg")
    with pytest.raises(ValueError, match="does not exist"):
        result.plot(tmp_path / "missing" / "figure.png")
    with pytest.raises(ValueError, match="has no figure"):
        ExperimentResult(columns=[], rows=[], summary={}).plot(tmp_path / "x.png")


def test_declaration_mistakes_fail_when_registering():
    before = dict(EXPERIMENTS)

    def no_help(*, seed=0, progress=None, width: int = 3):
        raise AssertionError("never run")

    def untyped(*, seed=0, progress=None, width=3):
        raise AssertionError("never run")

    def reserved(*, seed=0, progress=None, plot: int = 3):
        raise AssertionError("never run")

    for fn, helps in ((no_help, {}), (untyped, {"width": "w"}), (reserved, {"plot": "p"})):
        with pytest.raises(TypeError, match="parameter"):
            register("broken", title="t", question="q", description="d", help=helps)(fn)

    def clash(*, seed=0, progress=None, width: int = 3):
        raise AssertionError("never run")

    with pytest.raises(ValueError, match="already registered"):
        register("rope-relative", title="t", question="q", description="d", help={"width": "w"})(
            clash
        )
    assert before == EXPERIMENTS
