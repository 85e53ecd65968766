"""Experiments: functions that compute a table of results (and later a figure) from real runs."""

from .verification import Check, run_verification

__all__ = ["Check", "run_verification"]
