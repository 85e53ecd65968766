"""The same word in different contexts: BERT's contextual vectors separate the senses."""

import numpy as np
import pytest
import torch

from attnlab.inspect import compare_contexts, find_word, resolve_model, word_in_context
from attnlab.inspect.contexts import cosine
from attnlab.nn import GPT, GPTConfig

RIVER = "We sat on the bank of the river and watched the water."
LOAN = "The bank loaned us money to buy the house."
DEPOSIT = "She deposited her money at the bank on Monday."


@pytest.fixture(scope="module")
def minilm():
    model, tokenizer, _ = resolve_model("minilm")
    return model, tokenizer


def test_bank_in_two_senses(minilm):
    model, tokenizer = minilm
    river, loan, across = compare_contexts(model, "bank", RIVER, LOAN, tokenizer=tokenizer)
    deposit = word_in_context(model, DEPOSIT, "bank", tokenizer=tokenizer)
    assert (
        river.record.tokens[river.position] == "bank"
        and loan.record.tokens[loan.position] == "bank"
    )
    same_sense = cosine(loan.vector, deposit.vector)
    assert same_sense > across and same_sense > cosine(river.vector, deposit.vector)
    assert across < 0.99  # the same token id, yet a different vector in each context
    assert river.attention.shape == (6, 12, len(river.record.tokens))
    assert np.allclose(river.attention.sum(-1), 1, atol=1e-5)


def test_attnlab_gpt_vectors_and_missing_words():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=8, context=16, n_layers=1, d_model=16, n_heads=2))

    class Chars:
        def encode(self, text):
            return [ord(c) - ord("a") for c in text]

        def decode(self, ids):
            return "".join(chr(i + ord("a")) for i in ids)

    found = word_in_context(model, "abcabc", "c", tokenizer=Chars())
    assert found.position == 2 and found.vector.shape == (16,)
    with pytest.raises(ValueError, match="'zebra' is not a single token"):
        find_word(["a", "b"], "zebra")
