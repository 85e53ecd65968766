"""Live measurements for the report: the KV cache's decoding speedup on the trained model and
the crossover of linear attention with torch's fused softmax attention.

Small on purpose (seconds, not minutes): they show the effect on this machine; the careful
versions with machine lines and load checks are in ``benchmarks/``.
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from attnlab.bench import compare
from attnlab.experiments.fitting import loglog_slope

from .figures import Figures, loglog_figure

# Timed on one thread, as the quadratic-scaling experiment is: threads wait for each other at
# every op, and on a shared machine a busy second core turns a 1 ms op into several.
TIMING_THREADS = 1


@contextmanager
def torch_threads(threads: int | None):
    """Run with ``threads`` torch threads (None: leave it), then restore the caller's setting."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def fastest_threads(gpt_config, batch_size: int, *, repeats: int = 3) -> dict:
    """Time a few training steps (forward and backward) of a scratch model of the lab's shape
    on one thread and on torch's default, interleaved, and return the faster count.

    On an idle machine the default (one thread per core) wins; when another process holds a
    core, every op of a two-thread step waits for the descheduled thread and one thread is
    several times faster (measured: 0.18 s against 1.3 s a step on two busy cores).
    """
    from attnlab.nn import GPT

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = GPT(gpt_config)
    generator = torch.Generator().manual_seed(0)
    shape = (batch_size, gpt_config.context)
    x = torch.randint(0, gpt_config.vocab_size, shape, generator=generator)

    def step(threads: int):
        with torch_threads(threads):
            model(x, x)[1].backward()
            model.zero_grad(set_to_none=True)

    default = torch.get_num_threads()
    if default == TIMING_THREADS:
        return {"chosen": default, "default": default, "step_s": {}}
    timing = compare(lambda: step(TIMING_THREADS), lambda: step(default), repeats=repeats, warmup=1)
    chosen = TIMING_THREADS if timing["candidate_s"] < timing["baseline_s"] else default
    step_s = {str(TIMING_THREADS): timing["candidate_s"], str(default): timing["baseline_s"]}
    return {"chosen": chosen, "default": default, "step_s": step_s}


def available(module: str) -> bool:
    """True when ``module`` can be imported (the tiled and linear kernels may be absent)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def decoding(model, tokenizer, sentence: str, config) -> dict:
    """Greedy generation up to the context, with the KV cache and recomputing every prefix.

    Runs are interleaved (cached, recomputed, cached, …) so a burst of load from elsewhere hits
    both; both must produce the same tokens, or the speedup would compare different work.
    """
    ids = tokenizer.encode(sentence)[: config.decode_prompt]
    prompt = torch.tensor([ids])
    new_tokens = model.config.context - prompt.shape[1]

    def run(use_cache: bool):
        start = time.perf_counter()
        out = model.generate(prompt, new_tokens, temperature=0, use_cache=use_cache)
        return time.perf_counter() - start, out

    cached, recomputed = [], []
    with torch_threads(TIMING_THREADS):
        run(True)  # warm-up: allocator and kernel choice
        run(False)
        for _ in range(config.decode_repeats):
            t_cached, out_cached = run(True)
            t_full, out_full = run(False)
            if not torch.equal(out_cached, out_full):
                raise RuntimeError("cached and recomputed greedy generation gave different tokens")
            cached.append(t_cached)
            recomputed.append(t_full)
    t_c, t_r = statistics.median(cached), statistics.median(recomputed)
    return {
        "prompt_tokens": prompt.shape[1],
        "new_tokens": new_tokens,
        "repeats": config.decode_repeats,
        "threads": TIMING_THREADS,
        "cached_s": t_c,
        "recomputed_s": t_r,
        "cached_tokens_per_s": new_tokens / t_c,
        "recomputed_tokens_per_s": new_tokens / t_r,
        "speedup": t_r / t_c,
        "same_tokens": True,
    }


def linear_crossover(config, figures: Figures) -> dict:
    """Forward time of torch SDPA and elu linear attention (non-causal) as T grows."""
    from attnlab.functional.linear import linear_attention

    heads, dim = config.linear_heads, config.head_dim
    generator = torch.Generator().manual_seed(config.seed)
    rows = []
    with torch.inference_mode(), torch_threads(TIMING_THREADS):
        for seq in config.linear_lengths:
            q, k, v = (torch.randn(1, heads, seq, dim, generator=generator) for _ in range(3))
            timing = compare(
                lambda q=q, k=k, v=v: linear_attention(q, k, v, "elu"),
                lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v),
                repeats=config.timing_repeats,
                warmup=1,
            )
            rows.append(
                {
                    "seq": seq,
                    "sdpa_ms": timing["baseline_s"] * 1e3,
                    "linear_ms": timing["candidate_s"] * 1e3,
                    "linear_over_sdpa": timing["ratio"],
                }
            )
    lengths = [r["seq"] for r in rows]
    path = figures.path("linear-crossover")
    loglog_figure(
        {
            "torch SDPA (softmax)": (lengths, [r["sdpa_ms"] for r in rows]),
            "linear attention, elu": (lengths, [r["linear_ms"] for r in rows]),
        },
        path,
        xlabel="sequence length T",
        ylabel="forward time (ms)",
        title=f"forward time, {heads} heads × head_dim {dim}, non-causal",
    )
    return {
        "available": True,
        "heads": heads,
        "head_dim": dim,
        "threads": TIMING_THREADS,
        "rows": rows,
        "crossover": _crossover(rows),
        "longest": lengths[-1],
        "sdpa_slope": loglog_slope(lengths, [r["sdpa_ms"] for r in rows]),
        "linear_slope": loglog_slope(lengths, [r["linear_ms"] for r in rows]),
        "last_ratio": rows[-1]["linear_over_sdpa"],
        "figure": figures.relative(path.stem),
    }


def _crossover(rows: list[dict]) -> int | None:
    """The shortest measured T from which linear attention is faster at every longer T."""
    found = None
    for row in reversed(rows):
        if row["linear_over_sdpa"] >= 1.0:
            break
        found = row["seq"]
    return found
