"""The vault store: deduplicating, compressing, encrypting backups of trees, streams and volumes.

Objects in the backend::

    config                      store id, parameters, wrapped secret (authenticated)
    packs/<hh>/<blake3 hex>     pack files (~16 MiB of encrypted chunks + encrypted trailer)
    index/<blake3 hex>          encrypted lists of the chunks in some packs
    snapshots/<snapshot id>     one manifest per recovery point (encrypted, segmented)

Manifest records (JSON lines, after the header)::

    {"t": "d", "p": path, "m": mode, "mt": mtime_ns, "u": uid, "g": gid}
    {"t": "f", "p": path, "m", "mt", "ct", "i", "u", "g", "s": size, "c": [[id hex, len], ...], "r": racy}
    {"t": "l", "p": path, "lt": link target, "mt": mtime_ns}
    {"t": "s", "p": name}                                   a stream; chunks follow in "+" records
    {"t": "v", "p": name, "s": size, "bs": block size}      a volume; blocks follow in "+" records
    {"t": "+", "o": offset, "c": [[id hex, len], ...]}       more chunks of the entry above
    {"t": "+", "c": [[offset, id hex, len], ...]}            more blocks of the volume above

Paths are relative, ``/``-separated, and may hold any bytes (non-UTF-8 bytes travel as
surrogate escapes).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import hashlib
import json
import os
import queue
import socket
import sqlite3
import stat
import tempfile
import threading
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Optional

import blake3
import zstandard

from . import crypto
from . import lock as locks
from .backend import GOVERNANCE, Backend, utcnow
from .chunker import BLOCK_SIZE, CDC, WHOLE_FILE_LIMIT, compiled_fastcdc, volume_blocks
from .errors import (Cancelled, DamageError, ImmutabilityUnsupported, IntegrityError, NotFound, RetentionError,
                     StorageFull, StoreError)
from .index import IndexCache, decode_index, encode_index
from .manifest import ManifestReader, ManifestWriter
from .memory import trim, tune_malloc
from .pack import PACK_TARGET, PackBuilder, pack_object, read_trailer

FORMAT_VERSION = 1
CONFIG = "config"
BATCH = 1024  # chunk refs per manifest record
RACY_NS = 2_000_000_000  # files modified this close to the backup's start are re-read next time
INDEX_EVERY = 64  # packs per index file during a long backup
ZERO = bytes(BLOCK_SIZE)
PROBE = 64 * 1024  # compressibility probe of big chunks


@dataclasses.dataclass
class Progress:
    """Passed to progress callbacks; ``bytes_total``/``items_total`` are None when unknown."""

    phase: str
    bytes_done: int = 0
    items_done: int = 0
    bytes_total: Optional[int] = None
    items_total: Optional[int] = None
    current: str = ""


@dataclasses.dataclass
class Snapshot:
    """A recovery point, as read from its manifest header."""

    id: str
    kind: str  # "tree" | "stream" | "volume"
    source_id: str
    time: str
    time_end: str
    tags: list
    root: str
    parent: Optional[str]
    stats: dict
    retain_until: Optional[str] = None
    retention_mode: Optional[str] = None

    @classmethod
    def from_header(cls, h: dict) -> "Snapshot":
        return cls(id=h["id"], kind=h["kind"], source_id=h["source_id"], time=h["time"],
                   time_end=h["time_end"], tags=list(h.get("tags", [])), root=h.get("root", ""),
                   parent=h.get("parent"), stats=dict(h.get("stats", {})))


@dataclasses.dataclass
class VerifyReport:
    """Result of :meth:`Store.verify`. ``ok`` is True when nothing is missing or corrupt."""

    snapshot_ids: list
    chunks_checked: int = 0
    bytes_checked: int = 0
    damaged_items: list = dataclasses.field(default_factory=list)  # "snapshot:path" names
    damaged_chunks: list = dataclasses.field(default_factory=list)
    missing_chunks: list = dataclasses.field(default_factory=list)
    errors: list = dataclasses.field(default_factory=list)  # human-readable, one per problem

    @property
    def ok(self) -> bool:
        return not (self.damaged_items or self.damaged_chunks or self.missing_chunks or self.errors)


class _Throttle:
    def __init__(self, cb, phase, interval=0.2):
        self.cb = cb
        self.p = Progress(phase)
        self.interval = interval
        self.last = 0.0

    def update(self, nbytes=0, items=0, current=None, force=False):
        self.p.bytes_done += nbytes
        self.p.items_done += items
        if current is not None:
            self.p.current = current
        if self.cb is None:
            return
        now = time.monotonic()
        if force or now - self.last >= self.interval:
            self.last = now
            self.cb(dataclasses.replace(self.p))


def _check_cancel(cancel):
    if cancel is None:
        return
    if (cancel.is_set() if hasattr(cancel, "is_set") else cancel()):
        raise Cancelled("operation cancelled")


def _now_iso():
    return utcnow().isoformat()


def _default_cache_dir(store_id: str) -> str:
    base = os.environ.get("STRONGROOM_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "strongroom")
    return os.path.join(base, store_id)


def _config_aad(cfg: dict) -> bytes:
    body = {k: v for k, v in cfg.items() if k != "wrapped"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


class _Entry:
    __slots__ = ("rec", "chunks", "streaming", "emitted", "offset", "pending", "name")

    def __init__(self, rec, streaming=False):
        self.rec = rec
        self.chunks = []
        self.streaming = streaming
        self.emitted = False
        self.offset = 0
        self.pending = 0
        self.name = rec["p"]


class _BackupSession:
    """One backup: ordered chunk pipeline -> packs -> index files -> manifest."""

    def __init__(self, store: "Store", progress, cancel, phase, lock=None):
        self.store = store
        self.lock_held = lock
        self.keys = store.keys
        self.index = store.index
        self.cancel = cancel
        self.prog = _Throttle(progress, phase)
        self.sid, self._lockfd, self._lockpath = self.index.start_session()
        self.inflight: set = set()
        self.lock = threading.Lock()
        self.pending = collections.deque()
        self.max_pending = max(4, store.workers * 3)
        self.pack = PackBuilder()
        self.uploads: queue.Queue = queue.Queue(maxsize=1)
        self.upload_error = None
        self.unindexed = []  # (pack name, entries) written but not yet in an index file
        self.unindexed_names: set = set()  # every pack stored and not yet in an index file (failure cleanup)
        self.uploaded = threading.Condition()
        self.uploader = threading.Thread(target=self._upload_loop, name="strongroom-upload", daemon=True)
        self.uploader.start()
        self.stats = collections.Counter()
        self.snap_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:12]
        self.manifest = ManifestWriter(self.keys, self.snap_id, store.cache_dir)
        self.tls = threading.local()

    # -- worker side --------------------------------------------------------------
    def _zc(self):
        c = getattr(self.tls, "zc", None)
        if c is None:
            c = self.tls.zc = zstandard.ZstdCompressor(level=self.store.zstd_level)
        return c

    def _process(self, data, volume):
        n = len(data)
        if volume and data == ZERO[:n]:
            return None
        cid = self.keys.chunk_id(data)
        with self.lock:
            if cid in self.inflight or self.index.has(cid, self.sid):
                return (cid, n, None)
            self.inflight.add(cid)
        zc = self._zc()
        if n > 2 * PROBE and len(zc.compress(data[:PROBE])) > PROBE * 0.97:
            comp = None  # incompressible (the probe did not shrink): store raw, skip the work
        else:
            comp = zc.compress(data)
        if comp is not None and len(comp) < n:
            blob = self.keys.seal_chunk(cid, crypto.FLAG_ZSTD, comp)
        else:
            blob = self.keys.seal_chunk(cid, crypto.FLAG_RAW, data)
        return (cid, n, blob)

    # -- upload thread ---------------------------------------------------------------
    def _upload_loop(self):
        while True:
            item = self.uploads.get()
            if item is None:
                return
            name, parts, entries = item
            try:
                if self.upload_error is None:
                    self.store.backend.put_chunks(pack_object(name), parts)
                    with self.uploaded:
                        self.unindexed_names.add(name)
                    self.index.add_pack(name, entries, sess=self.sid)
                    with self.lock:
                        for e in entries:
                            self.inflight.discard(e[0])
                    with self.uploaded:
                        self.unindexed.append((name, entries))
                        self.stats["packs"] += 1
                        self.uploaded.notify_all()
                    del parts, item
                    trim()  # flat RSS: hand freed buffers back (see memory.py)
            except BaseException as e:  # reported to the main thread
                self.upload_error = e

    def _check_upload(self):
        if isinstance(self.upload_error, StorageFull):
            raise self.upload_error
        if self.upload_error is not None:
            raise StoreError(f"writing a pack failed: {self.upload_error}") from self.upload_error

    # -- main thread -------------------------------------------------------------------
    def submit(self, entry: _Entry, data, offset=None, volume=False):
        """Queue one chunk of ``entry`` (``offset`` for volume blocks)."""
        _check_cancel(self.cancel)
        self._check_upload()
        fut = self.store.pool.submit(self._process, data, volume)
        entry.pending += 1
        self.pending.append((fut, entry, offset))
        self.stats["bytes_read"] += len(data)
        self.prog.update(nbytes=len(data), current=entry.name)
        while len(self.pending) > self.max_pending:
            self._drain_one()

    def end_entry(self, entry: _Entry):
        self.pending.append((None, entry, None))
        self.prog.update(items=1, current=entry.name)
        while len(self.pending) > self.max_pending:
            self._drain_one()

    def _drain_one(self):
        fut, entry, offset = self.pending.popleft()
        if fut is None:
            self._emit(entry, final=True)
            return
        res = fut.result()
        entry.pending -= 1
        if res is None:  # zero block of a volume
            self.stats["zero_blocks"] += 1
            return
        cid, n, blob = res
        if blob is not None:
            self.pack.add(cid, blob, n)
            self.stats["chunks_new"] += 1
            self.stats["bytes_new"] += n
            self.stats["bytes_stored"] += len(blob)
            if self.pack.size >= self.store.pack_target:
                self._flush_pack()
        else:
            self.stats["chunks_dup"] += 1
        if offset is not None:
            entry.chunks.append([offset, cid.hex(), n])
        else:
            entry.chunks.append([cid.hex(), n])
        if entry.streaming and len(entry.chunks) >= BATCH:
            self._emit(entry, final=False)

    def _emit(self, entry: _Entry, final: bool):
        chunks, entry.chunks = entry.chunks, []
        if not entry.emitted:
            rec = entry.rec
            if not entry.streaming:
                rec["c"], chunks = chunks[:BATCH], chunks[BATCH:]
                entry.offset = sum(c[-1] for c in rec["c"])
            self.manifest.add(rec)
            entry.emitted = True
        for i in range(0, len(chunks), BATCH):
            part = chunks[i:i + BATCH]
            r = {"t": "+", "c": part}
            if part and len(part[0]) == 2:
                r["o"] = entry.offset
                entry.offset += sum(c[1] for c in part)
            self.manifest.add(r)

    def drain_all(self):
        while self.pending:
            self._drain_one()

    def _flush_pack(self):
        if not len(self.pack):
            return
        name, parts, entries = self.pack.finish(self.keys)
        self.pack = PackBuilder()
        while True:
            self._check_upload()
            try:
                self.uploads.put((name, parts, entries), timeout=0.5)
                break
            except queue.Full:
                continue
        with self.uploaded:
            n = len(self.unindexed)
        if n >= INDEX_EVERY:
            self._write_index()

    def _write_index(self):
        with self.uploaded:
            batch, self.unindexed = self.unindexed, []
        if not batch:
            return
        sealed = self.keys.seal(b"index", encode_index(batch))
        name = blake3.blake3(sealed).hexdigest()
        self.store.backend.put(f"index/{name}", sealed)
        self.index.mark_indexed(name, [b[0] for b in batch])
        with self.uploaded:
            self.unindexed_names.difference_update(b[0] for b in batch)

    def _stop_uploader(self):
        while True:
            try:
                self.uploads.put(None, timeout=0.5)
                break
            except queue.Full:
                if not self.uploader.is_alive():
                    break
        self.uploader.join()

    def commit(self, header: dict) -> str:
        """Flush everything; the recovery point exists once this returns."""
        self.drain_all()
        _check_cancel(self.cancel)
        self._flush_pack()
        self._stop_uploader()
        self._check_upload()
        self._write_index()
        if self.lock_held is not None:
            self.lock_held.check(strict=True)  # broken as stale? then garbage collection may have run
        header["id"] = self.snap_id
        header["stats"] = {**dict(self.stats), **header.get("stats", {})}
        self.store.backend.put_chunks(f"snapshots/{self.snap_id}", self.manifest.finish(header))
        self.prog.update(force=True)
        return self.snap_id

    def abort(self, failed: bool = True):
        """Stop without a manifest. A cancelled backup indexes its completed packs so a retry can
        reuse them (garbage collection reclaims them otherwise); a failed one removes every pack it
        stored and did not index (nobody else can refer to those), so a full disk is not left full."""
        for fut, _, _ in self.pending:
            if fut is not None:
                fut.cancel()
        for fut, _, _ in self.pending:
            if fut is not None and not fut.cancelled():
                try:
                    fut.result()
                except BaseException:
                    pass
        self.pending.clear()
        self._stop_uploader()
        if not failed:
            try:
                if self.upload_error is None:
                    self._write_index()
            except Exception:
                pass
        with self.uploaded:
            leftovers, self.unindexed_names = sorted(self.unindexed_names), set()
            self.unindexed = []
        for name in leftovers:
            try:
                self.store.backend.delete(pack_object(name))
                self.stats["packs_removed"] += 1
            except NotFound:
                pass
            except Exception as e:  # garbage collection removes it later (an unindexed leftover)
                warnings.warn(f"could not remove pack {name} of a failed backup: {e}")
        self.manifest.discard()

    def close(self):
        self.index.end_session(self.sid, self._lockfd, self._lockpath)


def _safe_relpath(p: str) -> list:
    parts = p.split("/")
    for c in parts:
        if c in ("", ".", "..") or "\x00" in c:
            raise IntegrityError(f"unsafe path in manifest: {p!r}")
    return parts


class _DirCache:
    """Opens parent directories below a root fd without ever following a symbolic link."""

    def __init__(self, root_fd):
        self.root = root_fd
        self.cache = collections.OrderedDict()

    def parent(self, parts, create=True):
        key = tuple(parts[:-1])
        fd = self.cache.get(key)
        if fd is not None:
            self.cache.move_to_end(key)
            return fd
        cur = self.root
        opened = []
        try:
            for comp in key:
                try:
                    nfd = os.open(comp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=cur)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(comp, 0o700, dir_fd=cur)
                    nfd = os.open(comp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=cur)
                opened.append(nfd)
                cur = nfd
        except OSError:
            for f in opened:
                os.close(f)
            raise
        for f in opened[:-1]:
            os.close(f)
        if not key:
            return self.root
        self.cache[key] = cur
        if len(self.cache) > 64:
            _, old = self.cache.popitem(last=False)
            os.close(old)
        return cur

    def close(self):
        for fd in self.cache.values():
            os.close(fd)
        self.cache.clear()


class _OpenFile:
    __slots__ = ("fd", "rec", "pending", "ended", "damaged", "name", "parts")

    def __init__(self, fd, rec, name, parts):
        self.fd = fd
        self.rec = rec
        self.pending = 0
        self.ended = False
        self.damaged = False
        self.name = name
        self.parts = parts


class Store:
    """An open vault store. Create with :meth:`init`, open with :meth:`open`.

    Thread-safety: one operation at a time per ``Store`` object; several processes may write
    the same store at once (each backup writes its own packs and index files, under a shared
    lock; garbage collection takes the exclusive lock, see :mod:`vaults.store.lock`).

    Options: ``lock_ttl`` (seconds a lock lives without a refresh, default 300), ``lock_wait``
    (seconds a backup/restore/verify waits for a garbage collection to finish, default 3600),
    ``owner`` (who the lock objects name, e.g. ``"job 42"``).
    """

    def __init__(self, backend: Backend, config: dict, secret: bytes, *, cache_dir=None, workers=2,
                 zstd_level=3, lock_ttl: float = locks.DEFAULT_TTL, lock_wait: float = 3600.0,
                 owner: Optional[str] = None):
        compiled_fastcdc()  # refuse to run without the compiled chunker
        tune_malloc()  # flat memory whatever the data size (see memory.py)
        self.backend = backend
        self.config = config
        self.id = config["id"]
        self.keys = crypto.Keys(secret)
        self._secret = secret  # kept to create replicas (Store.init_replica)
        ch = config["chunker"]
        self.cdc = CDC(self.keys.chunker_seed, ch["min"], ch["avg"], ch["max"])
        self.block_size = config.get("block_size", BLOCK_SIZE)
        self.workers = max(1, int(workers))
        self.zstd_level = zstd_level
        self.pack_target = int(config.get("pack_size", PACK_TARGET))
        self.lock_ttl = float(lock_ttl)
        self.lock_wait = float(lock_wait)
        self.owner = owner
        #: files changed this close to a backup's start are re-read by the next backup
        self.racy_ns = RACY_NS
        self.cache_dir = cache_dir or _default_cache_dir(self.id)
        os.makedirs(self.cache_dir, exist_ok=True)
        self.index = IndexCache(self.cache_dir)
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="strongroom")
        self._op = threading.Lock()
        dead = self.index.dead_sessions()
        problems: list = []
        self.sync_index(problems)
        if not problems:  # a damaged index file might list them: leave them to garbage collection
            self._remove_dead_sessions_packs(dead)
        self.index.drop_dead_sessions()

    def _remove_dead_sessions_packs(self, dead) -> None:
        """Delete the packs a killed backup on this machine stored and never indexed. Its session is
        dead (nobody holds its lock file), and after the sync above a pack any index file lists is no
        longer the session's: what is left was never announced, so no recovery point can need it."""
        for sid in dead:
            for name in self.index.session_packs(sid):
                try:
                    self.backend.delete(pack_object(name))
                except NotFound:
                    pass
                except Exception as e:  # garbage collection removes it later
                    warnings.warn(f"could not remove pack {name} of a killed backup: {e}")

    # -- lifecycle -----------------------------------------------------------------
    @classmethod
    def init(cls, backend: Backend, platform_key: bytes, *, cache_dir: Optional[str] = None,
             workers: int = 2, chunk_min: int = 256 << 10, chunk_avg: int = 1 << 20,
             chunk_max: int = 4 << 20, block_size: int = BLOCK_SIZE, pack_size: int = PACK_TARGET,
             **options) -> "Store":
        """Create a new store in an empty backend and return it open.

        ``platform_key`` (32 bytes) wraps the store's random secret; keep it (the Django side
        derives it from ``STRONGROOM_MASTER_KEY``)."""
        compiled_fastcdc()
        if backend.exists(CONFIG):
            raise StoreError(f"a store already exists at {backend.location}")
        secret = os.urandom(32)
        cfg = {"v": FORMAT_VERSION, "id": uuid.uuid4().hex, "created": _now_iso(),
               "chunker": {"min": chunk_min, "avg": chunk_avg, "max": chunk_max},
               "block_size": block_size, "pack_size": pack_size, "compression": "zstd", "cipher": "aes-256-gcm",
               "id_hash": "blake3-keyed"}
        cfg["wrapped"] = crypto.wrap_key(platform_key, secret, _config_aad(cfg)).hex()
        backend.put(CONFIG, json.dumps(cfg, sort_keys=True, indent=1).encode())
        return cls(backend, cfg, secret, cache_dir=cache_dir, workers=workers, **options)

    @classmethod
    def init_replica(cls, backend: Backend, source: "Store", platform_key: bytes, *,
                     cache_dir: Optional[str] = None, workers: int = 2, **options) -> "Store":
        """Create an empty replica of ``source`` in ``backend`` (e.g. the paired region's bucket).

        The replica shares the source's secret (so objects copy byte for byte and it restores
        with the same keys) but has its own store id (its own cache) and is wrapped by
        ``platform_key``, which may differ from the source's. Fill it with :meth:`replicate`."""
        compiled_fastcdc()
        if backend.exists(CONFIG):
            raise StoreError(f"a store already exists at {backend.location}")
        cfg = {k: v for k, v in source.config.items() if k not in ("id", "created", "wrapped", "replica_of")}
        cfg.update(id=uuid.uuid4().hex, created=_now_iso(), replica_of=source.id)
        cfg["wrapped"] = crypto.wrap_key(platform_key, source._secret, _config_aad(cfg)).hex()
        backend.put(CONFIG, json.dumps(cfg, sort_keys=True, indent=1).encode())
        return cls(backend, cfg, source._secret, cache_dir=cache_dir, workers=workers, **options)

    @classmethod
    def open(cls, backend: Backend, platform_key: bytes, *, cache_dir: Optional[str] = None,
             workers: int = 2, **options) -> "Store":
        """Open an existing store. Raises :class:`NotFound`, or ``KeyError_`` for a wrong key
        or a tampered config."""
        try:
            cfg = json.loads(backend.get(CONFIG))
        except NotFound:
            raise NotFound(f"no store at {backend.location}") from None
        except ValueError:
            raise IntegrityError("store config is damaged") from None
        if not isinstance(cfg, dict) or cfg.get("v") != FORMAT_VERSION:
            raise IntegrityError("store config is damaged or of an unknown version")
        try:
            wrapped = bytes.fromhex(cfg["wrapped"])
        except (KeyError, ValueError, TypeError):
            raise IntegrityError("store config is damaged") from None
        secret = crypto.unwrap_key(platform_key, wrapped, _config_aad(cfg))
        return cls(backend, cfg, secret, cache_dir=cache_dir, workers=workers, **options)

    def rewrap(self, old_platform_key: bytes, new_platform_key: bytes) -> None:
        """Re-wrap the store secret under a new platform key (key rotation)."""
        cfg = dict(self.config)
        secret = crypto.unwrap_key(old_platform_key, bytes.fromhex(cfg["wrapped"]), _config_aad(cfg))
        cfg["wrapped"] = crypto.wrap_key(new_platform_key, secret, _config_aad(cfg)).hex()
        self.backend.put(CONFIG, json.dumps(cfg, sort_keys=True, indent=1).encode())
        self.config = cfg

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.index.close()
        self.backend.close()

    # -- locks and immutability ---------------------------------------------------------
    def lock(self, kind: str = locks.SHARED, *, owner: Optional[str] = None,
             wait: Optional[float] = None) -> "locks.Lock":
        """Take a store lock (``"shared"`` or ``"exclusive"``), waiting up to ``wait`` seconds
        (default ``lock_wait``). Use as a context manager; raises :class:`LockError`."""
        return locks.acquire(self.backend, self.keys, kind, owner=owner or self.owner, ttl=self.lock_ttl,
                             wait=self.lock_wait if wait is None else wait)

    def locks(self) -> list:
        """The lock objects currently in the store (:class:`vaults.store.lock.LockInfo`)."""
        return locks.read_locks(self.backend, self.keys)

    def supports_immutability(self) -> bool:
        """Whether the backend can refuse deletes before a retain-until date (an S3 bucket needs
        Object Lock)."""
        return self.backend.supports_retention()

    def require_immutability(self) -> None:
        """Raise :class:`ImmutabilityUnsupported` with a message a user can act on when this
        store cannot hold immutable recovery points. Call it when immutability is enabled."""
        if not self.backend.supports_retention():
            msg = getattr(self.backend, "unsupported_message", None)
            raise ImmutabilityUnsupported(msg() if msg else
                                          f"the store at {self.backend.location} cannot enforce retention")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- garbage collection and replication ------------------------------------------------
    def gc(self, *, safety_window: Optional[dt.timedelta] = None, repack_threshold: Optional[float] = None,
           dry_run: bool = False, wait: Optional[float] = None, owner: Optional[str] = None, progress=None,
           cancel=None):
        """Collect garbage under the exclusive lock (see :mod:`vaults.store.gc`): delete packs no
        recovery point needs, repack mostly-dead ones, remove crashed backups' leftovers; never
        touch retained objects or anything newer than ``safety_window`` (default 1 hour).
        Returns a :class:`~vaults.store.gc.GCReport` (``bytes_freed``, ``summary()``).
        Raises :class:`LockError` if the store stays busy for ``wait`` seconds."""
        from .gc import DEFAULT_REPACK_THRESHOLD, DEFAULT_SAFETY_WINDOW, collect
        return collect(self, safety_window=DEFAULT_SAFETY_WINDOW if safety_window is None else safety_window,
                       repack_threshold=DEFAULT_REPACK_THRESHOLD if repack_threshold is None else repack_threshold,
                       dry_run=dry_run, wait=wait, owner=owner, progress=progress, cancel=cancel)

    def replicate(self, snap_id: str, target: "Store", *, verify: bool = True, progress=None, cancel=None):
        """Copy recovery point ``snap_id`` into the replica store ``target`` (made with
        :meth:`init_replica`): resumable, idempotent, every copied object read back and checked,
        retention carried over, and (``verify``) the replica's copy verified in full.
        Returns a :class:`~vaults.store.replicate.ReplicationReport`."""
        from .replicate import replicate
        return replicate(self, snap_id, target, verify=verify, progress=progress, cancel=cancel)

    # -- index -----------------------------------------------------------------------
    def sync_index(self, errors: Optional[list] = None) -> None:
        """Load index files written since the last sync (by this or another writer) and forget
        those garbage collection removed. Damaged index files are skipped with a warning (and
        named in ``errors`` when given)."""
        # what is loaded is read before listing: an index file another process writes and
        # marks meanwhile is then either listed or not yet loaded, never forgotten by mistake
        loaded = self.index.loaded_index_files()
        present = set(n.split("/", 1)[1] for n in self.backend.list("index/"))
        for name in sorted(present - loaded):
            try:
                packs = self._read_index_file(name)
            except NotFound:
                continue  # removed meanwhile
            except IntegrityError as e:
                warnings.warn(f"skipping damaged index file {name}: {e}")
                if errors is not None:
                    errors.append(f"index file {name}: {e}")
                continue
            self.index.load_index_file(name, packs)
        for name in loaded - present:
            self.index.forget_index_file(name)

    def _read_index_file(self, name):
        sealed = self.backend.get(f"index/{name}")
        if blake3.blake3(sealed).hexdigest() != name:
            raise IntegrityError(f"index file {name} does not match its name")
        return decode_index(self.keys.open(b"index", sealed, f"index file {name}"))

    # -- snapshots -----------------------------------------------------------------------
    def _reader(self, snap_id: str) -> ManifestReader:
        name = f"snapshots/{snap_id}"
        return ManifestReader(self.keys, snap_id, self.backend.open(name), name)

    def get_snapshot(self, snap_id: str) -> Snapshot:
        """The recovery point's header. Raises :class:`NotFound` / :class:`IntegrityError`."""
        r = self._reader(snap_id)
        try:
            s = Snapshot.from_header(r.header)
        finally:
            r.close()
        ret = self.backend.get_retention(f"snapshots/{snap_id}")
        if ret is not None and ret.active():
            s.retain_until, s.retention_mode = ret.until.isoformat(), ret.mode
        return s

    def list_snapshots(self, *, source_id: Optional[str] = None, kind: Optional[str] = None,
                       errors: Optional[list] = None) -> list:
        """Recovery points sorted oldest first. Unreadable manifests are skipped and, when
        ``errors`` is a list, reported into it."""
        out = []
        for name in self.backend.list("snapshots/"):
            sid = name.split("/", 1)[1]
            try:
                s = self.get_snapshot(sid)
            except (IntegrityError, NotFound) as e:
                if errors is not None:
                    errors.append(f"snapshot {sid}: {e}")
                continue
            if source_id is not None and s.source_id != source_id:
                continue
            if kind is not None and s.kind != kind:
                continue
            out.append(s)
        out.sort(key=lambda s: (s.time, s.id))
        return out

    def records(self, snap_id: str):
        """Iterate the manifest records of a recovery point (see the module docstring)."""
        r = self._reader(snap_id)
        try:
            yield from r.records()
        finally:
            r.close()

    def delete_snapshot(self, snap_id: str, *, bypass_governance: bool = False) -> None:
        """Delete a recovery point's manifest (its packs are reclaimed by GC later). Raises
        :class:`RetentionError` while it is retained."""
        self.backend.delete(f"snapshots/{snap_id}", bypass_governance=bypass_governance)

    def set_snapshot_retention(self, snap_id: str, until: dt.datetime, mode: str = GOVERNANCE) -> int:
        """Retain a recovery point until ``until``: its manifest, every pack it needs and the
        index files describing them (extending, never shortening, what is there; packs shared
        with other recovery points keep the latest date). Returns the number of objects whose
        retention was set or extended. Raises :class:`ImmutabilityUnsupported` on a backend
        that cannot enforce retention."""
        self.require_immutability()
        with self._op, self.lock(owner=self.owner or "retention"):
            self.sync_index()
            return self._set_snapshot_retention(snap_id, until, mode)

    def _set_snapshot_retention(self, snap_id, until, mode) -> int:
        names = {f"snapshots/{snap_id}"}
        for cid in self._chunk_ids(snap_id):
            loc = self.index.locate(cid)
            if loc is None:
                raise IntegrityError(f"snapshot {snap_id} needs chunk {cid.hex()} which no index lists")
            names.add(pack_object(loc[0]))
            idx = self.index.pack_index_file(loc[0])
            if idx:
                names.add(f"index/{idx}")
        names.add(CONFIG)
        n = 0
        for name in sorted(names):
            cur = self.backend.get_retention(name)
            if cur is not None and cur.active() and cur.until >= until and (cur.mode == mode or cur.mode == "compliance"):
                continue
            self.backend.set_retention(name, max(until, cur.until) if cur and cur.active() else until,
                                       "compliance" if (cur and cur.active() and cur.mode == "compliance") else mode)
            n += 1
        return n

    def _chunk_ids(self, snap_id):
        seen = set()
        for rec in self.records(snap_id):
            for c in rec.get("c", ()):
                h = c[1] if len(c) == 3 else c[0]
                if h not in seen:
                    seen.add(h)
                    yield bytes.fromhex(h)

    # -- backup ------------------------------------------------------------------------------
    def _header(self, kind, source_id, tags, root, parent, t0):
        return {"v": FORMAT_VERSION, "kind": kind, "source_id": source_id, "tags": list(tags),
                "root": root, "parent": parent, "time": t0, "time_end": _now_iso(),
                "hostname": socket.gethostname()}

    def _run_backup(self, phase, progress, cancel, body, retain_until, retention_mode):
        if retain_until is not None:
            self.require_immutability()
        with self._op, self.lock(owner=self.owner or phase) as lk:
            self.sync_index()  # after taking the lock: no garbage collection runs until we finish
            sess = _BackupSession(self, progress, cancel, phase, lock=lk)
            try:
                header = body(sess)
                snap_id = sess.commit(header)
            except Cancelled:
                sess.abort(failed=False)
                raise
            except BaseException:
                sess.abort(failed=True)
                raise
            finally:
                sess.close()
            if retain_until is not None:
                self._set_snapshot_retention(snap_id, retain_until, retention_mode)
        return self.get_snapshot(snap_id)

    def backup_tree(self, path: str, *, source_id: Optional[str] = None, tags: Iterable[str] = (),
                    progress: Optional[Callable[[Progress], None]] = None, cancel=None,
                    use_cache: bool = True, retain_until: Optional[dt.datetime] = None,
                    retention_mode: str = GOVERNANCE) -> Snapshot:
        """Back up the directory ``path`` (symbolic links stored as links, never followed;
        sockets, FIFOs and devices skipped with a warning in ``stats['skipped']``).

        Unchanged files (same path, size, mtime, ctime, inode as in the latest recovery point
        of ``source_id``) are not re-read. ``cancel`` is an Event or callable checked between
        chunks; cancelling raises :class:`Cancelled` and writes no recovery point."""
        root = os.path.abspath(path)
        st = os.lstat(root)
        if not stat.S_ISDIR(st.st_mode):
            raise StoreError(f"{root} is not a directory")
        source_id = source_id or f"tree:{root}"
        t0 = _now_iso()
        start_ns = time.time_ns()
        parent = None
        if use_cache:
            prev = self.list_snapshots(source_id=source_id, kind="tree")
            parent = prev[-1].id if prev else None

        def body(sess):
            fc = _FilesCache(self, parent, sess) if parent else None
            skipped = []
            try:
                self._walk(sess, root, "", fc, start_ns, skipped)
            finally:
                if fc:
                    fc.close()
            h = self._header("tree", source_id, tags, root, parent, t0)
            h["stats"] = {"skipped": skipped[:100], "skipped_count": len(skipped)}
            return h

        return self._run_backup("backup", progress, cancel, body, retain_until, retention_mode)

    def _walk(self, sess, dirpath, rel, fc, start_ns, skipped):
        try:
            with os.scandir(dirpath) as it:
                ents = sorted(it, key=lambda e: e.name)
        except OSError as e:
            skipped.append(f"{rel or '.'}: {e.strerror}")
            return
        for de in ents:
            _check_cancel(sess.cancel)
            p = f"{rel}/{de.name}" if rel else de.name
            try:
                st = de.stat(follow_symlinks=False)
            except OSError as e:
                skipped.append(f"{p}: {e.strerror}")
                continue
            mode = st.st_mode
            base = {"p": p, "m": stat.S_IMODE(mode), "mt": st.st_mtime_ns, "u": st.st_uid, "g": st.st_gid}
            if stat.S_ISDIR(mode):
                sess.end_entry(_Entry({"t": "d", **base}))
                sess.stats["dirs"] += 1
                self._walk(sess, de.path, p, fc, start_ns, skipped)
            elif stat.S_ISLNK(mode):
                try:
                    target = os.readlink(de.path)
                except OSError as e:
                    skipped.append(f"{p}: {e.strerror}")
                    continue
                sess.end_entry(_Entry({"t": "l", "lt": target, **base}))
                sess.stats["links"] += 1
            elif stat.S_ISREG(mode):
                self._backup_file(sess, de.path, p, st, base, fc, start_ns, skipped)
            else:
                skipped.append(f"{p}: not a regular file, directory or link")
                warnings.warn(f"skipping special file {p}")

    def _backup_file(self, sess, full, p, st, base, fc, start_ns, skipped):
        racy = max(st.st_mtime_ns, st.st_ctime_ns) >= start_ns - self.racy_ns
        rec = {"t": "f", **base, "ct": st.st_ctime_ns, "i": st.st_ino, "s": st.st_size}
        if racy:
            rec["r"] = 1
        if fc is not None:
            cached = fc.lookup(p, st)
            if cached is not None:
                e = _Entry(rec)
                e.chunks = cached
                sess.end_entry(e)
                sess.stats["files"] += 1
                sess.stats["files_unchanged"] += 1
                sess.stats["bytes_total"] += st.st_size
                sess.prog.update(nbytes=0)
                return
        try:
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as e:
            skipped.append(f"{p}: {e.strerror}")
            return
        e = _Entry(rec)
        size = 0
        with os.fdopen(fd, "rb", buffering=0) as f:
            if st.st_size <= WHOLE_FILE_LIMIT:
                data = f.read(WHOLE_FILE_LIMIT + 1)
                if len(data) > WHOLE_FILE_LIMIT:  # grew meanwhile: stream it
                    f.seek(0)
                    for c in self.cdc.chunks_of_stream(f):
                        sess.submit(e, c)
                        size += len(c)
                else:
                    for c in self.cdc.chunks_of_buffer(data):
                        sess.submit(e, c)
                        size += len(c)
            else:
                for c in self.cdc.chunks_of_stream(f):
                    sess.submit(e, c)
                    size += len(c)
        rec["s"] = size
        sess.end_entry(e)
        sess.stats["files"] += 1
        sess.stats["bytes_total"] += size

    def backup_stream(self, fileobj, *, name: str = "stream", source_id: Optional[str] = None,
                      tags: Iterable[str] = (), progress=None, cancel=None,
                      retain_until: Optional[dt.datetime] = None,
                      retention_mode: str = GOVERNANCE) -> Snapshot:
        """Back up a binary stream (e.g. a ``pg_dump`` pipe or stdin) as one item ``name``."""
        source_id = source_id or f"stream:{name}"
        t0 = _now_iso()

        def body(sess):
            e = _Entry({"t": "s", "p": name}, streaming=True)
            size = 0
            for c in self.cdc.chunks_of_stream(fileobj):
                sess.submit(e, c)
                size += len(c)
            sess.end_entry(e)
            h = self._header("stream", source_id, tags, name, None, t0)
            h["stats"] = {"size": size}
            return h

        return self._run_backup("backup", progress, cancel, body, retain_until, retention_mode)

    def backup_volume(self, path: str, *, source_id: Optional[str] = None, tags: Iterable[str] = (),
                      progress=None, cancel=None, retain_until: Optional[dt.datetime] = None,
                      retention_mode: str = GOVERNANCE, point_in_time: str = "auto") -> Snapshot:
        """Back up a volume image (sparse file or block device) in fixed blocks; holes and
        all-zero blocks are not stored; unchanged blocks dedup against earlier points.

        The recovery point is one consistent image (see :mod:`vaults.store.pit`): with
        ``point_in_time="auto"`` the engine reads an instant reflink clone where the file system
        can make one, else it holds the image shared while it reads it (cooperating writers wait);
        ``"hold"`` always holds; ``"live"`` reads the image as it is (no guarantee). The SHA-256 of
        the whole image (holes as zeros) is computed in the same pass: ``stats["sha256"]``, and
        ``stats["point_in_time"]`` says which way was used."""
        from . import pit

        if point_in_time not in ("auto", pit.HOLD, pit.LIVE):
            raise ValueError("point_in_time must be 'auto', 'hold' or 'live'")
        root = os.path.abspath(path)
        source_id = source_id or f"volume:{root}"
        t0 = _now_iso()
        bs = self.block_size

        def read_image(sess, fd, st, how, mode):
            size = st.st_size if stat.S_ISREG(st.st_mode) else os.lseek(fd, 0, os.SEEK_END)
            e = _Entry({"t": "v", "p": os.path.basename(root), "s": size, "bs": bs,
                        "m": stat.S_IMODE(mode)}, streaming=True)
            sess.prog.p.bytes_total = size
            digest = hashlib.sha256()
            pos = 0
            for off, ln in volume_blocks(fd, size, bs):
                data = os.pread(fd, ln, off)
                if len(data) < ln:
                    raise StoreError(f"{root} shrank during the backup")
                _hash_zeros(digest, off - pos)
                digest.update(data)
                pos = off + ln
                sess.submit(e, data, offset=off, volume=True)
            _hash_zeros(digest, size - pos)
            sess.end_entry(e)
            h = self._header("volume", source_id, tags, root, None, t0)
            h["stats"] = {"size": size, "sha256": digest.hexdigest(), "point_in_time": how}
            return h

        def body(sess):
            fd = os.open(root, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                st = os.fstat(fd)
                if point_in_time == pit.LIVE:
                    return read_image(sess, fd, st, pit.LIVE, st.st_mode)
                clone = None
                if point_in_time == "auto" and stat.S_ISREG(st.st_mode):
                    # a write in progress finishes before the clone: never half of one in the copy
                    with pit.hold_for_reading(fd, wait=self.lock_wait):
                        clone = pit.reflink_clone(fd, os.path.dirname(root))
                if clone is not None:
                    try:
                        return read_image(sess, clone, os.fstat(clone), pit.REFLINK, st.st_mode)
                    finally:
                        os.close(clone)
                with pit.hold_for_reading(fd, wait=self.lock_wait):
                    return read_image(sess, fd, os.fstat(fd), pit.HOLD, st.st_mode)
            finally:
                os.close(fd)

        return self._run_backup("backup", progress, cancel, body, retain_until, retention_mode)

    # -- reading chunks ------------------------------------------------------------------------
    def _fetch(self, cid: bytes, tls) -> bytes:
        loc = self.index.locate(cid)
        if loc is None:
            raise NotFound(f"chunk {cid.hex()} is not in the index")
        pack, off, ln = loc
        blob = self.backend.get_range(pack_object(pack), off, ln)
        if len(blob) != ln:
            raise IntegrityError(f"chunk {cid.hex()}: pack {pack} is truncated")
        return self._decode(cid, blob, tls)

    def _decode(self, cid, blob, tls, check_id=False):
        flag, pt = self.keys.open_chunk(cid, blob)
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
        if check_id and self.keys.chunk_id(pt) != cid:
            raise IntegrityError(f"chunk {cid.hex()} does not match its id")
        return pt

    # -- restore --------------------------------------------------------------------------------
    def restore(self, snap_id: str, target: str, *, paths: Optional[Iterable[str]] = None,
                progress=None, cancel=None) -> dict:
        """Restore a recovery point into ``target``.

        Trees go into the directory ``target`` (created if missing), optionally only the
        entries under the given path prefixes; a volume becomes the (sparse) image file
        ``target``; a stream becomes the file ``target`` (use :meth:`restore_stream` for a pipe).
        Never writes outside ``target`` and never follows a symbolic link. Sets sizes, modes
        and mtimes. Raises :class:`DamageError` naming every item that could not be restored
        exactly (damaged files are removed, everything else is restored)."""
        with self._op, self.lock(owner=self.owner or "restore"):
            self.sync_index()
            try:
                return self._restore(snap_id, target, paths, progress, cancel)
            except IntegrityError as e:
                raise DamageError([f"{snap_id}:<manifest>"], message=f"recovery point {snap_id} is damaged: {e}") from e

    def _restore(self, snap_id, target, paths, progress, cancel):
        if True:
            snap = self.get_snapshot(snap_id)
            if snap.kind == "volume":
                return self._restore_volume(snap, target, progress, cancel)
            if snap.kind == "stream":
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as f:
                    return self._restore_stream(snap, f, progress, cancel)
            return self._restore_tree(snap, target, paths, progress, cancel)

    def restore_stream(self, snap_id: str, out, *, progress=None, cancel=None) -> dict:
        """Write a stream (or volume, holes as zeros) recovery point to the binary file ``out``."""
        with self._op, self.lock(owner=self.owner or "restore"):
            self.sync_index()
            try:
                return self._restore_stream(self.get_snapshot(snap_id), out, progress, cancel)
            except IntegrityError as e:
                raise DamageError([f"{snap_id}:<manifest>"], message=f"recovery point {snap_id} is damaged: {e}") from e

    def _restore_stream(self, snap, out, progress, cancel):
        prog = _Throttle(progress, "restore")
        tls = threading.local()
        pend = collections.deque()
        damaged = []
        written = 0

        def flush_one():
            nonlocal written
            fut, cid, n, off = pend.popleft()
            try:
                data = fut.result()
            except (IntegrityError, NotFound):
                damaged.append(cid.hex())
                data = bytes(n)
            if off is not None and off > written:
                out.write(bytes(off - written)) if off - written < (64 << 20) else _write_zeros(out, off - written)
                written = off
            out.write(data)
            written += len(data)
            prog.update(nbytes=len(data))

        size = None
        for rec in self.records(snap.id):
            if rec["t"] == "v":
                size = rec["s"]
            for c in rec.get("c", ()):
                _check_cancel(cancel)
                if len(c) == 3:
                    off, h, n = c
                else:
                    off, (h, n) = None, c
                cid = bytes.fromhex(h)
                pend.append((self.pool.submit(self._fetch, cid, tls), cid, n, off))
                while len(pend) > self.workers * 3:
                    flush_one()
        while pend:
            flush_one()
        if size is not None and size > written:
            _write_zeros(out, size - written)
            written = size
        out.flush()
        prog.update(force=True)
        if damaged:
            raise DamageError([snap.root or "<stream>"], damaged)
        return {"bytes": written, "items": 1}

    def _restore_volume(self, snap, target, progress, cancel):
        prog = _Throttle(progress, "restore")
        tls = threading.local()
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        damaged = []
        pend = collections.deque()
        size = 0
        mode = None

        def work(cid, off):
            data = self._fetch(cid, tls)
            os.pwrite(fd, data, off)
            return len(data)

        def flush_one():
            fut, cid = pend.popleft()
            try:
                prog.update(nbytes=fut.result())
            except (IntegrityError, NotFound):
                damaged.append(cid.hex())

        try:
            for rec in self.records(snap.id):
                if rec["t"] == "v":
                    size, mode = rec["s"], rec.get("m")
                    os.ftruncate(fd, size)
                for off, h, n in rec.get("c", ()):
                    _check_cancel(cancel)
                    cid = bytes.fromhex(h)
                    pend.append((self.pool.submit(work, cid, off), cid))
                    while len(pend) > self.workers * 3:
                        flush_one()
            while pend:
                flush_one()
            os.ftruncate(fd, size)
            if mode is not None:
                os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            while pend:
                try:
                    flush_one()
                except BaseException:
                    pass
            os.close(fd)
        prog.update(force=True)
        if damaged:
            raise DamageError([snap.root or "<volume>"], damaged)
        return {"bytes": size, "items": 1}

    def _restore_tree(self, snap, target, paths, progress, cancel):
        prefixes = [p.strip("/") for p in paths] if paths else None

        def wanted(p):
            if prefixes is None:
                return True
            return any(pr == "" or p == pr or p.startswith(pr + "/") for pr in prefixes)

        os.makedirs(target, exist_ok=True)
        root_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
        dirs = _DirCache(root_fd)
        prog = _Throttle(progress, "restore")
        tls = threading.local()
        pend = collections.deque()
        damaged_items, damaged_chunks = [], []
        dir_attrs = []
        stats = collections.Counter()
        cur: Optional[_OpenFile] = None

        def work(of, cid, off):
            data = self._fetch(cid, tls)
            os.pwrite(of.fd, data, off)
            return len(data)

        def finish(of):
            fd = of.fd
            of.fd = None
            rec = of.rec
            if of.damaged:
                os.close(fd)
                damaged_items.append(of.name)
                try:
                    os.unlink(of.parts[-1], dir_fd=dirs.parent(of.parts))
                except OSError:
                    pass
                return
            os.ftruncate(fd, rec["s"])
            os.fchmod(fd, rec["m"])
            os.utime(fd, ns=(rec["mt"], rec["mt"]))
            os.close(fd)
            stats["files"] += 1

        def flush_one():
            fut, of, cid = pend.popleft()
            try:
                prog.update(nbytes=fut.result())
            except (IntegrityError, NotFound, OSError):
                of.damaged = True
                damaged_chunks.append(cid.hex())
            of.pending -= 1
            if of.ended and of.pending == 0:
                finish(of)

        def end_current():
            nonlocal cur
            if cur is not None:
                cur.ended = True
                if cur.pending == 0:
                    finish(cur)
                cur = None

        def schedule(of, cid, off):
            of.pending += 1
            pend.append((self.pool.submit(work, of, cid, off), of, cid))
            while len(pend) > self.workers * 4:
                flush_one()

        try:
            for rec in self.records(snap.id):
                _check_cancel(cancel)
                t = rec["t"]
                if t == "+":
                    if cur is not None:
                        off = rec["o"]
                        for h, n in rec["c"]:
                            schedule(cur, bytes.fromhex(h), off)
                            off += n
                    continue
                end_current()
                p = rec["p"]
                if not wanted(p):
                    continue
                parts = _safe_relpath(p)
                prog.update(items=1, current=p)
                pfd = dirs.parent(parts)
                name = parts[-1]
                if t == "d":
                    try:
                        os.mkdir(name, 0o700, dir_fd=pfd)
                    except FileExistsError:
                        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                        if not stat.S_ISDIR(st.st_mode):
                            os.unlink(name, dir_fd=pfd)
                            os.mkdir(name, 0o700, dir_fd=pfd)
                    dir_attrs.append((parts, rec["m"], rec["mt"]))
                    stats["dirs"] += 1
                elif t == "l":
                    try:
                        os.symlink(rec["lt"], name, dir_fd=pfd)
                    except FileExistsError:
                        os.unlink(name, dir_fd=pfd)
                        os.symlink(rec["lt"], name, dir_fd=pfd)
                    try:
                        os.utime(name, ns=(rec["mt"], rec["mt"]), dir_fd=pfd, follow_symlinks=False)
                    except (OSError, NotImplementedError):
                        pass
                    stats["links"] += 1
                elif t == "f":
                    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                    try:
                        fd = os.open(name, flags, 0o600, dir_fd=pfd)
                    except OSError:
                        os.unlink(name, dir_fd=pfd)  # a link or other object in the way
                        fd = os.open(name, flags, 0o600, dir_fd=pfd)
                    cur = _OpenFile(fd, rec, p, parts)
                    off = 0
                    for h, n in rec.get("c", ()):
                        schedule(cur, bytes.fromhex(h), off)
                        off += n
                    stats["bytes"] += rec["s"]
                else:
                    raise IntegrityError(f"unknown record type {t!r} in snapshot {snap.id}")
            end_current()
            while pend:
                flush_one()
            for parts, mode, mt in reversed(dir_attrs):
                pfd = dirs.parent(parts)
                fd = os.open(parts[-1], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=pfd)
                try:
                    os.fchmod(fd, mode)
                    os.utime(fd, ns=(mt, mt))
                finally:
                    os.close(fd)
        finally:
            while pend:
                try:
                    flush_one()
                except BaseException:
                    pass
            if cur is not None and cur.fd is not None and cur.pending == 0:
                os.close(cur.fd)
            dirs.close()
            os.close(root_fd)
        prog.update(force=True)
        if damaged_items:
            raise DamageError(damaged_items, damaged_chunks)
        return dict(stats)

    # -- verify ------------------------------------------------------------------------------------
    def verify(self, snap_id: Optional[str] = None, *, progress=None, cancel=None) -> VerifyReport:
        """Re-read and authenticate every chunk the recovery point (or every one, when
        ``snap_id`` is None) needs, check every pack it touches against its hash and the
        index files describing them. Reports damaged items by name; never raises for damage."""
        with self._op, self.lock(owner=self.owner or "verify"):
            self.sync_index()
            if snap_id is None:
                ids = [n.split("/", 1)[1] for n in self.backend.list("snapshots/")]
            else:
                ids = [snap_id]
            rep = VerifyReport(snapshot_ids=ids)
            prog = _Throttle(progress, "verify")
            tmp = tempfile.NamedTemporaryFile(dir=self.cache_dir, suffix=".verify.sqlite", delete=False)
            tmp.close()
            db = sqlite3.connect(tmp.name)
            try:
                db.execute("CREATE TABLE refs (id BLOB, item BLOB)")
                db.execute("CREATE TABLE need (pack TEXT, off INTEGER, len INTEGER, id BLOB)")
                for sid in ids:
                    item = None
                    try:
                        for rec in self.records(sid):
                            _check_cancel(cancel)
                            if rec["t"] != "+":
                                item = f"{sid}:{rec['p']}"
                            rows = []
                            for c in rec.get("c", ()):
                                h = c[1] if len(c) == 3 else c[0]
                                rows.append((bytes.fromhex(h), _b(item)))
                            db.executemany("INSERT INTO refs VALUES (?,?)", rows)
                    except (IntegrityError, NotFound) as e:
                        rep.errors.append(f"manifest of snapshot {sid} is damaged or missing: {e}")
                        rep.damaged_items.append(f"{sid}:<manifest>")
                db.execute("CREATE INDEX refs_id ON refs(id)")
                missing = []
                for (cid,) in db.execute("SELECT DISTINCT id FROM refs").fetchall():
                    loc = self.index.locate(cid)
                    if loc is None:
                        missing.append(cid)
                    else:
                        db.execute("INSERT INTO need VALUES (?,?,?,?)", (loc[0], loc[1], loc[2], cid))
                bad = set(missing)
                rep.missing_chunks = [c.hex() for c in missing]
                packs = [r[0] for r in db.execute("SELECT DISTINCT pack FROM need ORDER BY pack")]
                tls = threading.local()
                idx_checked = set()

                def check_pack(pack):
                    problems, badc, nbytes = [], [], 0
                    rows = db_rows.pop(pack)
                    try:
                        data = self.backend.get(pack_object(pack))
                    except NotFound:
                        return [f"pack {pack} is missing"], [r[2] for r in rows], (0, 0)
                    if blake3.blake3(data).hexdigest() != pack:
                        problems.append(f"pack {pack} does not match its hash (damaged)")
                    try:
                        read_trailer(self.keys, data, pack)
                    except IntegrityError as e:
                        problems.append(str(e))
                    mv = memoryview(data)
                    for off, ln, cid in rows:
                        try:
                            if off + ln > len(data):
                                raise IntegrityError("truncated")
                            self._decode(cid, mv[off:off + ln], tls, check_id=True)
                            nbytes += ln
                        except IntegrityError:
                            badc.append(cid)
                    return problems, badc, (nbytes, len(rows))

                db_rows = collections.defaultdict(list)
                for pack, off, ln, cid in db.execute("SELECT pack, off, len, id FROM need ORDER BY pack, off"):
                    db_rows[pack].append((off, ln, cid))
                # bounded fan-out: at most workers+1 packs in memory
                futs = collections.deque()
                for pack in packs:
                    _check_cancel(cancel)
                    futs.append((pack, self.pool.submit(check_pack, pack)))
                    idx = self.index.pack_index_file(pack)
                    if idx and idx not in idx_checked:
                        idx_checked.add(idx)
                        try:
                            self._read_index_file(idx)
                        except (IntegrityError, NotFound) as e:
                            rep.errors.append(f"index file {idx}: {e}")
                    while len(futs) > self.workers:
                        self._verify_collect(futs.popleft(), rep, bad, prog)
                while futs:
                    self._verify_collect(futs.popleft(), rep, bad, prog)
                rep.damaged_chunks = sorted(c.hex() for c in bad if c not in missing)
                if bad:
                    q = "SELECT DISTINCT item FROM refs WHERE id IN (%s)"
                    bl = list(bad)
                    items = set()
                    for i in range(0, len(bl), 500):
                        part = bl[i:i + 500]
                        items.update(_s(r[0]) for r in db.execute(q % ",".join("?" * len(part)), part))
                    rep.damaged_items.extend(sorted(items))
                rep.damaged_items = sorted(set(rep.damaged_items))
            finally:
                db.close()
                os.unlink(tmp.name)
            prog.update(force=True)
            return rep

    def _verify_collect(self, item, rep, bad, prog):
        pack, fut = item
        problems, badc, (nbytes, nchunks) = fut.result()
        rep.errors.extend(problems)
        bad.update(badc)
        rep.chunks_checked += nchunks
        rep.bytes_checked += nbytes
        prog.update(nbytes=nbytes, current=pack)


def _b(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def _s(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


_ZEROS_1M = bytes(1 << 20)


def _hash_zeros(digest, n):
    while n > 0:
        k = min(n, len(_ZEROS_1M))
        digest.update(_ZEROS_1M if k == len(_ZEROS_1M) else _ZEROS_1M[:k])
        n -= k


def _write_zeros(out, n):
    z = bytes(1 << 20)
    while n > 0:
        k = min(n, len(z))
        out.write(z[:k])
        n -= k


class _FilesCache:
    """Entries of the parent recovery point, in a temporary on-disk table keyed on path."""

    def __init__(self, store: Store, parent: str, sess):
        self.store = store
        self.sess = sess
        fd, self.path = tempfile.mkstemp(dir=store.cache_dir, suffix=".files.sqlite")
        os.close(fd)
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE f (p BLOB PRIMARY KEY, s INT, mt INT, ct INT, i INT, c TEXT)")
        cur = None
        rows = []
        try:
            for rec in store.records(parent):
                if rec["t"] == "+":
                    if cur is not None:
                        cur[5].extend(rec["c"])
                    continue
                if cur is not None:
                    rows.append((_b(cur[0]),) + cur[1:5] + (json.dumps(cur[5]),))
                    cur = None
                if rec["t"] == "f" and not rec.get("r"):
                    cur = (rec["p"], rec["s"], rec["mt"], rec["ct"], rec["i"], list(rec.get("c", ())))
                if len(rows) >= 1000:
                    self.db.executemany("INSERT OR REPLACE INTO f VALUES (?,?,?,?,?,?)", rows)
                    rows = []
            if cur is not None:
                rows.append((_b(cur[0]),) + cur[1:5] + (json.dumps(cur[5]),))
            self.db.executemany("INSERT OR REPLACE INTO f VALUES (?,?,?,?,?,?)", rows)
            self.db.commit()
        except (IntegrityError, NotFound):
            self.db.execute("DELETE FROM f")  # unreadable parent: re-read everything

    def lookup(self, p, st):
        r = self.db.execute("SELECT s, mt, ct, i, c FROM f WHERE p=?", (_b(p),)).fetchone()
        if r is None or r[:4] != (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino):
            return None
        chunks = json.loads(r[4])
        idx = self.store.index
        for h, _ in chunks:
            if not idx.has(bytes.fromhex(h), self.sess.sid):
                return None
        return chunks

    def close(self):
        self.db.close()
        os.unlink(self.path)
