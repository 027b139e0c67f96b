"""The activity log's hash chain: how an entry is written, sealed into the chain and checked.

An entry is written in two steps, so that no writer holds the chain while it does other work:

1. **Written**, inside the writer's transaction, *unsealed* (no place in the chain yet) but already
   authenticated: ``content_mac`` is a keyed BLAKE2b-256 (the key derived from STRONGROOM_MASTER_KEY, so that
   someone with rights on the database alone cannot forge one) over a canonical serialization of its content
   (JSON with sorted keys of every column in ``HASHED``, times as UTC ISO 8601 with microseconds), which
   includes a random ``uid`` (unique: a copied row is refused).
2. **Sealed** after the writer's transaction commits (``transaction.on_commit``), in a short transaction of
   its own that touches only the log: it locks the chain's head (`ActivityLogHead`, one row), gives every
   committed unsealed entry with a valid ``content_mac`` the next ``sequence``, links it to the previous
   entry (``previous_hash``) and stores ``entry_hash``, a keyed hash of the sequence, the previous hash and
   the content MAC. The head is never held while a writer holds other rows, so the chain cannot take part
   in a deadlock; a rolled-back transaction takes its unsealed entries with it.

An entry whose writer died between its commit and its seal is sealed by the next one (any writer, or the
hourly check). The PostgreSQL trigger lets an unsealed row get its place once, and nothing else.

`walk` checks the chain in sequence order, streaming, and names the first break: an entry **edited** (its
content no longer matches its MAC, or its place no longer matches its hash), **deleted** (a gap in the
sequence, a link to an entry that is gone, or the newest entries missing from what the head remembers) or
**inserted** (an entry the chain skips over, one the head never recorded, or an unsealed row whose MAC is
not Strongroom's). Unsealed rows with a valid MAC are waiting for their seal, not a break.
"""

from __future__ import annotations

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
FORMAT = 2  # bumped if the serialization ever changes (1: one hash over content and place, never released)
EDITED, DELETED, INSERTED = "edited", "deleted", "inserted"

# The columns an entry's content MAC covers, in the order `walk` reads them (values_list).
HASHED = ("uid", "timestamp", "recorded_at", "principal_ref", "principal_name", "actor_ref", "actor_name", "caller",
          "operation", "operation_name", "scope", "status", "sub_status", "level", "correlation_id", "message",
          "details")
COLUMNS = ("sequence", "previous_hash", "entry_hash", "content_mac") + HASHED


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


def canonical(values: dict) -> bytes:
    """The bytes an entry's content MAC covers: JSON with sorted keys of its content."""
    doc = {name: values[name] for name in HASHED}
    doc["uid"] = str(doc["uid"])
    doc["timestamp"] = _time(doc["timestamp"])
    doc["recorded_at"] = _time(doc["recorded_at"])
    doc["correlation_id"] = str(doc["correlation_id"])
    doc["details"] = normalize_details(doc["details"] or {})
    doc["format"] = FORMAT
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_mac(values: dict, key: bytes | None = None) -> str:
    return hashlib.blake2b(canonical(values), digest_size=32, key=key or _key(), person=b"strongroom-entry").hexdigest()


def link_hash(sequence: int, previous_hash: str, mac: str, key: bytes | None = None) -> str:
    """An entry's place in the chain: its sequence, the previous entry's hash and its content MAC."""
    data = f"{FORMAT}|{sequence}|{previous_hash}|{mac}".encode()
    return hashlib.blake2b(data, digest_size=32, key=key or _key(), person=b"strongroom-log").hexdigest()


def compute_hash(sequence: int, previous_hash: str, values: dict, key: bytes | None = None) -> str:
    """The entry hash of ``values`` at ``sequence`` after ``previous_hash`` (content MAC and link in one)."""
    key = key or _key()
    return link_hash(sequence, previous_hash, content_mac(values, key), key)


# --- writing and sealing ------------------------------------------------------------------------------------


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


def append(**content):
    """Write an entry (``content``: every column of ``HASHED`` but ``uid``) and return it, unsealed: it is
    sealed into the chain once the caller's transaction commits (at once outside a transaction)."""
    from security.models import ActivityLogEntry

    content["uid"] = uuid.uuid4()
    content["timestamp"] = utc(content["timestamp"])
    content["recorded_at"] = utc(content["recorded_at"])
    content["details"] = normalize_details(content["details"])
    content["correlation_id"] = uuid.UUID(str(content["correlation_id"]))
    entry = ActivityLogEntry(sequence=None, previous_hash="", entry_hash="", content_mac=content_mac(content),
                             **content)
    if not transaction.get_connection().in_atomic_block:
        # Nothing else is held: write and seal in one transaction (one commit instead of two).
        with transaction.atomic():
            entry.save(force_insert=True)
            _seal(written=entry)
        return entry
    entry.save(force_insert=True)
    _seal_after_commit()
    return entry


def _seal_after_commit() -> None:
    """Once per transaction: seal when it commits (Django runs the callback at once outside a transaction)."""
    connection = transaction.get_connection()
    if connection.in_atomic_block and any(item[1] is _seal_committed for item in connection.run_on_commit):
        return
    transaction.on_commit(_seal_committed, robust=True)


def _seal_committed() -> None:
    try:
        seal_pending()
    except Exception:  # the entries stay unsealed and valid: the next writer or the hourly check seals them
        logger.exception("Could not seal the activity log's newest entries; the next append will.")


def seal_pending() -> int:
    """Give every unsealed entry this transaction can see, whose content MAC is Strongroom's, its place in the
    chain, oldest first; return how many. An unsealed row with a wrong MAC is left where it is (`walk`
    reports it as inserted). Called outside any other transaction (after a commit), so the head is held only
    for this."""
    with transaction.atomic():
        connection = transaction.get_connection()
        if connection.vendor == "postgresql":
            # The entries are durable already and signed; a seal lost in a crash is made again by the next
            # one, so its commit need not wait for the disk.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        return _seal()


def _seal(written=None) -> int:
    """Seal what is waiting, in the caller's transaction (which must hold nothing but the log). ``written``:
    an entry this transaction just wrote, which gets its place on the object too."""
    from security.models import ActivityLogEntry, ActivityLogHead

    head = _lock_head()
    waiting = list(ActivityLogEntry._base_manager.filter(sequence__isnull=True).order_by("id")
                   .values_list("id", "content_mac", *HASHED))
    if not waiting:
        return 0
    key = _key()
    sequence, previous = head.sequence, head.entry_hash
    sealed = []  # (sequence, previous hash, entry hash, id), as the UPDATE takes them
    for row in waiting:
        entry_id, mac = row[0], row[1]
        # This transaction's own entry was signed a moment ago, out of anyone else's reach.
        if not (written is not None and entry_id == written.pk) and content_mac(dict(zip(HASHED, row[2:])), key) != mac:
            logger.error("Activity log row id %s has no valid MAC: it was not written by Strongroom and is left "
                         "out of the chain.", entry_id)
            continue
        sequence += 1
        link = link_hash(sequence, previous, mac, key)
        sealed.append((sequence, previous, link, entry_id))
        if written is not None and entry_id == written.pk:
            written.sequence, written.previous_hash, written.entry_hash = sequence, previous, link
        previous = link
    if sealed:
        # The only UPDATE the table takes: an unsealed row gets its place, nothing else (the trigger checks).
        table = ActivityLogEntry._meta.db_table
        with transaction.get_connection().cursor() as cursor:
            cursor.executemany(f"UPDATE {table} SET sequence = %s, previous_hash = %s, entry_hash = %s "
                               "WHERE id = %s AND sequence IS NULL", sealed)
        ActivityLogHead.objects.filter(pk=1).update(sequence=sequence, entry_hash=previous)
    return len(sealed)


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


def _forged_unsealed(key: bytes) -> Break | None:
    """An unsealed row whose content MAC is not Strongroom's: added behind its back. (Unsealed rows with a valid
    MAC are entries committed a moment ago, waiting for their seal.)"""
    from security.models import ActivityLogEntry

    rows = (ActivityLogEntry.objects.filter(sequence__isnull=True).order_by("id")
            .values_list("id", "content_mac", *HASHED))
    for row in rows.iterator(chunk_size=1000):
        if content_mac(dict(zip(HASHED, row[2:])), key) != row[1]:
            return Break(INSERTED, None, f"An entry (id {row[0]}) with no place in the chain was added without "
                         "going through Strongroom: its content is not signed with the installation's key.",
                         entry_id=row[0])
    return None


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
        found = state.finish() or _forged_unsealed(state.key)
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
        sequence, previous_hash, entry_hash, mac = row[0], row[1], row[2], row[3]
        self.count += 1
        if sequence > self.expected:
            first = self.expected
            gap = f"Entry #{first} is" if sequence == first + 1 else f"Entries #{first}–#{sequence - 1} are"
            jump = f"goes from #{first - 1} to #{sequence}" if first > 1 else f"starts at #{sequence}"
            return Break(DELETED, first, f"{gap} missing: the chain {jump}.")
        if sequence < self.expected:
            return Break(INSERTED, sequence, f"Entry #{sequence} appears twice.")
        linked = previous_hash == self.previous
        sealed = (content_mac(dict(zip(HASHED, row[4:])), self.key) == mac
                  and link_hash(sequence, previous_hash, mac, self.key) == entry_hash)
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
