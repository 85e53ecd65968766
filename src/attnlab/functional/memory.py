"""Large output tensors whose memory is handed out again once every tensor on it is gone.

A tensor of tens of MiB is mapped anew by glibc on every call, and the first write to each of
its 4 KiB pages traps into the kernel, which zeroes the page: at T = 16384 (32 MiB of output)
that cost 6–8 ms here, about a third of a fused linear-attention call (BENCHMARKS.md). A model
calls attention with the same shapes over and over and frees each output soon after, so
:func:`empty_output` keeps the storage of large outputs and reuses one when nothing but the
cache holds it any more (torch counts the tensors, views, NumPy arrays and DLPack capsules on a
storage); a storage still in use is never handed out. This is what torch's CUDA caching
allocator does for GPU memory. The cache holds at most ``LIMIT_BYTES`` (256 MiB); a larger
output, or any output with ``ATTNLAB_OUTPUT_CACHE=0`` in the environment, is allocated fresh.
:func:`clear_output_cache` frees what it holds.

Transparent huge pages (``MADV_HUGEPAGE``) were measured as the alternative and not kept: 2 MiB
pages cut the first touch to 1.5–3 ms when the machine had just freed such pages, but a call
took 30–90 ms when it had not (likely the host backing this virtual machine's fresh huge pages on
first touch), against 21–29 ms with 4 KiB pages in the same run.
"""

from __future__ import annotations

import math
import os
import threading

import torch

# Smaller outputs come from glibc's heap, whose pages are already mapped: nothing to save.
MIN_BYTES = 8 << 20
LIMIT_BYTES = 256 << 20

_lock = threading.Lock()
_storages: list[torch.UntypedStorage] = []  # oldest first


def _in_use(storage: torch.UntypedStorage) -> bool:
    """Whether anything but the cache's own reference holds ``storage``."""
    return torch._C._storage_Use_Count(storage._cdata) > 1


def empty_output(*shape: int, like: torch.Tensor) -> torch.Tensor:
    """An uninitialised contiguous tensor of ``shape`` with ``like``'s dtype and device: for a
    large CPU output, on the memory of an earlier output that nothing holds any more, else
    new (and remembered for later calls). See the module's note."""
    nbytes = math.prod(shape) * like.element_size()
    cached = (
        like.device.type == "cpu"
        and MIN_BYTES <= nbytes <= LIMIT_BYTES
        and os.environ.get("ATTNLAB_OUTPUT_CACHE", "1") != "0"
    )
    if not cached:
        return like.new_empty(shape)
    with _lock:  # two threads must not both see the same storage free
        for storage in _storages:
            if storage.nbytes() == nbytes and not _in_use(storage):
                _storages.remove(storage)
                _storages.append(storage)  # most recently used last
                return like.new_empty(0).set_(storage, 0, shape)
        out = like.new_empty(shape)
        total = sum(s.nbytes() for s in _storages)
        for storage in list(_storages):  # make room: drop the oldest free ones
            if total + nbytes <= LIMIT_BYTES:
                break
            if not _in_use(storage):
                _storages.remove(storage)
                total -= storage.nbytes()
        if total + nbytes <= LIMIT_BYTES:
            _storages.append(out.untyped_storage())
        return out


def cached_output_bytes() -> int:
    """Bytes of the storages the cache holds (in use or not)."""
    with _lock:
        return sum(s.nbytes() for s in _storages)


def clear_output_cache() -> None:
    """Forget every cached storage; memory no tensor holds is freed."""
    with _lock:
        _storages.clear()
