"""Data: the Shakespeare corpus, tokenizers (character and byte-level BPE) and batching."""

from .batches import random_batch, split_ids
from .corpus import load_text, shakespeare_text
from .tokenizers import BPETokenizer, CharTokenizer, build_tokenizer, tokenizer_from_dict

__all__ = [
    "BPETokenizer",
    "CharTokenizer",
    "build_tokenizer",
    "load_text",
    "random_batch",
    "shakespeare_text",
    "split_ids",
    "tokenizer_from_dict",
]
