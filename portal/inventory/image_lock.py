"""The writers' half of the volume-image lock.

A volume backup reads one consistent image: where the file system cannot clone the image, the
backup engine (``vaults.store.pit``, which the inventory may not import) holds a *shared* ``flock``
on the image file while it reads it. Every writer of a volume image takes the *exclusive* lock here
first, so its writes wait until the backup has read the image. The protocol is the kernel's flock on
the image file itself: locks belong to the open file description and vanish with the process.

Why this stands here and again in ``vaults.store.pit`` (issue 15 asked): no module may serve both. The
engine imports nothing of the apps (the contract keeps it free of Django and of every app, so it stays
usable and benchmarked alone), and portal sits below the vaults app (the floors run down only); the lowest
floor, ``security``, is an app too. What the two halves share is the kernel's protocol, not Python
code: the few lines of ``hold_for_writing`` and ``is_held`` are kept identical on purpose (the
duplicates report shows the pair; it stays), and ``tests/browser/test_point_in_time_pages.py`` holds the engine's reader while the
volume page asks this module whether a write would wait.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from typing import Callable

TELL_EVERY = 5.0  # seconds between on_wait calls while a writer waits (its heartbeat)


@contextlib.contextmanager
def hold_for_writing(fd: int, *, wait: float | None = None, on_wait: Callable[[], None] | None = None):
    """Hold the image exclusively for a write. Waits while a backup reads it (``on_wait`` is called
    when the wait starts and every few seconds after); ``TimeoutError`` after ``wait`` seconds, with
    nothing written."""
    started = told = None
    delay = 0.01
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            now = time.monotonic()
            started = started or now
            if wait is not None and now - started >= wait:
                raise TimeoutError(f"the volume (a backup is reading it) stayed busy for {wait:.0f} s") from None
            if on_wait is not None and (told is None or now - told >= TELL_EVERY):
                told = now
                on_wait()
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def is_held(fd: int) -> bool:
    """Whether a backup (or another writer) holds the image now: a write would have to wait."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False
