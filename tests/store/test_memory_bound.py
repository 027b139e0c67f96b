"""A backup's pack bound: at most ``session.PACKS_WAITING`` finished packs wait for the upload
thread while one more is committed; the next pack is filled meanwhile, and no further one. Packs are
staged on disk while they are filled, so what waits costs no memory. And no operation of the engine
leaves its objects in a reference cycle, which would hold their memory after it returns."""

import os
import threading

from vaults.store import LocalBackend, Store, session
from vaults.store.pack import PackBuilder

from .conftest import KEY


class GatedBackend(LocalBackend):
    """Holds the commit of the i-th pack until the backup has sealed as many packs as the bound
    lets it (i + 1 + PACKS_WAITING) or has sealed its last one: the writes are as slow as they can
    be without stopping the backup, whatever the machine's speed."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.cond = threading.Condition()
        self.sealed = 0
        self.stopping = False
        self.taken = 0
        self.seen = []  # (pack number, packs sealed while it was being written)
        self.staged_sizes = []  # bytes each sealed pack had written to its staged file

    def stage(self, scratch_dir):
        staged = super().stage(scratch_dir)
        commit = staged.commit

        def gated_commit(name):
            with self.cond:
                self.taken += 1
                i = self.taken
                self.cond.wait_for(lambda: self.sealed >= i + 1 + session.PACKS_WAITING or self.stopping,
                                   timeout=20)
                self.seen.append((i, self.sealed))
            commit(name)
        staged.commit = gated_commit
        return staged


def test_the_next_pack_is_filled_while_one_is_written_and_no_further_one(tmp_path, monkeypatch):
    backend = GatedBackend(str(tmp_path / "store"), create=True)
    store = Store.init(backend, KEY, cache_dir=str(tmp_path / "cache"), chunk_min=16 << 10,
                       chunk_avg=64 << 10, chunk_max=256 << 10, pack_size=256 << 10, lock_wait=5)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        (src / f"f{i}.bin").write_bytes(os.urandom(1 << 20))

    finish = PackBuilder.finish
    stop = session.BackupSession._stop_uploader

    def counting_finish(self, keys):
        out = finish(self, keys)
        with backend.cond:
            backend.staged_sizes.append((out[1].size, os.path.getsize(out[1].path)))
            backend.sealed += 1
            backend.cond.notify_all()
        return out

    def stopping(self):
        with backend.cond:
            backend.stopping = True  # every pack is sealed
            backend.cond.notify_all()
        stop(self)

    monkeypatch.setattr(PackBuilder, "finish", counting_finish)
    monkeypatch.setattr(session.BackupSession, "_stop_uploader", stopping)
    try:
        snap = store.backup_tree(str(src))
    finally:
        store.close()
    assert snap.stats["packs"] == backend.sealed > 4
    bound = 1 + session.PACKS_WAITING  # the pack being written and those waiting
    # never further ahead than the bound ...
    assert all(sealed <= i + bound for i, sealed in backend.seen), backend.seen
    # ... and as far as it while a pack is written (the next ones were filled meanwhile)
    assert any(sealed == i + bound for i, sealed in backend.seen), backend.seen
    # the packs are staged on disk as they are filled: each sealed pack's bytes are all in its file
    assert backend.staged_sizes and all(n == on_disk > 0 for n, on_disk in backend.staged_sizes), backend.staged_sizes
    leftovers = [f for _, _, files in os.walk(tmp_path) for f in files if f.startswith(".tmp-")]
    assert not leftovers


def _staged_files(root):
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f.startswith(".tmp-")]


def test_staged_packs_are_committed_or_removed_on_either_backend(make_store, tmp_path):
    """On a local store a pack is staged inside the store and renamed into place; on S3 it is spooled
    in the cache and uploaded. A backup, or a backup that fails, leaves nothing staged behind."""
    import io
    import random

    import pytest

    store = make_store(small=True)
    data = random.Random(11).randbytes(3 << 20)
    snap = store.backup_stream(io.BytesIO(data), name="s")
    assert snap.stats["packs"] >= 4
    out = tmp_path / "out"
    store.restore(snap.id, str(out))
    assert out.read_bytes() == data

    class Broken(io.RawIOBase):  # fails once several packs have been staged
        left = 3 << 20

        def readable(self):
            return True

        def readinto(self, b):
            if self.left <= 0:
                raise OSError("read error")
            n = min(len(b), self.left, 64 << 10)
            b[:n] = random.randbytes(n)
            self.left -= n
            return n

    with pytest.raises(OSError):
        store.backup_stream(io.BufferedReader(Broken()), name="broken")
    assert _staged_files(str(tmp_path)) == []
    assert not os.path.exists(os.path.join(store.cache_dir, "spool")) or \
        os.listdir(os.path.join(store.cache_dir, "spool")) == []
    assert [s.id for s in store.list_snapshots()] == [snap.id] and store.verify().ok


def test_a_killed_backups_spool_folder_goes_when_the_store_is_next_opened(tmp_path):
    import fcntl

    backend = LocalBackend(str(tmp_path / "store"), create=True)
    cache = str(tmp_path / "cache")
    Store.init(backend, KEY, cache_dir=cache).close()
    spool = os.path.join(cache, "spool")
    dead, live = "0" * 32, "1" * 32
    for sid in (dead, live):
        os.makedirs(os.path.join(spool, sid))
        open(os.path.join(spool, sid, ".tmp-pack"), "wb").write(b"x" * 1000)
    fd = os.open(os.path.join(cache, "sessions", live + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a backup still running on this machine
    try:
        Store.open(LocalBackend(str(tmp_path / "store")), KEY, cache_dir=cache).close()
        assert os.listdir(spool) == [live]
    finally:
        os.close(fd)


def _engine_garbage(operation):
    """Run ``operation`` with the cycle collector off, then collect: the objects of the engine's own
    classes it left in reference cycles (freed only whenever the collector happens to run)."""
    import gc

    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        result = operation()
        gc.collect()
        left = sorted({type(o).__qualname__ for o in gc.garbage
                       if type(o).__module__.startswith("vaults.store")})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    return result, left


def test_the_engines_operations_free_their_memory_when_they_end(tmp_path):
    """GIVEN a store, a tree, a stream and a sparse image
    WHEN each is backed up, restored and verified, a point deleted and garbage collected
    THEN no operation leaves its objects in a reference cycle: their buffers, index connections
    and compression contexts go back to malloc when the operation returns, not whenever Python's
    cycle collector runs. (A backup's pack builder held its session in a cycle: several MiB per
    backup, and a worker's peak memory climbed backup after backup.)"""
    import datetime as dt
    import io
    import random

    rnd = random.Random(7)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        (src / f"f{i}").write_bytes(rnd.randbytes(rnd.randint(0, 600_000)))
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(8 << 20)
        f.seek(3 << 20)
        f.write(rnd.randbytes(300_000))
    store, left = _engine_garbage(lambda: Store.init(LocalBackend(str(tmp_path / "s"), create=True), KEY,
                                                     cache_dir=str(tmp_path / "c")))
    try:
        assert left == []
        tree, left = _engine_garbage(lambda: store.backup_tree(str(src)))
        assert left == [], "tree backup"
        stream, left = _engine_garbage(lambda: store.backup_stream(io.BytesIO(rnd.randbytes(400_000)), name="d"))
        assert left == [], "stream backup"
        volume, left = _engine_garbage(lambda: store.backup_volume(str(img)))
        assert left == [], "volume backup"
        for name, op in [
            ("tree restore", lambda: store.restore(tree.id, str(tmp_path / "out"))),
            ("image restore", lambda: store.restore(volume.id, str(tmp_path / "out.img"))),
            ("stream restore", lambda: store.restore_stream(stream.id, io.BytesIO())),
            ("verify", lambda: store.verify()),
            ("list", lambda: store.list_snapshots()),
            ("delete", lambda: store.delete_snapshot(stream.id)),
            ("gc", lambda: store.gc(safety_window=dt.timedelta(0))),
        ]:
            _, left = _engine_garbage(op)
            assert left == [], name
    finally:
        store.close()
