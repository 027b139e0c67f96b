"""The chunk index: a local SQLite cache rebuilt from the store's index files.

The authoritative index lives in the store (``index/<hash>`` objects, each listing the chunks
of some packs, encrypted). This module keeps a compact on-disk SQLite table of
chunk id -> (pack, offset, length) so memory stays flat however big the store grows.

A pack may be listed by several index files (garbage collection rewrites index files, and
concurrent writers may both list a pack): ``pack_idx`` links packs to the index files that list
them, and a pack leaves the cache only when the last index file listing it is gone.

Rows of packs written by a running backup carry that session's id until the session writes
its index file; a session that died (its lock file is no longer locked) has its rows dropped
at the next open, and only rows of indexed packs (or of one's own session) are used for
deduplication, so a manifest never refers to a chunk no index file lists.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import struct
import threading
import time
import uuid

import blake3
import zstandard

from .errors import IntegrityError

ENTRY = struct.Struct("<32sIII")  # chunk id, offset, length (stored), raw length
PACK_HEAD = struct.Struct("<32sI")  # pack hash, entry count
INDEX_MAGIC = b"SRIX1"

SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS packs (pid INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, sess TEXT);
CREATE TABLE IF NOT EXISTS pack_idx (pid INTEGER NOT NULL, idx TEXT NOT NULL,
                                     PRIMARY KEY (pid, idx)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pack_idx_idx ON pack_idx(idx);
CREATE TABLE IF NOT EXISTS chunks (id BLOB NOT NULL, pid INTEGER NOT NULL, off INTEGER NOT NULL,
                                   len INTEGER NOT NULL, raw INTEGER NOT NULL,
                                   PRIMARY KEY (id, pid)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_pid ON chunks(pid);
CREATE TABLE IF NOT EXISTS idxfiles (name TEXT PRIMARY KEY);
CREATE INDEX IF NOT EXISTS packs_sess ON packs(sess);
"""


def encode_index(packs) -> bytes:
    """packs: iterable of (pack_name_hex, [(id, off, len, raw), ...])."""
    out = [INDEX_MAGIC]
    for name, entries in packs:
        out.append(PACK_HEAD.pack(bytes.fromhex(name), len(entries)))
        out.extend(ENTRY.pack(*e) for e in entries)
    return zstandard.ZstdCompressor(level=3).compress(b"".join(out))


def decode_index(blob: bytes):
    try:
        raw = zstandard.ZstdDecompressor().decompress(blob, max_output_size=1 << 31)
    except zstandard.ZstdError as e:
        raise IntegrityError(f"index file does not decompress: {e}") from None
    if not raw.startswith(INDEX_MAGIC):
        raise IntegrityError("index file has a bad magic")
    pos = len(INDEX_MAGIC)
    mv = memoryview(raw)
    packs = []
    while pos < len(raw):
        name, n = PACK_HEAD.unpack_from(mv, pos)
        pos += PACK_HEAD.size
        entries = [ENTRY.unpack_from(mv, pos + i * ENTRY.size) for i in range(n)]
        pos += n * ENTRY.size
        packs.append((name.hex(), entries))
    if pos != len(raw):
        raise IntegrityError("index file is truncated")
    return packs


def write_index_file(backend, keys, packs) -> tuple:
    """Seal ``packs`` (as for :func:`encode_index`) into ``index/<its BLAKE3 hash>`` in the
    backend; returns the file's name and size."""
    sealed = keys.seal(b"index", encode_index(packs))
    name = blake3.blake3(sealed).hexdigest()
    backend.put(f"index/{name}", sealed)
    return name, len(sealed)


def read_index_file(backend, keys, name: str):
    """The packs listed by index file ``name``, checked against its name and authenticated."""
    sealed = backend.get(f"index/{name}")
    if blake3.blake3(sealed).hexdigest() != name:
        raise IntegrityError(f"index file {name} does not match its name")
    return decode_index(keys.open(b"index", sealed, f"index file {name}"))


def _lock_if_dead(path: str, flags: int):
    """Open a session's lock file and lock it without waiting: the descriptor when its session is
    dead, None when the session is alive (it holds the lock) or the file cannot be opened."""
    try:
        fd = os.open(path, flags, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None  # alive
    return fd


class IndexCache:
    def __init__(self, cache_dir: str):
        os.makedirs(cache_dir, exist_ok=True)
        self.dir = cache_dir
        self.sessions_dir = os.path.join(cache_dir, "sessions")
        os.makedirs(self.sessions_dir, exist_ok=True)
        self.lock = threading.RLock()
        self.db = sqlite3.connect(os.path.join(cache_dir, "index.sqlite"), timeout=60,
                                  check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if self.db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                # an older layout: the cache is rebuilt from the store's index files
                for (t,) in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
                    self.db.execute(f"DROP TABLE IF EXISTS {t}")
                self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    self.db.execute(stmt)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def close(self):
        with self.lock:
            self.db.close()

    # -- sessions ----------------------------------------------------------------
    def start_session(self):
        sid = uuid.uuid4().hex
        path = os.path.join(self.sessions_dir, sid + ".lock")
        # locked before it gets its name: a ".lock" file nobody holds is a dead session's
        tmp = os.path.join(self.sessions_dir, f".{sid}.new")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(tmp, path)
        return sid, fd, path

    def end_session(self, sid, fd, path):
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            self._drop_session(sid)
            self.db.execute("COMMIT")
        try:
            os.unlink(path)
        finally:
            os.close(fd)

    def _drop_session(self, sid):
        self.db.execute("DELETE FROM chunks WHERE pid IN (SELECT pid FROM packs WHERE sess=?)", (sid,))
        self.db.execute("DELETE FROM packs WHERE sess=?", (sid,))

    def session_alive(self, sid) -> bool:
        """Whether a backup process on this machine still holds session ``sid``'s lock file."""
        path = os.path.join(self.sessions_dir, sid + ".lock")
        if not os.path.exists(path):
            return False
        fd = _lock_if_dead(path, os.O_RDWR)
        if fd is None:
            return True  # held (or unreadable: never taken for dead)
        os.close(fd)
        return False

    def dead_sessions(self) -> list:
        """Sessions with rows whose lock nobody holds: their backup process died."""
        with self.lock:
            sess = [r[0] for r in self.db.execute("SELECT DISTINCT sess FROM packs WHERE sess IS NOT NULL")]
        return [sid for sid in sess if not self.session_alive(sid)]

    def session_packs(self, sid) -> list:
        """Packs a session stored that no loaded index file lists."""
        with self.lock:
            return [r[0] for r in self.db.execute("SELECT name FROM packs WHERE sess=?", (sid,))]

    def drop_dead_sessions(self):
        with self.lock:
            sess = [r[0] for r in self.db.execute("SELECT DISTINCT sess FROM packs WHERE sess IS NOT NULL")]
            for sid in sess:
                path = os.path.join(self.sessions_dir, sid + ".lock")
                fd = _lock_if_dead(path, os.O_RDWR | os.O_CREAT)
                if fd is None:
                    continue
                self.db.execute("BEGIN IMMEDIATE")
                self._drop_session(sid)
                self.db.execute("COMMIT")
                os.unlink(path)
                os.close(fd)
            self._sweep_session_files()

    def _sweep_session_files(self):
        """Remove the lock files of sessions that died without packs (a killed backup)."""
        try:
            names = os.listdir(self.sessions_dir)
        except OSError:
            return
        for fn in names:
            path = os.path.join(self.sessions_dir, fn)
            if fn.endswith(".new"):  # killed between creating and naming it (a minute is plenty)
                try:
                    if time.time() - os.stat(path).st_mtime < 60:
                        continue
                except OSError:
                    continue
            elif not fn.endswith(".lock"):
                continue
            fd = _lock_if_dead(path, os.O_RDWR)
            if fd is None:
                continue
            try:
                os.unlink(path)
            except OSError:
                pass
            os.close(fd)

    # -- rows ----------------------------------------------------------------------
    def reserve_pack(self, name, sess):
        """Record that session ``sess`` is about to store pack ``name`` (no chunks yet, so nothing
        dedups against it): if the process dies before ``add_pack``, the next open removes it."""
        with self.lock:
            self.db.execute("INSERT OR IGNORE INTO packs(name, sess) VALUES (?,?)", (name, sess))

    def add_pack(self, name, entries, *, sess=None, idx=None):
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                cur = self.db.execute("SELECT pid FROM packs WHERE name=?", (name,)).fetchone()
                if cur is None:
                    pid = self.db.execute("INSERT INTO packs(name, sess) VALUES (?,?)",
                                          (name, None if idx is not None else sess)).lastrowid
                else:
                    pid = cur[0]
                if idx is not None:
                    self.db.execute("UPDATE packs SET sess=NULL WHERE pid=?", (pid,))
                    self.db.execute("INSERT OR IGNORE INTO pack_idx(pid, idx) VALUES (?,?)", (pid, idx))
                self.db.executemany("INSERT OR IGNORE INTO chunks(id, pid, off, len, raw) VALUES (?,?,?,?,?)",
                                    [(e[0], pid, e[1], e[2], e[3]) for e in entries])
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def mark_indexed(self, idxname, pack_names):
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("UPDATE packs SET sess=NULL WHERE name=?", [(n,) for n in pack_names])
            self.db.executemany("INSERT OR IGNORE INTO pack_idx(pid, idx) SELECT pid, ? FROM packs WHERE name=?",
                                [(idxname, n) for n in pack_names])
            self.db.execute("INSERT OR IGNORE INTO idxfiles(name) VALUES (?)", (idxname,))
            self.db.execute("COMMIT")

    def has(self, cid, sess=None) -> bool:
        with self.lock:
            return self.db.execute(
                "SELECT 1 FROM chunks c JOIN packs p ON p.pid=c.pid WHERE c.id=? "
                "AND (p.sess IS NULL OR p.sess=?) LIMIT 1", (cid, sess)).fetchone() is not None

    def locate(self, cid):
        """(pack name, offset, length) of an indexed chunk, or None."""
        with self.lock:
            return self.db.execute(
                "SELECT p.name, c.off, c.len FROM chunks c JOIN packs p ON p.pid=c.pid "
                "WHERE c.id=? AND p.sess IS NULL LIMIT 1", (cid,)).fetchone()

    def loaded_index_files(self):
        with self.lock:
            return {r[0] for r in self.db.execute("SELECT name FROM idxfiles")}

    def load_index_file(self, idxname, packs):
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for name, entries in packs:
                    cur = self.db.execute("SELECT pid FROM packs WHERE name=?", (name,)).fetchone()
                    if cur is None:
                        pid = self.db.execute("INSERT INTO packs(name, sess) VALUES (?,NULL)", (name,)).lastrowid
                    else:
                        pid = cur[0]
                        self.db.execute("UPDATE packs SET sess=NULL WHERE pid=?", (pid,))
                    self.db.execute("INSERT OR IGNORE INTO pack_idx(pid, idx) VALUES (?,?)", (pid, idxname))
                    self.db.executemany(
                        "INSERT OR IGNORE INTO chunks(id, pid, off, len, raw) VALUES (?,?,?,?,?)",
                        [(e[0], pid, e[1], e[2], e[3]) for e in entries])
                self.db.execute("INSERT OR IGNORE INTO idxfiles(name) VALUES (?)", (idxname,))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def forget_index_file(self, idxname):
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            pids = [r[0] for r in self.db.execute("SELECT pid FROM pack_idx WHERE idx=?", (idxname,))]
            self.db.execute("DELETE FROM pack_idx WHERE idx=?", (idxname,))
            orphans = [(p,) for p in pids if self.db.execute(
                "SELECT 1 FROM pack_idx WHERE pid=? LIMIT 1", (p,)).fetchone() is None]
            self.db.executemany("DELETE FROM chunks WHERE pid=?", orphans)
            self.db.executemany("DELETE FROM packs WHERE pid=? AND sess IS NULL", orphans)
            self.db.execute("DELETE FROM idxfiles WHERE name=?", (idxname,))
            self.db.execute("COMMIT")

    def pack_entries(self, name):
        with self.lock:
            return self.db.execute(
                "SELECT c.id, c.off, c.len, c.raw FROM chunks c JOIN packs p ON p.pid=c.pid WHERE p.name=? "
                "ORDER BY c.off", (name,)).fetchall()

    def pack_index_file(self, name):
        """One index file listing pack ``name`` (or None)."""
        with self.lock:
            r = self.db.execute("SELECT MIN(x.idx) FROM pack_idx x JOIN packs p ON p.pid=x.pid WHERE p.name=?",
                                (name,)).fetchone()
            return r[0] if r else None

    def pack_index_files(self, name):
        with self.lock:
            return sorted(r[0] for r in self.db.execute(
                "SELECT x.idx FROM pack_idx x JOIN packs p ON p.pid=x.pid WHERE p.name=?", (name,)))

    def has_pack(self, name) -> bool:
        """Whether an index file lists pack ``name``."""
        with self.lock:
            return self.db.execute("SELECT 1 FROM packs WHERE name=? AND sess IS NULL",
                                   (name,)).fetchone() is not None

    def indexed_packs(self):
        """Names of every pack some loaded index file lists."""
        with self.lock:
            return {r[0] for r in self.db.execute("SELECT name FROM packs WHERE sess IS NULL")}
