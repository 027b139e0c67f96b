import os
import random
import shutil

import pytest

from tests.store.helpers import KEY, snapshot_tree, write_tree
from vaults.store import DamageError, IntegrityError, LocalBackend, Store, WrongKeyError
from vaults.store.pack import read_trailer


@pytest.fixture
def populated(make_local_store, tmp_path):
    src = tmp_path / "src"
    write_tree(str(src), seed=11, files=16, max_size=2 << 20)
    store = make_local_store()
    snap = store.backup_tree(str(src))
    root = store.backend.root
    store.close()
    return root, snap.id, src


def _copy(root, tmp_path, tag):
    dst = tmp_path / f"copy-{tag}"
    shutil.copytree(root, dst)
    return str(dst)


def _files(root, kind):
    b = LocalBackend(root)
    if kind == "config":
        return ["config"]
    return list(b.list(kind + "/"))


def _flip(root, name, offset=None, rnd=None):
    path = os.path.join(root, *name.split("/"))
    os.chmod(path, 0o600)
    with open(path, "r+b") as f:
        size = os.path.getsize(path)
        off = rnd.randrange(size) if offset is None else offset
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ (1 << rnd.randrange(8))]))
    return off


@pytest.mark.parametrize("kind", ["config", "snapshots", "index", "packs"])
def test_flipped_byte_in_every_kind_of_file_is_detected(populated, tmp_path, kind):
    root, snap_id, src = populated
    rnd = random.Random(kind)
    names = _files(root, kind)
    assert names
    for trial in range(3):
        name = rnd.choice(names)
        copy = _copy(root, tmp_path, f"{kind}-{trial}")
        off = _flip(copy, name, rnd=rnd)
        cache = str(tmp_path / f"cache-{kind}-{trial}")
        if kind == "config":
            with pytest.raises((WrongKeyError, IntegrityError)):
                Store.open(LocalBackend(copy), KEY, cache_dir=cache)
            continue
        with pytest.warns(UserWarning) if kind == "index" else _nothing():
            store = Store.open(LocalBackend(copy), KEY, cache_dir=cache)
        try:
            rep = store.verify(snap_id)
            assert not rep.ok, f"flip at {name}@{off} not detected"
            target = str(tmp_path / f"out-{kind}-{trial}")
            if rep.damaged_items:
                with pytest.raises(DamageError) as ei:
                    store.restore(snap_id, target)
                named = {f"{snap_id}:{i}" for i in ei.value.items} | set(ei.value.items)
                assert set(rep.damaged_items) & named, (rep.damaged_items, ei.value.items)
                # everything not named was restored exactly
                good = snapshot_tree(str(src))
                got = snapshot_tree(target)
                for p, v in got.items():
                    if v[0] == "f":
                        assert good[p][:2] == v[:2]
            else:
                # damage outside any chunk (pack trailer): data still restores exactly
                assert kind == "packs"
                store.restore(snap_id, target)
                assert snapshot_tree(target) == snapshot_tree(str(src))
        finally:
            store.close()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_flipped_byte_inside_a_chunk_fails_restore_by_name(populated, tmp_path):
    root, snap_id, src = populated
    rnd = random.Random(7)
    store = Store.open(LocalBackend(root), KEY, cache_dir=str(tmp_path / "c0"))
    pack = rnd.choice(_files(root, "packs"))
    entries = read_trailer(store.keys, store.backend.get(pack), pack)
    store.close()
    cid, off, ln, raw = rnd.choice(entries)
    copy = _copy(root, tmp_path, "chunk")
    _flip(copy, pack, offset=off + rnd.randrange(ln), rnd=rnd)
    store = Store.open(LocalBackend(copy), KEY, cache_dir=str(tmp_path / "c1"))
    try:
        rep = store.verify(snap_id)
        assert cid.hex() in rep.damaged_chunks
        assert rep.damaged_items
        with pytest.raises(DamageError) as ei:
            store.restore(snap_id, str(tmp_path / "out"))
        assert cid.hex() in ei.value.chunks
        assert {f"{snap_id}:{i}" for i in ei.value.items} == set(rep.damaged_items)
    finally:
        store.close()


def test_swapped_chunks_are_detected(make_local_store, tmp_path):
    img = tmp_path / "disk.img"
    rnd = random.Random(3)
    with open(img, "wb") as f:
        f.write(rnd.randbytes(4 << 20))  # four incompressible blocks: equal-size blobs
    store = make_local_store(volume_chunking="blocks")  # fixed blocks (content-defined ones differ in size)
    snap = store.backup_volume(str(img))
    pack = next(iter(store.backend.list("packs/")))
    path = store.backend._path(pack)
    entries = read_trailer(store.keys, store.backend.get(pack), pack)
    (a_id, a_off, a_len, _), (b_id, b_off, b_len, _) = entries[0], entries[1]
    assert a_len == b_len
    os.chmod(path, 0o600)
    with open(path, "r+b") as f:
        f.seek(a_off)
        a = f.read(a_len)
        f.seek(b_off)
        b = f.read(b_len)
        f.seek(a_off)
        f.write(b)
        f.seek(b_off)
        f.write(a)
    rep = store.verify(snap.id)
    assert {a_id.hex(), b_id.hex()} <= set(rep.damaged_chunks)
    assert rep.damaged_items == [f"{snap.id}:disk.img"]
    with pytest.raises(DamageError) as ei:
        store.restore(snap.id, str(tmp_path / "out.img"))
    assert {a_id.hex(), b_id.hex()} <= set(ei.value.chunks)


def test_swapped_manifests_are_detected(make_local_store, tmp_path):
    src = tmp_path / "src"
    write_tree(str(src), seed=1, files=4)
    store = make_local_store()
    s1 = store.backup_tree(str(src))
    s2 = store.backup_tree(str(src))
    p1, p2 = store.backend._path(f"snapshots/{s1.id}"), store.backend._path(f"snapshots/{s2.id}")
    d1, d2 = open(p1, "rb").read(), open(p2, "rb").read()
    open(p1, "wb").write(d2)
    open(p2, "wb").write(d1)
    rep = store.verify()
    assert f"{s1.id}:<manifest>" in rep.damaged_items and f"{s2.id}:<manifest>" in rep.damaged_items
    with pytest.raises(DamageError):
        store.restore(s1.id, str(tmp_path / "o"))
