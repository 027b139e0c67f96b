"""The one clock. Every time-dependent rule (grants, locks, schedules, purges) asks it.

In lab mode a trainer can move it forward; the offset lives in the database so web, worker and beat
agree. It is cached for a second per process to keep pages cheap.
"""

import datetime as dt
import threading
import time

from django.utils import timezone

_cache_lock = threading.Lock()
_cached_offset: tuple[float, int] | None = None  # (read at monotonic time, offset seconds)
CACHE_SECONDS = 1.0


def offset_seconds() -> int:
    global _cached_offset
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
