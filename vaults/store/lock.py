"""Store locks: lock objects under ``locks/`` with an owner and a time to live.

Writers (backups, replication into a store) and readers (restore, verify, replication out of a
store) take **shared** locks; garbage collection takes an **exclusive** lock. Each lock is one
object ``locks/<created ns>-<random>`` holding a small authenticated (AES-GCM, store key) JSON
document: kind, owner, host, pid, boot id, pid namespace, process start time, when it was
created and last refreshed, and its TTL. A background thread rewrites it every ``ttl / 4``.

Acquiring is *write, then check*, on both sides, so two processes that start at the same
moment always see each other (S3 and local directories list what was written before):

* shared: wait while a live exclusive lock exists; write our lock; if an exclusive lock
  appeared meanwhile, remove ours and wait again;
* exclusive: write our lock first (new writers now wait), then wait until no live shared
  lock and no older exclusive lock remains. Between two exclusive claims the older (smaller
  name) wins; the younger withdraws.

A lock is **stale** when it was not refreshed for its TTL, or - on the same host, boot and
PID namespace - its process is gone (or the PID now belongs to a younger process). Anyone
who meets a stale lock that conflicts with it breaks it (deletes the object); an unreadable
lock counts as stale. Breaking is safe because a holder notices: its refresh finds the object
gone, or it could not refresh for longer than the TTL, and it marks itself lost; a backup
checks :meth:`Lock.check` before writing its manifest and fails instead of committing, and
garbage collection checks before every deletion batch. Garbage collection also keeps a safety
window of recent objects for a writer that might still be finishing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import json
import os
import random
import socket
import threading
import time
import uuid
from typing import Optional

from .backend import Backend, utcnow
from .errors import IntegrityError, LockError, NotFound

SHARED = "shared"
EXCLUSIVE = "exclusive"
PREFIX = "locks/"
DEFAULT_TTL = 300.0  # seconds without a refresh after which a lock is stale
AAD = b"lock|"


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _pidns() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


def _proc_start(pid: int) -> Optional[str]:
    """Start time of a process (clock ticks since boot), None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return "?"
    try:
        return raw[raw.rindex(b")") + 2:].split()[19].decode()
    except (ValueError, IndexError):
        return "?"


HOST = socket.gethostname()
BOOT = _boot_id()
PIDNS = _pidns()


@dataclasses.dataclass
class LockInfo:
    """A lock as read from the store."""

    name: str
    kind: str
    owner: str
    host: str
    pid: int
    created: dt.datetime
    refreshed: dt.datetime
    ttl: float
    boot: str = ""
    pidns: str = ""
    start: str = ""
    readable: bool = True

    def describe(self) -> str:
        if not self.readable:
            return f"unreadable lock {self.name}"
        return (f"{self.kind} lock of {self.owner} (host {self.host}, pid {self.pid}, since "
                f"{self.created.isoformat(timespec='seconds')}, refreshed {self.refreshed.isoformat(timespec='seconds')})")

    def stale(self, now: Optional[dt.datetime] = None) -> bool:
        if not self.readable:
            return True
        now = now or utcnow()
        if now - self.refreshed > dt.timedelta(seconds=self.ttl):
            return True
        return self.holder_dead()

    def holder_dead(self) -> bool:
        """Whether the holder is provably gone: a process of this host (same boot and PID namespace)
        that no longer runs. (A lock past its TTL may still have a live, stalled holder elsewhere.)"""
        if self.readable and self.host == HOST and self.boot and self.boot == BOOT and self.pidns and self.pidns == PIDNS:
            start = _proc_start(self.pid)
            if start is None:
                return True  # the process is gone
            if self.start and start not in ("?", self.start):
                return True  # the PID was reused by another process
        return False


def read_locks(backend: Backend, keys) -> list:
    out = []
    for name in backend.list(PREFIX):
        try:
            raw = backend.get(name)
        except NotFound:
            continue  # released meanwhile
        try:
            d = json.loads(keys.open(AAD + name.encode(), raw, f"lock {name}"))
            out.append(LockInfo(name=name, kind=d["kind"], owner=d["owner"], host=d["host"], pid=int(d["pid"]),
                                created=dt.datetime.fromisoformat(d["created"]),
                                refreshed=dt.datetime.fromisoformat(d["refreshed"]), ttl=float(d["ttl"]),
                                boot=d.get("boot", ""), pidns=d.get("pidns", ""), start=d.get("start", "")))
        except (IntegrityError, ValueError, KeyError, TypeError):
            epoch = dt.datetime.fromtimestamp(0, dt.timezone.utc)
            out.append(LockInfo(name=name, kind="?", owner="?", host="?", pid=0, created=epoch, refreshed=epoch,
                                ttl=0, readable=False))
    return out


def break_lock(backend: Backend, info: LockInfo) -> bool:
    """Remove a stale lock. Returns False if it was already gone."""
    try:
        backend.delete(info.name)
        return True
    except NotFound:
        return False


class Lock:
    """A held lock; refreshed by a daemon thread until :meth:`release`."""

    def __init__(self, backend: Backend, keys, kind: str, owner: str, ttl: float = DEFAULT_TTL):
        self.backend = backend
        self.keys = keys
        self.kind = kind
        self.owner = owner
        self.ttl = float(ttl)
        self.created = utcnow()
        self.name = f"{PREFIX}{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"
        self.lost: Optional[str] = None
        self.broken: list = []  # stale locks this acquisition broke (LockInfo)
        self._last_ok = time.monotonic()
        self._stop = threading.Event()
        self._io = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._written = False

    # -- object -------------------------------------------------------------------
    def _doc(self) -> bytes:
        d = {"kind": self.kind, "owner": self.owner, "host": HOST, "pid": os.getpid(), "boot": BOOT,
             "pidns": PIDNS, "start": _proc_start(os.getpid()) or "", "created": self.created.isoformat(),
             "refreshed": utcnow().isoformat(), "ttl": self.ttl}
        return self.keys.seal(AAD + self.name.encode(), json.dumps(d).encode())

    def _write(self) -> None:
        with self._io:
            self.backend.put(self.name, self._doc())
            self._written = True
            self._last_ok = time.monotonic()

    def refresh(self) -> None:
        """Rewrite the lock object now; marks the lock lost if someone broke it."""
        with self._io:
            if self.lost or not self._written:
                return
            if not self.backend.exists(self.name):
                self.lost = f"{self.kind} lock {self.name} was removed by another process (considered stale)"
                return
            self.backend.put(self.name, self._doc())
            self._last_ok = time.monotonic()

    def _loop(self) -> None:
        interval = max(0.05, self.ttl / 4)
        while not self._stop.wait(interval * random.uniform(0.9, 1.1)):
            try:
                self.refresh()
            except Exception:
                pass  # retried at the next tick; check() notices a long outage
            if self.lost:
                return
            if time.monotonic() - self._last_ok > self.ttl:
                self.lost = f"{self.kind} lock {self.name} could not be refreshed for {self.ttl:.0f}s"
                return

    def _start_refresher(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="strongroom-lock", daemon=True)
        self._thread.start()

    def check(self, strict: bool = False) -> None:
        """Raise :class:`LockError` unless the lock is still ours. ``strict`` confirms it in the
        store right now (one request; before committing a recovery point or deleting);
        otherwise it is refreshed only when half its TTL has passed."""
        if not self.lost and (strict or time.monotonic() - self._last_ok > self.ttl / 2):
            try:
                self.refresh()
            except Exception as e:
                if strict or time.monotonic() - self._last_ok > self.ttl:
                    self.lost = f"{self.kind} lock {self.name} could not be confirmed: {e}"
        if not self.lost and time.monotonic() - self._last_ok > self.ttl:
            self.lost = f"{self.kind} lock {self.name} was not refreshed for {self.ttl:.0f}s"
        if self.lost:
            raise LockError(f"lost the store lock: {self.lost}; stopped before committing anything more")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._io:
            if self._written and not self.lost:
                try:
                    self.backend.delete(self.name)
                except NotFound:
                    pass
            self._written = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _default_owner(what: str) -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = "?"
    return f"{what} by {user}@{HOST} pid {os.getpid()}"


def acquire(backend: Backend, keys, kind: str, *, owner: Optional[str] = None, ttl: float = DEFAULT_TTL,
            wait: float = 0.0, poll: float = 0.2) -> Lock:
    """Take a shared or exclusive lock, waiting up to ``wait`` seconds for conflicting ones.
    Raises :class:`LockError` naming the holders when it cannot."""
    if kind not in (SHARED, EXCLUSIVE):
        raise ValueError(kind)
    lock = Lock(backend, keys, kind, owner or _default_owner(kind), ttl)
    deadline = time.monotonic() + wait
    delay = poll

    def conflicts():
        out = []
        for info in read_locks(backend, keys):
            if info.name == lock.name:
                continue
            if kind == SHARED and info.kind == SHARED:
                # no conflict, but a killed holder's lock would stay until a garbage collection:
                # remove it when its process is provably gone
                if info.holder_dead() and break_lock(backend, info):
                    lock.broken.append(info)
                continue
            if info.stale():
                if break_lock(backend, info):
                    lock.broken.append(info)
                continue
            if kind == EXCLUSIVE and info.kind == EXCLUSIVE and info.name > lock.name:
                continue  # a younger claim: it withdraws in our favour
            out.append(info)
        return out

    def give_up(holders):
        lock.release()
        who = "; ".join(h.describe() for h in holders)
        raise LockError(f"the store at {backend.location} is locked: {who}", holders)

    try:
        if kind == SHARED:
            while True:
                held = conflicts()
                if not held:
                    lock._write()
                    held = conflicts()
                    if not held:
                        break
                    with lock._io:  # an exclusive claim appeared: withdraw and wait
                        backend.delete(lock.name)
                        lock._written = False
                if time.monotonic() >= deadline:
                    give_up(held)
                time.sleep(min(delay, max(0.01, deadline - time.monotonic())) * random.uniform(0.8, 1.2))
                delay = min(delay * 1.5, 5.0)
        else:
            lock._write()
            lock._start_refresher()  # our claim must stay fresh while we wait
            while True:
                held = conflicts()
                if not held:
                    break
                if any(h.kind == EXCLUSIVE for h in held) or time.monotonic() >= deadline:
                    # an older exclusive claim: withdraw ours, then wait for it like a writer would
                    if time.monotonic() >= deadline:
                        give_up(held)
                    lock.release()
                    lock = _reclaim(lock, backend, keys, kind, ttl)
                    time.sleep(min(delay, max(0.01, deadline - time.monotonic())) * random.uniform(0.8, 1.2))
                    delay = min(delay * 1.5, 5.0)
                    lock._write()
                    lock._start_refresher()
                    continue
                time.sleep(min(delay, max(0.01, deadline - time.monotonic())) * random.uniform(0.8, 1.2))
                delay = min(delay * 1.5, 5.0)
                lock.check()
    except BaseException:
        if lock._written:
            lock.release()
        raise
    if lock._thread is None:
        lock._start_refresher()
    return lock


def _reclaim(old: Lock, backend, keys, kind, ttl) -> Lock:
    new = Lock(backend, keys, kind, old.owner, ttl)
    new.broken = old.broken
    return new
