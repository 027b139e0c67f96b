"""A failed backup leaves nothing behind: its unindexed packs, its temp files, its store lock and
its session lock file go; a full disk is a StorageFull error, and the next backup works once space
is back. A cancelled backup keeps its packs indexed (a retry reuses them)."""

import errno
import io
import os
import random

import pytest

from vaults.store import Cancelled, LocalBackend, StorageFull, Store, StoreError

from .conftest import KEY


class SmallDisk(LocalBackend):
    """A local store on a "disk" of ``quota`` bytes: a write that would pass it fails with
    ENOSPC in the middle, as os.write does on a full file system."""

    quota = 1 << 60

    def used(self):
        total = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for fn in files:
                try:
                    total += os.lstat(os.path.join(dirpath, fn)).st_size
                except FileNotFoundError:
                    pass
        return total

    def _atomic_write_raw(self, path, chunks):
        room = self.quota - self.used()

        def limited():
            nonlocal room
            for c in chunks:
                n = len(memoryview(c).cast("B"))
                if n > room:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                room -= n
                yield c
        super()._atomic_write_raw(path, limited())

    def stage(self, scratch_dir):  # packs are written piece by piece into a temp file in the store
        staged = super().stage(scratch_dir)
        write_raw = staged._write_raw

        def limited(data):
            if len(data) > self.quota - self.used():
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            write_raw(data)
        staged._write_raw = limited
        return staged


def small_store(tmp_path, backend=None):
    backend = backend or LocalBackend(str(tmp_path / "store"), create=True)
    return Store.init(backend, KEY, cache_dir=str(tmp_path / "cache"), chunk_min=16 << 10, chunk_avg=64 << 10,
                      chunk_max=256 << 10, pack_size=256 << 10, lock_wait=5)


def files_under(root, prefix):
    out = []
    for dirpath, _dirs, files in os.walk(os.path.join(root, prefix)):
        out.extend(os.path.join(dirpath, f) for f in files)
    return sorted(out)


def test_full_disk_fails_with_storage_full_and_frees_what_the_backup_wrote(tmp_path):
    disk = SmallDisk(str(tmp_path / "store"), create=True)
    store = small_store(tmp_path, disk)
    try:
        first = store.backup_stream(io.BytesIO(random.Random(1).randbytes(600 << 10)), name="small")
        before = disk.used()
        packs_before = files_under(disk.root, "packs")
        disk.quota = before + (2 << 20)  # room for 2 MiB more
        big = random.Random(2).randbytes(6 << 20)  # incompressible: does not fit
        with pytest.raises(StorageFull) as info:
            store.backup_stream(io.BytesIO(big), name="big")
        assert "is full" in str(info.value) and info.value.location == disk.root
        # everything the failed backup stored is gone again: packs, temp files, its lock
        assert files_under(disk.root, "packs") == packs_before
        assert not any(".tmp-" in p for p in files_under(disk.root, ""))
        assert files_under(disk.root, "locks") == []
        assert [s.id for s in store.list_snapshots()] == [first.id]
        assert disk.used() <= before + 4096
        assert os.listdir(os.path.join(store.cache_dir, "sessions")) == []
        # a smaller backup fits in the space that is still free...
        fits = store.backup_stream(io.BytesIO(random.Random(3).randbytes(1 << 20)), name="fits")
        assert store.verify(fits.id).ok
        # ...and the big one works once space is back
        disk.quota = 1 << 60
        snap = store.backup_stream(io.BytesIO(big), name="big")
        out = tmp_path / "big.out"
        store.restore(snap.id, str(out))
        assert out.read_bytes() == big
        assert store.verify().ok
    finally:
        store.close()


def test_a_failed_backup_removes_its_unindexed_packs(tmp_path):
    store = small_store(tmp_path)
    root = store.backend.root

    class Broken(io.RawIOBase):
        """A source that fails after 2 MiB (a pg_dump that died, a read error)."""

        def __init__(self):
            self.left = 2 << 20
            self.rnd = random.Random(4)

        def readable(self):
            return True

        def readinto(self, b):
            if self.left <= 0:
                raise OSError(errno.EIO, "read error")
            n = min(len(b), self.left, 64 << 10)
            b[:n] = self.rnd.randbytes(n)
            self.left -= n
            return n

    try:
        with pytest.raises(OSError):
            store.backup_stream(io.BufferedReader(Broken()), name="broken")
        assert files_under(root, "packs") == [] and files_under(root, "index") == []
        assert files_under(root, "locks") == []
        assert store.list_snapshots() == []
    finally:
        store.close()


def test_a_cancelled_backup_keeps_its_packs_indexed_for_a_retry(tmp_path):
    store = small_store(tmp_path)
    data = random.Random(5).randbytes(3 << 20)
    calls = []

    def cancel():  # checked before every chunk: cancel once 2 MiB of 64 KiB chunks were read
        calls.append(1)
        return len(calls) > 32

    try:
        with pytest.raises(Cancelled):
            store.backup_stream(io.BytesIO(data), name="s", cancel=cancel)
        kept = files_under(store.backend.root, "packs")
        assert kept and files_under(store.backend.root, "index")
        snap = store.backup_stream(io.BytesIO(data), name="s")
        assert snap.stats["chunks_dup"] > 0  # the retry reused what the cancelled run stored
    finally:
        store.close()


def test_dead_sessions_lock_files_are_swept(tmp_path):
    store = small_store(tmp_path)
    sessions = os.path.join(store.cache_dir, "sessions")
    store.close()
    # a killed backup's session file (nobody holds its lock) and a live one (we hold it)
    import fcntl

    dead = os.path.join(sessions, "0" * 32 + ".lock")
    open(dead, "w").close()
    live = os.path.join(sessions, "1" * 32 + ".lock")
    fd = os.open(live, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        store = Store.open(LocalBackend(str(tmp_path / "store")), KEY, cache_dir=str(tmp_path / "cache"))
        store.close()
        assert not os.path.exists(dead) and os.path.exists(live)
    finally:
        os.close(fd)


def test_storage_full_is_a_store_error():
    assert issubclass(StorageFull, StoreError)


def _backup_killed(tmp_path, patch: str = "", **env):
    """A first backup in this process, then a 4 MiB one in a subprocess that SIGKILLs itself (by
    ``env``'s fault hook or by ``patch``, code run before it): (the first point, the packs before)."""
    import signal
    import subprocess
    import sys

    from .helpers import subprocess_env

    store = small_store(tmp_path)
    first = store.backup_stream(io.BytesIO(random.Random(8).randbytes(1 << 20)), name="first")
    packs_before = files_under(store.backend.root, "packs")
    store.close()
    script = (
        "import io, os, random, signal\n"
        "from vaults.store import LocalBackend, Store, index\n"
        f"{patch}"
        f"s = Store.open(LocalBackend({str(tmp_path / 'store')!r}), bytes(range(32)), cache_dir={str(tmp_path / 'cache')!r})\n"
        "s.backup_stream(io.BytesIO(random.Random(9).randbytes(4 << 20)), name='killed')\n"
    )
    r = subprocess.run([sys.executable, "-c", script], env=subprocess_env(**env), capture_output=True, timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr.decode()
    return first, packs_before


def test_a_killed_backups_unindexed_packs_go_when_the_store_is_next_opened(tmp_path):
    """SIGKILL in the middle of a backup (after some packs): the next open on this machine removes the
    packs it stored and never indexed; every recovery point still verifies."""
    first, packs_before = _backup_killed(tmp_path, STRONGROOM_FAULT_KILL_AFTER_BYTES=str(3 << 20))

    def packs():  # (the interrupted write's temp file is garbage collection's, after its window)
        return [p for p in files_under(str(tmp_path / "store"), "packs") if "/.tmp-" not in p]

    assert [p for p in packs() if p not in packs_before]  # what the kill left behind...
    assert files_under(str(tmp_path / "store"), "locks")  # (its shared lock too)
    store = Store.open(LocalBackend(str(tmp_path / "store")), KEY, cache_dir=str(tmp_path / "cache"))
    try:
        assert packs() == packs_before  # ...is gone at the next open
        assert os.listdir(os.path.join(store.cache_dir, "sessions")) == []
        assert [s.id for s in store.list_snapshots()] == [first.id] and store.verify().ok
        # the next operation that takes a lock removes the dead process's lock
        assert files_under(store.backend.root, "locks") == []
    finally:
        store.close()


def test_a_backup_killed_between_storing_a_pack_and_recording_it_leaves_nothing(tmp_path):
    """The upload thread commits a pack while the main thread fills the next: a kill right after the
    commit, before the pack's chunks are recorded, still leaves a pack the next open knows to remove."""
    _first, packs_before = _backup_killed(
        tmp_path, "index.IndexCache.add_pack = lambda *a, **kw: os.kill(os.getpid(), signal.SIGKILL)\n")
    assert files_under(str(tmp_path / "store"), "packs") != packs_before  # the committed, unrecorded pack
    store = Store.open(LocalBackend(str(tmp_path / "store")), KEY, cache_dir=str(tmp_path / "cache"))
    try:
        assert files_under(store.backend.root, "packs") == packs_before
        assert store.verify().ok
    finally:
        store.close()


def test_an_s3_storage_full_answer_is_storage_full(tmp_path, request, monkeypatch):
    """MinIO answers a write with XMinioStorageFull (HTTP 507) when its disks are full."""
    import botocore.exceptions as bex

    from .conftest import Backends

    backend = Backends("s3", tmp_path, request).make("full")
    store = small_store(tmp_path, backend)
    original = backend.client.put_object

    def put_object(**kw):
        if "/packs/" in kw["Key"]:
            raise bex.ClientError({"Error": {"Code": "XMinioStorageFull", "Message": "Storage backend has reached its "
                                             "minimum free drive threshold."},
                                   "ResponseMetadata": {"HTTPStatusCode": 507}}, "PutObject")
        return original(**kw)

    # the client is the process's shared one: monkeypatch puts it back whatever happens
    monkeypatch.setattr(backend.client, "put_object", put_object)
    try:
        with pytest.raises(StorageFull) as info:
            store.backup_stream(io.BytesIO(random.Random(10).randbytes(100_000)), name="s")
        assert "XMinioStorageFull" in str(info.value)
        assert list(backend.list("packs/")) == [] and list(backend.list("locks/")) == []
        monkeypatch.setattr(backend.client, "put_object", original)
        snap = store.backup_stream(io.BytesIO(random.Random(10).randbytes(100_000)), name="s")
        assert store.verify(snap.id).ok
    finally:
        store.close()
