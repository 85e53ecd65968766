"""``attnlab viz``: the three files from a record, argument errors in one line, a real model."""

import json
import sys
import types
from dataclasses import dataclass

import matplotlib.image
import numpy as np
import pytest

from attnlab.cli.main import main
from attnlab.cli.viz import write_views

TOKENS = ["<s>", "the", "bank", "</script>"]


@dataclass
class Record:
    tokens: list
    weights: np.ndarray
    model_name: str
    causal: bool


def toy_record(model_name="toy") -> Record:
    weights = np.tril(np.ones((4, 4)))
    weights = weights / weights.sum(-1, keepdims=True)
    return Record(TOKENS, np.broadcast_to(weights, (2, 3, 4, 4)).copy(), model_name, True)


def assert_outputs(out, paths):
    assert set(paths) == {"head", "layer", "head_view"}
    for name in ("head.png", "layer.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.image.imread(out / name).size > 0
    page = (out / "head_view.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "</script>\\" not in page
    return page


def test_write_views_writes_three_files(tmp_path):
    record = toy_record()
    paths = write_views(record, tmp_path / "out", layer=-1, head=2)
    page = assert_outputs(tmp_path / "out", paths)
    assert "toy" in page and '"causal":true' in page
    with pytest.raises(ValueError, match="--head: expected 0 to 2"):
        write_views(record, tmp_path / "out", head=3)


@pytest.fixture
def fake_inspect(monkeypatch):
    """An ``attnlab.inspect`` that returns a toy record, so the command runs without a model."""
    calls = []

    def capture(model, text):
        calls.append((model, text))
        return toy_record(str(model))

    module = types.ModuleType("attnlab.inspect")
    module.capture = capture
    monkeypatch.setitem(sys.modules, "attnlab.inspect", module)
    return calls


def test_command_captures_and_writes(tmp_path, fake_inspect, capsys):
    out = tmp_path / "figures"
    argv = ["viz", "--model", "minilm", "--text", "the bank", "--out", str(out), "--json"]
    assert main([*argv, "--layer", "1", "--head", "2"]) == 0
    assert fake_inspect == [("minilm", "the bank")]
    printed = json.loads(capsys.readouterr().out)
    assert printed == {name: str(out / f) for name, f in
                       [("head", "head.png"), ("layer", "layer.png"),
                        ("head_view", "head_view.html")]}  # fmt: skip
    assert_outputs(out, printed)


def test_command_takes_a_checkpoint_folder(tmp_path, fake_inspect):
    checkpoint = tmp_path / "run"
    checkpoint.mkdir()
    argv = ["viz", "--checkpoint", str(checkpoint), "--text", "to be", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert fake_inspect == [(str(checkpoint), "to be")]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "minilm", "--checkpoint", "."], "give exactly one of them"),
        ([], "give exactly one of them"),
        (["--model", "minilm", "--layer", "5"], "--layer: expected 0 to 1"),
        (["--checkpoint", "no/such/folder"], "--checkpoint: no such folder"),
    ],
)
def test_command_mistakes_are_one_line(tmp_path, fake_inspect, capsys, extra, message):
    argv = ["viz", "--text", "the bank", "--out", str(tmp_path / "out"), *extra]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


@pytest.mark.slow
def test_command_end_to_end_with_minilm(tmp_path, capsys):
    from attnlab.inspect import capture

    text = "The bank by the river <b>flooded</b>."
    out = tmp_path / "minilm"
    argv = ["viz", "--model", "minilm", "--text", text, "--out", str(out), "--layer", "-1"]
    argv += ["--head", "3", "--json"]
    assert main(argv) == 0
    assert_outputs(out, json.loads(capsys.readouterr().out))
    record = capture("minilm", text)
    page = (out / "head_view.html").read_text(encoding="utf-8")
    block = page.split('class="hv-data">')[1].split("</script>")[0]
    assert json.loads(block)["tokens"] == record.tokens
    assert "<" in record.tokens and "<b>" not in page  # the tokenizer splits "<b>"; escaped
