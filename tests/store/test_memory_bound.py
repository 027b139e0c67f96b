"""A backup's memory bound: at most ``session.PACKS_WAITING`` finished packs wait for the upload
thread while one more is written; the next pack is filled meanwhile, and no further one."""

import os
import threading

from vaults.store import LocalBackend, Store, session
from vaults.store.pack import PackBuilder

from .conftest import KEY


class GatedBackend(LocalBackend):
    """Holds the write of the i-th pack until the backup has sealed as many packs as the bound
    lets it (i + 1 + PACKS_WAITING) or has sealed its last one: the writes are as slow as they can
    be without stopping the backup, whatever the machine's speed."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.cond = threading.Condition()
        self.sealed = 0
        self.stopping = False
        self.taken = 0
        self.seen = []  # (pack number, packs sealed while it was being written)

    def put_chunks(self, name, chunks):
        if name.startswith("packs/"):
            with self.cond:
                self.taken += 1
                i = self.taken
                self.cond.wait_for(lambda: self.sealed >= i + 1 + session.PACKS_WAITING or self.stopping,
                                   timeout=20)
                self.seen.append((i, self.sealed))
        super().put_chunks(name, chunks)


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
