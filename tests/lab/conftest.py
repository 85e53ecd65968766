"""The quick lab report, written once per test session and shared by the tests that read it."""

from pathlib import Path

import pytest

from attnlab.cli.main import main


def quick_lab_dir(tmp_path_factory) -> Path:
    """``attnlab lab --quick`` into one folder of the session's temporary base directory.

    Keyed by a path, not by module state, so that the browser tests (which import this
    function) and the lab tests reuse the same run.
    """
    out = tmp_path_factory.getbasetemp() / "quick-lab"
    if not (out / "index.html").is_file():
        assert main(["lab", "--quick", "--quiet", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def quick_lab(tmp_path_factory) -> Path:
    return quick_lab_dir(tmp_path_factory)
