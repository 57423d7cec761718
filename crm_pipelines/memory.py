"""Handing freed memory back to the operating system (a full ``unified`` run at 1M people, issue 11)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _trim():
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    return getattr(libc, "malloc_trim", None)  # glibc only


def release_free_memory() -> None:
    """glibc keeps the pages of freed small allocations (the parsed JSON of a mirror read, a step's
    temporaries) in its heap, where they count as resident until reused: ``malloc_trim`` returns them.
    Measured: a 254,557-row mirror read 608 -> 472 MB. Elsewhere than glibc, nothing happens."""
    trim = _trim()
    if trim is not None:
        trim(0)
