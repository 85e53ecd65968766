"""Capture the attention weights of any model as plain arrays with their tokens.

One :class:`AttentionRecord` holds every layer's and head's ``(seq_q, seq_k)`` pattern of one
forward pass, whatever produced it: an attnlab :class:`~attnlab.nn.GPT` (patterns named
``blocks.{i}.attn.pattern``), a Hugging Face model with its tokenizer, or a name or path that
loads one (:mod:`attnlab.inspect.pretrained`). The input contract follows bertviz and
CircuitsVis: per layer ``(heads, seq, seq)`` plus the tokens.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from attnlab.nn import GPT
from attnlab.train.checkpoint import META_FILE, Checkpoint, load_checkpoint

from .pretrained import (
    is_hf_directory,
    known_names,
    load_hf_directory,
    load_pretrained,
    quiet_transformers,
)
from .record import AttentionRecord


# GPT-2's byte-level BPE writes every byte as a printable character (encoder.py,
# bytes_to_unicode; Radford et al., 2019): 'Ġ' is a space, 'Ċ' a newline.
def _bytes_to_unicode() -> dict[int, str]:
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = [b for b in range(256) if b not in printable]
    table = {b: chr(b) for b in printable}
    table.update({b: chr(256 + n) for n, b in enumerate(extra)})
    return table


_BYTE_OF_CHAR = {c: b for b, c in _bytes_to_unicode().items()}


def readable_tokens(tokenizer, ids: list[int]) -> list[str]:
    """Token strings a reader recognises: byte-level BPE and SentencePiece space markers
    become a leading space; WordPiece keeps its ``##`` continuations; special tokens as is."""
    if hasattr(tokenizer, "convert_ids_to_tokens"):  # a Hugging Face tokenizer
        pieces = tokenizer.convert_ids_to_tokens(list(ids))
        backend = getattr(tokenizer, "backend_tokenizer", None)
        decoder = repr(getattr(backend, "decoder", None))
        special = set(getattr(tokenizer, "all_special_tokens", []))
        if "ByteLevel" in decoder:
            return [p if p in special else _from_byte_level(p) for p in pieces]
        if "Metaspace" in decoder or "▁" in "".join(pieces):
            return [p.replace("▁", " ") for p in pieces]
        return list(pieces)
    if getattr(tokenizer, "kind", None) == "char":
        return list(tokenizer.decode(ids))
    return [tokenizer.decode([i]) for i in ids]  # attnlab BPE: one piece per id


def _from_byte_level(piece: str) -> str:
    if any(c not in _BYTE_OF_CHAR for c in piece):
        return piece
    return bytes(_BYTE_OF_CHAR[c] for c in piece).decode("utf-8", errors="replace")


def _as_ids(text_or_ids) -> list[int] | None:
    """Token ids as a list, or ``None`` for text."""
    if isinstance(text_or_ids, str):
        if not text_or_ids:
            raise ValueError("text_or_ids: expected a non-empty text or sequence of token ids")
        return None
    if isinstance(text_or_ids, torch.Tensor | np.ndarray):
        array = np.asarray(
            text_or_ids.tolist() if isinstance(text_or_ids, torch.Tensor) else text_or_ids
        )
        if array.ndim == 2 and array.shape[0] == 1:
            array = array[0]
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"text_or_ids: expected a 1-D sequence of integer ids, got {array.dtype} array "
                f"of shape {array.shape}"
            )
        ids = array.tolist()
    elif isinstance(text_or_ids, list | tuple) and all(
        isinstance(i, int | np.integer) and not isinstance(i, bool) for i in text_or_ids
    ):
        ids = [int(i) for i in text_or_ids]
    else:
        raise TypeError(
            "text_or_ids: expected a str or a sequence of integer token ids, got "
            f"{type(text_or_ids).__name__}"
        )
    if not ids:
        raise ValueError("text_or_ids: expected at least one token id, got none")
    return ids


def _truncate(ids: list[int], limit: int, why: str, strict: bool, notes: list[str]):
    if len(ids) <= limit:
        return ids
    if strict:
        raise ValueError(f"text_or_ids: {len(ids)} tokens exceed {why} ({limit}); shorten it")
    notes.append(f"truncated: the input has {len(ids)} tokens; kept the first {limit} ({why})")
    return ids[:limit]


def _limit(context: int | None, max_tokens: int | None) -> tuple[int, str]:
    if max_tokens is not None and (context is None or max_tokens < context):
        return max_tokens, "max_tokens"
    if context is None:
        return 1 << 62, "no limit"
    return context, "the model's context"


def resolve_model(model, tokenizer=None, *, seed: int = 0):
    """``(model, tokenizer, name)`` from a model object, a known name, or a directory."""
    if isinstance(model, Checkpoint):
        return model.model, _given(tokenizer, model.tokenizer), f"checkpoint {model.path}"
    if isinstance(model, os.PathLike) or (isinstance(model, str) and model not in known_names()):
        path = Path(model).expanduser()
        old = path.with_name(
            path.name + ".old"
        )  # left by a crash mid-save; load_checkpoint reads it
        if (path / META_FILE).is_file() or (old / META_FILE).is_file():
            checkpoint = load_checkpoint(path)
            return checkpoint.model, _given(tokenizer, checkpoint.tokenizer), f"checkpoint {path}"
        if path.is_dir() and is_hf_directory(path):
            hf_model, hf_tokenizer = load_hf_directory(path)
            return hf_model, _given(tokenizer, hf_tokenizer), str(path)
        if path.exists() or isinstance(model, os.PathLike) or os.sep in str(model):
            raise FileNotFoundError(
                f"model: {path} is neither an attnlab checkpoint ({META_FILE}) nor a Hugging "
                "Face model directory (config.json and weights)"
            )
        raise ValueError(
            f"model: unknown name {model!r}; known: {', '.join(known_names())}, or a path to a "
            "Hugging Face model directory or an attnlab checkpoint"
        )
    if isinstance(model, str):
        loaded, loaded_tokenizer, _ = load_pretrained(model, seed=seed)
        return loaded, _given(tokenizer, loaded_tokenizer), model
    if isinstance(model, GPT):
        return model, tokenizer, "attnlab GPT"
    if _is_hf_model(model):
        name = getattr(model.config, "_name_or_path", "") or type(model).__name__
        return model, tokenizer, name
    raise TypeError(
        "model: expected an attnlab GPT, a Hugging Face model, a Checkpoint, a known name "
        f"({', '.join(known_names())}) or a directory, got {type(model).__name__}"
    )


def _given(tokenizer, default):
    return default if tokenizer is None else tokenizer


def _is_hf_model(model) -> bool:
    from transformers import PreTrainedModel

    return isinstance(model, PreTrainedModel)


def capture(
    model,
    text_or_ids,
    *,
    tokenizer=None,
    max_tokens: int | None = None,
    strict: bool = False,
    seed: int = 0,
) -> AttentionRecord:
    """Run one forward pass and return every layer's and head's attention weights.

    Args:
        model: an attnlab ``GPT`` (or a ``Checkpoint``), a Hugging Face model, a known name
            (``"minilm"``, ``"smollm2"``, ``"random:minilm"``, ``"random:smollm2"``), a local
            Hugging Face model directory, or an attnlab checkpoint directory.
        text_or_ids: text (tokenized with the model's tokenizer, special tokens included) or a
            1-D sequence of token ids fed as is.
        tokenizer: required with text for a bare model object; loaded with names and paths.
        max_tokens: keep at most this many tokens (default: the model's context).
        strict: refuse input longer than the limit instead of truncating it with a note.
        seed: initialisation seed for ``random:`` names.
    """
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise ValueError(f"max_tokens: expected a positive int, got {max_tokens!r}")
    ids = _as_ids(text_or_ids)
    model, tokenizer, name = resolve_model(model, tokenizer, seed=seed)
    if ids is None and tokenizer is None:
        raise ValueError("tokenizer: required to capture text with a model object; or pass ids")
    if isinstance(model, GPT):
        return _capture_attnlab(model, tokenizer, text_or_ids, ids, name, max_tokens, strict)
    return _capture_hf(model, tokenizer, text_or_ids, ids, name, max_tokens, strict)


def _capture_attnlab(model, tokenizer, text, ids, name, max_tokens, strict) -> AttentionRecord:
    config, notes = model.config, []
    if ids is None:
        ids = tokenizer.encode(text)
        if not ids:
            raise ValueError("text_or_ids: the text encodes to no tokens")
    limit, why = _limit(config.context, max_tokens)
    ids = _truncate(ids, limit, why, strict, notes)
    was_training = model.training
    model.eval()  # dropout off: the pattern of the model as it predicts
    try:
        with torch.no_grad():
            idx = torch.tensor([ids], dtype=torch.long, device=model.token_embedding.weight.device)
            _, patterns = model(idx, return_attention=True)
    except NotImplementedError as error:
        raise ValueError(
            f"model: backend {config.backend!r} cannot return attention weights ({error}); "
            "rebuild the model with backend='naive' or 'sdpa' and the same state dict"
        ) from None
    finally:
        model.train(was_training)
    layers = [patterns.get(f"blocks.{i}.attn.pattern") for i in range(config.n_layers)]
    if any(p is None for p in layers):
        raise ValueError(
            f"model: backend {config.backend!r} returned no attention weights; rebuild the model "
            "with backend='naive' or 'sdpa' and the same state dict"
        )
    if config.backend != "naive":
        # Fused kernels never form the (T, T) matrix; return_attention takes the explicit
        # path, so the weights are those of softmax(QKᵀ/√d + mask), computed beside the kernel.
        notes.append(f"backend {config.backend!r}: weights from the explicit softmax path")
    weights = torch.stack([p[0] for p in layers]).float().cpu().numpy()
    n_kv = config.n_kv_heads or config.n_heads
    if n_kv != config.n_heads:
        notes.append(_gqa_note(config.n_heads, n_kv))
    tokens = readable_tokens(tokenizer, ids) if tokenizer is not None else [str(i) for i in ids]
    return AttentionRecord(tokens, weights, name, True, list(ids), n_kv, notes)


def _gqa_note(n_heads: int, n_kv: int) -> str:
    kind = "multi-query" if n_kv == 1 else "grouped-query"
    return (
        f"{kind} attention: {n_heads} query heads share {n_kv} key/value heads; "
        f"weights are per query head; query head h reads key/value head h // {n_heads // n_kv}"
    )


def _hf_context(model, tokenizer) -> int | None:
    limits = [getattr(model.config, "max_position_embeddings", None)]
    limits.append(getattr(tokenizer, "model_max_length", None) if tokenizer is not None else None)
    limits = [n for n in limits if isinstance(n, int) and 0 < n < 1 << 31]
    return min(limits) if limits else None


def _hf_declares_causal(model) -> bool:
    names = [type(model).__name__, *(getattr(model.config, "architectures", None) or [])]
    return bool(getattr(model.config, "is_decoder", False)) or any(
        n.endswith(("ForCausalLM", "LMHeadModel")) for n in names
    )


def _capture_hf(model, tokenizer, text, ids, name, max_tokens, strict) -> AttentionRecord:
    notes: list[str] = []
    limit, why = _limit(_hf_context(model, tokenizer), max_tokens)
    with quiet_transformers():
        if ids is None:
            ids = tokenizer(text)["input_ids"]
            if len(ids) > limit and not strict:
                # Let the tokenizer truncate, so it keeps its closing special token ([SEP]).
                notes.append(f"truncated: the input has {len(ids)} tokens; kept {limit} ({why})")
                ids = tokenizer(text, truncation=True, max_length=limit)["input_ids"]
        ids = _truncate(list(ids), limit, why, strict, notes)
        input_ids = torch.tensor([ids], dtype=torch.long, device=model.device)
        attentions = _hf_attentions(model, input_ids, notes)
    weights = torch.stack([a[0] for a in attentions]).float().cpu().numpy()
    config = model.config
    n_heads = weights.shape[1]
    n_kv = getattr(config, "num_key_value_heads", None) or n_heads
    if n_kv != n_heads:
        notes.append(_gqa_note(n_heads, n_kv))
    upper_zero = len(ids) > 1 and not np.triu(weights, k=1).any()
    causal = _hf_declares_causal(model) or bool(upper_zero)
    tokens = readable_tokens(tokenizer, ids) if tokenizer is not None else [str(i) for i in ids]
    return AttentionRecord(tokens, weights, name, causal, list(ids), n_kv, notes)


def _hf_attentions(model, input_ids, notes):
    """Per-layer ``(1, heads, T, T)`` weights; switches to eager attention if needed, because
    fused (``sdpa``, flash) implementations return none."""
    was_training = model.training
    model.eval()
    implementation = getattr(model.config, "_attn_implementation", None)
    switched = False
    try:
        if implementation not in (None, "eager"):
            model.set_attn_implementation("eager")
            switched = True
            notes.append(f"attention implementation {implementation!r} → 'eager' for weights")
        with torch.no_grad():
            out = model(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                output_attentions=True,
            )
    finally:
        if switched:
            model.set_attn_implementation(implementation)
        model.train(was_training)
    attentions = getattr(out, "attentions", None)
    if not attentions or any(a is None for a in attentions):
        raise ValueError(
            f"model: {type(model).__name__} returned no attention weights with "
            "output_attentions=True; load it with attn_implementation='eager'"
        )
    return attentions


__all__ = ["AttentionRecord", "capture", "readable_tokens", "resolve_model"]
