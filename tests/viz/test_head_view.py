"""The HTML head view as text: offline, escaped, its data block exact and parseable."""

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser

import numpy as np
import pytest

from attnlab.viz import HeadView, head_view_html, pattern_checksum, write_head_view
from attnlab.viz.head_view import SCALE, script_json

IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "</script><script>alert(2)</script>"
TOKENS = ["The", IMG, SCRIPT, "<!--", "a\u2028b\u2029c", "&amp;", "café 🙂", "\n"]


def softmax_weights(layers, heads, seq, *, seed=0) -> np.ndarray:
    scores = np.random.default_rng(seed).normal(size=(layers, heads, seq, seq)) * 2
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    return (scores / scores.sum(-1, keepdims=True)).astype(np.float32)


@dataclass
class Record:
    tokens: list
    weights: np.ndarray
    model_name: str
    causal: bool


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text of each <script> element."""

    def __init__(self):
        super().__init__()
        self.tags, self.scripts, self._in_script = [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = True
            self.scripts.append((dict(attrs), ""))

    def handle_endtag(self, tag):
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data):
        if self._in_script:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)


@pytest.fixture(scope="module")
def weights():
    return softmax_weights(3, 4, len(TOKENS))


@pytest.fixture(scope="module")
def page(weights):
    return head_view_html(TOKENS, weights, title="<b>bank</b>", model_name="toy <i>model</i>")


def parsed(page) -> Tags:
    tags = Tags()
    tags.feed(page)
    return tags


def test_page_loads_nothing_from_the_network(page):
    tags = parsed(page)
    assert "http://" not in page and "https://" not in page
    assert not [(tag, a) for tag, a in tags.tags if "src" in a or "href" in a]
    assert [tag for tag, _ in tags.tags].count("link") == 0
    kinds = [attrs.get("type") for attrs, _ in tags.scripts]
    assert kinds == ["application/json", None]  # the data block and the inline viewer only


def test_tokens_cannot_escape_the_data_block(page):
    assert IMG not in page and SCRIPT not in page
    assert page.lower().count("</script") == 2  # the two closing tags of our own blocks
    assert "<!--" not in page
    assert "\u2028" not in page and "\u2029" not in page
    assert "\\u003cimg src=x onerror=alert(1)\\u003e" in page
    assert "\\u003c/script\\u003e\\u003cscript\\u003ealert(2)" in page


def test_data_block_parses_back_to_the_exact_tokens_and_weights(page, weights):
    (_, text), _ = parsed(page).scripts
    data = json.loads(text)
    assert data["tokens"] == TOKENS
    assert (data["layers"], data["heads"], data["seq"]) == weights.shape[:3]
    assert data["causal"] is False
    stored = np.frombuffer(base64.b64decode(data["weights"]), dtype="<u2")
    restored = stored.reshape(weights.shape) / data["scale"]
    assert np.abs(restored - weights).max() <= 0.5 / SCALE + 1e-7


def test_title_and_model_name_are_escaped(page):
    assert "<b>bank</b>" not in page and "&lt;b&gt;bank&lt;/b&gt;" in page
    assert "toy &lt;i&gt;model&lt;/i&gt;" in page


def test_content_security_policy_allows_exactly_the_inline_blocks(page):
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert "default-src 'none'" in policy
    _, (_, script) = parsed(page).scripts
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    for text in (script, style):
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy


def test_script_json_escapes_everything_that_could_end_a_script():
    text = script_json({"t": "</script><!--\u2028&"})
    assert not set("<>&") & set(text) and "\u2028" not in text
    assert json.loads(text) == {"t": "</script><!--\u2028&"}


def test_pattern_checksum_depends_on_the_pattern(weights):
    checksums = {pattern_checksum(weights, layer, head) for layer in range(3) for head in range(4)}
    assert len(checksums) == 12
    assert all(re.fullmatch("[0-9a-f]{8}", value) for value in checksums)
    assert pattern_checksum(weights, -1, -1) == pattern_checksum(weights, 2, 3)


def test_head_view_from_a_record_and_in_a_notebook(tmp_path, weights):
    record = Record(TOKENS, weights, "gpt-toy", True)
    view = HeadView(record)
    assert (view.causal, view.model_name) == (True, "gpt-toy")
    assert "gpt-toy" in repr(view)
    fragment = view._repr_html_()
    assert "<html" not in fragment and 'class="attnlab-head-view"' in fragment
    assert IMG not in fragment and '"causal":true' in fragment
    saved = view.save(tmp_path / "view.html")
    assert saved.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert HeadView(record, causal=False, model_name="other").model_name == "other"


def test_write_head_view_and_per_layer_input(tmp_path, weights):
    per_layer = [layer[None] for layer in weights]  # Hugging Face: (1, heads, seq, seq) each
    path = write_head_view(tmp_path / "sub" / "view.html", TOKENS, per_layer, causal=True)
    assert path.is_file()
    assert path.read_text(encoding="utf-8") == head_view_html(TOKENS, weights, causal=True)


def test_bad_inputs_name_the_argument(weights):
    with pytest.raises(ValueError, match="tokens: expected 8 tokens"):
        head_view_html(TOKENS[:-1], weights)
    with pytest.raises(ValueError, match=r"weights: expected attention probabilities in \[0, 1\]"):
        head_view_html(TOKENS, weights * 3)
    with pytest.raises(ValueError, match="weights: expected 4 dimensions"):
        head_view_html(TOKENS, weights[0])
    with pytest.raises(TypeError, match="weights: required"):
        HeadView(TOKENS)
    with pytest.raises(TypeError, match="tokens: expected strings"):
        head_view_html([1] * len(TOKENS), weights)
