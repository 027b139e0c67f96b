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
    {"t": "v", "p": name, "s": size, "ck": "cdc"}             a volume; its chunks follow in "+" records
                                                            (stores before issue 22: "bs": block size)
    {"t": "+", "o": offset, "c": [[id hex, len], ...]}       more chunks of the entry above
    {"t": "+", "c": [[offset, id hex, len], ...]}            more chunks of the volume above (any offsets
                                                            and lengths: both volume formats restore alike)

Paths are relative, ``/``-separated, and may hold any bytes (non-UTF-8 bytes travel as
surrogate escapes).

This module is the facade: :class:`Store` opens or creates a store and runs each operation
under the right lock; the work is done in :mod:`~vaults.store.backup` (with
:mod:`~vaults.store.session`), :mod:`~vaults.store.restore`, :mod:`~vaults.store.verify`,
:mod:`~vaults.store.gc` and :mod:`~vaults.store.replicate`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import shutil
import threading
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Optional

from . import crypto
from . import lock as locks
from .backend import GOVERNANCE, Backend
from .backup import stream_backup, tree_backup, volume_backup
from .chunker import BLOCK_SIZE, CDC, compiled_fastcdc
from .config import (CONFIG, FORMAT_VERSION, default_cache_dir, now_iso, read_config, refuse_existing,
                     unwrap_secret, write_config)
from .errors import Cancelled, DamageError, ImmutabilityUnsupported, IntegrityError, NotFound
from .gc import DEFAULT_REPACK_THRESHOLD, DEFAULT_SAFETY_WINDOW, collect
from .index import IndexCache, read_index_file
from .manifest import ManifestReader, chunk_refs
from .memory import tune_malloc
from .pack import PACK_TARGET, pack_object
from .progress import Progress
from .replicate import replicate as copy_to_replica
from .restore import restore as restore_snapshot, restore_stream as write_stream
from .session import BackupSession
from .verify import VerifyReport, verify as verify_snapshots

__all__ = ["CONFIG", "FORMAT_VERSION", "RACY_NS", "Progress", "Snapshot", "Store", "VerifyReport"]

RACY_NS = 2_000_000_000  # files modified this close to the backup's start are re-read next time


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
        #: how volume images are cut: "cdc" (content-defined chunks inside each data region, stores
        #: created since issue 22) or "blocks" (fixed blocks; stores created before keep them, so
        #: their images go on deduplicating against their earlier recovery points)
        self.volume_chunking = config.get("volume_chunking", "blocks")
        self.workers = max(1, int(workers))
        self.zstd_level = zstd_level
        self.pack_target = int(config.get("pack_size", PACK_TARGET))
        self.lock_ttl = float(lock_ttl)
        self.lock_wait = float(lock_wait)
        self.owner = owner
        #: files changed this close to a backup's start are re-read by the next backup
        self.racy_ns = RACY_NS
        self.cache_dir = cache_dir or default_cache_dir(self.id)
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
        self._remove_dead_spools()

    def _remove_dead_spools(self) -> None:
        """Remove the spool folders (packs staged for upload) of killed backups on this machine."""
        root = os.path.join(self.cache_dir, "spool")
        try:
            sids = os.listdir(root)
        except FileNotFoundError:
            return
        for sid in sids:
            if not self.index.session_alive(sid):
                shutil.rmtree(os.path.join(root, sid), ignore_errors=True)

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
             volume_chunking: str = "cdc", **options) -> "Store":
        """Create a new store in an empty backend and return it open.

        ``platform_key`` (32 bytes) wraps the store's random secret; keep it (the Django side
        derives it from ``STRONGROOM_MASTER_KEY``)."""
        compiled_fastcdc()
        if volume_chunking not in ("cdc", "blocks"):
            raise ValueError("volume_chunking must be 'cdc' or 'blocks'")
        refuse_existing(backend)
        secret = os.urandom(32)
        cfg = {"v": FORMAT_VERSION, "id": uuid.uuid4().hex, "created": now_iso(),
               "chunker": {"min": chunk_min, "avg": chunk_avg, "max": chunk_max},
               "block_size": block_size, "pack_size": pack_size, "compression": "zstd", "cipher": "aes-256-gcm",
               "id_hash": "blake3-keyed", "volume_chunking": volume_chunking}
        write_config(backend, cfg, platform_key, secret)
        return cls(backend, cfg, secret, cache_dir=cache_dir, workers=workers, **options)

    @classmethod
    def init_replica(cls, backend: Backend, source: "Store", platform_key: bytes, *,
                     cache_dir: Optional[str] = None, workers: int = 2, **options) -> "Store":
        """Create an empty replica of ``source`` in ``backend`` (e.g. the paired region's bucket).

        The replica shares the source's secret (so objects copy byte for byte and it restores
        with the same keys) but has its own store id (its own cache) and is wrapped by
        ``platform_key``, which may differ from the source's. Fill it with :meth:`replicate`."""
        compiled_fastcdc()
        refuse_existing(backend)
        cfg = {k: v for k, v in source.config.items() if k not in ("id", "created", "wrapped", "replica_of")}
        cfg.update(id=uuid.uuid4().hex, created=now_iso(), replica_of=source.id)
        write_config(backend, cfg, platform_key, source._secret)
        return cls(backend, cfg, source._secret, cache_dir=cache_dir, workers=workers, **options)

    @classmethod
    def open(cls, backend: Backend, platform_key: bytes, *, cache_dir: Optional[str] = None,
             workers: int = 2, **options) -> "Store":
        """Open an existing store. Raises :class:`NotFound`, or ``KeyError_`` for a wrong key
        or a tampered config."""
        cfg, secret = read_config(backend, platform_key)
        return cls(backend, cfg, secret, cache_dir=cache_dir, workers=workers, **options)

    def rewrap(self, old_platform_key: bytes, new_platform_key: bytes) -> None:
        """Re-wrap the store secret under a new platform key (key rotation)."""
        cfg = dict(self.config)
        secret = unwrap_secret(cfg, old_platform_key)
        self.config = write_config(self.backend, cfg, new_platform_key, secret)

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
        return collect(self, safety_window=DEFAULT_SAFETY_WINDOW if safety_window is None else safety_window,
                       repack_threshold=DEFAULT_REPACK_THRESHOLD if repack_threshold is None else repack_threshold,
                       dry_run=dry_run, wait=wait, owner=owner, progress=progress, cancel=cancel)

    def replicate(self, snap_id: str, target: "Store", *, verify: bool = True, progress=None, cancel=None,
                  retention: bool = True):
        """Copy recovery point ``snap_id`` into the replica store ``target`` (made with
        :meth:`init_replica`): resumable, idempotent, every copied object read back and checked,
        retention carried over (unless ``retention`` is false: a temporary copy), and (``verify``) the replica's copy verified in full.
        Returns a :class:`~vaults.store.replicate.ReplicationReport`."""
        return copy_to_replica(self, snap_id, target, verify=verify, progress=progress, cancel=cancel,
                               retention=retention)

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
                packs = read_index_file(self.backend, self.keys, name)
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
        """The chunk ids a recovery point needs, each once."""
        seen = set()
        for rec in self.records(snap_id):
            for h in chunk_refs(rec):
                if h not in seen:
                    seen.add(h)
                    yield bytes.fromhex(h)

    # -- backup ------------------------------------------------------------------------------
    def _run_backup(self, phase, progress, cancel, body, retain_until, retention_mode):
        """Run ``body`` (see :mod:`vaults.store.backup`) in a backup session under the shared lock;
        the recovery point exists once its manifest is written, and is retained when asked."""
        if retain_until is not None:
            self.require_immutability()
        with self._op, self.lock(owner=self.owner or phase) as lk:
            self.sync_index()  # after taking the lock: no garbage collection runs until we finish
            sess = BackupSession(self, progress, cancel, phase, lock=lk)
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
        body = tree_backup(self, path, source_id, tags, use_cache)
        return self._run_backup("backup", progress, cancel, body, retain_until, retention_mode)

    def backup_stream(self, fileobj, *, name: str = "stream", source_id: Optional[str] = None,
                      tags: Iterable[str] = (), progress=None, cancel=None,
                      retain_until: Optional[dt.datetime] = None,
                      retention_mode: str = GOVERNANCE) -> Snapshot:
        """Back up a binary stream (e.g. a ``pg_dump`` pipe or stdin) as one item ``name``."""
        body = stream_backup(self, fileobj, name, source_id, tags)
        return self._run_backup("backup", progress, cancel, body, retain_until, retention_mode)

    def backup_volume(self, path: str, *, source_id: Optional[str] = None, tags: Iterable[str] = (),
                      progress=None, cancel=None, retain_until: Optional[dt.datetime] = None,
                      retention_mode: str = GOVERNANCE, point_in_time: str = "auto") -> Snapshot:
        """Back up a volume image (sparse file or block device) in fixed blocks; holes and
        all-zero blocks are not stored; unchanged blocks dedup against earlier points.

        The recovery point is one consistent image (see :mod:`vaults.store.pit`): with
        ``point_in_time="auto"`` the engine reads an instant reflink clone where the file system
        can make one, else it holds the image shared while it reads it (cooperating writers wait);
        ``"hold"`` always holds; ``"live"`` reads the image as it is (no guarantee). The image's
        content checksum (``blocks-sha256:``, see ``backup._ImageDigest``) is computed in the same
        pass: ``stats["checksum"]``, and ``stats["point_in_time"]`` says which way was used."""
        body = volume_backup(self, path, source_id, tags, point_in_time)
        return self._run_backup("backup", progress, cancel, body, retain_until, retention_mode)

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
            with _damaged_manifest(snap_id):
                return restore_snapshot(self, self.get_snapshot(snap_id), target, paths, progress, cancel)

    def restore_stream(self, snap_id: str, out, *, progress=None, cancel=None) -> dict:
        """Write a stream (or volume, holes as zeros) recovery point to the binary file ``out``."""
        with self._op, self.lock(owner=self.owner or "restore"):
            self.sync_index()
            with _damaged_manifest(snap_id):
                return write_stream(self, self.get_snapshot(snap_id), out, progress, cancel)

    # -- verify ------------------------------------------------------------------------------------
    def verify(self, snap_id: Optional[str] = None, *, progress=None, cancel=None) -> VerifyReport:
        """Re-read and authenticate every chunk the recovery point (or every one, when
        ``snap_id`` is None) needs, check every pack it touches against its hash and the
        index files describing them. Reports damaged items by name; never raises for damage."""
        with self._op, self.lock(owner=self.owner or "verify"):
            self.sync_index()
            return verify_snapshots(self, snap_id, progress, cancel)


@contextlib.contextmanager
def _damaged_manifest(snap_id):
    """A recovery point whose manifest cannot be read is damaged as a whole."""
    try:
        yield
    except IntegrityError as e:
        raise DamageError([f"{snap_id}:<manifest>"], message=f"recovery point {snap_id} is damaged: {e}") from e
