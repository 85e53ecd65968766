"""``attnlab experiment``: listing, tables, JSON, PNG figures and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from attnlab.cli.main import main

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
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args", [["experiment", "--list"], ["experiment"]])
def test_list_shows_all(capsys, args):
    assert main(args) == 0
    out = capsys.readouterr().out
    for name in NAMES:
        assert name in out


def test_json_has_name_columns_rows_summary(capsys):
    assert main(["experiment", "argmax-vs-softmax", "--json", "--random-cases", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"name", "columns", "rows", "summary"} <= set(data)
    assert data["name"] == "argmax-vs-softmax"
    assert all(list(row) == data["columns"] for row in data["rows"])
    assert data["summary"]["seed_hard_output"] == [1.0, 4.0, 3.0]
    assert data["params"]["random_cases"] == 1 and data["params"]["seed"] == 0


def test_favor_error_json_and_figure(capsys, tmp_path):
    path = tmp_path / "favor.png"
    args = ["experiment", "favor-error", "--json", "--n-features", "16,64", "--draws", "2"]
    assert main([*args, "--seq", "32", "--set", "input_std=0.25", "--plot", str(path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "favor-error" and "seed 003 problem 6" in data["question"]
    assert [row["n_features"] for row in data["rows"]] == [16, 64, 16, 64]
    assert all(list(row) == data["columns"] for row in data["rows"])
    assert data["summary"]["slope_std_0.25_orthogonal"] < 0
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_flags_and_set_reach_the_experiment(capsys):
    args = ["experiment", "rope-relative", "--json", "--seed", "4", "--head-dim", "6"]
    assert main([*args, "--set", "shifts=2,3", "--set", "start=8"]) == 0
    params = json.loads(capsys.readouterr().out)["params"]
    assert (params["seed"], params["head_dim"], params["shifts"], params["start"]) == (
        4,
        6,
        [2, 3],
        8,
    )


def test_table_and_summary(capsys):
    assert main(["experiment", "prenorm-vs-postnorm"]) == 0
    out = capsys.readouterr().out
    assert "prenorm-vs-postnorm" in out and "max_abs_pre_minus_post" in out
    assert "attn.q_proj.weight" in out and "seed 004 13.31" in out


def test_details_with_words_print_as_written(capsys):
    """Lists of words are shown as text, never read as console markup ("[a, big, ...]")."""
    assert main(["experiment", "cross-attention-alignment", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    source = next(line for line in out.splitlines() if line.strip().startswith("source:"))
    words = source.split("[", 1)[1].rstrip("] ").split(", ")
    assert len(words) == 7 and words[0] in ("the", "a") and "seed 000 Ex 6" in out


def test_long_details_print_briefly_and_json_whole(capsys):
    args = ["experiment", "mlm-sentiment", "--pretrain-steps", "40", "--finetune-steps", "35"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "(40 values; --json has them all)" in out and "(35 values;" in out
    assert main([*args, "--json"]) == 0
    curves = json.loads(capsys.readouterr().out)["details"]["curves"]
    assert len(curves["pretrain"]) == 40 and len(curves["scratch"]) == 35


def test_plot_writes_a_png_that_reads_back(capsys, tmp_path):
    path = tmp_path / "figure.png"
    assert main(["experiment", "sinusoidal-offset", "--plot", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    json.loads(captured.out)  # stdout stays pure JSON; the note goes to stderr
    assert str(path) in captured.err
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["rope-relative", "--set", "bogus=1"], ["--set bogus", "head_dim"]),
        (["rope-relative", "--set", "shifts"], ["--set", "KEY=VALUE"]),
        (["rope-relative", "--set", "shifts=a"], ["shifts", "ints"]),
        (["rope-relative", "--set", "start=2", "--start", "3"], ["start", "twice"]),
        (["rope-relative", "--head-dim", "7"], ["head_dim", "even"]),
        (["rope-relative", "--plot", "figure.jpg"], ["--plot", ".png"]),
        (["rope-relative", "--seed", "-1"], ["seed"]),
    ],
)
def test_user_mistakes_get_one_line_and_exit_2(capsys, args, words):
    assert main(["experiment", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("attnlab experiment: error:")
    for word in words:
        assert word in err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["nope"], ["invalid choice: 'nope'", *NAMES]),
        (["rope-relative", "--shifts", "x"], ["--shifts", "ints"]),
    ],
)
def test_argument_errors_exit_2_in_one_line(capsys, args, words):
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    for word in words:
        assert word in err


def test_console_script_unknown_name_and_help():
    exe = Path(sys.executable).parent / "attnlab"
    unknown = subprocess.run([exe, "experiment", "nope"], capture_output=True, text=True)
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1
    assert "Traceback" not in unknown.stderr and "dot-product-variance" in unknown.stderr
    helped = subprocess.run(
        [exe, "experiment", "quadratic-scaling", "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0 and "--lengths" in helped.stdout and "--set" in helped.stdout
