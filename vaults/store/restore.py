"""Restoring a recovery point: a tree into a directory, a volume into a (sparse) image file, a
stream (or a volume, holes as zeros) into a binary file.

Chunks are fetched and decoded by the store's worker pool, a bounded number at a time, and
written in order. Nothing is written outside the target and no symbolic link is followed.
A damaged chunk does not stop a restore: the items it belongs to are named in the
:class:`~vaults.store.errors.DamageError` raised at the end (damaged files are removed).
"""

from __future__ import annotations

import collections
import os
import stat
import threading
from typing import Optional

from .batch import Batch, run_batch
from .errors import DamageError, IntegrityError, NotFound
from .pack import decode_chunk, pack_object
from .progress import Throttle, check_cancel

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW


def restore(store, snap, target, paths, progress, cancel) -> dict:
    """Restore ``snap`` into ``target``, as its kind says (see :meth:`Store.restore`)."""
    if snap.kind == "volume":
        return restore_volume(store, snap, target, progress, cancel)
    if snap.kind == "stream":
        fd = os.open(target, _NEW_FILE, 0o600)
        with os.fdopen(fd, "wb") as f:
            return restore_stream(store, snap, f, progress, cancel)
    return _TreeRestore(store, snap, target, paths, progress, cancel).run()


def fetch_chunk(store, cid: bytes, tls) -> bytes:
    """Read one chunk from its pack and decode it."""
    loc = store.index.locate(cid)
    if loc is None:
        raise NotFound(f"chunk {cid.hex()} is not in the index")
    pack, off, ln = loc
    blob = store.backend.get_range(pack_object(pack), off, ln)
    if len(blob) != ln:
        raise IntegrityError(f"chunk {cid.hex()}: pack {pack} is truncated")
    return decode_chunk(store.keys, cid, blob, tls)


class _Fetches:
    """Work submitted to the pool, collected in submission order by ``collect(future, tag)``;
    at most ``limit`` wait at once."""

    def __init__(self, pool, limit, collect):
        self.pool = pool
        self.limit = limit
        self.collect = collect
        self.pending = collections.deque()

    def submit(self, tag, fn, *args):
        self.pending.append((self.pool.submit(fn, *args), tag))
        while len(self.pending) > self.limit:
            self.collect_one()

    def collect_one(self):
        fut, tag = self.pending.popleft()
        self.collect(fut, tag)

    def drain(self):
        while self.pending:
            self.collect_one()

    def drain_quietly(self):
        """After a failure: wait for everything in flight, ignoring its errors."""
        while self.pending:
            try:
                self.collect_one()
            except BaseException:
                pass


# -- streams -------------------------------------------------------------------------------------
def restore_stream(store, snap, out, progress, cancel) -> dict:
    """Write a stream (or volume, holes as zeros) recovery point to the binary file ``out``."""
    prog = Throttle(progress, "restore")
    tls = threading.local()
    damaged = []
    written = 0

    def collect(fut, tag):
        nonlocal written
        cid, n, off = tag
        try:
            data = fut.result()
        except (IntegrityError, NotFound):
            damaged.append(cid.hex())
            data = bytes(n)
        if off is not None and off > written:
            out.write(bytes(off - written)) if off - written < (64 << 20) else _write_zeros(out, off - written)
            written = off
        out.write(data)
        written += len(data)
        prog.update(nbytes=len(data))

    fetches = _Fetches(store.pool, store.workers * 3, collect)
    size = None
    for rec in store.records(snap.id):
        if rec["t"] == "v":
            size = rec["s"]
        for c in rec.get("c", ()):
            check_cancel(cancel)
            if len(c) == 3:
                off, h, n = c
            else:
                off, (h, n) = None, c
            cid = bytes.fromhex(h)
            fetches.submit((cid, n, off), fetch_chunk, store, cid, tls)
    fetches.drain()
    if size is not None and size > written:
        _write_zeros(out, size - written)
        written = size
    out.flush()
    prog.update(force=True)
    if damaged:
        raise DamageError([snap.root or "<stream>"], damaged)
    return {"bytes": written, "items": 1}


def _write_zeros(out, n):
    z = bytes(1 << 20)
    while n > 0:
        k = min(n, len(z))
        out.write(z[:k])
        n -= k


# -- volumes -------------------------------------------------------------------------------------
def restore_volume(store, snap, target, progress, cancel) -> dict:
    """Write a volume recovery point into the sparse image file ``target``: holes stay holes, and
    so do aligned all-zero blocks inside the chunks (the file is truncated to its size first)."""
    prog = Throttle(progress, "restore")
    tls = threading.local()
    out = _Target(os.open(target, _NEW_FILE, 0o600))
    damaged = []
    size = 0
    mode = None

    def collect(fut, batch):
        nbytes, bad = fut.result()
        damaged.extend(cid.hex() for _, cid in bad)
        prog.update(nbytes=nbytes)

    fetches = _Fetches(store.pool, store.workers * 3, collect)
    batch = Batch(sparse=True)
    try:
        for rec in store.records(snap.id):
            if rec["t"] == "v":
                size, mode = rec["s"], rec.get("m")
                os.ftruncate(out.fd, size)
            for off, h, n in rec.get("c", ()):
                check_cancel(cancel)
                batch.add(out, off, bytes.fromhex(h), n)
                if batch.full():
                    fetches.submit(batch, run_batch, store, batch, tls)
                    batch = Batch(sparse=True)
        if len(batch):
            fetches.submit(batch, run_batch, store, batch, tls)
        fetches.drain()
        os.ftruncate(out.fd, size)
        if mode is not None:
            os.fchmod(out.fd, mode)
        os.fsync(out.fd)
    finally:
        fetches.drain_quietly()
        os.close(out.fd)
    prog.update(force=True)
    if damaged:
        raise DamageError([snap.root or "<volume>"], damaged)
    return {"bytes": size, "items": 1}


class _Target:
    __slots__ = ("fd",)

    def __init__(self, fd):
        self.fd = fd


# -- trees ---------------------------------------------------------------------------------------
def _safe_relpath(p: str) -> list:
    parts = p.split("/")
    for c in parts:
        if c in ("", ".", "..") or "\x00" in c:
            raise IntegrityError(f"unsafe path in manifest: {p!r}")
    return parts


class _DirCache:
    """Opens parent directories below a root fd without ever following a symbolic link."""

    def __init__(self, root_fd):
        self.root = root_fd
        self.cache = collections.OrderedDict()

    def parent(self, parts, create=True):
        key = tuple(parts[:-1])
        fd = self.cache.get(key)
        if fd is not None:
            self.cache.move_to_end(key)
            return fd
        cur = self._open_path(key, create)
        if not key:
            return self.root
        self.cache[key] = cur
        if len(self.cache) > 64:
            _, old = self.cache.popitem(last=False)
            os.close(old)
        return cur

    def _open_path(self, key, create):
        """Open (making them when ``create``) the directories ``key`` below the root; the last one's fd."""
        cur = self.root
        opened = []
        try:
            for comp in key:
                try:
                    nfd = os.open(comp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=cur)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(comp, 0o700, dir_fd=cur)
                    nfd = os.open(comp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=cur)
                opened.append(nfd)
                cur = nfd
        except OSError:
            for f in opened:
                os.close(f)
            raise
        for f in opened[:-1]:
            os.close(f)
        return cur

    def close(self):
        for fd in self.cache.values():
            os.close(fd)
        self.cache.clear()


class _OpenFile:
    __slots__ = ("fd", "rec", "pending", "ended", "damaged", "name", "parts")

    def __init__(self, fd, rec, name, parts):
        self.fd = fd
        self.rec = rec
        self.pending = 0
        self.ended = False
        self.damaged = False
        self.name = name
        self.parts = parts


class _TreeRestore:
    """Restores a tree recovery point below ``target``, record by record: directories and links at
    once, file contents through the worker pool (a file is finished when its last chunk is
    written), directory modes and times last (writing into a directory changes its mtime)."""

    def __init__(self, store, snap, target, paths, progress, cancel):
        self.store = store
        self.snap = snap
        self.cancel = cancel
        self.prefixes = [p.strip("/") for p in paths] if paths else None
        os.makedirs(target, exist_ok=True)
        self.root_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
        self.dirs = _DirCache(self.root_fd)
        self.prog = Throttle(progress, "restore")
        self.tls = threading.local()
        self.fetches = _Fetches(store.pool, store.workers * 4, self._collect)
        self.batch = Batch()
        self.damaged_items, self.damaged_chunks = [], []
        self.dir_attrs = []
        self.stats = collections.Counter()
        self.cur: Optional[_OpenFile] = None  # the file whose chunks the next "+" records list

    def run(self) -> dict:
        try:
            self._restore_records()
            self._submit_batch()
            self._end_current()
            self.fetches.drain()
            self._set_directory_attributes()
        finally:
            self._release()
            self.fetches = None  # it holds self._collect: no cycle keeps this restore's buffers alive
        self.prog.update(force=True)
        if self.damaged_items:
            raise DamageError(self.damaged_items, self.damaged_chunks)
        return dict(self.stats)

    def _wanted(self, p) -> bool:
        if self.prefixes is None:
            return True
        return any(pr == "" or p == pr or p.startswith(pr + "/") for pr in self.prefixes)

    def _restore_records(self):
        for rec in self.store.records(self.snap.id):
            check_cancel(self.cancel)
            if rec["t"] == "+":
                if self.cur is not None:
                    self._schedule_chunks(self.cur, rec["c"], rec["o"])
                continue
            self._end_current()
            if self._wanted(rec["p"]):
                self._restore_entry(rec)

    def _restore_entry(self, rec):
        t, p = rec["t"], rec["p"]
        parts = _safe_relpath(p)
        self.prog.update(items=1, current=p)
        pfd = self.dirs.parent(parts)
        name = parts[-1]
        if t == "d":
            self._make_directory(pfd, name, parts, rec)
        elif t == "l":
            self._make_link(pfd, name, rec)
        elif t == "f":
            self._start_file(pfd, name, p, parts, rec)
        else:
            raise IntegrityError(f"unknown record type {t!r} in snapshot {self.snap.id}")

    def _make_directory(self, pfd, name, parts, rec):
        try:
            os.mkdir(name, 0o700, dir_fd=pfd)
        except FileExistsError:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(name, dir_fd=pfd)
                os.mkdir(name, 0o700, dir_fd=pfd)
        self.dir_attrs.append((parts, rec["m"], rec["mt"]))
        self.stats["dirs"] += 1

    def _make_link(self, pfd, name, rec):
        try:
            os.symlink(rec["lt"], name, dir_fd=pfd)
        except FileExistsError:
            os.unlink(name, dir_fd=pfd)
            os.symlink(rec["lt"], name, dir_fd=pfd)
        try:
            os.utime(name, ns=(rec["mt"], rec["mt"]), dir_fd=pfd, follow_symlinks=False)
        except (OSError, NotImplementedError):
            pass
        self.stats["links"] += 1

    def _start_file(self, pfd, name, p, parts, rec):
        try:
            fd = os.open(name, _NEW_FILE, 0o600, dir_fd=pfd)
        except OSError:
            os.unlink(name, dir_fd=pfd)  # a link or other object in the way
            fd = os.open(name, _NEW_FILE, 0o600, dir_fd=pfd)
        self.cur = _OpenFile(fd, rec, p, parts)
        self._schedule_chunks(self.cur, rec.get("c", ()), 0)
        self.stats["bytes"] += rec["s"]

    def _schedule_chunks(self, of, chunks, off):
        batch = self.batch
        for h, n in chunks:
            of.pending += 1
            batch.add(of, off, bytes.fromhex(h), n)
            off += n
            if batch.full():
                self._submit_batch()
                batch = self.batch

    def _submit_batch(self):
        batch = self.batch
        if len(batch):
            self.batch = Batch()
            self.fetches.submit(batch, run_batch, self.store, batch, self.tls)

    def _collect(self, fut, batch):
        nbytes, bad = fut.result()
        self.prog.update(nbytes=nbytes)
        for of, cid in bad:
            of.damaged = True
            self.damaged_chunks.append(cid.hex())
        for of, _, _, _ in batch.items:
            of.pending -= 1
            if of.ended and of.pending == 0:
                self._finish_file(of)

    def _end_current(self):
        cur = self.cur
        if cur is not None:
            cur.ended = True
            if cur.pending == 0:
                self._finish_file(cur)
            self.cur = None

    def _finish_file(self, of):
        fd = of.fd
        of.fd = None
        rec = of.rec
        if of.damaged:
            os.close(fd)
            self.damaged_items.append(of.name)
            try:
                os.unlink(of.parts[-1], dir_fd=self.dirs.parent(of.parts))
            except OSError:
                pass
            return
        os.ftruncate(fd, rec["s"])
        os.fchmod(fd, rec["m"])
        os.utime(fd, ns=(rec["mt"], rec["mt"]))
        os.close(fd)
        self.stats["files"] += 1

    def _set_directory_attributes(self):
        for parts, mode, mt in reversed(self.dir_attrs):
            pfd = self.dirs.parent(parts)
            fd = os.open(parts[-1], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=pfd)
            try:
                os.fchmod(fd, mode)
                os.utime(fd, ns=(mt, mt))
            finally:
                os.close(fd)

    def _release(self):
        """Wait for the chunks in flight and close what is open (after a failure too)."""
        self.fetches.drain_quietly()
        cur = self.cur
        if cur is not None and cur.fd is not None and cur.pending == 0:
            os.close(cur.fd)
        self.dirs.close()
        os.close(self.root_fd)
