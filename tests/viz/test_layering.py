"""attnlab.viz draws arrays only: importing it loads no model code (and not torch)."""

import ast
import subprocess
import sys


def test_viz_imports_no_model_code():
    code = (
        "import sys, attnlab.viz; "
        "print(sorted(m for m in sys.modules if m.startswith(('attnlab.', 'torch'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    names = ast.literal_eval(loaded)
    assert [name for name in names if not name.startswith("attnlab.viz")] == []
