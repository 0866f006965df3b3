"""glibc's ``malloc`` set up for a training loop on the CPU: freed blocks of a step stay in the process
for the next step, instead of going back to the kernel and being faulted in again.

Why: every training step allocates and frees the same large tensors (a batch's activations and their
gradients: 1-20 MB). With glibc's defaults a block above the (adaptive) mmap threshold is returned to
the kernel when it is freed, and the top of the heap is trimmed once more than twice that threshold is
free; the next step then takes its memory back from the kernel one zero-filled 4 KiB page at a time.
Measured on one thread (docs/benchmarks/models.md, sixth pass): the compiled IWAE step
(``--compile-step``, which allocates its buffers on each call) is 17% faster with memory kept, and
the VAE's bfloat16 autocast step 9%. jemalloc and tcmalloc, which PyTorch's CPU tuning guide
recommends, avoid the faults by keeping freed memory; this keeps the system's allocator and sets two
of its documented parameters (``mallopt(3)``):

- ``M_MMAP_THRESHOLD`` 32 MiB (glibc's largest): blocks below it come from the heap, so that freeing
  them does not unmap them;
- ``M_TRIM_THRESHOLD`` 128 MiB: up to that much free memory at the top of the heap is kept rather than
  trimmed; the process holds at most that much more than it uses.

Only on Linux with glibc, once a process, and not when the user chose otherwise: ``MALLOC_*``
variables in the environment, a preloaded allocator (``LD_PRELOAD``), or ``AEKIT_MALLOC=default``.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 128 << 20

_done: bool | None = None  # the outcome, once tried


def why_not() -> str | None:
    """Why the allocator is left as it is, or None when it can be set up."""
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return "not glibc"
    if os.environ.get("AEKIT_MALLOC", "").lower() == "default":
        return "AEKIT_MALLOC=default"
    if any(k.startswith("MALLOC_") for k in os.environ) or os.environ.get("GLIBC_TUNABLES"):
        return "malloc settings in the environment"
    if os.environ.get("LD_PRELOAD"):
        return "a preloaded library (LD_PRELOAD)"
    return None


def keep_freed_memory() -> bool:
    """Set up glibc's ``malloc`` as the module's docstring says; True when it is (now or before)."""
    global _done
    if _done is None:
        _done = False
        if why_not() is None:
            mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
            if mallopt is not None:
                # mallopt returns 1 on success; the mmap threshold first (it also fixes the adaptive one)
                _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
                    mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
                )
    return _done
