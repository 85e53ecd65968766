"""The head view in a real browser (Debian's Chromium driven by Playwright; the ``browser``
fixture is in conftest.py)."""

import io

import matplotlib.image
import numpy as np
import pytest

from attnlab.viz import HeadView, pattern_checksum, write_head_view

IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "</script><script>alert(2)</script>"
TOKENS = ["The", "river", "bank", IMG, SCRIPT, "was", "muddy", "."]


def softmax_weights(layers, heads, seq, *, causal, seed=0) -> np.ndarray:
    scores = np.random.default_rng(seed).normal(size=(layers, heads, seq, seq)) * 2
    if causal:
        scores = np.where(np.triu(np.ones((seq, seq), bool), 1), -np.inf, scores)
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    return (scores / scores.sum(-1, keepdims=True)).astype(np.float32)


@pytest.fixture
def events():
    return {"console": [], "errors": [], "dialogs": []}


@pytest.fixture
def page(browser, events):
    """A fresh page that records console messages, page errors and dialogs (and dismisses them)."""
    page = browser.new_page(viewport={"width": 1000, "height": 760})
    page.on("console", lambda message: events["console"].append((message.type, message.text)))
    page.on("pageerror", lambda error: events["errors"].append(str(error)))

    def dialog(d):
        events["dialogs"].append(d.message)
        d.dismiss()

    page.on("dialog", dialog)
    yield page
    page.close()


def assert_quiet(events):
    assert events["dialogs"] == []
    assert events["errors"] == []
    assert [text for kind, text in events["console"] if kind in ("error", "warning")] == []


def test_head_view_clicks_hovers_and_stays_safe(tmp_path, page, events):
    weights = softmax_weights(3, 4, len(TOKENS), causal=True)
    path = write_head_view(tmp_path / "view.html", TOKENS, weights, causal=True, title="toy")
    page.goto(path.as_uri())
    root = page.locator(".attnlab-head-view")
    root.and_(page.locator("[data-ready=true]")).wait_for()

    def shown():
        return tuple(
            root.get_attribute(name) for name in ("data-layer", "data-head", "data-checksum")
        )

    assert shown() == ("0", "0", pattern_checksum(weights, 0, 0))
    page.click("button[data-layer='2']")
    assert shown() == ("2", "0", pattern_checksum(weights, 2, 0))
    page.click("button[data-head='3']")
    assert shown() == ("2", "3", pattern_checksum(weights, 2, 3))
    assert len({pattern_checksum(weights, 0, 0), shown()[2]}) == 2  # the pattern did change
    assert page.get_attribute("button[data-head='3']", "aria-pressed") == "true"
    assert "layer 2 · head 3" in page.inner_text(".hv-status")

    page.hover(".hv-query[data-index='6']")
    assert "hv-active" in page.get_attribute(".hv-query[data-index='6']", "class")
    attended = page.locator(".hv-key.hv-attended")
    assert attended.count() >= 1
    strongest = int(np.argmax(weights[2, 3, 6]))
    assert "hv-attended" in page.get_attribute(f".hv-key[data-index='{strongest}']", "class")
    assert "query 6 “muddy” attends most to" in page.inner_text(".hv-info")

    # The hostile tokens are text on the page, not elements or scripts.
    text = page.inner_text("body")
    assert IMG in text and SCRIPT in text
    assert page.locator(".attnlab-head-view img").count() == 0
    assert page.locator("script").count() == 2

    # Causal: cells above the diagonal are left transparent, those on or below it are drawn.
    # One readback of the whole canvas (repeated readbacks make Chromium log a warning).
    alpha = page.evaluate(
        """(seq) => {
            const canvas = document.querySelector('canvas.hv-matrix');
            const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
            const cell = canvas.width / seq;
            const at = (i, j) => Math.floor((i + 0.5) * cell) * canvas.width
                + Math.floor((j + 0.5) * cell);
            const rows = [];
            for (let i = 0; i < seq; i++) {
                rows.push([]);
                for (let j = 0; j < seq; j++) rows[i].push(pixels.data[4 * at(i, j) + 3]);
            }
            return rows;
        }""",
        len(TOKENS),
    )
    below = np.tril(np.ones((len(TOKENS), len(TOKENS)), bool))
    assert (np.array(alpha) == np.where(below, 255, 0)).all()

    screenshot = matplotlib.image.imread(io.BytesIO(page.screenshot(full_page=True)), format="png")
    colours = np.unique(screenshot.reshape(-1, screenshot.shape[-1]), axis=0)
    assert len(colours) > 100, f"screenshot looks blank: {len(colours)} distinct colours"
    assert_quiet(events)


def test_notebook_fragments_work_side_by_side(page, events):
    """Two views in one page (as in a notebook) start independently and do not interfere."""
    first = HeadView(TOKENS, softmax_weights(2, 2, len(TOKENS), causal=False, seed=1))
    second = HeadView(["a", "b", "c"], softmax_weights(1, 3, 3, causal=False, seed=2))
    page.set_content(
        f"<!DOCTYPE html><html><body>{first._repr_html_()}{second._repr_html_()}</body></html>"
    )
    roots = page.locator(".attnlab-head-view")
    assert roots.count() == 2
    assert [roots.nth(i).get_attribute("data-ready") for i in range(2)] == ["true", "true"]
    roots.nth(1).locator("button[data-head='2']").click()
    assert roots.nth(1).get_attribute("data-checksum") == pattern_checksum(second.weights, 0, 2)
    assert roots.nth(0).get_attribute("data-checksum") == pattern_checksum(first.weights, 0, 0)
    assert IMG in roots.nth(0).inner_text()
    assert_quiet(events)
