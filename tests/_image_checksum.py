"""The image checksum written the plainest way, from the image's bytes, to hold the engine's
(`vaults.store.backup._ImageDigest`) and the portal's (`portal.inventory.volumes.ContentDigest`)
to its definition: SHA-256 over, for each 64 KiB block holding a non-zero byte, its offset (8 bytes,
big-endian) and its bytes, then the image's size (8 bytes, big-endian)."""

import hashlib

BLOCK = 64 * 1024


def content_checksum(data: bytes) -> str:
    digest = hashlib.sha256()
    for offset in range(0, len(data), BLOCK):
        block = data[offset:offset + BLOCK]
        if block.count(0) != len(block):
            digest.update(offset.to_bytes(8, "big") + block)
    digest.update(len(data).to_bytes(8, "big"))
    return "blocks-sha256:" + digest.hexdigest()


def content_checksum_of_file(path) -> str:
    with open(path, "rb") as f:
        return content_checksum(f.read())


def whole_image_sha256(path) -> str:
    """The checksum recorded before this scheme: SHA-256 of every byte of the image, bare hex."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
