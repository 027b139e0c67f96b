"""Volume images: sparse raw files, seeded sample extents, allocation and checksums.

Images are opened through `fs` (no symbolic links, only below the data root or an attach root).
Backups read ``Volume.image_path`` as a point-in-time copy (a reflink clone, or the image held while
they read it: writes here wait, see `write_sample_extents`); restores create a new image with
``create_image`` and can compare ``image_checksum`` with the recovery point's.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import random
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from portal.inventory import fs, image_lock

GIB = 1024**3
MIB = 1024**2
BLOCK = 4096
READ_CHUNK = 4 * MIB
_ZEROS = bytes(READ_CHUNK)

Progress = Callable[[int, int], None]  # (done, total)


@contextlib.contextmanager
def open_image(path: Path, *, write: bool = False, create_size: int | None = None):
    """An fd for the image at ``path``; with ``create_size`` a new sparse image of that size."""
    path = Path(path)
    with fs.opened_dir(path.parent, create=create_size is not None) as dir_fd:
        flags = (os.O_RDWR if write or create_size is not None else os.O_RDONLY) | os.O_NOFOLLOW | os.O_CLOEXEC
        if create_size is not None:
            flags |= os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(path.name, flags, 0o600, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise fs.UnsafePath(f"'{path}' is a symbolic link; Strongroom never follows links.") from exc
            if exc.errno == errno.EEXIST:
                raise FileExistsError(errno.EEXIST, f"An image already exists at '{path}'.") from exc
            raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise fs.UnsafePath(f"'{path}' is not a regular file.")
        if create_size is not None:
            # A hole of the whole size: no block is allocated until something is written.
            os.ftruncate(fd, create_size)
        yield fd
    finally:
        os.close(fd)


def create_image(path: Path, size_bytes: int) -> None:
    """Create a sparse image; refuses to overwrite anything that exists."""
    with open_image(path, create_size=size_bytes):
        pass


def remove_image(path: Path) -> None:
    path = Path(path)
    try:
        with fs.opened_dir(path.parent) as dir_fd:
            info = os.stat(path.name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode):
                os.unlink(path.name, dir_fd=dir_fd)
    except FileNotFoundError:
        return


@dataclass(frozen=True)
class ImageInfo:
    size_bytes: int
    allocated_bytes: int


def image_info(path: Path) -> ImageInfo:
    """Size and allocated bytes (``st_blocks`` × 512: what the file really occupies on disk)."""
    with open_image(path) as fd:
        info = os.fstat(fd)
    return ImageInfo(info.st_size, info.st_blocks * 512)


def measure(row) -> None:
    """Record on ``row`` (a volume or a managed disk: anything with an ``image_path``) what its image
    occupies now; the caller saves it."""
    from security import clock

    row.allocated_bytes = image_info(row.image_path).allocated_bytes
    row.allocated_measured_at = clock.now()


def plan_extents(size_bytes: int, seed: int, budget: int | None = None) -> list[tuple[int, int]]:
    """Deterministic (offset, length) extents for a seed: about 1/32 of the volume, ≤ 32 MiB (or ``budget``).

    Offsets and lengths are 4 KiB aligned; lengths 64 KiB to 1 MiB. The same seed always gives the
    same extents (and, with ``extent_bytes``, the same data), so tests and labs are reproducible.
    """
    rng = random.Random(f"extents:{seed}")
    budget = budget or max(min(size_bytes // 32, 32 * MIB), min(size_bytes, 64 * 1024))
    extents = []
    total = 0
    while total < budget:
        length = min(rng.randrange(16, 257) * BLOCK, budget - total, size_bytes)
        length = max(BLOCK, length - length % BLOCK) if size_bytes >= BLOCK else size_bytes
        slots = max(1, (size_bytes - length) // BLOCK + 1)
        offset = rng.randrange(slots) * BLOCK
        extents.append((offset, length))
        total += length
    return extents


def extent_bytes(seed: int, index: int, length: int) -> bytes:
    return random.Random(f"data:{seed}:{index}").randbytes(length)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (one pwrite may write less than it was given)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def held_by_backup(path: Path) -> bool:
    """Whether a backup is reading the image right now (holding it for its point-in-time copy)."""
    try:
        with open_image(path) as fd:
            return image_lock.is_held(fd)
    except (OSError, fs.UnsafePath):
        return False


def write_sample_extents(path: Path, seed: int, progress: Progress | None = None, *, wait: float | None = None,
                         on_wait: Callable[[], None] | None = None, budget: int | None = None) -> int:
    """Write the seed's extents of random bytes onto the image. Returns bytes written.

    A backup reading the volume without a reflink clone holds it (`image_lock`): the write
    waits until the backup has read the image (``on_wait`` is told, every few seconds), and raises
    ``TimeoutError`` with nothing written after ``wait`` seconds."""
    with open_image(path, write=True) as fd, image_lock.hold_for_writing(fd, wait=wait, on_wait=on_wait):
        size = os.fstat(fd).st_size
        extents = plan_extents(size, seed, budget)
        total = sum(length for _, length in extents)
        done = 0
        for index, (offset, length) in enumerate(extents):
            _pwrite_all(fd, extent_bytes(seed, index, length), offset)
            done += length
            if progress:
                progress(done, total)
        os.fsync(fd)
    return total


# --- checksums ---------------------------------------------------------------------------------------
# A volume's checksum is "blocks-sha256:<hex>": SHA-256 over, for each 64 KiB block of the image that
# holds a non-zero byte, in order, its offset (8 bytes, big-endian) then its bytes (the last block ends
# with the image), and finally the image's size (8 bytes, big-endian). A hole and written zeros give
# the same value, and computing it costs the data, not the size: a 1 TiB disk with 1 GiB written hashes
# 1 GiB. The engine computes the same value while it backs an image up (``vaults.store.backup``; it
# may not import this module, tests hold the two equal). Points taken before this scheme recorded the
# SHA-256 of the whole image, holes read as zeros, as bare hex: ``like=`` computes that kind for them.
CONTENT_BLOCK = 64 * 1024
CONTENT_PREFIX = "blocks-sha256:"
_ZERO_BLOCK = bytes(CONTENT_BLOCK)


def is_whole_image_checksum(checksum: str) -> bool:
    """A checksum recorded before the content scheme (bare hex: SHA-256 of every byte of the image)."""
    return bool(checksum) and not checksum.startswith(CONTENT_PREFIX)


class ContentDigest:
    """The content checksum, fed the image's data in order, in runs starting on a block boundary."""

    def __init__(self):
        self._h = hashlib.sha256()
        self._next = 0  # blocks before this offset are done

    def update(self, offset: int, data) -> None:
        if offset % CONTENT_BLOCK or offset < self._next:
            raise ValueError(f"content digest fed at {offset}: runs start on a block boundary, in order")
        view = memoryview(data)
        for at in range(0, len(view), CONTENT_BLOCK):
            block = view[at:at + CONTENT_BLOCK]
            # bytes == bytes is a memcmp; comparing a memoryview goes byte by byte
            if block.tobytes() != (_ZERO_BLOCK if len(block) == CONTENT_BLOCK else bytes(len(block))):
                self._h.update((offset + at).to_bytes(8, "big"))
                self._h.update(block)
        self._next = offset + len(view)

    def checksum(self, size: int) -> str:
        self._h.update(size.to_bytes(8, "big"))
        return CONTENT_PREFIX + self._h.hexdigest()


class WholeImageDigest:
    """SHA-256 of every byte of the image, holes as zeros (the scheme of points taken before
    `ContentDigest`); fed the same way, it hashes the gaps between runs as zeros."""

    def __init__(self):
        self._h = hashlib.sha256()
        self._next = 0

    def _zeros(self, count: int) -> None:
        while count > 0:
            step = min(count, READ_CHUNK)
            self._h.update(_ZEROS[:step] if step < READ_CHUNK else _ZEROS)
            count -= step

    def update(self, offset: int, data) -> None:
        if offset < self._next:
            raise ValueError(f"whole-image digest fed at {offset}, before {self._next}")
        self._zeros(offset - self._next)
        self._h.update(data)
        self._next = offset + len(data)

    def checksum(self, size: int) -> str:
        self._zeros(size - self._next)
        return self._h.hexdigest()


def digest_like(checksum: str = ""):
    """A digest of the kind ``checksum`` is (the content scheme unless it is an older whole-image one)."""
    return WholeImageDigest() if is_whole_image_checksum(checksum) else ContentDigest()


def data_runs(fd: int, size: int, progress: Progress | None = None):
    """(offset, bytes) of the image's data regions, widened to whole 64 KiB blocks and read in pieces of
    at most ``READ_CHUNK`` (both multiples of the block), in order; holes between them are skipped with
    SEEK_DATA. What a block reads beyond a data region is a hole's zeros."""
    position = 0
    while position < size:
        try:
            data_at = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: only a hole remains
                raise
            break
        if data_at >= size:
            break
        hole_at = os.lseek(fd, data_at, os.SEEK_HOLE)
        position = data_at - data_at % CONTENT_BLOCK  # never before ``position``: that is a block boundary
        end = min(size, -(-hole_at // CONTENT_BLOCK) * CONTENT_BLOCK)
        while position < end:
            chunk = os.pread(fd, min(READ_CHUNK, end - position), position)
            if not chunk:
                raise OSError(errno.EIO, f"Unexpected end of image at byte {position}")
            yield position, chunk
            position += len(chunk)
            if progress:
                progress(position, size)


def image_checksum(path: Path, progress: Progress | None = None, *, like: str = "") -> str:
    """The image's checksum (see `ContentDigest`), or of the kind ``like`` is, to compare with it."""
    digest = digest_like(like)
    with open_image(path) as fd:
        size = os.fstat(fd).st_size
        for offset, chunk in data_runs(fd, size, progress):
            digest.update(offset, chunk)
        if progress:
            progress(size, size)
    return digest.checksum(size)


# Varied data for the lab's large volume: a quarter of every stretch is left as a hole, and the data
# cycles through incompressible bytes, compressible text-like bytes (unique, ~4 bits per byte) and a
# block repeated many times (deduplicated by the engine), so a backup shows all three at once.
_VARIED_SEGMENT = 4 * MIB
_TEXTISH = bytes.maketrans(bytes(range(256)), (b"etaoinshrdlucmfw ypvbgkjqxz\n.,ETAOINS" * 7)[:256])


def _varied_segment(seed: int, index: int) -> bytes:
    rng = random.Random(f"varied:{seed}:{index}")
    kind = index % 5
    if kind in (0, 1):  # incompressible
        return rng.randbytes(_VARIED_SEGMENT)
    if kind in (2, 3):  # text-like: compresses, never repeats
        return rng.randbytes(_VARIED_SEGMENT).translate(_TEXTISH)
    block = rng.randbytes(64 * 1024)  # repeated: stored once
    return block * (_VARIED_SEGMENT // len(block))


def write_varied_data(path: Path, seed: int, total_bytes: int, progress: Progress | None = None) -> int:
    """Write ``total_bytes`` (rounded to 4 MiB) of varied data over the image, deterministic per seed,
    in 4 MiB segments spread across it with holes between. Returns bytes written."""
    # Like every writer, wait while a backup reads the volume, so its recovery point stays one image.
    with open_image(path, write=True) as fd, image_lock.hold_for_writing(fd):
        size = os.fstat(fd).st_size
        count = max(1, min(total_bytes // _VARIED_SEGMENT, size // _VARIED_SEGMENT))
        stride = (size // count) // BLOCK * BLOCK
        done = 0
        for index in range(count):
            _pwrite_all(fd, _varied_segment(seed, index), index * stride)
            done += _VARIED_SEGMENT
            if progress:
                progress(done, count * _VARIED_SEGMENT)
        os.fsync(fd)
    return done
