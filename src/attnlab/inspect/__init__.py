"""Inspection: capture attention weights from any model and score what each head does.

:func:`capture` turns an attnlab GPT, a Hugging Face model, a pretrained name (``minilm``,
``smollm2``, ``random:…``) or a directory into an :class:`AttentionRecord` of plain arrays with
tokens; :mod:`~attnlab.inspect.heads` scores each head (previous-token, induction, sink …).
"""

from .capture import capture, readable_tokens, resolve_model
from .contexts import WordInContext, compare_contexts, find_word, word_in_context
from .heads import (
    DEFAULT_THRESHOLDS,
    MASS_SCORES,
    SCORES,
    HeadScores,
    Specialist,
    classify,
    compare_trained_random,
    head_scores,
    induction_record,
    is_delimiter,
    pattern_scores,
    repeated_random_tokens,
    target_patterns,
)
from .pretrained import (
    ModelInfo,
    available_models,
    known_names,
    load_hf_directory,
    load_pretrained,
    locate_package,
    model_info,
)
from .record import AttentionRecord

__all__ = [
    "DEFAULT_THRESHOLDS",
    "MASS_SCORES",
    "SCORES",
    "AttentionRecord",
    "HeadScores",
    "ModelInfo",
    "Specialist",
    "WordInContext",
    "available_models",
    "capture",
    "classify",
    "compare_contexts",
    "compare_trained_random",
    "find_word",
    "head_scores",
    "induction_record",
    "is_delimiter",
    "known_names",
    "load_hf_directory",
    "load_pretrained",
    "locate_package",
    "model_info",
    "pattern_scores",
    "readable_tokens",
    "repeated_random_tokens",
    "resolve_model",
    "target_patterns",
    "word_in_context",
]
