"""This process's memory: its resident set size, and handing freed heap back to the system.

Used by the idle unload (consumer/residency.py) to say what releasing the models gave back. glibc keeps
freed small allocations in its arenas, so without `malloc_trim` the RSS would barely move even
when the models are gone; large arrays (numpy, the model weights) are mmapped and go back at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os


def rss_bytes() -> int | None:
    """The resident set size now (from /proc/self/statm), None where there is no /proc."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            resident_pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def return_freed_heap() -> bool:
    """Ask glibc to give freed heap pages back to the system (False where there is no glibc)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False  # musl and others: nothing to trim this way
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))
