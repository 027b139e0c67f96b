"""A backup session: the ordered chunk pipeline that turns what a backup reads into packs, index
files and, on commit, a manifest (the recovery point).

The calling thread reads and cuts; the store's worker pool hashes, dedups, compresses and
encrypts each chunk; results are consumed in order (so the manifest lists chunks in file order)
through a bounded queue; each new chunk goes straight into the backend's staging for the pack
being filled (a temp file, never a buffer), and one upload thread commits finished packs and
writes their index rows.
"""

from __future__ import annotations

import collections
import functools
import os
import queue
import shutil
import threading
import time
import uuid
import warnings

import zstandard

from . import crypto
from .chunker import BLOCK_SIZE
from .errors import NotFound, StorageFull, StoreError
from .index import write_index_file
from .manifest import ManifestWriter
from .memory import trim
from .pack import PackBuilder, pack_object
from .progress import Throttle, check_cancel

BATCH = 1024  # chunk refs per manifest record
INDEX_EVERY = 64  # packs per index file during a long backup
PROBE = 64 * 1024  # compressibility probe of big chunks
# finished packs that may wait for the upload thread while the next one is filled (one more is being
# committed). Packs are staged on disk as they are filled (a local store's temp file, or a spool
# file uploaded to S3), so waiting packs cost no memory: they let reading and the workers go on
# through a slow fsync or upload. (With packs held in memory, one waiting took a 4 GiB backup's
# peak RSS from 111 to 133 MiB.)
PACKS_WAITING = 2


@functools.lru_cache(maxsize=4)
def zeros(n: int) -> bytes:
    """``n`` zero bytes, one buffer per size for the whole process (a fresh buffer per backup
    would be zeroed, so resident, whenever malloc takes it from its heap rather than mapping it)."""
    return bytes(n)


class Entry:
    """One manifest entry being backed up: its record and the chunks not yet written out."""

    __slots__ = ("rec", "chunks", "streaming", "emitted", "offset", "pending", "name")

    def __init__(self, rec, streaming=False):
        self.rec = rec
        self.chunks = []
        self.streaming = streaming
        self.emitted = False
        self.offset = 0
        self.pending = 0
        self.name = rec["p"]


class BackupSession:
    """One backup: ordered chunk pipeline -> packs -> index files -> manifest."""

    def __init__(self, store, progress, cancel, phase, lock=None):
        self.store = store
        self.lock_held = lock
        self.keys = store.keys
        self.index = store.index
        self.cancel = cancel
        self.prog = Throttle(progress, phase)
        self.sid, self._lockfd, self._lockpath = self.index.start_session()
        self.inflight: set = set()
        self.lock = threading.Lock()
        self.pending = collections.deque()
        self.max_pending = max(4, store.workers * 3)
        # packs staged for a backend without its own staging (S3); removed at close, or by the next
        # Store.open on this machine once the session is dead
        self.spool = os.path.join(store.cache_dir, "spool", self.sid)
        self.pack = self._new_pack()
        self.uploads: queue.Queue = queue.Queue()  # bounded by _flush_pack (PACKS_WAITING)
        self.upload_error = None
        self.unindexed = []  # (pack name, entries) written but not yet in an index file
        self.unindexed_names: set = set()  # every pack stored and not yet in an index file (failure cleanup)
        self.uploaded = threading.Condition()
        self.uploader = threading.Thread(target=self._upload_loop, name="strongroom-upload", daemon=True)
        self.uploader.start()
        self.stats = collections.Counter()
        self.snap_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:12]
        self.manifest = ManifestWriter(self.keys, self.snap_id, store.cache_dir)
        self.tls = threading.local()
        # a volume's all-zero chunks are dropped (restored as holes)
        self.zero = zeros(max(BLOCK_SIZE, store.block_size, store.cdc.params[2]))

    # -- worker side --------------------------------------------------------------
    def _zc(self):
        c = getattr(self.tls, "zc", None)
        if c is None:
            c = self.tls.zc = zstandard.ZstdCompressor(level=self.store.zstd_level)
        return c

    def _process(self, data, volume):
        n = len(data)
        if volume and self.zero.startswith(data):  # all zeros (memcmp, no copy)
            return None
        cid = self.keys.chunk_id(data)
        with self.lock:
            if cid in self.inflight or self.index.has(cid, self.sid):
                return (cid, n, None)
            self.inflight.add(cid)
        zc = self._zc()
        if n > 2 * PROBE and len(zc.compress(data[:PROBE])) > PROBE * 0.97:
            comp = None  # incompressible (the probe did not shrink): store raw, skip the work
        else:
            comp = zc.compress(data)
        if comp is not None and len(comp) < n:
            blob = self.keys.seal_chunk(cid, crypto.FLAG_ZSTD, comp)
        else:
            blob = self.keys.seal_chunk(cid, crypto.FLAG_RAW, data)
        return (cid, n, blob)

    # -- upload thread ---------------------------------------------------------------
    def _upload_loop(self):
        while True:
            item = self.uploads.get()
            with self.uploaded:
                self.uploaded.notify_all()  # taken: the main thread may start the next pack
            if item is None:
                return
            name, staged, entries = item
            try:
                if self.upload_error is not None:
                    staged.discard()
                else:
                    # named in the session before it appears: a kill between the two leaves a
                    # pack the next open knows to remove
                    self.index.reserve_pack(name, self.sid)
                    with self.uploaded:
                        self.unindexed_names.add(name)
                    staged.commit(pack_object(name))
                    self.index.add_pack(name, entries, sess=self.sid)
                    with self.lock:
                        for e in entries:
                            self.inflight.discard(e[0])
                    with self.uploaded:
                        self.unindexed.append((name, entries))
                        self.stats["packs"] += 1
                        self.uploaded.notify_all()
                    del staged, item
                    trim()  # flat RSS: hand freed buffers back (see memory.py)
            except BaseException as e:  # reported to the main thread
                self.upload_error = e

    def _check_upload(self):
        if isinstance(self.upload_error, StorageFull):
            raise self.upload_error
        if self.upload_error is not None:
            raise StoreError(f"writing a pack failed: {self.upload_error}") from self.upload_error

    # -- main thread -------------------------------------------------------------------
    def submit(self, entry: Entry, data, offset=None, volume=False):
        """Queue one chunk of ``entry`` (``offset`` for volume blocks)."""
        check_cancel(self.cancel)
        self._check_upload()
        fut = self.store.pool.submit(self._process, data, volume)
        entry.pending += 1
        self.pending.append((fut, entry, offset))
        self.stats["bytes_read"] += len(data)
        self.prog.update(nbytes=len(data), current=entry.name)
        while len(self.pending) > self.max_pending:
            self._drain_one()

    def end_entry(self, entry: Entry):
        self.pending.append((None, entry, None))
        self.prog.update(items=1, current=entry.name)
        while len(self.pending) > self.max_pending:
            self._drain_one()

    def _drain_one(self):
        fut, entry, offset = self.pending.popleft()
        if fut is None:
            self._emit(entry, final=True)
            return
        res = fut.result()
        entry.pending -= 1
        if res is None:  # zero block of a volume
            self.stats["zero_blocks"] += 1
            return
        cid, n, blob = res
        if blob is not None:
            self.pack.add(cid, blob, n)
            self.stats["chunks_new"] += 1
            self.stats["bytes_new"] += n
            self.stats["bytes_stored"] += len(blob)
            if self.pack.size >= self.store.pack_target:
                self._flush_pack()
        else:
            self.stats["chunks_dup"] += 1
        if offset is not None:
            entry.chunks.append([offset, cid.hex(), n])
        else:
            entry.chunks.append([cid.hex(), n])
        if entry.streaming and len(entry.chunks) >= BATCH:
            self._emit(entry, final=False)

    def _emit(self, entry: Entry, final: bool):
        chunks, entry.chunks = entry.chunks, []
        if not entry.emitted:
            rec = entry.rec
            if not entry.streaming:
                rec["c"], chunks = chunks[:BATCH], chunks[BATCH:]
                entry.offset = sum(c[-1] for c in rec["c"])
            self.manifest.add(rec)
            entry.emitted = True
        for i in range(0, len(chunks), BATCH):
            part = chunks[i:i + BATCH]
            r = {"t": "+", "c": part}
            if part and len(part[0]) == 2:
                r["o"] = entry.offset
                entry.offset += sum(c[1] for c in part)
            self.manifest.add(r)

    def _new_pack(self):
        # no reference back to the session: a cycle would keep a finished backup's buffers, its
        # store and index alive until Python's cycle collector happened to run (several MiB per
        # backup, a slow climb in a worker that runs backup after backup)
        return PackBuilder(functools.partial(self.store.backend.stage, self.spool))

    def drain_all(self):
        while self.pending:
            self._drain_one()

    def _flush_pack(self):
        if not len(self.pack):
            return
        self._check_upload()
        name, staged, entries = self.pack.finish(self.keys)
        self.pack = self._new_pack()
        self.uploads.put((name, staged, entries))
        del staged
        # bounded staging: the next pack is started only once at most PACKS_WAITING finished packs
        # wait for the upload thread (one more is being committed, one is being filled)
        with self.uploaded:
            while self.uploads.qsize() > PACKS_WAITING and self.upload_error is None:
                self.uploaded.wait(0.5)
        self._check_upload()
        with self.uploaded:
            n = len(self.unindexed)
        if n >= INDEX_EVERY:
            self._write_index()

    def _write_index(self):
        with self.uploaded:
            batch, self.unindexed = self.unindexed, []
        if not batch:
            return
        name, _ = write_index_file(self.store.backend, self.keys, batch)
        self.index.mark_indexed(name, [b[0] for b in batch])
        with self.uploaded:
            self.unindexed_names.difference_update(b[0] for b in batch)

    def _stop_uploader(self):
        self.uploads.put(None)  # never blocks: the queue is bounded by _flush_pack, not by size
        self.uploader.join()

    def commit(self, header: dict) -> str:
        """Flush everything; the recovery point exists once this returns."""
        self.drain_all()
        check_cancel(self.cancel)
        self._flush_pack()
        self._stop_uploader()
        self._check_upload()
        self._write_index()
        if self.lock_held is not None:
            self.lock_held.check(strict=True)  # broken as stale? then garbage collection may have run
        header["id"] = self.snap_id
        header["stats"] = {**dict(self.stats), **header.get("stats", {})}
        self.store.backend.put_chunks(f"snapshots/{self.snap_id}", self.manifest.finish(header))
        self.prog.update(force=True)
        return self.snap_id

    def abort(self, failed: bool = True):
        """Stop without a manifest. A cancelled backup indexes its completed packs so a retry can
        reuse them (garbage collection reclaims them otherwise); a failed one removes every pack it
        stored and did not index (nobody else can refer to those), so a full disk is not left full."""
        for fut, _, _ in self.pending:
            if fut is not None:
                fut.cancel()
        for fut, _, _ in self.pending:
            if fut is not None and not fut.cancelled():
                try:
                    fut.result()
                except BaseException:
                    pass
        self.pending.clear()
        self.pack.discard()
        self._stop_uploader()
        if not failed:
            try:
                if self.upload_error is None:
                    self._write_index()
            except Exception:
                pass
        with self.uploaded:
            leftovers, self.unindexed_names = sorted(self.unindexed_names), set()
            self.unindexed = []
        for name in leftovers:
            try:
                self.store.backend.delete(pack_object(name))
                self.stats["packs_removed"] += 1
            except NotFound:
                pass
            except Exception as e:  # garbage collection removes it later (an unindexed leftover)
                warnings.warn(f"could not remove pack {name} of a failed backup: {e}")
        self.manifest.discard()

    def close(self):
        shutil.rmtree(self.spool, ignore_errors=True)
        self.index.end_session(self.sid, self._lockfd, self._lockpath)

