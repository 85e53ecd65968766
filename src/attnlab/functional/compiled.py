"""Compiled kernels for the hot paths that eager PyTorch runs as many passes.

The C sources live in ``csrc/``. On first use each is built with the machine's C compiler
(``cc -O3 -march=native``) into ``$ATTNLAB_CACHE`` (default ``~/.cache/attnlab``), keyed by the
source, the flags, the compiler and the CPU, and loaded through :mod:`ctypes`; a call releases
the GIL, so work items run on :func:`torch.get_num_threads` Python threads at once.

Today there is one: fused elu linear attention for float32 (``csrc/linear_elu.c``), which
:mod:`attnlab.functional.linear` uses for inference (autograd not recording) and checks
against its eager path in the tests. Without a C compiler, or with ``ATTNLAB_COMPILED=0`` in
the environment, or inside ``with use_compiled(False):``, everything runs eagerly;
:func:`status` says which and why.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import itertools
import math
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from .memory import empty_output

SOURCE = Path(__file__).with_name("csrc") / "linear_elu.c"
CFLAGS = (
    "-O3",
    "-march=native",
    "-std=c11",
    "-ffp-contract=fast",
    "-fno-math-errno",
    "-shared",
    "-fPIC",
)
# Flags the kernels return (csrc/linear_elu.c): an input holds NaN or ±inf; a normaliser is
# not a finite number above eps. Either sends the call to the eager, checked path.
FLAG_NONFINITE, FLAG_NORMALISER = 1, 2
# Rows of a block in the C code (ROWS): key rows are split in pieces of at least this many.
ROWS = 128

_lock = threading.Lock()
_state: dict = {"lib": None, "error": None, "tried": False, "enabled": True, "pool": None}
calls = {"noncausal": 0, "causal": 0}  # fused calls made, for tests and benchmarks


def cache_dir() -> Path:
    return Path(os.environ.get("ATTNLAB_CACHE") or Path.home() / ".cache" / "attnlab")


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _machine_key(cc: str) -> bytes:
    """What the build depends on besides the source: compiler, flags and the CPU's features."""
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False)
    cpu = ""
    with contextlib.suppress(OSError):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((line for line in lines if line.startswith("flags")), "")
    return "\n".join([version.stdout, " ".join(CFLAGS), platform.machine(), cpu]).encode()


def _build() -> ctypes.CDLL:
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (cc, gcc or $CC)")
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source + _machine_key(cc)).hexdigest()[:16]
    target = cache_dir() / f"{SOURCE.stem}-{key}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            built = Path(tmp) / target.name
            run = subprocess.run(
                [cc, *CFLAGS, "-o", str(built), str(SOURCE), "-lm"],
                capture_output=True,
                text=True,
                check=False,
            )
            if run.returncode != 0:
                raise RuntimeError(f"{cc} failed on {SOURCE.name}: {run.stderr.strip()[-2000:]}")
            os.replace(built, target)  # atomic: a concurrent build loads one or the other
    lib = ctypes.CDLL(str(target))
    p, n, f = ctypes.c_void_p, ctypes.c_long, ctypes.c_float
    signatures = {
        "attnlab_elu_features": [p, n, p],
        "attnlab_elu_key_sums": [p, p, n, n, n, p],
        "attnlab_elu_query_out": [p, n, n, n, p, f, p],
        "attnlab_elu_causal": [p, n, n, p, p, n, n, n, n, p, f, p, n],
        "attnlab_touch": [p, n],
    }
    for name, argtypes in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, ctypes.c_int
    return lib


def library() -> ctypes.CDLL | None:
    """The built kernels, or None when they are disabled or cannot be built (see :func:`status`)."""
    if not _state["enabled"] or os.environ.get("ATTNLAB_COMPILED", "1") == "0":
        return None
    if not _state["tried"]:
        with _lock:
            if not _state["tried"]:
                try:
                    _state["lib"] = _build()
                except (OSError, RuntimeError) as error:
                    _state["error"] = str(error)
                _state["tried"] = True
    return _state["lib"]


def status() -> str:
    """One line: whether the compiled kernels are in use, and why not."""
    if os.environ.get("ATTNLAB_COMPILED", "1") == "0":
        return "compiled kernels: off (ATTNLAB_COMPILED=0)"
    if not _state["enabled"]:
        return "compiled kernels: off (use_compiled(False))"
    if library() is None:
        return f"compiled kernels: unavailable ({_state['error']}); eager PyTorch is used"
    return f"compiled kernels: on ({SOURCE.name}, {_compiler()} {' '.join(CFLAGS[:2])})"


@contextlib.contextmanager
def use_compiled(enabled: bool):
    """``with use_compiled(False):`` runs the eager path (for A/B comparisons and tests)."""
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled: expected a bool, got {type(enabled).__name__}")
    before = _state["enabled"]
    _state["enabled"] = enabled
    try:
        yield
    finally:
        _state["enabled"] = before


# Below this many elements of Q, K and V a call runs its work items in the calling thread:
# handing them to the pool costs more than it saves (one decoding step took 341 µs through the
# pool against 229 µs on the PyTorch path).
PARALLEL_ELEMENTS = 1 << 16


def _run(jobs, elements: int) -> int:
    """Run ``jobs`` (callables returning flags) on this thread and the pool's, each taking the
    next job as it finishes one, or all here when ``elements`` (the size of the inputs) is
    small; the flags or-ed together."""
    threads = max(1, torch.get_num_threads())
    results = [0] * len(jobs)
    if threads == 1 or len(jobs) == 1 or elements < PARALLEL_ELEMENTS:
        results = [job() for job in jobs]
    else:
        pool = _state["pool"]
        if pool is None or pool._max_workers != threads - 1:
            if pool is not None:
                pool.shutdown(wait=False)
            pool = _state["pool"] = ThreadPoolExecutor(threads - 1, thread_name_prefix="attnlab")
        order = itertools.count()  # next() on it is atomic under the GIL

        def drain():
            for i in iter(lambda: next(order), None):
                if i >= len(jobs):
                    return
                results[i] = jobs[i]()

        helpers = [pool.submit(drain) for _ in range(min(threads, len(jobs)) - 1)]
        drain()
        for helper in helpers:
            helper.result()
    flags = 0
    for result in results:
        flags |= FLAG_NONFINITE | FLAG_NORMALISER if result < 0 else result
    return flags


def _ptr(x: torch.Tensor, offset: int = 0) -> int:
    return x.data_ptr() + offset * x.element_size()


def _splits(rows: int, parts: int, minimum: int) -> list[tuple[int, int]]:
    """At most ``parts`` consecutive row ranges of at least ``minimum`` rows covering ``rows``."""
    parts = max(1, min(parts, rows // max(1, minimum)))
    step = math.ceil(rows / parts)
    return [(a, min(rows, a + step)) for a in range(0, rows, step)]


def elu_features(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """φ(x) = elu(x) + 1 by the compiled kernel, and whether every x was finite (float32)."""
    lib = library()
    if lib is None:
        raise RuntimeError(status())
    if x.dtype != torch.float32 or x.device.type != "cpu":
        raise TypeError(f"x: expected a float32 CPU tensor, got {x.dtype} on {x.device}")
    x = x.contiguous()
    out = torch.empty_like(x)
    flags = lib.attnlab_elu_features(_ptr(x), x.numel(), _ptr(out))
    return out, flags == 0


def fusable(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sums=None) -> bool:
    """Whether the fused elu kernels can take these canonical tensors (float32, CPU, no
    autograd recording, nothing empty) and are available."""
    tensors = [q, k, v] + ([] if sums is None else [sums])
    if any(t.dtype != torch.float32 or t.device.type != "cpu" for t in tensors):
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    if q.numel() == 0 or k.shape[1] == 0 or v.shape[-1] == 0:
        return False
    return library() is not None


def elu_noncausal(q, k, v, eps: float) -> torch.Tensor | None:
    """Non-causal elu linear attention: ``q (n, G, T, d)``, ``k (n, Tk, d)``, ``v (n, Tk, dv)``
    → ``(n, G, T, dv)``; None when the kernels flag a non-finite input or normaliser."""
    lib = library()
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    n, groups, length, d = q.shape
    keys, dv = k.shape[1], v.shape[-1]
    threads = max(1, torch.get_num_threads())
    pieces = _splits(keys, math.ceil(threads / n), ROWS)
    partial = torch.zeros(n, len(pieces), d, dv + 1)

    def key_job(h, p, a, b):
        return lambda: lib.attnlab_elu_key_sums(
            _ptr(k, (h * keys + a) * d),
            _ptr(v, (h * keys + a) * dv),
            b - a,
            d,
            dv,
            _ptr(partial, (h * len(pieces) + p) * d * (dv + 1)),
        )

    out = empty_output(n, groups, length, dv, like=q)
    elements = q.numel() + k.numel() + v.numel()
    jobs = [key_job(h, p, a, b) for h in range(n) for p, (a, b) in enumerate(pieces)]
    # the output's pages are mapped while the keys are summed: see attnlab_touch
    jobs.insert(0, lambda: lib.attnlab_touch(_ptr(out), out.numel() * out.element_size()))
    flags = _run(jobs, elements)
    sums = partial[:, 0] if len(pieces) == 1 else partial.sum(dim=1)
    sums = sums.contiguous()
    heads = n * groups
    rows = _splits(length, math.ceil(threads / heads), ROWS)

    def query_job(h, g, a, b):
        head = h * groups + g
        return lambda: lib.attnlab_elu_query_out(
            _ptr(q, (head * length + a) * d),
            b - a,
            d,
            dv,
            _ptr(sums, h * d * (dv + 1)),
            eps,
            _ptr(out, (head * length + a) * dv),
        )

    jobs = [query_job(h, g, a, b) for h in range(n) for g in range(groups) for a, b in rows]
    flags |= _run(jobs, elements)
    calls["noncausal"] += 1
    return None if flags else out


def elu_causal(q, k, v, sums, chunk: int, eps: float):
    """Causal elu linear attention by chunks of ``chunk`` tokens, from the state ``sums``
    ``(n, d, dv + 1)`` (None: empty). Returns ``(out (n, G, T, dv), sums after)``, or None when
    the kernels flag a non-finite input or normaliser."""
    lib = library()
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    n, groups, length, d = q.shape
    dv = v.shape[-1]
    threads = max(1, torch.get_num_threads())
    parts = min(groups, math.ceil(threads / n))  # query heads of a group split across threads
    step = math.ceil(groups / parts)
    ranges = [(g, min(groups, g + step)) for g in range(0, groups, step)]
    start = torch.zeros(n, d, dv + 1) if sums is None else sums.reshape(n, d, dv + 1)
    states = start.unsqueeze(1).repeat(1, len(ranges), 1, 1)  # each piece carries its own
    out = empty_output(n, groups, length, dv, like=q)

    def job(h, p, g0, g1):
        return lambda: lib.attnlab_elu_causal(
            _ptr(q, (h * groups + g0) * length * d),
            length * d,
            g1 - g0,
            _ptr(k, h * length * d),
            _ptr(v, h * length * dv),
            length,
            d,
            dv,
            chunk,
            _ptr(states, (h * len(ranges) + p) * d * (dv + 1)),
            eps,
            _ptr(out, (h * groups + g0) * length * dv),
            length * dv,
        )

    jobs = [job(h, p, g0, g1) for h in range(n) for p, (g0, g1) in enumerate(ranges)]
    jobs.insert(0, lambda: lib.attnlab_touch(_ptr(out), out.numel() * out.element_size()))
    flags = _run(jobs, q.numel() + k.numel() + v.numel())
    calls["causal"] += 1
    return None if flags else (out, states[:, 0])
