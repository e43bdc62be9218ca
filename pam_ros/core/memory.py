"""Giving released model memory back to the system (no ROS).

Measured with the node's configure/cleanup cycles (tiny models at 1024 px, 854 x 480 frames,
an object and a describe per cycle): after cleanup no tracker, engine or scheduler object is
alive (weak references all dead), yet RSS stayed ~950-1,080 MB; `malloc_trim(0)` then gave
~500 MB back (to ~460-490 MB, flat from cycle to cycle). What was kept was glibc heap that
the freed tensors left behind (torch's CPU allocator uses malloc; freed blocks below the mmap
threshold stay in the heap and arenas), not references. So the release path is: drop the
references (the models' `release()`), collect cycles, empty the CUDA cache (after the
references are gone, so its blocks are really free), then trim the C heap.

Trimming alone still left the level after cleanup moving by up to 9 % from cycle to cycle
(20 cycles, tiny models at 256 px: 483-563 MB). malloc_info showed why: glibc gives threads
their own arenas (up to 8 per core), and malloc_trim releases the free pages inside every
arena but shrinks the top of the main arena only. The free top of a thread arena is released
only when a later free() in that arena finds it above the trim threshold, which glibc raises
with the mmap threshold to as much as 64 MB. So after each cleanup 0-60 MB of free, resident
memory stayed at the top of each arena the tracking and semantics threads had used, a
different amount every cycle. With one arena for the whole process (`limit_malloc_arenas`,
called when `pam_ros.ros` is imported, before rclpy, torch or numpy start a thread) every free
page is the main arena's, malloc_trim gives all of it back, and the same 20 cycles stay at
466 MB after every cleanup and 710-727 MB while active. The node's tracking rate and Describe
latency did not change measurably (bench_node, alternating runs). A fixed mmap threshold
flattens it too, but costs 8-50 % of the tracker's CPU time in page faults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

_libc = None
M_ARENA_MAX = -8  # mallopt's parameter number (glibc malloc.h)


def _load_libc():
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            _libc = ctypes.CDLL(name) if name else False
        except OSError:
            _libc = False
    return _libc


def limit_malloc_arenas(count: int = 1) -> bool:
    """At most `count` glibc malloc arenas for the threads that first allocate from now on
    (module docstring); only threads that have not allocated yet are affected, so call it
    before any thread starts. MALLOC_ARENA_MAX in the environment wins (nothing is changed);
    without glibc nothing is changed either. True when the limit was set."""
    import os

    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    libc = _load_libc()
    mallopt = getattr(libc, "mallopt", None) if libc else None
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_ARENA_MAX, count))


def _malloc_trim() -> bool:
    """glibc's malloc_trim(0): return free heap pages to the system. False without glibc."""
    libc = _load_libc()
    trim = getattr(libc, "malloc_trim", None) if libc else None
    if trim is None:
        return False
    trim.argtypes = [ctypes.c_size_t]
    return bool(trim(0))


def give_back_memory(device: str = "cpu") -> None:
    """Call after the last reference to released models is dropped (compiled code too:
    torch.compile's caches are reset where torch.compile was used in this process)."""
    import sys

    dynamo = sys.modules.get("torch._dynamo")
    if dynamo is not None:
        dynamo.reset()
    gc.collect()
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            # work still queued on the tracking / semantics streams keeps its blocks: finish it
            torch.cuda.synchronize()
            # cuBLAS keeps a workspace per (handle, stream), counted as allocated memory
            clear_workspaces = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
            if clear_workspaces is not None:
                clear_workspaces()
            torch.cuda.empty_cache()
    _malloc_trim()


class HeapTrimmer:
    """Trims the C heap at most once every `period_s` seconds (0: never), for endless streams.

    A running node allocates and frees blocks of ever-changing sizes (frames, prompts of other
    lengths, generated texts, feature tensors); glibc keeps much of what is freed in its heap
    and per-thread arenas, so RSS creeps up with no reference held. Calling `maybe_trim` after
    each frame gives that back every `period_s` (malloc_trim(0) costs milliseconds)."""

    def __init__(self, period_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.period_s = period_s
        self._clock = clock
        self._last = clock()
        self.trims = 0

    def maybe_trim(self) -> bool:
        """Trim when `period_s` has passed since the last trim; True when it trimmed."""
        now = self._clock()
        if self.period_s <= 0 or now - self._last < self.period_s:
            return False
        self._last = now
        self.trims += 1
        _malloc_trim()
        return True


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc/self/statm)."""
    import os

    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
