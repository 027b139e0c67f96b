"""Verifying recovery points: re-read and authenticate every chunk they need.

The chunk references of the manifests go into a temporary on-disk SQLite table (memory stays
flat), each chunk is located in the index, and every pack holding one is read once, checked
against its BLAKE3 name and its trailer, and every needed chunk in it decoded and checked
against its id. Damage is reported by item name, never raised.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import sqlite3
import tempfile
import threading

import blake3

from .errors import IntegrityError, NotFound
from .index import read_index_file
from .manifest import chunk_refs, path_from_key, path_key
from .pack import decode_chunk, pack_object, read_trailer
from .progress import Throttle, check_cancel


@dataclasses.dataclass
class VerifyReport:
    """Result of :meth:`Store.verify`. ``ok`` is True when nothing is missing or corrupt."""

    snapshot_ids: list
    chunks_checked: int = 0
    bytes_checked: int = 0
    damaged_items: list = dataclasses.field(default_factory=list)  # "snapshot:path" names
    damaged_chunks: list = dataclasses.field(default_factory=list)
    missing_chunks: list = dataclasses.field(default_factory=list)
    errors: list = dataclasses.field(default_factory=list)  # human-readable, one per problem

    @property
    def ok(self) -> bool:
        return not (self.damaged_items or self.damaged_chunks or self.missing_chunks or self.errors)


def verify(store, snap_id, progress, cancel) -> VerifyReport:
    """Verify recovery point ``snap_id`` (every one when None); the caller holds the store's lock."""
    if snap_id is None:
        ids = [n.split("/", 1)[1] for n in store.backend.list("snapshots/")]
    else:
        ids = [snap_id]
    rep = VerifyReport(snapshot_ids=ids)
    prog = Throttle(progress, "verify")
    with _scratch_db(store.cache_dir) as db:
        _list_references(store, db, ids, rep, cancel)
        missing = _locate_chunks(store, db)
        bad = set(missing)
        rep.missing_chunks = [c.hex() for c in missing]
        _check_packs(store, db, rep, bad, prog, cancel)
        rep.damaged_chunks = sorted(c.hex() for c in bad if c not in missing)
        if bad:
            rep.damaged_items.extend(sorted(_items_using(db, bad)))
        rep.damaged_items = sorted(set(rep.damaged_items))
    prog.update(force=True)
    return rep


@contextlib.contextmanager
def _scratch_db(cache_dir):
    tmp = tempfile.NamedTemporaryFile(dir=cache_dir, suffix=".verify.sqlite", delete=False)
    tmp.close()
    db = sqlite3.connect(tmp.name)
    try:
        db.execute("CREATE TABLE refs (id BLOB, item BLOB)")
        db.execute("CREATE TABLE need (pack TEXT, off INTEGER, len INTEGER, id BLOB)")
        yield db
    finally:
        db.close()
        os.unlink(tmp.name)


def _list_references(store, db, ids, rep, cancel):
    """Table ``refs``: which item of which recovery point needs which chunk."""
    for sid in ids:
        item = None
        try:
            for rec in store.records(sid):
                check_cancel(cancel)
                if rec["t"] != "+":
                    item = f"{sid}:{rec['p']}"
                rows = [(bytes.fromhex(h), path_key(item)) for h in chunk_refs(rec)]
                db.executemany("INSERT INTO refs VALUES (?,?)", rows)
        except (IntegrityError, NotFound) as e:
            rep.errors.append(f"manifest of snapshot {sid} is damaged or missing: {e}")
            rep.damaged_items.append(f"{sid}:<manifest>")
    db.execute("CREATE INDEX refs_id ON refs(id)")


def _locate_chunks(store, db) -> list:
    """Table ``need``: where each referenced chunk is. Returns the chunks no index lists."""
    missing = []
    for (cid,) in db.execute("SELECT DISTINCT id FROM refs").fetchall():
        loc = store.index.locate(cid)
        if loc is None:
            missing.append(cid)
        else:
            db.execute("INSERT INTO need VALUES (?,?,?,?)", (loc[0], loc[1], loc[2], cid))
    return missing


def _check_packs(store, db, rep, bad, prog, cancel):
    """Check every needed pack in the worker pool (bounded fan-out: at most workers+1 packs in
    memory) and, once each, the index files listing them; damaged chunks go into ``bad``."""
    packs = [r[0] for r in db.execute("SELECT DISTINCT pack FROM need ORDER BY pack")]
    check = _PackCheck(store, db)
    idx_checked = set()
    futs = collections.deque()
    for pack in packs:
        check_cancel(cancel)
        futs.append((pack, store.pool.submit(check, pack)))
        idx = store.index.pack_index_file(pack)
        if idx and idx not in idx_checked:
            idx_checked.add(idx)
            try:
                read_index_file(store.backend, store.keys, idx)
            except (IntegrityError, NotFound) as e:
                rep.errors.append(f"index file {idx}: {e}")
        while len(futs) > store.workers:
            _collect(futs.popleft(), rep, bad, prog)
    while futs:
        _collect(futs.popleft(), rep, bad, prog)


class _PackCheck:
    """Checks one pack (called in a worker): its hash, its trailer and each needed chunk in it.
    Returns (problems, damaged chunk ids, (bytes checked, chunks checked))."""

    def __init__(self, store, db):
        self.store = store
        self.tls = threading.local()
        self.rows = collections.defaultdict(list)
        for pack, off, ln, cid in db.execute("SELECT pack, off, len, id FROM need ORDER BY pack, off"):
            self.rows[pack].append((off, ln, cid))

    def __call__(self, pack):
        keys = self.store.keys
        problems, badc, nbytes = [], [], 0
        rows = self.rows.pop(pack)
        try:
            data = self.store.backend.get(pack_object(pack))
        except NotFound:
            return [f"pack {pack} is missing"], [r[2] for r in rows], (0, 0)
        if blake3.blake3(data).hexdigest() != pack:
            problems.append(f"pack {pack} does not match its hash (damaged)")
        try:
            read_trailer(keys, data, pack)
        except IntegrityError as e:
            problems.append(str(e))
        mv = memoryview(data)
        for off, ln, cid in rows:
            try:
                if off + ln > len(data):
                    raise IntegrityError("truncated")
                decode_chunk(keys, cid, mv[off:off + ln], self.tls, check_id=True)
                nbytes += ln
            except IntegrityError:
                badc.append(cid)
        return problems, badc, (nbytes, len(rows))


def _collect(item, rep, bad, prog):
    pack, fut = item
    problems, badc, (nbytes, nchunks) = fut.result()
    rep.errors.extend(problems)
    bad.update(badc)
    rep.chunks_checked += nchunks
    rep.bytes_checked += nbytes
    prog.update(nbytes=nbytes, current=pack)


def _items_using(db, chunk_ids) -> set:
    """The items (``snapshot:path``) that need any of ``chunk_ids``."""
    q = "SELECT DISTINCT item FROM refs WHERE id IN (%s)"
    bl = list(chunk_ids)
    items = set()
    for i in range(0, len(bl), 500):
        part = bl[i:i + 500]
        items.update(path_from_key(r[0]) for r in db.execute(q % ",".join("?" * len(part)), part))
    return items
