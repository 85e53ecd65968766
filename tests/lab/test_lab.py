"""``attnlab lab --quick``: the report is complete, self-contained, and its analysis is the data.

Every number printed in the analysis must be ``format(value, spec)`` of the report.json value
its element names; the pretrained models are installed wherever the tests run, so their
sections must be present.
"""

import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import pytest

from attnlab.cli.main import main
from attnlab.lab.analysis import lookup

pytestmark = pytest.mark.slow

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ReportParser(HTMLParser):
    """Image sources, the analysis values, and the analysis text outside those values."""

    def __init__(self):
        super().__init__()
        self.images: list[str] = []
        self.values: list[dict] = []
        self.outside: list[str] = []  # analysis text not inside a value element
        self._section_depth = 0  # > 0 inside <section id="analysis">
        self._value: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "section" and (self._section_depth or attrs.get("id") == "analysis"):
            self._section_depth += 1
        if self._section_depth and tag == "span" and attrs.get("class") == "value":
            self._value = {**attrs, "text": ""}

    def handle_endtag(self, tag):
        if tag == "section" and self._section_depth:
            self._section_depth -= 1
        if tag == "span" and self._value is not None:
            self.values.append(self._value)
            self._value = None

    def handle_data(self, data):
        if self._value is not None:
            self._value["text"] += data
        elif self._section_depth:
            self.outside.append(data)


def parsed(out: Path) -> tuple[ReportParser, dict, str]:
    page = (out / "index.html").read_text(encoding="utf-8")
    parser = ReportParser()
    parser.feed(page)
    return parser, json.loads((out / "report.json").read_text()), page


def test_every_image_is_a_png_next_to_the_page(quick_lab):
    parser, report, _ = parsed(quick_lab)
    assert len(parser.images) >= 15
    for source in parser.images:
        assert not re.match(r"^[a-z]+:", source) and not source.startswith("/"), source
        path = quick_lab / source
        data = path.read_bytes()
        assert data[:8] == PNG_SIGNATURE, source
        assert matplotlib.image.imread(io.BytesIO(data), format="png").ndim == 3, source
    assert set(report["figures"].values()) <= set(parser.images)


def test_the_page_is_self_contained(quick_lab):
    _, _, page = parsed(quick_lab)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<link" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_head_views_are_embedded(quick_lab):
    _, report, page = parsed(quick_lab)
    assert page.count('class="attnlab-head-view"') == 2  # trained and random model
    blocks = re.findall(r'<script type="application/json" class="hv-data">(.*?)</script>', page)
    assert len(blocks) == 2
    data = json.loads(blocks[0])
    assert data["layers"] == report["model"]["layers"]
    assert data["heads"] == report["model"]["heads"]
    assert "".join(data["tokens"]) == report["heads"]["inputs"]["sentence"]


def test_analysis_numbers_come_from_report_json(quick_lab):
    parser, report, _ = parsed(quick_lab)
    assert len(parser.values) >= 40
    for value in parser.values:
        expected = lookup(report, value["data-key"])
        assert value["text"] == format(expected, value["data-format"]), value
        assert json.loads(value["data-value"]) == expected, value
    # No number is written into the prose itself: digits appear only inside value elements.
    outside = "".join(parser.outside)
    assert not re.search(r"\d", outside), re.findall(r".{20}\d.{20}", outside)
    keys = {v["data-key"] for v in parser.values}
    for key in (
        "training.final.val_loss",
        "heads.trained.best.induction.score",
        "decoding.speedup",
        "theory.dot-product-variance.summary.unscaled_var_slope",
    ):
        assert key in keys  # fmt: skip
    # report.json carries the same sentences as text
    assert any("validation loss fell from" in s for s in report["analysis"]["Training"])


def test_pretrained_sections_are_present(quick_lab):
    parser, report, page = parsed(quick_lab)
    models = report["pretrained"]["models"]
    assert set(models) == {"minilm", "smollm2"}
    assert models["smollm2"]["causal"] and not models["minilm"]["causal"]
    # SmolLM2 has strong induction heads even on a short repeat; MiniLM (an encoder) has none.
    assert models["smollm2"]["best"]["induction"]["score"] >= 0.4
    assert models["minilm"]["best"]["previous_token"]["score"] >= 0.5
    for name, data in models.items():
        assert -1.0 <= data["bank"]["cosine"] <= 1.0
        for figure in data["figures"].values():
            assert figure in parser.images, (name, figure)
    assert "Pretrained heads" in report["analysis"]
    assert 'id="pretrained"' in page and "is not installed" not in page


def test_report_covers_every_part(quick_lab):
    _, report, page = parsed(quick_lab)
    t = report["training"]
    assert t["final"]["val_loss"] < t["initial"]["val_loss"]
    assert report["samples"]["before"] and report["samples"]["after"]
    assert set(report["theory"]) == {
        "dot-product-variance",
        "softmax-saturation",
        "quadratic-scaling",
    }
    assert report["decoding"]["same_tokens"]
    assert report["threads"]["chosen"] == 1  # the quick run fixes one thread
    for part in ("flash", "linear"):  # measured when the kernel exists, else explained
        assert report[part]["available"] or report[part]["reason"]
    for anchor in ("analysis", "training", "heads", "pretrained", "theory", "measurements"):
        assert f'id="{anchor}"' in page
    assert (quick_lab / "model" / "checkpoint" / "checkpoint.json").is_file()


def test_rerun_reuses_the_checkpoint(quick_lab, capsys):
    checkpoint = quick_lab / "model" / "checkpoint" / "model.safetensors"
    before = checkpoint.stat().st_mtime_ns
    assert main(["lab", "--quick", "--quiet", "--out", str(quick_lab)]) == 0
    out = capsys.readouterr().out
    assert "reused the checkpoint" in out and "--retrain" in out
    assert checkpoint.stat().st_mtime_ns == before
    report = json.loads((quick_lab / "report.json").read_text())
    assert report["training"]["status"] == "reused"
    assert "reused the checkpoint" in (quick_lab / "index.html").read_text(encoding="utf-8")


def test_settings_that_differ_from_the_checkpoint_are_refused(quick_lab, capsys):
    assert main(["lab", "--quick", "--quiet", "--steps", "7", "--out", str(quick_lab)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "other settings" in err and "steps" in err and "--retrain" in err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--steps", "0"], "--steps"),
        (["--steps", "many"], "--steps"),
        (["--text-file", "does-not-exist.txt"], "--text-file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(arguments, message, tmp_path, capsys):
    argv = ["lab", "--quick", "--quiet", "--out", str(tmp_path / "out"), *arguments]
    try:
        status = main(argv)
    except SystemExit as stop:  # argparse's own usage errors
        status = stop.code
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1 and message in err, err


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("not a directory")
    assert main(["lab", "--quick", "--quiet", "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--out" in err


def test_text_from_a_file_is_escaped_everywhere(tmp_path):
    """A corpus of markup: its characters reach samples, tokens and the head view as text."""
    hostile = "<img src=x onerror=alert(1)> & </script><script>alert(2)</script> the bank\n"
    corpus = tmp_path / "hostile.txt"
    corpus.write_text(hostile * 60)
    out = tmp_path / "lab"
    argv = ["lab", "--quick", "--quiet", "--steps", "20", "--text-file", str(corpus)]
    assert main([*argv, "--out", str(out)]) == 0
    page = (out / "index.html").read_text(encoding="utf-8")
    report = json.loads((out / "report.json").read_text())
    assert report["heads"]["inputs"]["sentence"] == hostile.strip()  # the corpus's own line
    assert "<img src=x" not in page and "<script>alert" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # shown, as text
    scripts = re.findall(r"<script\b", page)
    assert len(scripts) == 4  # two head-view data blocks, two copies of the view's code
