"""The attnlab command line: attend, verify, help, version and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from attnlab.cli.main import main

SEED_002_EX3 = [
    "--q",
    "[[1,2],[3,1]]",
    "--k",
    "[[2,1],[1,1],[0,1]]",
    "--v",
    "[[1,2,-2],[1,1,2],[0,1,-1]]",
]
SEED_002_EX1 = ["--q", "[1,2,1]", "--k", "[[1,2,3],[1,2,1],[0,1,-1]]", "--no-scale"]


def run_json(capsys, *args) -> dict:
    assert main(["attend", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def rounded(rows, digits=2):
    return [[round(x, digits) + 0.0 for x in row] for row in rows]


def test_seed_002_exercise_3(capsys):
    result = run_json(capsys, *SEED_002_EX3)
    assert rounded(result["output"]) == [[0.86, 1.58, -0.72], [0.99, 1.88, -1.56]]
    assert all(abs(sum(row) - 1) < 1e-12 for row in result["weights"])
    assert result["scale"] == pytest.approx(2**-0.5)


def test_seed_002_exercise_1_single_query_unscaled(capsys):
    result = run_json(capsys, *SEED_002_EX1)
    assert result["scores"] == [[8.0, 6.0, 1.0]]  # s·h_i
    assert rounded(result["weights"]) == [[0.88, 0.12, 0.0]]
    assert rounded(result["output"]) == [[1.0, 2.0, 2.76]]


def test_seed_003_problem_2_hard_from_file(capsys, tmp_path):
    problem = {
        "q": [1, 1, 2],
        "k": [[1, 2, 0], [0, 3, 4], [5, 0, 0], [0, 0, 1]],
        "v": [[2, 0, 1], [1, 4, 3], [0, -1, 4], [1, 0, -1]],
    }
    path = tmp_path / "problem.json"
    path.write_text(json.dumps(problem))
    result = run_json(capsys, "--file", str(path), "--hard")
    assert result["scores"] == [[3.0, 11.0, 5.0, 2.0]]
    assert result["weights"] == [[0.0, 1.0, 0.0, 0.0]]
    assert result["output"] == [[1.0, 4.0, 3.0]]


def test_causal_scores_are_null_in_json_and_weights_zero(capsys):
    result = run_json(capsys, "--q", "[[1,0],[0,1]]", "--k", "[[1,0],[0,1]]", "--causal")
    assert result["scores"][0][1] is None
    assert result["weights"][0] == [1.0, 0.0]


def test_table_output(capsys):
    assert main(["attend", *SEED_002_EX3]) == 0
    out = capsys.readouterr().out
    assert "weights (each row sums to 1)" in out
    assert "0.8600" in out and "-1.5646" in out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--q", "[1,2", "--k", "[[1,2]]"], ["--q", "not valid JSON"]),
        (["--q", "[[1,2,3]]", "--k", "[[1,2]]"], ["query and key", "(1, 3)", "(1, 2)"]),
        (["--q", "[[1,2]]", "--k", "[[1,2],[3]]"], ["--k", "equal-length rows"]),
        (["--q", "[[1,2]]"], ["--k", "required"]),
        (["--q", '[["a"]]', "--k", "[[1]]"], ["--q"]),
        (["--q", "[[1]]", "--k", "[[1]]", "--v", "[[1],[2]]"], ["key and value"]),
        (["--q", "[[1]]", "--k", "[[1]]", "--scale", "2", "--no-scale"], ["--scale"]),
        (["--file", "missing.json"], ["missing.json"]),
    ],
)
def test_user_mistakes_get_one_line_and_exit_2(capsys, args, words):
    assert main(["attend", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("attnlab attend: error:")
    for word in words:
        assert word in err


def test_verify_passes_every_check(capsys):
    assert main(["verify", "--json", "--cases", "10", "--seed", "3"]) == 0
    checks = json.loads(capsys.readouterr().out)
    assert len(checks) >= 10 and all(check["passed"] for check in checks)
    names = " ".join(check["name"] for check in checks)
    assert "seed 002 exercise 3" in names and "explicit path" in names


def test_console_script_help_version_and_no_traceback():
    exe = Path(sys.executable).parent / "attnlab"
    for args in (["--help"], ["attend", "--help"], ["verify", "--help"]):
        out = subprocess.run([exe, *args], capture_output=True, text=True, check=True)
        assert "usage: attnlab" in out.stdout
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("attnlab 0.")
    bad = subprocess.run(
        [exe, "attend", "--q", "[1]", "--k", "[[1,2]]"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.count("\n") == 1
    unknown = subprocess.run([exe, "attend", "--bogus"], capture_output=True, text=True)
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1
