"""A byte range of an open file as a seekable binary stream."""

from __future__ import annotations

import io
import os


class FileRange(io.RawIOBase):
    """Bytes ``[start, end)`` of the file descriptor ``fd``, read with ``preadv``: several ranges of
    one file never share an offset, and nothing is read before it is asked for (a volume's data
    region being chunked, a staged pack's part being uploaded)."""

    def __init__(self, fd: int, start: int, end: int):
        super().__init__()
        self.fd, self.start, self.end = fd, start, end
        self.pos = start

    def readable(self):
        return True

    def seekable(self):
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self.end - self.pos)
        if n <= 0:
            return 0
        got = os.preadv(self.fd, [memoryview(b)[:n]], self.pos)
        self.pos += got
        return got

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: self.start, io.SEEK_CUR: self.pos, io.SEEK_END: self.end}[whence]
        self.pos = min(max(self.start, base + offset), self.end)
        return self.pos - self.start

    def tell(self) -> int:
        return self.pos - self.start

    def __len__(self) -> int:
        return self.end - self.start
