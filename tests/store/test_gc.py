"""Garbage collection on both backends: what it frees, what it must keep."""
import datetime as dt
import os
import random

import pytest

from tests.store.conftest import KEY
from tests.store.helpers import assert_intact, snapshot_tree
from vaults.store import GOVERNANCE, LocalBackend, Store, StoreError

NOW = dt.datetime.now(dt.timezone.utc)
ZERO = dt.timedelta(0)


def write_files(root, seed, names, size):
    rnd = random.Random(seed)
    os.makedirs(root, exist_ok=True)
    for n in names:
        with open(os.path.join(root, n), "wb") as f:
            f.write(rnd.randbytes(size))


def store_bytes(store):
    return sum(i.size for p in ("packs/", "index/") for i in store.backend.list_info(p))


def test_gc_frees_deleted_points_repacks_and_keeps_the_rest(make_store, tmp_path):
    store = make_store(small=True)
    src = tmp_path / "src"
    # *a files survive, *b files (twice as big, interleaved with them in the same packs) do not
    write_files(src, 1, [f"f{i}a" for i in range(6)], 100_000)
    write_files(src, 2, [f"f{i}b" for i in range(6)], 200_000)
    s1 = store.backup_tree(str(src))
    write_files(src, 3, [f"f{i}b" for i in range(6)], 200_000)  # new content: s1's b files become garbage
    s2 = store.backup_tree(str(src))
    for i in range(6):
        os.unlink(src / f"f{i}b")
    s3 = store.backup_tree(str(src))
    expect3 = snapshot_tree(str(src))
    before = store_bytes(store)

    store.delete_snapshot(s1.id)
    store.delete_snapshot(s2.id)
    dry = store.gc(safety_window=ZERO, dry_run=True)
    assert dry.dry_run and dry.bytes_freed > 0 and store_bytes(store) == before  # nothing changed
    rep = store.gc(safety_window=ZERO)
    assert rep.snapshots == 1 and not rep.errors, rep
    assert rep.packs_deleted > 0 and rep.packs_repacked > 0 and rep.packs_written > 0, rep.summary()
    assert rep.index_files_deleted > 0 and rep.index_files_written > 0
    # the new packs were staged and committed: nothing staged stays, in the store or the spool
    assert [p for p in tmp_path.rglob(".tmp-*")] == []
    spool = os.path.join(store.cache_dir, "spool")
    assert not os.path.exists(spool) or os.listdir(spool) == []
    after = store_bytes(store)
    assert rep.bytes_freed == before - after > 400_000 * 6, (rep.summary(), before, after)
    assert after < 100_000 * 6 * 1.3  # about what s3 needs
    assert store.verify(s3.id).ok
    store.restore(s3.id, str(tmp_path / "out"))
    assert snapshot_tree(str(tmp_path / "out")) == expect3
    # a fresh cache (another machine) sees the same store
    other = Store.open(store.backend, KEY, cache_dir=str(tmp_path / "other-cache"))
    try:
        assert other.verify().ok
    finally:
        other.close()
    again = store.gc(safety_window=ZERO)
    assert again.bytes_freed == 0 and again.packs_deleted == again.packs_repacked == 0, again.summary()
    # new backups dedup against what survived and still restore
    s4 = store.backup_tree(str(src))
    assert s4.stats.get("chunks_new", 0) == 0
    assert store.verify().ok


def test_gc_never_deletes_retained_objects(make_store, tmp_path):
    store = make_store(small=True)
    src = tmp_path / "src"
    write_files(src, 5, [f"f{i}" for i in range(4)], 150_000)
    s1 = store.backup_tree(str(src), retain_until=NOW + dt.timedelta(days=1), retention_mode=GOVERNANCE)
    retained = {p: store.backend.get(p) for p in store.backend.list("packs/")}
    idx = {p: store.backend.get(p) for p in store.backend.list("index/")}
    write_files(src, 6, [f"f{i}" for i in range(4)], 150_000)
    s2 = store.backup_tree(str(src))
    # an administrator bypasses governance on the manifest: s1's packs are now dead but retained
    store.delete_snapshot(s1.id, bypass_governance=True)
    rep = store.gc(safety_window=ZERO)
    assert rep.kept_retained >= len(retained) and rep.packs_deleted == 0 and rep.packs_repacked == 0, rep.summary()
    for name, data in {**retained, **idx}.items():
        assert_intact(store.backend, name, data)
    assert store.verify(s2.id).ok


def test_gc_safety_window_and_crash_leftovers(make_store, tmp_path):
    store = make_store(small=True)
    src = tmp_path / "src"
    write_files(src, 7, ["x", "y"], 300_000)
    s1 = store.backup_tree(str(src))
    write_files(src, 8, ["x", "y"], 300_000)
    s2 = store.backup_tree(str(src))
    store.delete_snapshot(s1.id)
    # what crashed backups leave: a pack no index lists, and an interrupted upload
    junk = "ab" + "0" * 62
    store.backend.put(f"packs/ab/{junk}", random.Random(9).randbytes(50_000))
    b = store.backend
    if isinstance(b, LocalBackend):
        with open(os.path.join(b.root, "packs", "ab", ".tmp-crashed"), "wb") as f:
            f.write(b"z" * 1000)
    else:
        up = b.client.create_multipart_upload(Bucket=b.bucket, Key=b._key("packs/cd/crashed"))
        b.client.upload_part(Bucket=b.bucket, Key=b._key("packs/cd/crashed"), UploadId=up["UploadId"],
                             PartNumber=1, Body=b"z" * 1000)
    recent = store.gc(safety_window=dt.timedelta(hours=1))
    assert recent.kept_recent > 0 and recent.packs_deleted == 0 and recent.leftover_packs_removed == 0
    assert recent.incomplete_uploads_removed == 0 and b.exists(f"packs/ab/{junk}")
    rep = store.gc(safety_window=ZERO)
    assert rep.packs_deleted > 0 and rep.leftover_packs_removed == 1 and rep.incomplete_uploads_removed == 1, rep
    assert not b.exists(f"packs/ab/{junk}")
    assert b.cleanup_incomplete(NOW + dt.timedelta(days=1)) == (0, 0)
    assert store.verify(s2.id).ok


def test_gc_refuses_when_a_manifest_is_unreadable(make_local_store, tmp_path):
    store = make_local_store(small=True)
    src = tmp_path / "src"
    write_files(src, 10, ["a"], 200_000)
    s1 = store.backup_tree(str(src))
    path = store.backend._path(f"snapshots/{s1.id}")
    data = bytearray(open(path, "rb").read())
    data[-5] ^= 1
    open(path, "wb").write(bytes(data))
    packs = set(store.backend.list("packs/"))
    with pytest.raises(StoreError, match="cannot be read"):
        store.gc(safety_window=ZERO)
    assert set(store.backend.list("packs/")) == packs
    assert store.locks() == []  # the exclusive lock was released
