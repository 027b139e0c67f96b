"""Restore batches: about 1 MiB of consecutive chunks, read with one ranged read per run of chunks
that lie side by side in a pack, decoded, and written with one ``pwritev`` per run of a file.

A restore cuts what it writes into batches in file order and hands each to a worker thread;
reading, decrypting, decompressing and writing release the GIL, so the workers use both cores
with a handful of GIL hand-offs per batch instead of several per chunk.
"""

from __future__ import annotations

import os

from .errors import IntegrityError, NotFound
from .pack import decode_chunk, pack_object

BATCH_BYTES = 1 << 20  # plaintext bytes per batch (a bigger chunk makes its own batch): buffers of a
# few MiB would be mapped and unmapped by malloc each time (~1.5x the system time, measured)
BATCH_ITEMS = 16  # chunks per batch: each small file in a batch holds a descriptor open
MAX_IOV = 512  # buffers per pwritev (IOV_MAX is 1024 on Linux)
SPARSE_BLOCK = 4096  # zero runs of at least this size (aligned) are left as holes in sparse output


class Batch:
    """Chunks to restore: ``items`` are ``(target, file offset, chunk id, length)``; ``target``
    has an ``fd`` attribute. ``sparse`` leaves aligned all-zero blocks unwritten (the file must
    already have its final size)."""

    __slots__ = ("items", "nbytes", "sparse")

    def __init__(self, sparse=False):
        self.items = []
        self.nbytes = 0
        self.sparse = sparse

    def add(self, target, off, cid, n):
        self.items.append((target, off, cid, n))
        self.nbytes += n

    def __len__(self):
        return len(self.items)

    def full(self) -> bool:
        return self.nbytes >= BATCH_BYTES or len(self.items) >= BATCH_ITEMS


def run_batch(store, batch, tls):
    """Fetch, decode and write one batch; returns (bytes written, [(target, chunk id) damaged]).
    A damaged or missing chunk (or a failed write) spoils only the chunks concerned."""
    damaged = []
    decoded = []  # (target, off, data, cid) in batch order; damaged chunks are left out
    for run in _pack_runs(store, batch.items, damaged):
        pack, start, total, members = run
        try:
            blob = store.backend.get_range(pack_object(pack), start, total)
        except (NotFound, IntegrityError, OSError):  # as before: the items concerned are damaged
            damaged.extend((t, cid) for t, _, cid, _, _ in members)
            continue
        mv = memoryview(blob)
        for target, off, cid, boff, blen in members:
            if boff + blen > len(blob):
                damaged.append((target, cid))
                continue
            try:
                decoded.append((target, off, decode_chunk(store.keys, cid, mv[boff:boff + blen], tls), cid))
            except IntegrityError:
                damaged.append((target, cid))
        del mv, blob
    written = _write_runs(decoded, batch.sparse, damaged)
    return written, damaged


def _pack_runs(store, items, damaged):
    """Group ``items`` (in order) into runs of chunks adjacent in one pack:
    (pack, start, length, [(target, file off, cid, offset in run, blob length)])."""
    runs = []
    cur = None
    for target, off, cid, _n in items:
        loc = store.index.locate(cid)
        if loc is None:
            damaged.append((target, cid))
            continue
        pack, poff, plen = loc
        if cur is not None and cur[0] == pack and cur[1] + cur[2] == poff:
            cur[3].append((target, off, cid, cur[2], plen))
            cur[2] += plen
        else:
            cur = [pack, poff, plen, [(target, off, cid, 0, plen)]]
            runs.append(cur)
    return runs


def _write_runs(decoded, sparse, damaged):
    """Write decoded chunks: consecutive ones of one file at adjacent offsets go in one pwritev."""
    written = 0
    i = 0
    while i < len(decoded):
        target, off, data, cid = decoded[i]
        bufs = [data]
        end = off + len(data)
        j = i + 1
        while (j < len(decoded) and decoded[j][0] is target and decoded[j][1] == end
               and len(bufs) < MAX_IOV):
            bufs.append(decoded[j][2])
            end += len(decoded[j][2])
            j += 1
        try:
            if sparse:
                _pwrite_sparse(target.fd, bufs, off)
            else:
                _pwritev_all(target.fd, bufs, off)
            written += end - off
        except OSError:
            damaged.append((target, cid))
        i = j
    return written


def _pwritev_all(fd, bufs, off):
    total = sum(len(b) for b in bufs)
    done = os.pwritev(fd, bufs, off)
    if done < total:  # short write (rare on regular files): finish it piece by piece
        joined = memoryview(b"".join(bufs))
        while done < total:
            done += os.pwrite(fd, joined[done:], off + done)


_ZERO_BLOCK = bytes(SPARSE_BLOCK)


def _pwrite_sparse(fd, bufs, off):
    """Write ``bufs`` at ``off`` skipping the all-zero ``SPARSE_BLOCK``-aligned blocks (they stay
    holes: the file was truncated to its size first)."""
    for data in bufs:
        for s, e in nonzero_spans(data, off):
            _pwritev_all(fd, [memoryview(data)[s:e]], off + s)
        off += len(data)


def nonzero_spans(data: bytes, base: int = 0, block: int = SPARSE_BLOCK):
    """(start, end) spans of ``data`` (which lands at file offset ``base``) to write: everything
    but the all-zero blocks aligned to ``block`` in the file. Zero runs are found by a C-speed
    search, so data without any is one span at once."""
    zero = _ZERO_BLOCK if block == SPARSE_BLOCK else bytes(block)
    n = len(data)
    spans = []
    start = pos = 0
    while True:
        k = data.find(zero, pos)
        if k < 0:
            break
        a = k + (-(base + k)) % block  # the first aligned block boundary at or after the run
        z = a
        while z + block <= n and data.startswith(zero, z):
            z += block
        if z > a:
            if a > start:
                spans.append((start, a))
            start = pos = z
        else:
            pos = a + 1
    if start < n:
        spans.append((start, n))
    return spans
