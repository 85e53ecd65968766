"""Experiments: functions that compute a table of results (and a figure) from real runs.

Each experiment module registers one ``run`` function under a name (see
:mod:`attnlab.experiments.registry`); ``run_experiment(name, seed=..., **params)`` runs it and
``attnlab experiment <name>`` runs it from the command line. Self-verification against
independent references lives beside them in :mod:`attnlab.experiments.verification`.
"""

# Importing an experiment module registers it; this order (the exercises' order) is the
# order of the listing, so the import block is kept out of sorting.
# isort: off
from . import (  # noqa: F401
    variance,
    saturation,
    hard_vs_soft,
    alignment,
    scaling,
    flash_memory,
    equivariance,
    sinusoidal_offset,
    rope_relative,
    norms,
    mlm_sentiment,
    linear_attention,
    model_comparisons,
)

# isort: on
from .registry import (
    Experiment,
    ExperimentResult,
    Param,
    get_experiment,
    list_experiments,
    register,
    run_experiment,
)
from .verification import Check, run_verification

__all__ = [
    "Check",
    "Experiment",
    "ExperimentResult",
    "Param",
    "get_experiment",
    "list_experiments",
    "register",
    "run_experiment",
    "run_verification",
]
