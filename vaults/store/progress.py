"""Progress reports and cancel checks shared by every long store operation.

A caller passes ``progress`` (a callable taking :class:`Progress`) and ``cancel`` (an Event or
a callable returning True to stop); backup, restore, verify, garbage collection and
replication report through :class:`Throttle` and stop through :func:`check_cancel`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Optional

from .errors import Cancelled


@dataclasses.dataclass
class Progress:
    """Passed to progress callbacks; ``bytes_total``/``items_total`` are None when unknown."""

    phase: str
    bytes_done: int = 0
    items_done: int = 0
    bytes_total: Optional[int] = None
    items_total: Optional[int] = None
    current: str = ""


class Throttle:
    """Counts progress and calls ``cb`` with a copy at most every ``interval`` seconds."""

    def __init__(self, cb, phase, interval=0.2):
        self.cb = cb
        self.p = Progress(phase)
        self.interval = interval
        self.last = 0.0

    def update(self, nbytes=0, items=0, current=None, force=False):
        self.p.bytes_done += nbytes
        self.p.items_done += items
        if current is not None:
            self.p.current = current
        if self.cb is None:
            return
        now = time.monotonic()
        if force or now - self.last >= self.interval:
            self.last = now
            self.cb(dataclasses.replace(self.p))


def check_cancel(cancel) -> None:
    """Raise :class:`Cancelled` when ``cancel`` (an Event or a callable, or None) says stop."""
    if cancel is None:
        return
    if (cancel.is_set() if hasattr(cancel, "is_set") else cancel()):
        raise Cancelled("operation cancelled")
