"""The one clock. Every time-dependent rule (grants, locks, schedules, purges) asks it.

In lab mode a trainer can move it forward (in production it is real time, whatever was left in the
database); the offset lives in the database so web, worker and beat
agree. It is cached for a second per process to keep pages cheap. The base is Django's
``timezone.now()`` (so a test that travels in time with time-machine moves this clock too).

Moving the clock back ("Reset to real time") must never undo something that has ended: every
time-bound decision (a grant's end, a soft-deleted item's purge, a recovery point's expiry) is
*recorded* when it happens, and the rules read the record, not only the clock. Apps register a
*settler* (`register_settler`) that records what is due at a given moment; the lab-clock service runs
every settler at the lab time about to be left before it moves the clock back, so nothing that was
due while the clock was ahead escapes being recorded because a periodic task had not run yet.
"""

import datetime as dt
import threading
import time
from typing import Callable

from django.utils import timezone

_cache_lock = threading.Lock()
_cached_offset: tuple[float, int] | None = None  # (read at monotonic time, offset seconds)
CACHE_SECONDS = 1.0


def offset_seconds() -> int:
    """How far the lab clock is ahead of real time. Only in lab mode: a clock left ahead in a database that
    later serves in production counts for nothing there (nobody could move it back)."""
    global _cached_offset
    from django.conf import settings

    if not settings.STRONGROOM_LAB_MODE:
        return 0
    with _cache_lock:
        if _cached_offset and time.monotonic() - _cached_offset[0] < CACHE_SECONDS:
            return _cached_offset[1]
    from security.models import LabClock

    row = LabClock.objects.filter(pk=1).values_list("offset_seconds", flat=True).first()
    value = int(row or 0)
    with _cache_lock:
        _cached_offset = (time.monotonic(), value)
    return value


def forget_cached_offset() -> None:
    global _cached_offset
    with _cache_lock:
        _cached_offset = None


def now() -> dt.datetime:
    """The current time: real time, plus the lab offset when a trainer has moved the clock."""
    return timezone.now() + dt.timedelta(seconds=offset_seconds())


def is_real_time() -> bool:
    return offset_seconds() == 0


# --- settlers: record what is due before the clock moves back ---------------------------------

_settlers: dict[str, Callable[[dt.datetime], object]] = {}


def register_settler(name: str, fn: Callable[[dt.datetime], object]) -> None:
    """Register ``fn(now)``: records (idempotently) every time-bound decision due at ``now``."""
    _settlers[name] = fn


def settle(now: dt.datetime) -> dict:
    """Run every settler at ``now``; returns {settler name: what it reported}."""
    return {name: fn(now) for name, fn in sorted(_settlers.items())}
