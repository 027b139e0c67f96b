"""Point-in-time reads of volume images.

A volume backup must be one consistent image even while something writes to the volume. Two ways:

* **reflink**: where the file system can share extents (XFS, Btrfs, bcachefs, ...; ``FICLONE``),
  the image is cloned in an instant and the backup reads the clone, while writers carry on. The
  clone is unlinked as soon as it exists and read through its open descriptor, so a killed backup
  leaves nothing behind (the kernel frees it with the last descriptor).
* **hold**: elsewhere (ext4, tmpfs) the backup holds a *shared* ``flock`` on the image while it
  reads it; writers that cooperate take the *exclusive* lock with :func:`hold_for_writing`, so
  their writes wait until the backup has read the image (and a write in progress delays the
  backup's start until it is complete).

``flock`` locks belong to an open file description, so they work between processes and between
threads of one process alike; they vanish with the process, never staying stale.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
import uuid
from typing import Callable, Optional

FICLONE = 0x40049409  # _IOW(0x94, 9, int)
REFLINK = "reflink"
HOLD = "hold"
LIVE = "live"
WAIT_TELL_EVERY = 5.0  # seconds between on_wait calls while a writer waits (its heartbeat)
_UNSUPPORTED = (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.EACCES,
                errno.EISDIR, errno.ETXTBSY)


def reflink_clone(src_fd: int, directory: str) -> Optional[int]:
    """A read-only descriptor of an instant copy of ``src_fd`` made in ``directory`` (the same file
    system), already unlinked; None when the file system cannot clone."""
    name = os.path.join(directory, f".strongroom-pit-{uuid.uuid4().hex}")
    try:
        dst = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT):
            return None  # cannot write next to the image: hold it instead
        raise
    try:
        os.unlink(name)
        fcntl.ioctl(dst, FICLONE, src_fd)
    except OSError as e:
        os.close(dst)
        if e.errno in _UNSUPPORTED:
            return None
        raise
    return dst


def _flock(fd: int, kind: int, wait: Optional[float], on_wait: Optional[Callable[[], None]], what: str) -> None:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    if on_wait is not None:
        on_wait()
    now = time.monotonic()
    deadline = None if wait is None else now + wait
    told = now
    delay = 0.01
    while True:
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise TimeoutError(f"{what} stayed busy for {wait:.0f} s") from None
            if on_wait is not None and now - told >= WAIT_TELL_EVERY:
                told = now
                on_wait()
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


@contextlib.contextmanager
def hold_for_reading(fd: int, *, wait: Optional[float] = None):
    """Hold the image shared (a backup reading it): cooperating writers wait meanwhile."""
    _flock(fd, fcntl.LOCK_SH, wait, None, "the volume (a write is in progress)")
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


@contextlib.contextmanager
def hold_for_writing(fd: int, *, wait: Optional[float] = None, on_wait: Optional[Callable[[], None]] = None):
    """Hold the image exclusively for a write: waits while a backup reads it (``on_wait`` is called
    when it starts waiting and every few seconds while it waits; ``TimeoutError`` after ``wait``
    seconds, with nothing written)."""
    _flock(fd, fcntl.LOCK_EX, wait, on_wait, "the volume (a backup is reading it)")
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def is_held(fd: int) -> bool:
    """Whether someone (a backup) holds the image: a write would have to wait now."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False
