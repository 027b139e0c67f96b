"""Pack files: many encrypted chunk blobs plus an encrypted trailer listing them.

Layout: ``blob* | sealed trailer | trailer length:u32``; a blob is
``flag | nonce | AES-GCM(chunk, aad = chunk id | flag)``; the trailer lists
``(chunk id, offset, length, raw length)``. A pack's name is the BLAKE3 hash of its bytes, so
verify detects any changed byte, even outside the chunks a recovery point needs.
"""

from __future__ import annotations

import struct

import blake3
import zstandard

from . import crypto
from .errors import IntegrityError
from .index import ENTRY

PACK_TARGET = 16 << 20
TRAILER_AAD = b"pack-trailer"


def pack_object(name: str) -> str:
    return f"packs/{name[:2]}/{name}"


class PackBuilder:
    """One pack being filled: each blob goes to the backend's staging as it is added (``stage``
    returns a :class:`~vaults.store.backend.StagedObject`, made at the first blob), so only the
    trailer's rows stay in memory. The pack's name, the BLAKE3 of its bytes, is hashed as they go."""

    def __init__(self, stage):
        self.stage = stage
        self.staged = None
        self.size = 0
        self.entries = []
        self.hash = blake3.blake3(max_threads=1)

    def _put(self, data):
        self.hash.update(data)
        if self.staged is None:
            self.staged = self.stage()
        self.staged.write(data)

    def add(self, cid: bytes, blob: bytes, raw_len: int):
        self._put(blob)
        self.entries.append((cid, self.size, len(blob), raw_len))
        self.size += len(blob)

    def __len__(self):
        return len(self.entries)

    def finish(self, keys):
        """``(name, staged object, entries)``: the caller commits it under ``pack_object(name)``."""
        trailer = keys.seal(TRAILER_AAD, b"".join(ENTRY.pack(*e) for e in self.entries))
        self._put(trailer)
        self._put(struct.pack("<I", len(trailer)))
        return self.hash.hexdigest(), self.staged, self.entries

    def discard(self):
        if self.staged is not None:
            self.staged.discard()
            self.staged = None


def read_trailer(keys, data: bytes, name: str):
    if len(data) < 4:
        raise IntegrityError(f"pack {name} truncated")
    (n,) = struct.unpack_from("<I", data, len(data) - 4)
    if n > len(data) - 4:
        raise IntegrityError(f"pack {name}: bad trailer length")
    raw = keys.open(TRAILER_AAD, memoryview(data)[len(data) - 4 - n:len(data) - 4], f"pack {name} trailer")
    if len(raw) % ENTRY.size:
        raise IntegrityError(f"pack {name}: bad trailer")
    return [ENTRY.unpack_from(raw, i) for i in range(0, len(raw), ENTRY.size)]


def decode_chunk(keys, cid: bytes, blob, tls, check_id: bool = False) -> bytes:
    """The plaintext of one chunk blob: authenticated, decrypted and decompressed (``tls`` keeps
    one decompressor per thread); with ``check_id`` also checked against its id."""
    flag, pt = keys.open_chunk(cid, blob)
    if flag == crypto.FLAG_ZSTD:
        dc = getattr(tls, "dc", None)
        if dc is None:
            dc = tls.dc = zstandard.ZstdDecompressor()
        try:
            pt = dc.decompress(pt, max_output_size=64 << 20)
        except zstandard.ZstdError:
            raise IntegrityError(f"chunk {cid.hex()} does not decompress") from None
    elif flag != crypto.FLAG_RAW:
        raise IntegrityError(f"chunk {cid.hex()} has an unknown encoding")
    if check_id and keys.chunk_id(pt) != cid:
        raise IntegrityError(f"chunk {cid.hex()} does not match its id")
    return pt
