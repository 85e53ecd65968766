"""What the lab report trains and measures: one dataclass, a default and a quick preset."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

# The sentences every model reads: the same text for the character GPT and the pretrained
# models, so their patterns can be compared cell by cell. "bank" in two senses is seed 003 P5.
SENTENCE = "The bank of the river was steep, so the bank robbers ran to the river bank."
# The words that fix the sense come before "bank": a decoder sees only the left context.
# RIVER_2 is the control: the same sense in another sentence.
RIVER = "The river rose all night, and by morning the water covered the bank."
RIVER_2 = "We fished from the muddy bank of the slow river."
LOAN = "She needed money for a house, so she went to the bank for a loan."
WORD = "bank"


@dataclass(frozen=True)
class LabConfig:
    """Every size and count of one lab run.

    The model fields follow :class:`attnlab.nn.GPTConfig`; the training fields follow
    :class:`attnlab.train.TrainConfig`. The measurement fields size the live measurements so
    that the whole run fits its time budget (see :func:`default_config`).
    """

    quick: bool = False
    # the character-level GPT
    layers: int = 4
    heads: int = 4
    d_model: int = 128
    context: int = 128
    # training
    steps: int = 3000
    batch_size: int = 16
    lr: float = 2e-3
    min_lr: float = 2e-4
    warmup_iters: int = 100
    eval_interval: int = 250
    eval_iters: int = 10
    seed: int = 1337
    text_file: str | None = None
    # samples before and after training
    sample_tokens: int = 240
    temperature: float = 0.8
    # inputs of the head analysis
    sentence: str = SENTENCE
    induction_length: int = 50  # random tokens, then the same tokens again
    pretrained_induction_length: int = 50
    # live measurements, kept small: they illustrate, benchmarks/ holds the careful versions
    decode_prompt: int = 8
    decode_repeats: int = 3
    flash_lengths: tuple[int, ...] = (512, 1024, 2048)
    flash_heads: int = 8
    linear_lengths: tuple[int, ...] = (512, 1024, 2048, 4096)
    linear_heads: int = 8
    head_dim: int = 64
    timing_repeats: int = 3
    # torch threads for the run; None: the faster of one and torch's default, timed on a few
    # trial steps (see attnlab.lab.speed.fastest_threads). Tiny models gain nothing from a
    # second thread and, on a busy machine, lose many times over waiting for it.
    threads: int | None = None
    experiments: dict = field(
        default_factory=lambda: {
            "dot-product-variance": {"dims": (4, 16, 64, 256, 1024), "samples": 4000},
            "softmax-saturation": {"dims": (4, 16, 64, 256, 1024), "trials": 100},
            "quadratic-scaling": {"lengths": (128, 256, 512, 1024), "repeats": 3},
        }
    )

    def __post_init__(self):
        for name in ("layers", "heads", "d_model", "context", "steps", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if self.d_model % self.heads:
            raise ValueError(
                f"d_model: expected a multiple of heads ({self.heads}), got {self.d_model}"
            )
        if self.text_file is not None and not Path(self.text_file).is_file():
            raise FileNotFoundError(f"--text-file: no such file: {self.text_file}")

    def with_options(self, *, steps=None, seed=None, text_file=None) -> LabConfig:
        """This configuration with the command line's choices applied."""
        changes = {"steps": steps, "seed": seed, "text_file": text_file}
        config = replace(self, **{k: v for k, v in changes.items() if v is not None})
        # Few steps: evaluate often enough that the loss curve still has several points.
        interval = min(config.eval_interval, max(1, config.steps // 4))
        return replace(config, eval_interval=interval)

    def training_identity(self) -> dict:
        """What decides the trained weights: a checkpoint trained with other values is stale."""
        text = None
        if self.text_file is not None:
            path = Path(self.text_file).resolve()
            text = {"path": str(path), "bytes": path.stat().st_size}
        keys = ("layers", "heads", "d_model", "context", "steps", "batch_size", "lr", "min_lr")
        return {
            **{k: getattr(self, k) for k in keys},
            "warmup_iters": self.warmup_iters,
            "seed": self.seed,
            "text": text,
        }

    def to_dict(self) -> dict:
        data = asdict(self)
        data["experiments"] = {k: dict(v) for k, v in self.experiments.items()}
        return data


def default_config() -> LabConfig:
    """The default run: 4 layers × 4 heads, d_model 128, context 128, on Shakespeare.

    The step count is what a 2-core machine trains in about four minutes at ~20–30k
    tokens/s (2048 tokens a step), leaving the rest of the six-minute budget to the pretrained
    models, the experiments and the measurements. Character models grow induction heads only
    after the previous-token heads they build on, so the steps go to training, not to
    measurements.
    """
    return LabConfig()


def quick_config() -> LabConfig:
    """A run of about a minute for tests: a tiny model, few steps, small measurements."""
    return LabConfig(
        quick=True,
        layers=2,
        heads=2,
        d_model=32,
        context=80,  # the sentence (75 characters) fits whole
        steps=120,
        batch_size=8,
        warmup_iters=10,
        eval_interval=40,
        eval_iters=4,
        sample_tokens=60,
        induction_length=24,
        pretrained_induction_length=16,
        decode_repeats=2,
        flash_lengths=(256, 512, 1024),
        flash_heads=4,
        linear_lengths=(256, 512, 1024),
        linear_heads=4,
        timing_repeats=2,
        threads=1,
        experiments={
            "dot-product-variance": {"dims": (4, 16, 64), "samples": 500},
            "softmax-saturation": {"dims": (4, 64, 256), "trials": 20},
            "quadratic-scaling": {"lengths": (64, 128, 256), "repeats": 2},
        },
    )
