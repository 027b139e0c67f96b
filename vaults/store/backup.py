"""What a backup reads: a directory tree, a stream or a volume image.

Each ``*_backup`` function checks its source (before the store is locked) and returns the body
:meth:`Store._run_backup` runs in a :class:`~vaults.store.session.BackupSession`: it feeds the
session and returns the manifest header of the recovery point.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import socket
import sqlite3
import stat
import tempfile
import threading
import time
import warnings

from . import pit
from .chunker import WHOLE_FILE_LIMIT, volume_blocks, volume_chunks
from .config import FORMAT_VERSION, now_iso
from .errors import IntegrityError, NotFound, StoreError
from .manifest import path_key
from .progress import check_cancel
from .session import Entry


def header(kind, source_id, tags, root, parent, t0) -> dict:
    """The manifest header of a recovery point whose backup started at ``t0`` and ends now."""
    return {"v": FORMAT_VERSION, "kind": kind, "source_id": source_id, "tags": list(tags),
            "root": root, "parent": parent, "time": t0, "time_end": now_iso(),
            "hostname": socket.gethostname()}


# -- trees ----------------------------------------------------------------------------------------
def tree_backup(store, path, source_id, tags, use_cache):
    """Back up the directory ``path``; its parent recovery point (the latest of ``source_id``) is the
    files cache unless ``use_cache`` is False."""
    root = os.path.abspath(path)
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode):
        raise StoreError(f"{root} is not a directory")
    source_id = source_id or f"tree:{root}"
    t0 = now_iso()
    start_ns = time.time_ns()
    parent = None
    if use_cache:
        prev = store.list_snapshots(source_id=source_id, kind="tree")
        parent = prev[-1].id if prev else None

    def body(sess):
        fc = FilesCache(store, parent, sess) if parent else None
        walk = _TreeWalk(store, sess, fc, start_ns)
        try:
            walk.directory(root, "")
        finally:
            if fc:
                fc.close()
        h = header("tree", source_id, tags, root, parent, t0)
        h["stats"] = {"skipped": walk.skipped[:100], "skipped_count": len(walk.skipped)}
        return h

    return body


class _TreeWalk:
    """Walks a tree in name order into a session: directories and links as records, regular
    files chunked (or reused from the files cache), anything else skipped and named."""

    def __init__(self, store, sess, fc, start_ns):
        self.store = store
        self.sess = sess
        self.fc = fc
        self.start_ns = start_ns
        self.skipped = []

    def directory(self, dirpath, rel):
        sess = self.sess
        try:
            with os.scandir(dirpath) as it:
                ents = sorted(it, key=lambda e: e.name)
        except OSError as e:
            self.skipped.append(f"{rel or '.'}: {e.strerror}")
            return
        for de in ents:
            check_cancel(sess.cancel)
            p = f"{rel}/{de.name}" if rel else de.name
            try:
                st = de.stat(follow_symlinks=False)
            except OSError as e:
                self.skipped.append(f"{p}: {e.strerror}")
                continue
            mode = st.st_mode
            base = {"p": p, "m": stat.S_IMODE(mode), "mt": st.st_mtime_ns, "u": st.st_uid, "g": st.st_gid}
            if stat.S_ISDIR(mode):
                sess.end_entry(Entry({"t": "d", **base}))
                sess.stats["dirs"] += 1
                self.directory(de.path, p)
            elif stat.S_ISLNK(mode):
                self._link(de.path, p, base)
            elif stat.S_ISREG(mode):
                self._file(de.path, p, st, base)
            else:
                self.skipped.append(f"{p}: not a regular file, directory or link")
                warnings.warn(f"skipping special file {p}")

    def _link(self, full, p, base):
        try:
            target = os.readlink(full)
        except OSError as e:
            self.skipped.append(f"{p}: {e.strerror}")
            return
        self.sess.end_entry(Entry({"t": "l", "lt": target, **base}))
        self.sess.stats["links"] += 1

    def _file(self, full, p, st, base):
        sess = self.sess
        racy = max(st.st_mtime_ns, st.st_ctime_ns) >= self.start_ns - self.store.racy_ns
        rec = {"t": "f", **base, "ct": st.st_ctime_ns, "i": st.st_ino, "s": st.st_size}
        if racy:
            rec["r"] = 1
        if self.fc is not None and self._reuse_unchanged(rec, p, st):
            return
        try:
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as e:
            self.skipped.append(f"{p}: {e.strerror}")
            return
        e = Entry(rec)
        size = 0
        with os.fdopen(fd, "rb", buffering=0) as f:
            for c in self._chunks_of_file(f, st.st_size):
                sess.submit(e, c)
                size += len(c)
        rec["s"] = size
        sess.end_entry(e)
        sess.stats["files"] += 1
        sess.stats["bytes_total"] += size

    def _reuse_unchanged(self, rec, p, st) -> bool:
        """Record a file unchanged since the parent recovery point with its chunks there, unread."""
        cached = self.fc.lookup(p, st)
        if cached is None:
            return False
        sess = self.sess
        e = Entry(rec)
        e.chunks = cached
        sess.end_entry(e)
        sess.stats["files"] += 1
        sess.stats["files_unchanged"] += 1
        sess.stats["bytes_total"] += st.st_size
        sess.prog.update(nbytes=0)
        return True

    def _chunks_of_file(self, f, size):
        """Small files are read whole and cut in memory, big ones streamed."""
        cdc = self.store.cdc
        if size > WHOLE_FILE_LIMIT:
            return cdc.chunks_of_stream(f)
        # read exactly the size (+1 to see growth): a read of the limit would allocate 8 MiB for
        # every small file and shrink it, which fragments malloc's heaps and lets RSS creep up
        data = f.read(size + 1)
        if len(data) > size:  # grew meanwhile: stream it
            f.seek(0)
            return cdc.chunks_of_stream(f)
        return cdc.chunks_of_buffer(data)


class FilesCache:
    """Entries of the parent recovery point, in a temporary on-disk table keyed on path."""

    def __init__(self, store, parent: str, sess):
        self.store = store
        self.sess = sess
        fd, self.path = tempfile.mkstemp(dir=store.cache_dir, suffix=".files.sqlite")
        os.close(fd)
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE f (p BLOB PRIMARY KEY, s INT, mt INT, ct INT, i INT, c TEXT)")
        try:
            self._load(parent)
        except (IntegrityError, NotFound):
            self.db.execute("DELETE FROM f")  # unreadable parent: re-read everything

    def _load(self, parent):
        cur = None
        rows = []
        for rec in self.store.records(parent):
            if rec["t"] == "+":
                if cur is not None:
                    cur[5].extend(rec["c"])
                continue
            if cur is not None:
                rows.append(self._row(cur))
                cur = None
            if rec["t"] == "f" and not rec.get("r"):  # racy files are re-read
                cur = (rec["p"], rec["s"], rec["mt"], rec["ct"], rec["i"], list(rec.get("c", ())))
            if len(rows) >= 1000:
                self.db.executemany("INSERT OR REPLACE INTO f VALUES (?,?,?,?,?,?)", rows)
                rows = []
        if cur is not None:
            rows.append(self._row(cur))
        self.db.executemany("INSERT OR REPLACE INTO f VALUES (?,?,?,?,?,?)", rows)
        self.db.commit()

    @staticmethod
    def _row(entry):
        return (path_key(entry[0]),) + entry[1:5] + (json.dumps(entry[5]),)

    def lookup(self, p, st):
        r = self.db.execute("SELECT s, mt, ct, i, c FROM f WHERE p=?", (path_key(p),)).fetchone()
        if r is None or r[:4] != (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino):
            return None
        chunks = json.loads(r[4])
        idx = self.store.index
        for h, _ in chunks:
            if not idx.has(bytes.fromhex(h), self.sess.sid):
                return None
        return chunks

    def close(self):
        self.db.close()
        os.unlink(self.path)


# -- streams --------------------------------------------------------------------------------------
def stream_backup(store, fileobj, name, source_id, tags):
    """Back up the binary stream ``fileobj`` as the one item ``name``."""
    source_id = source_id or f"stream:{name}"
    t0 = now_iso()

    def body(sess):
        e = Entry({"t": "s", "p": name}, streaming=True)
        size = 0
        for c in store.cdc.chunks_of_stream(fileobj):
            sess.submit(e, c)
            size += len(c)
        sess.end_entry(e)
        h = header("stream", source_id, tags, name, None, t0)
        h["stats"] = {"size": size}
        return h

    return body


# -- volumes --------------------------------------------------------------------------------------
def volume_backup(store, path, source_id, tags, point_in_time):
    """Back up the volume image ``path`` as one consistent image (see :mod:`vaults.store.pit`)."""
    if point_in_time not in ("auto", pit.HOLD, pit.LIVE):
        raise ValueError("point_in_time must be 'auto', 'hold' or 'live'")
    return _VolumeBackup(store, path, source_id, tags, point_in_time)


class _VolumeBackup:
    """The body of a volume backup: picks how to read one consistent image, then reads its data
    regions (content-defined chunks, or fixed blocks), hashing the whole image (holes as zeros)
    alongside in its own thread."""

    def __init__(self, store, path, source_id, tags, point_in_time):
        self.store = store
        self.root = os.path.abspath(path)
        self.source_id = source_id or f"volume:{self.root}"
        self.tags = tags
        self.point_in_time = point_in_time
        self.t0 = now_iso()

    def __call__(self, sess):
        root, wait = self.root, self.store.lock_wait
        fd = os.open(root, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if self.point_in_time == pit.LIVE:
                return self._read_image(sess, fd, st, pit.LIVE, st.st_mode)
            clone = None
            if self.point_in_time == "auto" and stat.S_ISREG(st.st_mode):
                # a write in progress finishes before the clone: never half of one in the copy
                with pit.hold_for_reading(fd, wait=wait):
                    clone = pit.reflink_clone(fd, os.path.dirname(root))
            if clone is not None:
                try:
                    return self._read_image(sess, clone, os.fstat(clone), pit.REFLINK, st.st_mode)
                finally:
                    os.close(clone)
            with pit.hold_for_reading(fd, wait=wait):
                return self._read_image(sess, fd, os.fstat(fd), pit.HOLD, st.st_mode)
        finally:
            os.close(fd)

    def _read_image(self, sess, fd, st, how, mode):
        """Read the image (content-defined chunks of its data regions, or fixed blocks, see
        ``Store.volume_chunking``), computing its checksum (`_ImageDigest`) in the same pass."""
        root = self.root
        size = st.st_size if stat.S_ISREG(st.st_mode) else os.lseek(fd, 0, os.SEEK_END)
        rec = {"t": "v", "p": os.path.basename(root), "s": size, "m": stat.S_IMODE(mode)}
        rec.update(self._chunking())
        e = Entry(rec, streaming=True)
        sess.prog.p.bytes_total = size
        digest = _ImageDigest()
        try:
            for off, data in self._pieces(fd, size):
                digest.add(off, data)
                sess.submit(e, data, offset=off, volume=True)
            checksum = digest.checksum(size)
        finally:
            digest.close()
        sess.end_entry(e)
        h = header("volume", self.source_id, self.tags, root, None, self.t0)
        h["stats"] = {"size": size, "checksum": checksum, "point_in_time": how}
        return h

    def _chunking(self) -> dict:
        if self.store.volume_chunking == "blocks":
            return {"bs": self.store.block_size}
        return {"ck": "cdc"}

    def _pieces(self, fd, size):
        """(offset, data) of what to store: content-defined chunks of the data regions, or (a store
        created before them, see ``Store.volume_chunking``) the fixed blocks touching them."""
        if self.store.volume_chunking != "blocks":
            yield from volume_chunks(fd, size, self.store.cdc)
            return
        for off, ln in volume_blocks(fd, size, self.store.block_size):
            data = os.pread(fd, ln, off)
            if len(data) < ln:
                raise StoreError(f"{self.root} shrank during the backup")
            yield off, data


class _ImageDigest:
    """The image's content checksum, ``blocks-sha256:<hex>``: SHA-256 over, for each 64 KiB block
    holding a non-zero byte, in order, its offset (8 bytes, big-endian) and its bytes (the last
    block ends with the image), then the image's size (8 bytes, big-endian). Holes and written
    zeros give the same value, and it costs the data, not the size. The portal computes the same
    value from a file (``portal.inventory.volumes.ContentDigest``; the engine may not import it,
    tests hold the two equal). Computed in its own thread from the pieces the backup stores, in
    order and of any alignment; at most ``DEPTH`` pieces wait for it."""

    DEPTH = 4
    BLOCK = 64 * 1024
    PREFIX = "blocks-sha256:"
    _ZERO = bytes(BLOCK)

    def __init__(self):
        self._h = hashlib.sha256()
        self._partial = None  # (index, bytearray) of a block seen only in part so far
        self._q = queue.Queue(maxsize=self.DEPTH)
        self._error = None
        self._t = threading.Thread(target=self._run, name="strongroom-image-digest", daemon=True)
        self._t.start()

    def _run(self):
        while True:
            item = self._q.get()
            if item is None:
                return
            if self._error is not None:
                continue
            try:
                self._take(*item)
            except BaseException as e:  # reported by checksum
                self._error = e

    def _take(self, offset, data):
        view = memoryview(data)
        while view:
            index, within = divmod(offset, self.BLOCK)
            take = min(len(view), self.BLOCK - within)
            if self._partial is not None and self._partial[0] != index:
                self._block(*self._partial)
                self._partial = None
            if take == self.BLOCK:
                self._block(index, view[:take])
            else:
                if self._partial is None:
                    self._partial = (index, bytearray(self.BLOCK))  # what no piece covers: a hole's zeros
                self._partial[1][within:within + take] = view[:take]
            offset += take
            view = view[take:]

    def _block(self, index, block):
        # bytes == bytes is a memcmp; a memoryview compares byte by byte
        if bytes(block) != (self._ZERO if len(block) == self.BLOCK else bytes(len(block))):
            self._h.update((index * self.BLOCK).to_bytes(8, "big"))
            self._h.update(block)

    def add(self, offset: int, data) -> None:
        """The image's bytes ``data`` at ``offset`` (after those of earlier calls)."""
        self._q.put((offset, data))

    def checksum(self, size: int) -> str:
        """The checksum of an image of ``size`` bytes, once every piece is added."""
        self.close()
        if self._error is None and self._partial is not None:
            index, block = self._partial
            self._block(index, memoryview(block)[:size - index * self.BLOCK])
        if self._error is not None:
            raise StoreError(f"checksumming the image failed: {self._error}") from self._error
        self._h.update(size.to_bytes(8, "big"))
        return self.PREFIX + self._h.hexdigest()

    def close(self) -> None:
        if self._t.is_alive():
            self._q.put(None)
            self._t.join()
