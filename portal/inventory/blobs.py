"""Blobs as files: a container is a folder, a blob name's "/" separated prefixes are sub-folders.

Everything here goes through directory file descriptors opened with ``O_NOFOLLOW`` (see `fs`), so
a blob name can never reach outside its container, and a symbolic link planted inside a container
is refused rather than followed. Uploads stream into a temporary file beside the target and are
renamed into place, so a reader never sees half a blob.

Used by the portal pages and by backups (read a container) and restores (write one):
``iter_blobs``, ``open_blob``, ``write_blob`` (with ``mtime`` to restore modification times),
``delete_blob``, ``container_stats``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from django.core.exceptions import ValidationError

from portal.inventory import fs

TEMP_PREFIX = ".strongroom-upload-"
MAX_NAME_LENGTH = 1024
MAX_SEGMENT_BYTES = 255
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class BlobInfo:
    name: str
    size: int
    mtime: float

    @property
    def folder(self) -> str:
        return self.name.rpartition("/")[0]

    @property
    def basename(self) -> str:
        return self.name.rpartition("/")[2]

    @property
    def modified(self):
        import datetime as dt

        return dt.datetime.fromtimestamp(self.mtime, tz=dt.timezone.utc)


def _bad(message: str, field: str | None) -> ValidationError:
    return ValidationError({field: message}) if field else ValidationError(message)


def validate_blob_name(name: str, *, field: str | None = "name", what: str = "Blob name") -> str:
    """Return ``name`` (NFC) when it is a safe blob name, else raise ValidationError.

    Refused: empty names, absolute paths, backslashes, NUL and other control characters, empty
    segments ("a//b", trailing "/"), "." and ".." segments, over-long names or segments.
    Spaces and any other Unicode are fine.
    """
    if name is None or name == "":
        raise _bad(f"{what} is empty. Enter a name such as 'reports/2024/summary.txt'.", field)
    name = unicodedata.normalize("NFC", name)
    if len(name) > MAX_NAME_LENGTH:
        raise _bad(f"{what} is longer than {MAX_NAME_LENGTH} characters.", field)
    if "\x00" in name:
        raise _bad(f"{what} contains a NUL character, which is not allowed.", field)
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise _bad(f"{what} contains a control character, which is not allowed.", field)
    if "\\" in name:
        raise _bad(f"{what} '{name}' contains a backslash. Use '/' to separate folders.", field)
    if name.startswith("/"):
        raise _bad(f"{what} '{name}' is an absolute path. Blob names are relative to the container.", field)
    segments = name.split("/")
    for segment in segments:
        if segment == "":
            raise _bad(f"{what} '{name}' has an empty path segment ('//' or a trailing '/').", field)
        if segment in (".", ".."):
            raise _bad(
                f"{what} '{name}' contains a '{segment}' segment. Path traversal is not allowed.", field
            )
        if segment.startswith(TEMP_PREFIX):
            raise _bad(f"{what} '{name}' uses a name Strongroom reserves for uploads in progress.", field)
        if len(segment.encode()) > MAX_SEGMENT_BYTES:
            raise _bad(f"{what} '{name}' has a segment longer than {MAX_SEGMENT_BYTES} bytes.", field)
    return name


def validate_prefix(prefix: str, *, field: str | None = "prefix") -> str:
    """A prefix filter or upload folder: like a blob name, but may be empty or end with '/'."""
    prefix = (prefix or "").strip()
    if not prefix:
        return ""
    body = prefix[:-1] if prefix.endswith("/") else prefix
    validate_blob_name(body, field=field, what="Prefix")
    return unicodedata.normalize("NFC", prefix)


def _container_root(container) -> Path:
    return Path(container.path)


@contextlib.contextmanager
def _walk_to_parent(container, name: str, *, create: bool):
    """Yield (fd of the blob's folder, the blob's last segment)."""
    parts = name.split("/")
    fd = fs.open_dir(_container_root(container))
    try:
        shown = []
        for part in parts[:-1]:
            shown.append(part)
            try:
                child = fs._open_child_dir(fd, part, create=create, shown="/".join(shown))
            except NotADirectoryError as exc:
                raise ValidationError(
                    {"name": f"'{'/'.join(shown)}' is a blob, so it cannot also be a folder of '{name}'."}
                ) from exc
            os.close(fd)
            fd = child
        yield fd, parts[-1]
    finally:
        os.close(fd)


def ensure_container_dir(container) -> None:
    os.close(fs.open_dir(_container_root(container), create=True))


def write_blob(
    container,
    name: str,
    source: BinaryIO | Iterable[bytes],
    *,
    overwrite: bool = False,
    mtime: float | None = None,
) -> int:
    """Stream ``source`` (a file object or an iterable of chunks) into the blob ``name``.

    Returns the number of bytes written. Refuses to replace an existing blob unless ``overwrite``.
    """
    name = validate_blob_name(name)
    chunks = iter(lambda: source.read(CHUNK), b"") if hasattr(source, "read") else iter(source)
    with _walk_to_parent(container, name, create=True) as (dir_fd, leaf):
        try:
            existing = os.stat(leaf, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            if stat.S_ISDIR(existing.st_mode):
                raise ValidationError({"name": f"'{name}' is a folder of other blobs; choose another name."})
            if not overwrite:
                raise ValidationError(
                    {"name": f"A blob named '{name}' already exists. Choose 'Overwrite if files already exist' to replace it."}
                )
        temp = f"{TEMP_PREFIX}{uuid.uuid4().hex}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
        written = 0
        try:
            with os.fdopen(fd, "wb", closefd=True) as out:
                for chunk in chunks:
                    out.write(chunk)
                    written += len(chunk)
            if mtime is not None:
                os.utime(temp, (mtime, mtime), dir_fd=dir_fd, follow_symlinks=False)
            os.rename(temp, leaf, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=dir_fd)
            raise
    return written


def open_blob(container, name: str) -> BinaryIO:
    """A binary file object for reading the blob (the caller closes it)."""
    name = validate_blob_name(name)
    try:
        with _walk_to_parent(container, name, create=False) as (dir_fd, leaf):
            fd = os.open(leaf, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError as exc:
        raise BlobNotFound(name) from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise fs.UnsafePath(f"'{name}' is a symbolic link; Strongroom never follows links.") from exc
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BlobNotFound(name)
    return os.fdopen(fd, "rb")


class BlobNotFound(LookupError):
    pass


def delete_blob(container, name: str) -> None:
    """Delete one blob, then any folders it leaves empty."""
    name = validate_blob_name(name)
    parts = name.split("/")
    fds = [fs.open_dir(_container_root(container))]
    try:
        for part in parts[:-1]:
            try:
                fds.append(fs._open_child_dir(fds[-1], part, create=False, shown=part))
            except (FileNotFoundError, NotADirectoryError) as exc:
                raise BlobNotFound(name) from exc
        try:
            info = os.stat(parts[-1], dir_fd=fds[-1], follow_symlinks=False)
        except FileNotFoundError as exc:
            raise BlobNotFound(name) from exc
        if stat.S_ISDIR(info.st_mode):
            raise BlobNotFound(name)
        os.unlink(parts[-1], dir_fd=fds[-1])
        for depth in range(len(parts) - 1, 0, -1):
            try:
                os.rmdir(parts[depth - 1], dir_fd=fds[depth - 1])
            except OSError:
                break
    finally:
        for fd in fds:
            os.close(fd)


def _scan(dir_fd: int, prefix_path: str) -> Iterator[BlobInfo]:
    with os.scandir(dir_fd) as entries:
        items = sorted(entries, key=lambda e: e.name)
    for entry in items:
        if entry.name.startswith(TEMP_PREFIX):
            continue
        name = f"{prefix_path}{entry.name}"
        if entry.is_symlink():
            continue  # never followed, never listed
        if entry.is_dir(follow_symlinks=False):
            try:
                child = os.open(entry.name, fs.DIR_FLAGS, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                yield from _scan(child, name + "/")
            finally:
                os.close(child)
        elif entry.is_file(follow_symlinks=False):
            info = entry.stat(follow_symlinks=False)
            yield BlobInfo(name, info.st_size, info.st_mtime)


def iter_blobs(container, prefix: str = "") -> Iterator[BlobInfo]:
    """Every blob whose name starts with ``prefix``, in name order (folders walked depth first)."""
    prefix = validate_prefix(prefix)
    folder, _, _ = prefix.rpartition("/")
    try:
        fd = fs.open_dir(_container_root(container) / folder if folder else _container_root(container))
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        for blob in _scan(fd, f"{folder}/" if folder else ""):
            if blob.name.startswith(prefix):
                yield blob
    finally:
        os.close(fd)


def container_stats(container) -> tuple[int, int]:
    """(number of blobs, total bytes)."""
    count = total = 0
    for blob in iter_blobs(container):
        count += 1
        total += blob.size
    return count, total
