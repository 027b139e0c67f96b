"""Garbage collection: reclaim packs no recovery point needs any more.

Runs under the store's **exclusive** lock (no backup, restore, verify or replication runs
meanwhile; they wait), in these steps, each safe to interrupt at any point (a SIGKILL leaves a
store where every recovery point verifies, and a stale lock the next run breaks):

1. **Mark**: read every manifest and put the chunk ids they need into an on-disk SQLite table
   (memory stays flat). A manifest that cannot be read stops the run: garbage collection
   never guesses what a damaged recovery point needs. So does a damaged index file.
2. **Plan**: each needed chunk is assigned to one pack holding it (duplicates elsewhere count as
   dead; a pack that stays anyway is preferred). A pack with no assigned chunk is deleted; one whose live bytes are below
   ``repack_threshold`` of its chunk bytes is repacked. Never touched: packs under retention,
   packs listed by an index file under retention (the index file must stay truthful), and
   anything modified inside the **safety window** (``safety_window`` before the start, and no
   later than the start of any writer whose stale lock this run broke: such a writer may still
   be finishing).
3. **Repack**: the live chunks of mostly-dead packs are read, authenticated and re-hashed, and
   copied (still encrypted, unchanged) into new packs.
4. **Index**: new index files list the new packs and every surviving pack of the index files
   being replaced; they are written *before* the old index files are deleted, which happens
   *before* the packs are deleted. An interruption leaves either duplicate index entries
   (harmless) or unindexed packs (leftovers the next run removes), never an index entry a
   recovery point needs pointing at a deleted pack.
5. **Leftovers**: packs no index file lists (a crashed backup's), temp files and abandoned
   multipart uploads older than the window; stale locks were broken when the lock was taken.

The report says what was freed and what was kept and why.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from typing import Optional

import blake3

from . import lock as locks
from .backend import utcnow
from .errors import IntegrityError, NotFound, RetentionError, StoreError
from .index import write_index_file
from .manifest import chunk_refs
from .pack import PackBuilder, decode_chunk, pack_object
from .progress import Throttle, check_cancel

DEFAULT_SAFETY_WINDOW = dt.timedelta(hours=1)
DEFAULT_REPACK_THRESHOLD = 0.5
INDEX_PACKS = 64  # packs per index file written by garbage collection


@dataclasses.dataclass
class GCReport:
    """What a garbage collection did (or, with ``dry_run``, would do)."""

    dry_run: bool = False
    snapshots: int = 0
    live_chunks: int = 0
    packs_before: int = 0
    packs_deleted: int = 0
    packs_repacked: int = 0
    packs_written: int = 0
    index_files_deleted: int = 0
    index_files_written: int = 0
    leftover_packs_removed: int = 0
    incomplete_uploads_removed: int = 0
    locks_broken: list = dataclasses.field(default_factory=list)
    lock_waited: float = 0.0  # seconds spent waiting for running backups/restores to finish
    kept_retained: int = 0  # packs with dead data kept because they (or their index file) are retained
    kept_recent: int = 0  # packs with dead data kept because they are inside the safety window
    bytes_before: int = 0  # packs + index files
    bytes_deleted: int = 0
    bytes_written: int = 0
    bytes_after: int = 0
    seconds: float = 0.0
    errors: list = dataclasses.field(default_factory=list)
    warnings: list = dataclasses.field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return self.bytes_deleted - self.bytes_written

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["bytes_freed"] = self.bytes_freed
        return d

    def summary(self) -> str:
        verb = "would free" if self.dry_run else "freed"
        return (f"{verb} {self.bytes_freed / 2**20:.1f} MiB in {self.seconds:.1f}s: {self.packs_deleted} packs deleted, "
                f"{self.packs_repacked} repacked into {self.packs_written}, {self.index_files_deleted} index files "
                f"replaced by {self.index_files_written}, {self.leftover_packs_removed} leftover packs and "
                f"{self.incomplete_uploads_removed} incomplete uploads removed, {len(self.locks_broken)} stale locks "
                f"broken; kept {self.kept_retained} retained and {self.kept_recent} recent packs with dead data; "
                f"{self.snapshots} recovery points, {self.live_chunks} live chunks")


def collect(store, *, safety_window: dt.timedelta = DEFAULT_SAFETY_WINDOW,
            repack_threshold: float = DEFAULT_REPACK_THRESHOLD, dry_run: bool = False,
            wait: Optional[float] = None, owner: Optional[str] = None, progress=None, cancel=None) -> GCReport:
    t0 = time.monotonic()
    rep = GCReport(dry_run=dry_run)
    with store._op:
        tw = time.monotonic()
        lk = locks.acquire(store.backend, store.keys, locks.EXCLUSIVE,
                           owner=owner or store.owner or "garbage collection", ttl=store.lock_ttl,
                           wait=store.lock_wait if wait is None else wait)
        rep.lock_waited = time.monotonic() - tw
        try:
            rep.locks_broken = [b.describe() for b in lk.broken]
            run = _Run(store, lk, rep, safety_window, repack_threshold, dry_run,
                       Throttle(progress, "gc"), lambda: check_cancel(cancel))
            run.go()
        finally:
            lk.release()
    rep.seconds = time.monotonic() - t0
    return rep


@dataclasses.dataclass
class _Plan:
    """What a run deletes, repacks and rewrites (pack names are BLAKE3 hex names)."""

    delete: set  # packs no recovery point needs
    repack: set  # mostly-dead packs: their live chunks move to new packs
    drop: set  # packs already gone: only their index entries remain
    idx_of: dict  # pack -> the index files listing it
    packs_of: dict  # index file -> the packs it lists
    objects: dict  # pack object name -> ObjectInfo
    idx_objects: dict  # index file -> ObjectInfo
    leftovers: list  # ObjectInfo of packs no index file lists, older than the window
    pid_of: dict  # pack -> its row id in the index cache


class _Run:
    def __init__(self, store, lk, rep, window, threshold, dry_run, prog, check_cancel):
        self.s = store
        self.b = store.backend
        self.lk = lk
        self.rep = rep
        self.threshold = float(threshold)
        self.dry_run = dry_run
        self.prog = prog
        self.check_cancel = check_cancel
        self.start = utcnow()
        cutoff = self.start - window
        for b in lk.broken:  # writers whose stale locks we broke may still be finishing
            if b.readable:
                cutoff = min(cutoff, b.created)
        self.cutoff = cutoff

    def checkpoint(self):
        self.check_cancel()
        self.lk.check()

    # -------------------------------------------------------------------------------------
    def go(self):
        s = self.s
        s.index.drop_dead_sessions()
        errors = []
        s.sync_index(errors)
        if errors:
            raise StoreError("garbage collection refused: " + "; ".join(errors) +
                             " (an unreadable index file could hide what a recovery point needs; run verify)")
        fd, self.tmp = tempfile.mkstemp(dir=s.cache_dir, suffix=".gc.sqlite")
        os.close(fd)
        db = s.index.db
        with s.index.lock:
            db.execute("ATTACH DATABASE ? AS gc", (self.tmp,))
        try:
            self._mark(db)
            plan = self._plan(db)
            if not self.dry_run:
                self._execute(db, plan)
        finally:
            with s.index.lock:
                try:
                    db.execute("DETACH DATABASE gc")
                except sqlite3.Error:
                    pass
            os.unlink(self.tmp)
        s.sync_index()

    # -- 1. mark ---------------------------------------------------------------------------
    def _mark(self, db):
        s, rep = self.s, self.rep
        with s.index.lock:
            db.execute("PRAGMA gc.synchronous=OFF")
            db.execute("CREATE TABLE gc.live (id BLOB PRIMARY KEY) WITHOUT ROWID")
        snaps = [n.split("/", 1)[1] for n in self.b.list("snapshots/")]
        for sid in snaps:
            self.checkpoint()
            rows = []
            try:
                for rec in s.records(sid):
                    rows.extend((bytes.fromhex(h),) for h in chunk_refs(rec))
                    if len(rows) >= 4096:
                        self._insert_live(db, rows)
                        rows = []
            except NotFound:
                continue  # deleted meanwhile: its chunks are dead anyway
            except IntegrityError as e:
                raise StoreError(f"garbage collection refused: recovery point {sid} cannot be read ({e}); "
                                 f"delete it or repair the store first") from None
            self._insert_live(db, rows)
            rep.snapshots += 1
            self.prog.update(items=1, current=f"mark {sid}")

    def _insert_live(self, db, rows):
        if rows:
            with self.s.index.lock:
                db.execute("BEGIN")
                db.executemany("INSERT OR IGNORE INTO gc.live VALUES (?)", rows)
                db.execute("COMMIT")

    # -- 2. plan ----------------------------------------------------------------------------
    def _plan(self, db) -> _Plan:
        stats, links, missing = self._assign_chunks(db)
        objects, idx_objects = self._inventory()
        idx_of: dict = {}
        packs_of: dict = {}
        for name, idx in links:
            idx_of.setdefault(name, set()).add(idx)
            packs_of.setdefault(idx, set()).add(name)
        delete, repack, drop, pid_of = self._classify_packs(stats, objects)
        self._keep_packs_of_retained_index_files(delete, repack, drop, idx_of)
        # with chunks missing, an unindexed pack may be what holds them: keep every one
        leftovers = [] if missing else self._leftovers(objects, idx_of)
        plan = _Plan(delete=delete, repack=repack, drop=drop, idx_of=idx_of, packs_of=packs_of, objects=objects,
                     idx_objects=idx_objects, leftovers=leftovers, pid_of=pid_of)
        if self.dry_run:
            self._report_dry_run(db, plan)
        return plan

    def _assign_chunks(self, db):
        """Assign each live chunk to one pack holding it; returns per-pack live statistics
        (pid, name, bytes, live bytes, live chunks), the (pack, index file) links and the number
        of live chunks no pack holds."""
        rep = self.rep
        with self.s.index.lock:
            # a chunk stored in several packs (concurrent writers, an interrupted repack) is
            # assigned to one: preferably a pack that stays anyway (mostly live counting every
            # copy), then by name, so the choice does not depend on this cache's row order
            db.execute("CREATE TABLE gc.pstat (pid INTEGER PRIMARY KEY, name TEXT, pref INTEGER)")
            db.execute("INSERT INTO gc.pstat SELECT p.pid, p.name, "
                       "SUM(CASE WHEN l.id IS NULL THEN 0 ELSE c.len END) >= ? * SUM(c.len) "
                       "FROM packs p JOIN chunks c ON c.pid=p.pid LEFT JOIN gc.live l ON l.id=c.id "
                       "WHERE p.sess IS NULL GROUP BY p.pid", (self.threshold,))
            db.execute("CREATE TABLE gc.assign (id BLOB PRIMARY KEY, pid INTEGER NOT NULL) WITHOUT ROWID")
            db.execute("INSERT INTO gc.assign SELECT id, pid FROM (SELECT c.id AS id, c.pid AS pid, ROW_NUMBER() "
                       "OVER (PARTITION BY c.id ORDER BY s.pref DESC, s.name) AS rn FROM chunks c "
                       "JOIN gc.pstat s ON s.pid=c.pid WHERE c.id IN (SELECT id FROM gc.live)) WHERE rn=1")
            db.execute("CREATE INDEX gc.assign_pid ON assign(pid)")
            rep.live_chunks = db.execute("SELECT COUNT(*) FROM gc.live").fetchone()[0]
            assigned = db.execute("SELECT COUNT(*) FROM gc.assign").fetchone()[0]
            stats = db.execute(
                "SELECT p.pid, p.name, SUM(c.len), SUM(CASE WHEN a.id IS NULL THEN 0 ELSE c.len END), "
                "COUNT(a.id) FROM packs p JOIN chunks c ON c.pid=p.pid "
                "LEFT JOIN gc.assign a ON a.id=c.id AND a.pid=c.pid WHERE p.sess IS NULL GROUP BY p.pid").fetchall()
            links = db.execute("SELECT p.name, x.idx FROM pack_idx x JOIN packs p ON p.pid=x.pid "
                               "WHERE p.sess IS NULL").fetchall()
        missing = rep.live_chunks - assigned
        if missing:
            rep.errors.append(f"{missing} chunk(s) that recovery points need are in no index (damage found "
                              f"before this run; run verify); unindexed packs are kept")
        return stats, links, missing

    def _inventory(self):
        """The pack and index objects in the store, by name (and the report's "before" figures)."""
        rep = self.rep
        objects = {i.name: i for i in self.b.list_info("packs/")}
        idx_objects = {i.name.split("/", 1)[1]: i for i in self.b.list_info("index/")}
        rep.packs_before = len(objects)
        rep.bytes_before = sum(i.size for i in objects.values()) + sum(i.size for i in idx_objects.values())
        return objects, idx_objects

    def _classify_packs(self, stats, objects):
        """Which indexed packs go (no live chunk), are repacked (mostly dead) or are only dropped
        from the index (already gone); packs inside the window or under retention stay."""
        rep, b = self.rep, self.b
        delete, repack, drop = set(), set(), set()
        pid_of = {}
        for pid, name, total, live_bytes, live_n in stats:
            pid_of[name] = pid
            obj = objects.get(pack_object(name))
            if obj is None:
                if live_n:
                    rep.errors.append(f"pack {name} holds chunks recovery points need but is missing")
                else:
                    drop.add(name)  # already gone: only its index entries remain to drop
                continue
            if live_n and live_bytes >= self.threshold * total:
                continue
            if obj.mtime > self.cutoff:
                rep.kept_recent += 1
                continue
            ret = b.get_retention(pack_object(name))
            if ret is not None and ret.active():
                rep.kept_retained += 1
                continue
            (repack if live_n else delete).add(name)
        return delete, repack, drop, pid_of

    def _keep_packs_of_retained_index_files(self, delete, repack, drop, idx_of):
        """An index file under retention cannot be rewritten, so the packs it lists stay."""
        retained_idx = set()
        checked = set()
        for name in delete | repack | drop:
            for idx in idx_of.get(name, ()):
                if idx in checked:
                    continue
                checked.add(idx)
                try:
                    r = self.b.get_retention(f"index/{idx}")
                except NotFound:
                    r = None
                if r is not None and r.active():
                    retained_idx.add(idx)
        for name in sorted(delete | repack | drop):
            if idx_of.get(name, set()) & retained_idx:
                if name not in drop:
                    self.rep.kept_retained += 1
                delete.discard(name)
                repack.discard(name)
                drop.discard(name)

    def _leftovers(self, objects, idx_of) -> list:
        """Pack objects no index file lists (a crashed backup's), older than the window and not retained."""
        indexed = set(idx_of)
        leftovers = []
        for oname, obj in objects.items():
            pname = oname.rsplit("/", 1)[1]
            if pname in indexed or obj.mtime > self.cutoff:
                continue
            ret = self.b.get_retention(oname)
            if ret is not None and ret.active():
                continue
            leftovers.append(obj)
        return leftovers

    def _report_dry_run(self, db, plan: _Plan):
        rep = self.rep
        rep.packs_deleted = len(plan.delete)
        rep.packs_repacked = len(plan.repack)
        rep.leftover_packs_removed = len(plan.leftovers)
        rep.bytes_deleted = sum(plan.objects[pack_object(n)].size for n in plan.delete | plan.repack) + \
            sum(o.size for o in plan.leftovers)
        with self.s.index.lock:
            for n in plan.repack:
                rep.bytes_written += db.execute(
                    "SELECT COALESCE(SUM(c.len), 0) FROM chunks c JOIN gc.assign a ON a.id=c.id AND a.pid=c.pid "
                    "WHERE c.pid=?", (plan.pid_of[n],)).fetchone()[0]
        rep.bytes_after = rep.bytes_before - rep.bytes_freed

    # -- 3-5. execute ---------------------------------------------------------------------------
    def _execute(self, db, plan: _Plan):
        rep = self.rep
        new_packs, repacked = self._repack(db, plan)
        going = plan.delete | repacked | plan.drop
        affected = set()  # index files listing a pack that goes
        for name in going:
            affected |= plan.idx_of.get(name, set())
        self._write_index_files(plan, new_packs, affected, going)
        # old index files go before their packs: an entry never outlives its pack
        self.lk.check(strict=True)
        self._delete_replaced(plan, affected, repacked)
        rep.bytes_after = rep.bytes_before - rep.bytes_deleted + rep.bytes_written
        n, nbytes = self.b.cleanup_incomplete(self.cutoff)
        rep.incomplete_uploads_removed = n
        rep.bytes_deleted += nbytes  # invisible, but stored (and billed) until now

    def _repack(self, db, plan: _Plan):
        """Copy the live chunks of the packs to repack into new packs; returns the new packs
        (name, entries) and the packs fully copied."""
        s = self.s
        # a session of its own: its lock keeps the spool folder (S3) from a concurrent open's sweep
        sid, fd, path = s.index.start_session()
        writer = _NewPacks(self, os.path.join(s.cache_dir, "spool", sid))
        tls = threading.local()
        repacked = set()
        try:
            for name in sorted(plan.repack):
                self.checkpoint()
                if self._repack_one(db, plan, name, writer, tls):
                    repacked.add(name)
                    self.prog.update(items=1, current=f"repack {name}")
            writer.flush()
        finally:
            writer.builder.discard()  # (nothing, once flushed)
            shutil.rmtree(writer.spool, ignore_errors=True)
            s.index.end_session(sid, fd, path)
        return writer.written, repacked

    def _repack_one(self, db, plan: _Plan, name, writer, tls) -> bool:
        """Authenticate and copy one pack's live chunks (still encrypted, unchanged); False keeps the pack."""
        s, rep = self.s, self.rep
        try:
            data = self.b.get(pack_object(name))
        except NotFound:
            rep.errors.append(f"pack {name} disappeared before it could be repacked")
            return False
        if blake3.blake3(data).hexdigest() != name:
            rep.errors.append(f"pack {name} does not match its hash (damaged); not repacked")
            return False
        with s.index.lock:
            live = db.execute("SELECT c.id, c.off, c.len, c.raw FROM chunks c JOIN gc.assign a "
                              "ON a.id=c.id AND a.pid=c.pid WHERE c.pid=? ORDER BY c.off",
                              (plan.pid_of[name],)).fetchall()
        mv = memoryview(data)
        for cid, off, ln, raw in live:
            blob = mv[off:off + ln]
            try:
                if off + ln > len(data):
                    raise IntegrityError("truncated")
                decode_chunk(s.keys, cid, blob, tls, check_id=True)
            except IntegrityError as e:
                rep.errors.append(f"pack {name}: chunk {cid.hex()} is damaged ({e}); pack kept")
                return False
            writer.add(cid, blob, raw)
        return True

    def _write_index_files(self, plan: _Plan, new_packs, affected, going):
        """New index files list the new packs and every surviving pack of the ``affected`` ones."""
        s, rep = self.s, self.rep
        survivors = set()
        for idx in affected:
            survivors |= plan.packs_of.get(idx, set())
        survivors -= going
        batch = list(new_packs)
        for name in sorted(survivors):
            batch.append((name, [tuple(e) for e in s.index.pack_entries(name)]))
        for i in range(0, len(batch), INDEX_PACKS):
            self.checkpoint()
            part = batch[i:i + INDEX_PACKS]
            iname, size = write_index_file(self.b, s.keys, part)
            s.index.load_index_file(iname, part)
            rep.index_files_written += 1
            rep.bytes_written += size

    def _delete_replaced(self, plan: _Plan, affected, repacked):
        """Delete the replaced index files, then the packs that went, then the leftovers."""
        rep = self.rep
        for idx in sorted(affected):
            self.checkpoint()
            size = plan.idx_objects[idx].size if idx in plan.idx_objects else 0
            if self._delete(f"index/{idx}"):
                rep.index_files_deleted += 1
                rep.bytes_deleted += size
            self.s.index.forget_index_file(idx)
        for name in sorted(plan.delete | repacked):
            self.checkpoint()
            if self._delete(pack_object(name)):
                if name in repacked:
                    rep.packs_repacked += 1
                else:
                    rep.packs_deleted += 1
                rep.bytes_deleted += plan.objects[pack_object(name)].size
            self.prog.update(items=1, current=f"delete {name}")
        for obj in plan.leftovers:
            self.checkpoint()
            if self._delete(obj.name):
                rep.leftover_packs_removed += 1
                rep.bytes_deleted += obj.size

    def _delete(self, name) -> bool:
        try:
            self.b.delete(name)
            return True
        except NotFound:
            return False
        except RetentionError as e:
            self.rep.errors.append(f"kept {name}: {e}")
            return False


class _NewPacks:
    """The packs a repack writes: chunks go into the backend's staging for the pack being filled,
    which is committed once it is full."""

    def __init__(self, run: _Run, spool: str):
        self.run = run
        self.spool = spool
        self.builder = self._new()
        self.written = []  # (name, entries)

    def _new(self):
        return PackBuilder(functools.partial(self.run.b.stage, self.spool))  # no cycle back to self

    def add(self, cid, blob, raw):
        self.builder.add(cid, blob, raw)
        if self.builder.size >= self.run.s.pack_target:
            self.flush()

    def flush(self):
        if not len(self.builder):
            return
        run = self.run
        name, staged, entries = self.builder.finish(run.s.keys)
        self.builder = self._new()
        try:
            run.checkpoint()
        except BaseException:
            staged.discard()
            raise
        staged.commit(pack_object(name))
        self.written.append((name, entries))
        run.rep.packs_written += 1
        run.rep.bytes_written += staged.size
