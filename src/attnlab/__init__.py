"""attnlab: attention mechanisms implemented once, verified against independent references,
measured and made visible.

Layers: ``attnlab.ref`` (the NumPy reference), ``attnlab.functional`` (torch functions),
``attnlab.cli`` (the ``attnlab`` command).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("attnlab")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
