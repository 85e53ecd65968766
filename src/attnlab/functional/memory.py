"""Large output tensors whose fresh pages are backed by transparent huge pages.

A tensor of tens of MiB is mapped anew by glibc on every call, and the first write to each of
its 4 KiB pages traps into the kernel, which zeroes the page. At T = 16384 (32 MiB of output),
that first touch cost 6.3 ms here against 1.5 ms when the same allocation was first advised
``MADV_HUGEPAGE`` and so faulted in 2 MiB at a time (BENCHMARKS.md, linear attention): about a
quarter of a fused linear-attention call. The advice covers that allocation only, nothing
process-wide, and is skipped where the platform has no ``madvise`` or the kernel refuses it
(transparent huge pages set to ``never``): the tensor is then an ordinary one either way.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch

HUGE_PAGE = 2 << 20
MADV_HUGEPAGE = 14  # Linux
# Below this the output fits a few huge pages at best, and glibc serves it from the heap.
MIN_BYTES = 8 << 20

_madvise = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        _madvise = _libc.madvise
        _madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        _madvise.restype = ctypes.c_int
    except (OSError, AttributeError):
        _madvise = None


def advise_huge_pages(x: torch.Tensor) -> bool:
    """Advise the whole 2 MiB pages inside ``x``'s (untouched) memory as huge pages; whether the
    kernel accepted. Only for CPU tensors of at least ``MIN_BYTES``."""
    nbytes = x.numel() * x.element_size()
    if _madvise is None or x.device.type != "cpu" or nbytes < MIN_BYTES:
        return False
    start = x.data_ptr()
    low = (start + HUGE_PAGE - 1) // HUGE_PAGE * HUGE_PAGE
    high = (start + nbytes) // HUGE_PAGE * HUGE_PAGE
    return high > low and _madvise(low, high - low, MADV_HUGEPAGE) == 0


def empty_output(*shape: int, like: torch.Tensor) -> torch.Tensor:
    """``like.new_empty(shape)``, advised as huge pages when large (see the module's note)."""
    out = like.new_empty(shape)
    advise_huge_pages(out)
    return out
