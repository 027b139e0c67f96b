"""Secrets at rest, sealed with keys derived from STRONGROOM_MASTER_KEY (the platform key).

AES-256-GCM with a random nonce; the purpose string is bound as associated data, so a ciphertext
sealed for one purpose (a DSN password, say) cannot be replayed as another.
"""

import base64
import functools
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

VERSION = b"v1"


@functools.lru_cache(maxsize=8)
def derive_key(info: str, master: str | None = None) -> bytes:
    material = (master or settings.STRONGROOM_MASTER_KEY).encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"strongroom", info=info.encode()).derive(
        material
    )


def platform_key() -> bytes:
    """The 32-byte key that wraps every vault store's data key."""
    return derive_key("strongroom platform key v1")


def encrypt_secret(plaintext: str, *, purpose: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(derive_key("strongroom secrets v1")).encrypt(nonce, plaintext.encode(), purpose.encode())
    return (VERSION + b":" + base64.urlsafe_b64encode(nonce + sealed)).decode()


def decrypt_secret(token: str, *, purpose: str) -> str:
    version, _, body = token.encode().partition(b":")
    if version != VERSION:
        raise ValueError("Unknown secret format.")
    raw = base64.urlsafe_b64decode(body)
    return AESGCM(derive_key("strongroom secrets v1")).decrypt(raw[:12], raw[12:], purpose.encode()).decode()
