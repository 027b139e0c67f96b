"""Keep the engine's memory flat: glibc malloc tuning.

The engine allocates and frees buffers of 256 KiB .. 16 MiB all the time (chunks, compressed
blobs, packs) from several threads. glibc raises its mmap threshold dynamically after such
buffers are freed, so later ones come from the per-thread heaps, which fragment and are not
given back: measured on the benchmark, a backup's peak RSS grew from 130 MiB (1 GiB of data)
to 200 MiB (4 GiB).

* :func:`tune_malloc` (once per process, when a :class:`~vaults.store.Store` is created)
  limits malloc to 2 arenas;
* :func:`trim` (after each pack a backup writes) hands the free pages
  of every arena back to the system (``malloc_trim``).

A fixed 256 KiB mmap threshold flattens it too, but costs 1.5-2x in backup and restore speed
(a fresh mapping, page faults and a TLB shootdown for every chunk buffer): not used.
``STRONGROOM_MALLOC_TUNE=0`` leaves malloc alone. Everything here is a no-op off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
import time

M_ARENA_MAX = -8
_libc = None
_tuned = False
_last_trim = 0.0
_trim_lock = threading.Lock()


def _lib():
    global _libc
    if _libc is None:
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            lib.mallopt.restype = ctypes.c_int
            lib.malloc_trim.argtypes = [ctypes.c_size_t]
            lib.malloc_trim.restype = ctypes.c_int
            _libc = lib
        except (OSError, AttributeError):
            _libc = False
    return _libc


def enabled() -> bool:
    return os.environ.get("STRONGROOM_MALLOC_TUNE", "1") != "0"


def tune_malloc() -> bool:
    """Limit glibc malloc to 2 arenas (once per process). Returns True if applied."""
    global _tuned
    if _tuned or not enabled() or os.environ.get("MALLOC_ARENA_MAX"):
        return _tuned
    lib = _lib()
    if lib:
        _tuned = bool(lib.mallopt(M_ARENA_MAX, 2))
    return _tuned


def trim(min_interval: float = 0.0) -> None:
    """Give free heap pages back to the system (at most every ``min_interval`` seconds if given)."""
    global _last_trim
    if not enabled():
        return
    lib = _lib()
    if not lib:
        return
    now = time.monotonic()
    with _trim_lock:
        if now - _last_trim < min_interval:
            return
        _last_trim = now
    lib.malloc_trim(0)
