"""The attention lab report: train a small character GPT, look inside it, measure, explain.

``attnlab lab`` (or :func:`run_lab`) trains the model (or reuses the checkpoint of an earlier
run), captures and scores its heads against the same network at random initialisation and
against pretrained models, runs the theory experiments and live measurements, and writes
``DIR/report.json`` (every number) and ``DIR/index.html`` (a self-contained page whose analysis
sentences are generated from those numbers).
"""

from .config import LabConfig, default_config, quick_config
from .report import run_lab

__all__ = ["LabConfig", "default_config", "quick_config", "run_lab"]
