"""Keys, chunk ids and authenticated encryption.

Key schedule: each store has a random 32-byte secret. It is wrapped (AES-256-GCM) by the
platform key the caller provides, with the store id and parameters as associated data, and
every working key is derived from it with BLAKE3's key-derivation mode:

* ``data`` - AES-256-GCM key for chunks, pack headers, index files and manifests;
* ``id`` - BLAKE3 key for chunk ids (keyed hash of the plaintext: dedup without revealing
  content);
* ``chunker`` - 63-bit seed XORed into FastCDC's gear table, so boundaries (and therefore
  chunk sizes) depend on a secret.
"""

from __future__ import annotations

import os
import struct

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import IntegrityError, KeyError_

NONCE = 12
TAG = 16
ID_LEN = 32

FLAG_RAW = 0
FLAG_ZSTD = 1


def derive(secret: bytes, purpose: str) -> bytes:
    return blake3.blake3(secret, derive_key_context=f"strongroom vault store 2025 {purpose}").digest()


def wrap_key(platform_key: bytes, secret: bytes, aad: bytes) -> bytes:
    _check_platform_key(platform_key)
    nonce = os.urandom(NONCE)
    return nonce + AESGCM(platform_key).encrypt(nonce, secret, b"strongroom-wrap|" + aad)


def unwrap_key(platform_key: bytes, wrapped: bytes, aad: bytes) -> bytes:
    _check_platform_key(platform_key)
    try:
        return AESGCM(platform_key).decrypt(wrapped[:NONCE], wrapped[NONCE:], b"strongroom-wrap|" + aad)
    except InvalidTag:
        raise KeyError_("the platform key does not open this store (wrong key, or the store config was tampered with)") from None


def _check_platform_key(k: bytes) -> None:
    if not isinstance(k, (bytes, bytearray)) or len(k) != 32:
        raise ValueError("the platform key must be exactly 32 bytes")


class Keys:
    """Working keys of one open store."""

    def __init__(self, secret: bytes):
        self.data_key = derive(secret, "data key")
        self.id_key = derive(secret, "chunk id key")
        self.chunker_seed = int.from_bytes(derive(secret, "chunker seed")[:8], "little") >> 1 | 1
        self.aead = AESGCM(self.data_key)

    # -- chunks ----------------------------------------------------------------
    def chunk_id(self, data) -> bytes:
        return blake3.blake3(data, key=self.id_key).digest()

    def seal_chunk(self, cid: bytes, flag: int, payload) -> bytearray:
        """blob = flag(1) | nonce(12) | ciphertext+tag; AAD = chunk id | flag."""
        nonce = os.urandom(NONCE)
        # sealed in place into one buffer of the blob's exact size: joining the header to a
        # separate ciphertext would allocate and copy every chunk a second time
        blob = bytearray(1 + NONCE + len(payload) + TAG)
        blob[0] = flag
        blob[1:1 + NONCE] = nonce
        self.aead.encrypt_into(nonce, payload, cid + bytes((flag,)), memoryview(blob)[1 + NONCE:])
        return blob

    def open_chunk(self, cid: bytes, blob) -> tuple[int, bytes]:
        blob = memoryview(blob)
        if len(blob) < 1 + NONCE + TAG:
            raise IntegrityError("chunk blob truncated")
        flag = blob[0]
        try:
            pt = self.aead.decrypt(bytes(blob[1:1 + NONCE]), blob[1 + NONCE:], cid + bytes((flag,)))
        except InvalidTag:
            raise IntegrityError(f"chunk {cid.hex()} failed authentication") from None
        return flag, pt

    # -- small whole objects (pack headers, index files) -------------------------
    def seal(self, aad: bytes, plaintext) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + self.aead.encrypt(nonce, plaintext, b"strongroom-obj|" + aad)

    def open(self, aad: bytes, sealed, what: str = "object") -> bytes:
        sealed = memoryview(sealed)
        if len(sealed) < NONCE + TAG:
            raise IntegrityError(f"{what} truncated")
        try:
            return self.aead.decrypt(bytes(sealed[:NONCE]), sealed[NONCE:], b"strongroom-obj|" + aad)
        except InvalidTag:
            raise IntegrityError(f"{what} failed authentication") from None

    # -- segmented streams (manifests) ------------------------------------------
    def seal_segment(self, aad: bytes, index: int, final: bool, plaintext) -> bytes:
        nonce = os.urandom(NONCE)
        ad = b"strongroom-seg|" + aad + struct.pack("<QB", index, 1 if final else 0)
        ct = self.aead.encrypt(nonce, plaintext, ad)
        return struct.pack("<IB", NONCE + len(ct), 1 if final else 0) + nonce + ct

    def open_segment(self, aad: bytes, index: int, final: bool, body, what: str) -> bytes:
        body = memoryview(body)
        ad = b"strongroom-seg|" + aad + struct.pack("<QB", index, 1 if final else 0)
        try:
            return self.aead.decrypt(bytes(body[:NONCE]), body[NONCE:], ad)
        except InvalidTag:
            raise IntegrityError(f"{what} segment {index} failed authentication") from None
