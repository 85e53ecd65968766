"""The browser both browser tests drive: Debian's Chromium through Playwright.

Never skipped: scripts/test installs Chromium, and without it these tests fail and say how to
get it. ATTNLAB_CHROMIUM points at another Chromium binary.
"""

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("ATTNLAB_CHROMIUM", "/usr/bin/chromium"))
# No sandbox (tests may run as root); no GPU; and no background connections, which this
# offline machine would refuse and which the pages must not need anyway.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium` "
            "(scripts/test does this as root) or set ATTNLAB_CHROMIUM to a Chromium binary",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: pip install -e '.[test]'", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()
