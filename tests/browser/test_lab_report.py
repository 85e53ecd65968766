"""The quick lab report in a real browser (Debian's Chromium driven by Playwright), from disk.

The report is the one tests/lab writes (shared through the session's temporary directory), so
the quick lab runs once for both. The ``browser`` fixture is in conftest.py.
"""

from pathlib import Path

import pytest

from lab.conftest import quick_lab_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    return quick_lab_dir(tmp_path_factory)


@pytest.fixture
def opened(browser, report_dir):
    """The report loaded from file://, with every console message, error and request seen."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    seen = {"console": [], "errors": [], "requests": [], "dialogs": []}
    page.on("console", lambda message: seen["console"].append((message.type, message.text)))
    page.on("pageerror", lambda error: seen["errors"].append(str(error)))
    page.on("request", lambda request: seen["requests"].append(request.url))

    def dialog(d):
        seen["dialogs"].append(d.message)
        d.dismiss()

    page.on("dialog", dialog)
    page.goto((report_dir / "index.html").as_uri())
    page.wait_for_load_state("load")
    yield page, seen
    page.close()


def test_report_loads_from_disk_without_errors(opened):
    page, seen = opened
    assert seen["errors"] == []
    assert [text for kind, text in seen["console"] if kind in ("error", "warning")] == []
    assert seen["dialogs"] == []
    assert [url for url in seen["requests"] if not url.startswith("file://")] == []
    # Every figure decoded: an image that failed to load has no natural width.
    widths = page.evaluate("Array.from(document.images, image => image.naturalWidth)")
    assert len(widths) >= 15 and min(widths) > 0
    assert "Analysis" in page.inner_text("#analysis")


def test_embedded_head_view_responds_to_a_click(opened):
    page, seen = opened
    root = page.locator(".attnlab-head-view").first
    root.and_(page.locator("[data-ready=true]")).wait_for()
    before = [root.get_attribute(name) for name in ("data-layer", "data-head", "data-checksum")]
    assert before[:2] == ["0", "0"]
    root.locator("button[data-layer='1']").click()
    root.locator("button[data-head='1']").click()
    after = [root.get_attribute(name) for name in ("data-layer", "data-head", "data-checksum")]
    assert after[:2] == ["1", "1"] and after[2] != before[2]
    assert "layer 1 · head 1" in root.locator(".hv-status").inner_text()
    assert seen["errors"] == []
