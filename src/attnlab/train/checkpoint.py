"""Checkpoints: tensors in safetensors files, everything else in one JSON file.

A checkpoint directory holds ``model.safetensors`` (the weights), ``state.safetensors``
(optimizer moments and random-number-generator states) and ``checkpoint.json`` (model config,
tokenizer, training state, optimizer hyper-parameters and the SHA-256 of both tensor files).
It is written into a temporary directory and swapped in by renames, so a crash mid-write
leaves the previous complete checkpoint in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from attnlab.data import tokenizer_from_dict
from attnlab.nn import GPT, GPTConfig

FORMAT = "attnlab-checkpoint"
VERSION = 1
MODEL_FILE, STATE_FILE, META_FILE = "model.safetensors", "state.safetensors", "checkpoint.json"


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupted, truncated or from an incompatible config."""


@dataclass
class Checkpoint:
    model: GPT
    tokenizer: object
    train_state: dict
    optimizer_state: dict | None
    rng_states: dict[str, torch.Tensor]
    path: Path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _model_tensors(model: GPT) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    if model.config.tie_embeddings:
        state.pop("lm_head.weight")  # the same storage as the token embedding
    return {name: t.detach().contiguous().cpu() for name, t in state.items()}


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Split ``optimizer.state_dict()`` into tensors (for safetensors) and JSON metadata."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, per_param in state["state"].items():
        for key, value in per_param.items():
            name = f"optimizer.{index}.{key}"
            if isinstance(value, torch.Tensor):
                tensors[name] = value.detach().contiguous().cpu()
            else:
                scalars[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def save_checkpoint(
    directory: str | os.PathLike,
    model: GPT,
    tokenizer,
    train_state: dict,
    optimizer: torch.optim.Optimizer | None = None,
    rng_states: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a complete checkpoint to ``directory`` atomically (see the module docstring)."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    save_file(_model_tensors(model), tmp / MODEL_FILE)
    state_tensors, optimizer_meta = (
        ({}, None) if optimizer is None else _optimizer_tensors(optimizer)
    )
    for name, value in (rng_states or {}).items():
        state_tensors[f"rng.{name}"] = value.detach().contiguous().cpu()
    save_file(state_tensors, tmp / STATE_FILE)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config.to_dict(),
        "tokenizer": tokenizer.to_dict(),
        "train_state": train_state,
        "optimizer": optimizer_meta,
        "sha256": {name: _sha256(tmp / name) for name in (MODEL_FILE, STATE_FILE)},
    }
    with open(tmp / META_FILE, "w") as f:
        json.dump(meta, f, indent=1)
        f.flush()
        os.fsync(f.fileno())

    # Swap: the old checkpoint stays complete until the new one is in place.
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def _resolve(directory: Path) -> Path:
    if (directory / META_FILE).exists():
        return directory
    old = directory.with_name(directory.name + ".old")
    if (old / META_FILE).exists():  # a crash between the two renames of save_checkpoint
        return old
    raise CheckpointError(f"checkpoint: no {META_FILE} in {directory}")


def load_checkpoint(directory: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint back; raises :class:`CheckpointError` with the reason if it is bad."""
    directory = _resolve(Path(directory))
    try:
        meta = json.loads((directory / META_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(
            f"checkpoint: {directory / META_FILE} is not valid JSON ({error})"
        ) from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint: {directory} is not an attnlab checkpoint")
    for name, expected in meta.get("sha256", {}).items():
        path = directory / name
        if not path.exists():
            raise CheckpointError(f"checkpoint: {path} is missing")
        if _sha256(path) != expected:
            raise CheckpointError(
                f"checkpoint: {path} is corrupted or truncated (its SHA-256 does not match)"
            )
    try:
        config = GPTConfig(**meta["config"])
        model = GPT(config)
        weights = load_file(directory / MODEL_FILE)
        state = load_file(directory / STATE_FILE)
    except (SafetensorError, TypeError, KeyError, OSError) as error:
        raise CheckpointError(f"checkpoint: cannot read {directory} ({error})") from None
    missing, unexpected = model.load_state_dict(weights, strict=False)
    allowed_missing = {"lm_head.weight"} if config.tie_embeddings else set()
    if set(missing) - allowed_missing or unexpected:
        raise CheckpointError(
            f"checkpoint: weights do not fit the config (missing {sorted(missing)}, "
            f"unexpected {sorted(unexpected)})"
        )
    optimizer_state = None
    if meta.get("optimizer") is not None:
        per_param: dict[int, dict] = {}
        for name, value in state.items():
            if name.startswith("optimizer."):
                _, index, key = name.split(".", 2)
                per_param.setdefault(int(index), {})[key] = value
        for name, value in meta["optimizer"]["scalars"].items():
            _, index, key = name.split(".", 2)
            per_param.setdefault(int(index), {})[key] = value
        optimizer_state = {"state": per_param, "param_groups": meta["optimizer"]["param_groups"]}
    rng_states = {k.removeprefix("rng."): v for k, v in state.items() if k.startswith("rng.")}
    return Checkpoint(
        model=model,
        tokenizer=tokenizer_from_dict(meta["tokenizer"]),
        train_state=meta["train_state"],
        optimizer_state=optimizer_state,
        rng_states=rng_states,
        path=directory,
    )
