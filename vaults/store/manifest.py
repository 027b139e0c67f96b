"""Manifests: one encrypted, authenticated object per recovery point.

Layout of ``snapshots/<snapshot id>``::

    b"SRMF1\\n" | segment 0 (header) | segment 1 .. n (entries)

A segment is ``len:u32 | final:u8 | nonce | AES-GCM(zstd(JSON lines))`` with the snapshot id,
the segment number and the final flag as associated data: reordering, truncating, swapping
segments or whole manifests is detected. Entries are JSON lines (see ``store.py``); long chunk
lists continue in ``{"t": "+"}`` records, so memory stays bounded for any size.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile

import zstandard

from .crypto import NONCE
from .errors import IntegrityError

MAGIC = b"SRMF1\n"
SEGMENT_TARGET = 1 << 20


def _dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode()


def chunk_refs(record: dict):
    """The chunk ids (hex) a record lists: ``[id, length]`` pairs, or ``[offset, id, length]``
    for the blocks of a volume."""
    for c in record.get("c", ()):
        yield c[1] if len(c) == 3 else c[0]


def path_key(path: str) -> bytes:
    """A manifest path as bytes (non-UTF-8 bytes travel as surrogate escapes), e.g. a SQLite key."""
    return path.encode("utf-8", "surrogateescape")


def path_from_key(key: bytes) -> str:
    return key.decode("utf-8", "surrogateescape")


class ManifestWriter:
    """Collects entry lines into sealed segments in a temporary file."""

    def __init__(self, keys, snap_id: str, tmpdir: str):
        self.keys = keys
        self.aad = b"manifest|" + snap_id.encode()
        self.tmp = tempfile.TemporaryFile(dir=tmpdir)
        self.buf = []
        self.buflen = 0
        self.pending = None  # compressed plaintext of the previous segment, not yet sealed
        self.nseg = 0  # entry segments emitted (numbered from 1)
        self.cctx = zstandard.ZstdCompressor(level=3)

    def add(self, record: dict) -> None:
        line = _dumps(record) + b"\n"
        self.buf.append(line)
        self.buflen += len(line)
        if self.buflen >= SEGMENT_TARGET:
            self._cut()

    def _cut(self):
        comp = self.cctx.compress(b"".join(self.buf))
        self.buf, self.buflen = [], 0
        if self.pending is not None:
            self._emit(self.pending, final=False)
        self.pending = comp

    def _emit(self, comp, final):
        self.nseg += 1
        self.tmp.write(self.keys.seal_segment(self.aad, self.nseg, final, comp))

    def finish(self, header: dict):
        """Returns an iterator of byte strings making up the whole manifest object."""
        if self.buf:
            self._cut()
        if self.pending is not None:
            self._emit(self.pending, final=True)
            self.pending = None
        head = self.keys.seal_segment(self.aad, 0, self.nseg == 0, self.cctx.compress(_dumps(header)))
        self.tmp.seek(0)

        def gen():
            yield MAGIC + head
            while True:
                b = self.tmp.read(4 << 20)
                if not b:
                    break
                yield b
            self.tmp.close()

        return gen()

    def discard(self):
        self.tmp.close()


class ManifestReader:
    """Streams a manifest object: ``header`` then ``records()``. Raises IntegrityError."""

    def __init__(self, keys, snap_id: str, stream, name: str):
        self.keys = keys
        self.aad = b"manifest|" + snap_id.encode()
        self.f = stream
        self.name = name
        self.dctx = zstandard.ZstdDecompressor()
        if self.f.read(len(MAGIC)) != MAGIC:
            raise IntegrityError(f"manifest {name}: bad magic")
        final, pt = self._segment(0)
        self.header = self._json(pt)
        self.final = final
        if self.header.get("id") != snap_id:
            raise IntegrityError(f"manifest {name}: header names another snapshot")

    def _segment(self, i):
        hdr = self.f.read(5)
        if len(hdr) < 5:
            raise IntegrityError(f"manifest {self.name}: truncated at segment {i}")
        n, final = struct.unpack("<IB", hdr)
        if final not in (0, 1) or n < NONCE + 16 or n > (64 << 20):
            raise IntegrityError(f"manifest {self.name}: bad segment {i} header")
        body = self.f.read(n)
        if len(body) < n:
            raise IntegrityError(f"manifest {self.name}: truncated at segment {i}")
        comp = self.keys.open_segment(self.aad, i, bool(final), body, f"manifest {self.name}")
        try:
            return bool(final), self.dctx.decompress(comp, max_output_size=1 << 28)
        except zstandard.ZstdError:
            raise IntegrityError(f"manifest {self.name}: segment {i} does not decompress") from None

    def _json(self, b):
        try:
            return json.loads(b)
        except ValueError:
            raise IntegrityError(f"manifest {self.name}: bad record") from None

    def records(self):
        i = 0
        final = self.final
        while not final:
            i += 1
            final, pt = self._segment(i)
            for line in pt.splitlines():
                yield self._json(line)
        if self.f.read(1):
            raise IntegrityError(f"manifest {self.name}: trailing data after the final segment")

    def close(self):
        self.f.close()
