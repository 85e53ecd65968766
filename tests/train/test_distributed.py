"""A real two-process data-parallel run (torchrun, gloo on localhost) against one process."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

TOLERANCE = 1e-4  # float summation order differs between one batch and two half-batches


def run(tmp_path, text_file, out, nproc):
    exe = Path(sys.executable).parent / "attnlab"
    command = [
        str(exe),
        "train",
        "--text-file",
        text_file,
        "--context",
        "16",
        "--layers",
        "2",
        "--d-model",
        "32",
        "--batch-size",
        "8",
        "--max-iters",
        "20",
        "--eval-interval",
        "10",
        "--eval-iters",
        "4",
        "--out",
        str(out),
        "--quiet",
        "--seed",
        "3",
        "--nproc",
        str(nproc),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    text_file = tmp_path / "text.txt"
    text_file.write_text("a stitch in time saves nine; " * 60)
    one = run(tmp_path, str(text_file), tmp_path / "one", 1)
    two = run(tmp_path, str(text_file), tmp_path / "two", 2)
    assert [r["processes"] for r in one] == [1, 1, 1]
    assert [r["processes"] for r in two] == [2, 2, 2]
    assert [r["iter"] for r in two] == [0, 10, 20]
    for a, b in zip(one, two, strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) <= TOLERANCE
        assert abs(a["val_loss"] - b["val_loss"]) <= TOLERANCE
    assert two[-1]["val_loss"] < two[0]["val_loss"] - 0.1  # it did train
    assert (tmp_path / "two" / "checkpoint" / "checkpoint.json").exists()
