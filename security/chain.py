"""The activity log's hash chain: how an entry is sealed, appended and checked.

Each entry's ``entry_hash`` is a keyed BLAKE2b-256 (the key derived from STRONGROOM_MASTER_KEY, so that
someone with rights on the database alone cannot forge a link) over a canonical serialization of its
content: JSON with sorted keys of every column below, times as UTC ISO 8601 with microseconds, its
``sequence`` and the previous entry's hash. Editing, deleting or inserting a row breaks the chain there.

Appending is serialized by a lock on the chain's head (`ActivityLogHead`, one row, SELECT … FOR UPDATE
on PostgreSQL; SQLite's IMMEDIATE transactions serialize writers already) held until the writer's
transaction ends, so concurrent writers (web and workers) never fork the chain. `guarded` writes its entry
last, just before its commit, so it holds the head for a moment. Operations nested in an outer guarded
block (a lab's sandbox is made of dozens, for seconds) would hold it from their entry to the outer
commit: there entries are inserted *unsealed* (no sequence yet) and the outer block seals them in order
when it ends (`begin_deferring`, `end_deferring`); a rolled-back savepoint takes its unsealed entries
with it. The trigger lets an unsealed row get its place once and nothing else; a committed unsealed row
is an entry added behind Strongroom's back.

`walk` checks the chain in sequence order, streaming, and names the first break: an entry **edited**
(its hash no longer matches its content), **deleted** (a gap in the sequence, a link to an entry that is
gone, or the newest entries missing from what the head remembers) or **inserted** (an entry the chain
skips over, or one the head never recorded).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import hashlib
import json
import logging
import math
import time
import uuid
from dataclasses import dataclass

from django.db import transaction

logger = logging.getLogger(__name__)

GENESIS = "0" * 64  # the previous hash of entry #1
FORMAT = 1  # bumped if the serialization ever changes (then existing entries keep theirs)
EDITED, DELETED, INSERTED = "edited", "deleted", "inserted"

# The columns a hash covers, in the order `walk` reads them (values_list).
HASHED = ("timestamp", "recorded_at", "principal_ref", "principal_name", "actor_ref", "actor_name", "caller",
          "operation", "operation_name", "scope", "status", "sub_status", "level", "correlation_id", "message",
          "details")
COLUMNS = ("sequence", "previous_hash", "entry_hash") + HASHED


def _key() -> bytes:
    from security.crypto import derive_key

    return derive_key("strongroom activity log chain v1")


# --- the canonical form ----------------------------------------------------------------------------------


_UTC = dt.timezone.utc


def utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError("Activity log times must be aware (USE_TZ).")
    return moment if moment.tzinfo is _UTC else moment.astimezone(_UTC)


def _time(moment: dt.datetime) -> str:
    """2026-12-04T16:33:06.123456+00:00: UTC, always with microseconds."""
    return utc(moment).isoformat(timespec="microseconds")


def normalize_details(value):
    """Details as the database gives them back: JSON types only (tuples become lists, keys text), an integral
    float too large for plain digits as the integer PostgreSQL's jsonb returns for it, NaN and infinities
    (which no JSON column takes) as text."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict or isinstance(value, dict):
        return {k if type(k) is str else str(k): normalize_details(v) for k, v in value.items()}
    if kind is list or isinstance(value, (list, tuple)):
        return [normalize_details(v) for v in value]
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) >= 1e16:
            return int(value)
    return value


def canonical(sequence: int, previous_hash: str, values: dict) -> bytes:
    """The bytes an entry's hash covers: JSON with sorted keys of its content, its sequence, the previous hash."""
    doc = {name: values[name] for name in HASHED}
    doc["timestamp"] = _time(doc["timestamp"])
    doc["recorded_at"] = _time(doc["recorded_at"])
    doc["correlation_id"] = str(doc["correlation_id"])
    doc["details"] = normalize_details(doc["details"] or {})
    doc["format"], doc["sequence"], doc["previous_hash"] = FORMAT, sequence, previous_hash
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compute_hash(sequence: int, previous_hash: str, values: dict, key: bytes | None = None) -> str:
    data = canonical(sequence, previous_hash, values)
    return hashlib.blake2b(data, digest_size=32, key=key or _key(), person=b"strongroom-log").hexdigest()


# --- appending -------------------------------------------------------------------------------------------


def _lock_head():
    """The head row, locked until the transaction ends (made from the newest entry when it is missing:
    after a test's flush, or if someone deleted it; `walk` reports the latter while nothing is appended)."""
    from security.models import ActivityLogEntry, ActivityLogHead

    head = ActivityLogHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        newest = (ActivityLogEntry.objects.filter(sequence__isnull=False).order_by("-sequence")
                  .values_list("sequence", "entry_hash").first())
        if newest is not None:
            logger.warning("The activity log's head was missing: made again from entry #%s.", newest[0])
        sequence, entry_hash = newest or (0, GENESIS)
        ActivityLogHead.objects.bulk_create([ActivityLogHead(pk=1, sequence=sequence, entry_hash=entry_hash)],
                                            ignore_conflicts=True)
        head = ActivityLogHead.objects.select_for_update().get(pk=1)
    return head


# Entries written inside an outer guarded block, waiting to be sealed at its end (None: not in one).
_pending: contextvars.ContextVar[list | None] = contextvars.ContextVar("activity_log_pending", default=None)


def begin_deferring():
    """Called by the outermost `guarded` block: entries written inside it (nested operations, whose work goes
    on after their entry) are inserted unsealed, and sealed by `end_deferring` when the block ends, so the
    head is held only from then to the commit. Returns a token, or None when a block is already deferring."""
    if _pending.get() is not None:
        return None
    return _pending.set([])


def end_deferring(token, *, seal: bool) -> None:
    """End the block's deferral: seal its surviving entries in order (``seal``; inside its transaction), or
    forget them (its transaction rolled back, and they with it)."""
    pending = _pending.get()
    _pending.reset(token)
    if seal and pending:
        with transaction.atomic(savepoint=False):
            _seal(pending, _lock_head())


def _seal(entries: list, head) -> None:
    """Chain entries inserted unsealed (those a rolled-back savepoint took away are skipped)."""
    from security.models import ActivityLogEntry, ActivityLogHead

    alive = set(ActivityLogEntry.objects.filter(pk__in=[e.pk for e in entries], sequence__isnull=True)
                .values_list("pk", flat=True))
    sealed = []
    sequence, previous = head.sequence, head.entry_hash
    for entry in sorted((e for e in entries if e.pk in alive), key=lambda e: e.pk):
        sequence += 1
        entry.sequence, entry.previous_hash = sequence, previous
        entry.entry_hash = previous = compute_hash(sequence, entry.previous_hash, _values(entry))
        sealed.append(entry)
    if sealed:
        # The only UPDATE the table takes: an unsealed row gets its place, nothing else (the trigger checks).
        ActivityLogEntry._base_manager.bulk_update(sealed, ["sequence", "previous_hash", "entry_hash"])
        ActivityLogHead.objects.filter(pk=1).update(sequence=sequence, entry_hash=previous)


def _values(entry) -> dict:
    return {name: getattr(entry, name) for name in HASHED}


def append(**content):
    """Write the next entry of the chain (``content``: every column of ``HASHED``) and return it: at once,
    or unsealed inside a deferring block (sealed at its end)."""
    from security.models import ActivityLogEntry, ActivityLogHead

    content["timestamp"] = utc(content["timestamp"])
    content["recorded_at"] = utc(content["recorded_at"])
    content["details"] = normalize_details(content["details"])
    content["correlation_id"] = uuid.UUID(str(content["correlation_id"]))
    pending = _pending.get()
    if pending is not None and transaction.get_connection().in_atomic_block:
        entry = ActivityLogEntry(sequence=None, previous_hash="", entry_hash="", **content)
        entry.save(force_insert=True)
        pending.append(entry)
        return entry
    with transaction.atomic(savepoint=False):
        head = _lock_head()
        entry = ActivityLogEntry(sequence=head.sequence + 1, previous_hash=head.entry_hash, **content)
        entry.entry_hash = compute_hash(entry.sequence, entry.previous_hash, content)
        # The head moves first: a post_save receiver that records in turn finds it already advanced.
        ActivityLogHead.objects.filter(pk=1).update(sequence=entry.sequence, entry_hash=entry.entry_hash)
        entry.save(force_insert=True)
    return entry


# --- checking --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Break:
    kind: str  # EDITED, DELETED or INSERTED
    sequence: int | None  # the entry where the chain breaks (None: a row with no place in it)
    detail: str
    entry_id: int | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}#{self.sequence}" if self.sequence is not None else f"{self.kind}#id{self.entry_id}"


@dataclass(frozen=True)
class Walk:
    entries: int  # entries read
    last_sequence: int
    last_hash: str
    first_break: Break | None
    seconds: float

    @property
    def clean(self) -> bool:
        return self.first_break is None


def _head():
    from security.models import ActivityLogHead

    return ActivityLogHead.objects.filter(pk=1).values_list("sequence", "entry_hash").first()


def _rows(chunk_size: int):
    from security.models import ActivityLogEntry

    rows = ActivityLogEntry.objects.filter(sequence__isnull=False).order_by("sequence").values_list(*COLUMNS)
    return rows.iterator(chunk_size=chunk_size)


def _unsealed() -> Break | None:
    """A committed row with no place in the chain: Strongroom seals its rows before they commit."""
    from security.models import ActivityLogEntry

    found = ActivityLogEntry.objects.filter(sequence__isnull=True).order_by("id").values_list("id", flat=True).first()
    if found is None:
        return None
    return Break(INSERTED, None, f"An entry (id {found}) with no place in the chain was added without going "
                 "through Strongroom.", entry_id=found)


def walk(checkpoint: tuple[int, str] | None = None, *, chunk_size: int = 5000) -> Walk:
    """Check the whole chain, streaming in sequence order, and name its first break (None: unbroken).

    ``checkpoint``: (sequence, hash) of the last entry an earlier clean check covered; the entry must still
    be there, unchanged (so cutting off the newest entries and the head together is found too)."""
    started = time.monotonic()
    head = _head()
    state = _State(head, checkpoint)
    found = None
    rows = _rows(chunk_size)
    current = next(rows, None)
    while current is not None and found is None:
        following = next(rows, None)
        found = state.step(current, following)
        current = following
    if found is None:
        found = state.finish() or _unsealed()
    return Walk(state.count, state.last_sequence, state.previous, found, time.monotonic() - started)


class _State:
    """The walk's position: the sequence expected next, the hashes of the last two good entries."""

    def __init__(self, head, checkpoint):
        self.head = head  # (sequence, hash) read before the walk, or None
        self.checkpoint = checkpoint if checkpoint and checkpoint[0] > 0 else None
        self.expected, self.previous, self.before_previous = 1, GENESIS, None
        self.count, self.last_sequence = 0, 0
        self.key = _key()

    def step(self, row, following) -> Break | None:
        sequence, previous_hash, entry_hash = row[0], row[1], row[2]
        self.count += 1
        if sequence > self.expected:
            first = self.expected
            gap = f"Entry #{first} is" if sequence == first + 1 else f"Entries #{first}–#{sequence - 1} are"
            jump = f"goes from #{first - 1} to #{sequence}" if first > 1 else f"starts at #{sequence}"
            return Break(DELETED, first, f"{gap} missing: the chain {jump}.")
        if sequence < self.expected:
            return Break(INSERTED, sequence, f"Entry #{sequence} appears twice.")
        linked = previous_hash == self.previous
        sealed = compute_hash(sequence, previous_hash, dict(zip(HASHED, row[3:])), self.key) == entry_hash
        if not (linked and sealed):
            return self._classify(row, following, linked)
        for mark, what in ((self.head, "the chain's head"), (self.checkpoint, "the last clean check")):
            if mark is not None and mark[0] == sequence and mark[1] != entry_hash:
                return Break(EDITED, sequence, f"Entry #{sequence} is not the one {what} recorded: it was "
                             "replaced by another with a hash of its own.")
        self.before_previous, self.previous = self.previous, entry_hash
        self.expected, self.last_sequence = sequence + 1, sequence
        return None

    def _classify(self, row, following, linked: bool) -> Break:
        sequence = row[0]
        fresh = _head()  # entries appended since the walk began are legitimate; ones past the head are not
        if fresh is not None and sequence > fresh[0]:
            return Break(INSERTED, sequence, f"Entry #{sequence} was added after the chain's newest entry "
                         f"(#{fresh[0]}) without going through Strongroom.")
        if following is not None and following[1] == self.previous:
            return Break(INSERTED, sequence, f"Entry #{sequence} was inserted: the entry after it links to "
                         f"#{sequence - 1}, skipping it.")
        if linked:
            return Break(EDITED, sequence, f"Entry #{sequence} was changed after it was written: its content no "
                         "longer matches its hash.")
        if self.before_previous is not None and row[1] == self.before_previous:
            return Break(INSERTED, sequence - 1, f"Entry #{sequence - 1} was inserted: entry #{sequence} links to "
                         f"#{sequence - 2}, skipping it.")
        return Break(DELETED, sequence, f"The entry before #{sequence} is not the one it was chained to: an entry "
                     "was deleted there and the rest renumbered (or its link was changed).")

    def finish(self) -> Break | None:
        if self.checkpoint is not None and self.last_sequence < self.checkpoint[0]:
            return self._cut(self.checkpoint[0], "an earlier check verified")
        if self.head is None:
            if self.count:
                return Break(DELETED, self.last_sequence + 1, "The chain's head record was deleted: the newest "
                             "entries may have been removed with it.")
            return None
        if self.last_sequence < self.head[0]:
            return self._cut(self.head[0], "the chain's head records")
        fresh = _head()
        if fresh is not None and self.last_sequence > fresh[0]:
            return Break(INSERTED, fresh[0] + 1, f"Entries after #{fresh[0]}, the newest the chain's head "
                         "records, were added without going through Strongroom.")
        return None

    def _cut(self, newest: int, who: str) -> Break:
        first = self.last_sequence + 1
        gap = f"The newest entry (#{first}) is" if first == newest else f"The newest entries (#{first}–#{newest}) are"
        return Break(DELETED, first, f"{gap} missing: {who} #{newest}.")
