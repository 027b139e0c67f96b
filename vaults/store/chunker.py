"""Chunkers: content-defined (FastCDC, compiled only), for files, streams and the data regions
of volume images; fixed-size volume blocks were the image format before (still restored)."""

from __future__ import annotations

import errno
import os
from typing import Iterator, Tuple

from .errors import ChunkerUnavailable, StoreError
from .filerange import FileRange

MIN_SIZE = 256 * 1024
AVG_SIZE = 1024 * 1024
MAX_SIZE = 4 * 1024 * 1024
BLOCK_SIZE = 1024 * 1024  # volume images
WHOLE_FILE_LIMIT = 8 * 1024 * 1024  # files up to this size are read whole and cut in memory


def compiled_fastcdc():
    """The compiled FastCDC class. Raises :class:`ChunkerUnavailable` if only the pure-Python
    fallback is importable: the engine never runs on the slow path silently."""
    try:
        import pyfastcdc  # noqa: F401
        from pyfastcdc.cy import FastCDC  # the Cython extension module
    except ImportError as e:  # pragma: no cover - exercised in a subprocess test
        raise ChunkerUnavailable(
            "the compiled FastCDC extension (pyfastcdc.cy) is not available; refusing to run "
            "(reinstall pyfastcdc with PYFASTCDC_REQUIRE_CYTHON=1)") from e
    mod = getattr(FastCDC, "__module__", "")
    if not mod.startswith("pyfastcdc.cy") or not _is_extension(FastCDC):
        raise ChunkerUnavailable("pyfastcdc.cy.FastCDC is not the compiled extension; refusing to run")
    return FastCDC


def _is_extension(cls) -> bool:
    import sys
    mod = sys.modules.get(cls.__module__)
    f = getattr(mod, "__file__", "") or ""
    return f.endswith((".so", ".pyd"))


class CDC:
    """Content-defined chunker with a secret gear-table seed."""

    def __init__(self, seed: int, min_size=MIN_SIZE, avg_size=AVG_SIZE, max_size=MAX_SIZE):
        FastCDC = compiled_fastcdc()
        self.params = (min_size, avg_size, max_size)
        self._fastcdc = FastCDC(avg_size, min_size=min_size, max_size=max_size, seed=seed)
        self._new = lambda: FastCDC(avg_size, min_size=min_size, max_size=max_size, seed=seed)
        self.min_size = min_size

    def cutter(self):
        """A fresh FastCDC instance (one per stream: an instance is not reentrant)."""
        return self._new()

    def chunks_of_buffer(self, buf) -> Iterator[bytes]:
        """Chunks of an in-memory buffer, as zero-copy memoryviews of ``buf``."""
        mv = memoryview(buf)
        if len(mv) <= self.min_size:
            if len(mv):
                yield mv
            return
        for c in self._fastcdc.cut_buf(mv):
            yield mv[c.offset:c.offset + c.length]

    def chunks_of_stream(self, f) -> Iterator[bytes]:
        """Chunks of a readable binary stream, as fresh ``bytes`` objects (bounded memory)."""
        for c in self._new().cut_stream(f):
            yield bytes(c.data)


def data_extents(fd: int, size: int) -> Iterator[Tuple[int, int]]:
    """(start, end) of the data regions of a file, via SEEK_DATA/SEEK_HOLE."""
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:
                return
            if e.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                yield (pos, size)  # filesystem without hole reporting: all data
                return
            raise
        try:
            end = os.lseek(fd, start, os.SEEK_HOLE)
        except OSError:
            end = size
        end = min(end, size)
        if end <= start:
            return
        yield (start, end)
        pos = end


def volume_chunks(fd: int, size: int, cdc: "CDC") -> Iterator[Tuple[int, bytes | memoryview]]:
    """(offset, data) of the content-defined chunks of each data region of an image (holes
    skipped): chunks follow the allocated data, so one never straddles a hole, and an extent
    that moves or grows at its start only changes the chunks around the change. Raises
    :class:`StoreError` if a region reads short (the image shrank meanwhile)."""
    for start, end in data_extents(fd, size):
        if end - start <= WHOLE_FILE_LIMIT:
            # read whole and cut in memory (the same cuts as streaming it): a stream would
            # allocate and zero its own buffer of twice the largest chunk for every region
            data = os.pread(fd, end - start, start)
            if len(data) < end - start:
                raise StoreError("the image shrank during the backup")
            off = start
            for c in cdc.chunks_of_buffer(data):
                yield off, c
                off += len(c)
            continue
        reader = FileRange(fd, start, end)
        for c in cdc.cutter().cut_stream(reader):
            yield start + c.offset, bytes(c.data)
        if reader.pos < end:
            raise StoreError("the image shrank during the backup")


def volume_blocks(fd: int, size: int, block_size: int = BLOCK_SIZE) -> Iterator[Tuple[int, int]]:
    """(offset, length) of the fixed blocks that touch a data region (holes skipped)."""
    last = -1
    for start, end in data_extents(fd, size):
        b = (start // block_size) * block_size
        while b < end:
            if b > last:
                yield (b, min(block_size, size - b))
                last = b
            b += block_size
