"""Storage backends: where the store's objects live.

A backend is a flat namespace of immutable objects named by ``/``-separated strings
(``config``, ``packs/ab/abcd...``, ``index/...``, ``snapshots/...``). The engine only ever
creates objects (atomically, never partially visible), reads them (whole, by range, or as a
stream), lists them by prefix, deletes them, and sets retention on them.

Two implementations: :class:`LocalBackend` (a directory) and :class:`~vaults.store.s3.S3Backend`
(S3-compatible object storage: ``put_chunks`` is a multipart upload, ``get_range`` a ranged
GET, ``set_retention`` Object Lock ``GOVERNANCE`` / ``COMPLIANCE``). ``delete`` refuses while
an object is retained. :func:`vaults.store.location.open_backend` turns a location string into either.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
import errno
import hashlib
import io
import json
import os
import uuid
from typing import BinaryIO, Iterator, Optional

from .errors import NotFound, RetentionError, StorageFull

GOVERNANCE = "governance"
COMPLIANCE = "compliance"
MODES = (GOVERNANCE, COMPLIANCE)


FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _aware(when: dt.datetime) -> dt.datetime:
    if when.tzinfo is None:
        raise ValueError("retention dates must be timezone-aware")
    return when.astimezone(dt.timezone.utc)


def retention_until(until: dt.datetime, mode: str) -> dt.datetime:
    """``until`` in UTC, once ``mode`` is known to be a retention mode."""
    if mode not in MODES:
        raise ValueError(f"retention mode must be one of {MODES}")
    return _aware(until)


def refuse_weaker_retention(name: str, cur, until: dt.datetime, mode: str, bypass_governance: bool) -> None:
    """Raise :class:`RetentionError` when setting (``until``, ``mode``) would weaken the active
    retention ``cur``: compliance is never lowered to governance, and a date is never brought
    forward (governance allows it with ``bypass_governance``)."""
    if cur is not None and cur.active():
        if cur.mode == COMPLIANCE and mode == GOVERNANCE:
            raise RetentionError(name, cur.until, cur.mode,
                                 f"cannot lower compliance retention of {name!r} to governance")
        if until < cur.until and not (cur.mode == GOVERNANCE and bypass_governance):
            raise RetentionError(name, cur.until, cur.mode,
                                 f"cannot shorten retention of {name!r} (until {cur.until.isoformat()})")


@dataclasses.dataclass(frozen=True)
class Retention:
    """Retention of one object: no delete or overwrite before ``until``."""

    until: dt.datetime
    mode: str = GOVERNANCE

    def active(self, now: Optional[dt.datetime] = None) -> bool:
        return (now or utcnow()) < self.until


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    """One listed object: name, size in bytes, last-modified time (UTC, by the storage's clock)."""

    name: str
    size: int
    mtime: dt.datetime


def check_name(name: str) -> str:
    if not name or name.startswith("/") or name.endswith("/"):
        raise ValueError(f"bad object name {name!r}")
    for part in name.split("/"):
        if part in ("", ".", "..") or part.startswith(".") or "\x00" in part:
            raise ValueError(f"bad object name {name!r}")
    return name


class Backend(abc.ABC):
    """Abstract object store. Implementations must be safe to call from several threads."""

    #: a stable description for messages (path or URL, never credentials)
    location: str = "?"

    @abc.abstractmethod
    def put(self, name: str, data: bytes | bytearray | memoryview) -> None:
        """Create (or replace) object ``name`` atomically and durably.

        Raises :class:`RetentionError` when replacing an object under retention."""

    def put_chunks(self, name: str, chunks) -> None:
        """Create ``name`` from an iterable of byte strings, atomically (default: join + put).
        An S3 backend maps this onto a multipart upload."""
        self.put(name, b"".join(chunks))

    def put_file(self, name: str, path: str) -> None:
        """Upload the local file ``path`` as ``name``."""
        def gen():
            with open(path, "rb") as f:
                while True:
                    b = f.read(4 << 20)
                    if not b:
                        return
                    yield b
        self.put_chunks(name, gen())

    def stage(self, scratch_dir: str) -> "StagedObject":
        """A new object written piece by piece before its name is known (a pack is named by the
        hash of its bytes). Default: a spool file in ``scratch_dir``, uploaded by ``put_file`` on
        commit, so what is being written is on disk, not in memory."""
        return SpooledObject(self, scratch_dir)

    @abc.abstractmethod
    def get(self, name: str) -> bytes:
        """Whole object. Raises :class:`NotFound`."""

    @abc.abstractmethod
    def get_range(self, name: str, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` (may be shorter at the end). Raises :class:`NotFound`."""

    def open(self, name: str) -> BinaryIO:
        """A readable binary stream of the object (default: buffered whole object)."""
        return io.BytesIO(self.get(name))

    @abc.abstractmethod
    def size(self, name: str) -> int:
        """Size in bytes. Raises :class:`NotFound`."""

    def exists(self, name: str) -> bool:
        try:
            self.size(name)
            return True
        except NotFound:
            return False

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Names of objects starting with ``prefix``, sorted."""

    def list_info(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Like :meth:`list` with sizes and modification times (used by garbage collection)."""
        for name in self.list(prefix):
            try:
                yield ObjectInfo(name, self.size(name), utcnow())
            except NotFound:
                continue

    def supports_retention(self) -> bool:
        """Whether :meth:`set_retention` can make objects undeletable here (an S3 bucket needs
        Object Lock, which can only be enabled when the bucket is created)."""
        return True

    def cleanup_incomplete(self, older_than: dt.datetime) -> tuple[int, int]:
        """Remove invisible leftovers of interrupted writes started before ``older_than``
        (temp files, incomplete multipart uploads). Returns (count, bytes)."""
        return 0, 0

    @abc.abstractmethod
    def delete(self, name: str, *, bypass_governance: bool = False) -> None:
        """Delete an object. Raises :class:`RetentionError` while it is retained
        (governance retention may be bypassed explicitly; compliance never)."""

    @abc.abstractmethod
    def set_retention(self, name: str, until: dt.datetime, mode: str = GOVERNANCE, *,
                      bypass_governance: bool = False) -> None:
        """Retain ``name`` until ``until``. Retention may be extended and governance may be
        raised to compliance; shortening it (or lowering compliance) raises
        :class:`RetentionError` (governance may be shortened with ``bypass_governance``)."""

    @abc.abstractmethod
    def get_retention(self, name: str) -> Optional[Retention]:
        """Current retention of ``name`` or ``None``."""

    def close(self) -> None:
        pass


# Fault injection for crash tests only: STRONGROOM_FAULT_KILL_AFTER_BYTES=N makes the process
# SIGKILL itself once N bytes have been written to store objects (in the middle of a write).
_FAULT_LIMIT = int(os.environ["STRONGROOM_FAULT_KILL_AFTER_BYTES"]) if os.environ.get("STRONGROOM_FAULT_KILL_AFTER_BYTES") else None
_fault_written = 0


def _fault_chunks(chunks):
    global _fault_written
    import signal
    for c in chunks:
        c = memoryview(c)
        room = _FAULT_LIMIT - _fault_written
        if len(c) >= room:
            yield c[:max(room, 0)]
            yield b""
            os.kill(os.getpid(), signal.SIGKILL)
        _fault_written += len(c)
        yield c


# STRONGROOM_FAULT_KILL_AFTER_DELETES=N makes the process SIGKILL itself before its (N+1)th delete.
_FAULT_DELETES = int(os.environ["STRONGROOM_FAULT_KILL_AFTER_DELETES"]) if os.environ.get("STRONGROOM_FAULT_KILL_AFTER_DELETES") else None
_fault_deleted = 0


def fault_before_delete():
    global _fault_deleted
    if _FAULT_DELETES is None:
        return
    if _fault_deleted >= _FAULT_DELETES:
        import signal
        os.kill(os.getpid(), signal.SIGKILL)
    _fault_deleted += 1


def fault_wrap(chunks):
    """The byte-count fault hook around an iterable of chunks (no-op unless configured)."""
    return _fault_chunks(chunks) if _FAULT_LIMIT is not None else chunks


class StagedObject(abc.ABC):
    """An object being written: ``write`` its pieces in order, then ``commit(name)`` (it appears
    atomically and durably under ``name``) or ``discard()``. ``write`` and ``commit`` may run on
    different threads, one after the other."""

    def __init__(self, directory: str, where: str, what: str):
        self.where, self.what = where, what
        self.path = os.path.join(directory, f".tmp-{uuid.uuid4().hex}")
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.size = 0

    def write(self, data) -> None:
        try:
            for piece in fault_wrap([data]):
                self._write_raw(piece)
        except OSError as e:
            self._raise_if_full(e)
            raise
        self.size += len(data)

    def _raise_if_full(self, e: OSError) -> None:
        if e.errno in FULL_ERRNOS:
            raise StorageFull(self.where, f"{self.what} at {self.where} is full ({os.strerror(e.errno)})") from e

    def _write_raw(self, data) -> None:
        mv = memoryview(data)
        while mv:
            mv = mv[os.write(self.fd, mv):]

    def _close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    @abc.abstractmethod
    def commit(self, name: str) -> None:
        """Make the written bytes appear atomically and durably as ``name`` (discarded on failure)."""

    def discard(self) -> None:
        self._close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class SpooledObject(StagedObject):
    """Staged in a local spool file, uploaded with ``put_file`` on commit."""

    def __init__(self, backend: "Backend", scratch_dir: str):
        os.makedirs(scratch_dir, exist_ok=True)
        super().__init__(scratch_dir, scratch_dir, "the local disk that stages packs for upload")
        self.backend = backend

    def commit(self, name: str) -> None:
        self._close()
        try:
            self.backend.put_file(name, self.path)
        finally:
            self.discard()


class _LocalStaged(StagedObject):
    """Staged as a temp file inside the store, renamed into place on commit (no second copy)."""

    def __init__(self, backend: "LocalBackend"):
        super().__init__(backend.root, backend.root, "the storage of the store")
        self.backend = backend

    def commit(self, name: str) -> None:
        b = self.backend
        dest = b._path(name)
        try:
            if os.path.lexists(dest):
                b._check_not_retained(name, "overwrite")
            if b.fsync:
                try:
                    os.fsync(self.fd)
                except OSError as e:
                    self._raise_if_full(e)
                    raise
            self._close()
            b._ensure_dir(os.path.dirname(dest))
            os.rename(self.path, dest)
        except BaseException:
            self.discard()
            raise
        if b.fsync:
            _fsync_dir(os.path.dirname(dest))


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBackend(Backend):
    """A local directory. Every write is temp file + fsync + rename + fsync(dir).

    Retention is kept durably in a sidecar per object under ``<root>/.retention/`` (itself
    written atomically and checksummed; an unreadable sidecar counts as retained forever).
    Objects under retention are also made read-only on disk.
    """

    def __init__(self, root: str, *, create: bool = False, fsync: bool = True):
        self.root = os.path.abspath(root)
        self.location = self.root
        self.fsync = fsync
        self._known_dirs: set[str] = set()
        if create:
            os.makedirs(self.root, exist_ok=True)
        if not os.path.isdir(self.root):
            raise NotFound(f"store directory {self.root} does not exist")

    # -- helpers -------------------------------------------------------------
    def _path(self, name: str) -> str:
        return os.path.join(self.root, *check_name(name).split("/"))

    def _ret_path(self, name: str) -> str:
        return os.path.join(self.root, ".retention", *check_name(name).split("/")) + ".json"

    def _ensure_dir(self, d: str) -> None:
        if d in self._known_dirs:
            return
        if not os.path.isdir(d):
            parent = os.path.dirname(d)
            if parent != d:
                self._ensure_dir(parent)
            try:
                os.mkdir(d)
            except FileExistsError:
                pass
            if self.fsync:
                _fsync_dir(parent)
        self._known_dirs.add(d)

    def _atomic_write(self, path: str, chunks) -> None:
        try:
            self._atomic_write_raw(path, chunks)
        except OSError as e:
            if e.errno in FULL_ERRNOS:  # the temp file is already gone: nothing half-written stays
                raise StorageFull(self.root, f"the storage of the store at {self.root} is full "
                                             f"({os.strerror(e.errno)})") from e
            raise

    def _atomic_write_raw(self, path: str, chunks) -> None:
        if _FAULT_LIMIT is not None:
            chunks = _fault_chunks(chunks)
        d = os.path.dirname(path)
        self._ensure_dir(d)
        tmp = os.path.join(d, f".tmp-{uuid.uuid4().hex}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            for c in chunks:
                mv = memoryview(c)
                while mv:
                    n = os.write(fd, mv)
                    mv = mv[n:]
            if self.fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        try:
            os.rename(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        if self.fsync:
            _fsync_dir(d)

    def _check_not_retained(self, name: str, action: str, bypass_governance: bool = False) -> None:
        r = self.get_retention(name)
        if r is not None and r.active():
            if r.mode == GOVERNANCE and bypass_governance:
                return
            raise RetentionError(name, r.until, r.mode,
                                 f"cannot {action} {name!r}: under {r.mode} retention until {r.until.isoformat()}")

    # -- interface -----------------------------------------------------------
    def put(self, name, data):
        path = self._path(name)
        if os.path.lexists(path):
            self._check_not_retained(name, "overwrite")
        self._atomic_write(path, [data])

    def put_chunks(self, name, chunks):
        dest = self._path(name)
        if os.path.lexists(dest):
            self._check_not_retained(name, "overwrite")
        self._atomic_write(dest, chunks)

    def stage(self, scratch_dir):
        return _LocalStaged(self)

    def get(self, name):
        try:
            with open(self._path(name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise NotFound(f"object {name!r} not found in {self.root}") from None

    def get_range(self, name, offset, length):
        try:
            fd = os.open(self._path(name), os.O_RDONLY)
        except FileNotFoundError:
            raise NotFound(f"object {name!r} not found in {self.root}") from None
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def open(self, name):
        try:
            return open(self._path(name), "rb")
        except FileNotFoundError:
            raise NotFound(f"object {name!r} not found in {self.root}") from None

    def size(self, name):
        try:
            return os.stat(self._path(name)).st_size
        except FileNotFoundError:
            raise NotFound(f"object {name!r} not found in {self.root}") from None

    def list(self, prefix=""):
        out = []
        base = self.root
        # walk only the top-level directory the prefix points into
        top = prefix.split("/", 1)[0] if "/" in prefix else ""
        start = os.path.join(base, top) if top else base
        if not os.path.isdir(start):
            return iter(())
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = os.path.relpath(dirpath, base)
            for fn in filenames:
                if fn.startswith("."):
                    continue
                name = fn if rel == "." else f"{rel.replace(os.sep, '/')}/{fn}"
                if name.startswith(prefix):
                    out.append(name)
        out.sort()
        return iter(out)

    def list_info(self, prefix=""):
        for name in self.list(prefix):
            try:
                st = os.stat(self._path(name))
            except FileNotFoundError:
                continue
            yield ObjectInfo(name, st.st_size, dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc))

    def cleanup_incomplete(self, older_than):
        cutoff = _aware(older_than).timestamp()
        n = nbytes = 0
        for dirpath, dirnames, filenames in os.walk(self.root):
            for fn in filenames:
                if not fn.startswith(".tmp-"):
                    continue
                p = os.path.join(dirpath, fn)
                try:
                    st = os.stat(p)
                    if st.st_mtime < cutoff:
                        os.unlink(p)
                        n += 1
                        nbytes += st.st_size
                except FileNotFoundError:
                    continue
        return n, nbytes

    def delete(self, name, *, bypass_governance=False):
        path = self._path(name)
        if not os.path.lexists(path):
            raise NotFound(f"object {name!r} not found in {self.root}")
        self._check_not_retained(name, "delete", bypass_governance)
        fault_before_delete()
        os.unlink(path)
        rp = self._ret_path(name)
        if os.path.exists(rp):
            os.unlink(rp)
        if self.fsync:
            _fsync_dir(os.path.dirname(path))

    def set_retention(self, name, until, mode=GOVERNANCE, *, bypass_governance=False):
        until = retention_until(until, mode)
        path = self._path(name)
        if not os.path.lexists(path):
            raise NotFound(f"object {name!r} not found in {self.root}")
        cur = self.get_retention(name)
        refuse_weaker_retention(name, cur, until, mode, bypass_governance)
        body = json.dumps({"until": until.isoformat(), "mode": mode}, sort_keys=True)
        doc = json.dumps({"v": 1, "body": body, "sha256": hashlib.sha256(body.encode()).hexdigest()})
        self._atomic_write(self._ret_path(name), [doc.encode()])
        try:
            os.chmod(path, 0o400)
        except OSError:
            pass

    def get_retention(self, name):
        rp = self._ret_path(name)
        try:
            with open(rp, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        try:
            doc = json.loads(raw)
            body = doc["body"]
            if hashlib.sha256(body.encode()).hexdigest() != doc["sha256"]:
                raise ValueError("checksum mismatch")
            b = json.loads(body)
            return Retention(dt.datetime.fromisoformat(b["until"]), b["mode"])
        except Exception:
            # fail closed: damaged retention metadata keeps the object forever
            return Retention(dt.datetime.max.replace(tzinfo=dt.timezone.utc), COMPLIANCE)

