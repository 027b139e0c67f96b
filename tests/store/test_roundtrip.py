import datetime as dt
import io
import os
import random
import tempfile
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.store.helpers import KEY, snapshot_tree, write_tree
from vaults.store import Cancelled, LocalBackend, Store

name_chars = st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",))
names = st.one_of(
    st.text(name_chars, min_size=1, max_size=12),
    st.binary(min_size=1, max_size=8).map(lambda b: os.fsdecode(b.replace(b"/", b"_").replace(b"\x00", b"_"))),
).filter(lambda n: n not in (".", "..") and len(os.fsencode(n)) <= 60)

sizes = st.one_of(st.just(0), st.integers(1, 300), st.integers(300, 70_000),
                  st.sampled_from([256 << 10, 1 << 20, (1 << 20) + 1, 3 << 20 | 12345]))

node = st.tuples(st.lists(names, min_size=1, max_size=8), st.sampled_from(["f", "f", "f", "l", "d"]),
                 sizes, st.integers(0, 2**32), st.booleans())


def build(root, nodes):
    os.makedirs(root, exist_ok=True)
    for parts, kind, size, seed, text in nodes:
        path = os.path.join(root, *parts)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if os.path.lexists(path):
                continue
            if kind == "d":
                os.mkdir(path)
            elif kind == "l":
                os.symlink("../" * (seed % 3) + "target-" + parts[-1], path)
            else:
                rnd = random.Random(seed)
                data = rnd.randbytes(size) if not text else (b"abc %d\n" % seed * (size // 6 + 1))[:size]
                with open(path, "wb") as f:
                    f.write(data)
                os.chmod(path, 0o600 | (seed & 0o077))
                os.utime(path, ns=(seed * 1000, seed * 1000 + 7))
        except (NotADirectoryError, FileExistsError, OSError):
            continue  # a name collides with a file/link made earlier


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(st.lists(node, max_size=12))
def test_any_tree_round_trips(nodes):
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        build(src, nodes)
        store = Store.init(LocalBackend(os.path.join(tmp, "store"), create=True), KEY,
                           cache_dir=os.path.join(tmp, "cache"))
        try:
            snap = store.backup_tree(src)
            out = os.path.join(tmp, "out")
            store.restore(snap.id, out)
            assert snapshot_tree(out) == snapshot_tree(src)
            assert store.verify(snap.id).ok
        finally:
            store.close()


def test_deep_paths_and_incremental(make_store, tmp_path):
    src = tmp_path / "src"
    write_tree(str(src), seed=3, files=25)
    deep = src.joinpath(*[f"level{i}" for i in range(40)])
    deep.mkdir(parents=True)
    (deep / "leaf.txt").write_bytes(b"deep")
    old = os.path.getmtime(src / "d0" / "e0" / "f0.bin") - 100
    for dp, dn, fn in os.walk(src):
        for n in fn:
            os.utime(os.path.join(dp, n), (old, old))  # not racy
    store = make_store()
    store.racy_ns = 50_000_000
    time.sleep(0.1)
    s1 = store.backup_tree(str(src))
    # mutate: edit one file, add one, delete one
    with open(src / "d1" / "e1" / "f1.bin", "r+b") as f:
        f.seek(10)
        f.write(b"CHANGED")
    (src / "new.txt").write_bytes(b"new file")
    os.unlink(src / "d2" / "e2" / "f2.bin")
    time.sleep(0.1)
    s2 = store.backup_tree(str(src))
    assert s2.parent == s1.id
    assert s2.stats["files_unchanged"] >= s1.stats["files"] - 3
    assert s2.stats["bytes_read"] < s1.stats["bytes_read"]
    for snap, expect in ((s2, snapshot_tree(str(src))),):
        out = tmp_path / f"out-{snap.id}"
        store.restore(snap.id, str(out))
        assert snapshot_tree(str(out)) == expect
    # the first point still restores as it was (f2 present)
    out1 = tmp_path / "out1"
    store.restore(s1.id, str(out1))
    assert (out1 / "d2" / "e2" / "f2.bin").exists() and not (out1 / "new.txt").exists()


def test_racy_files_are_reread(make_store, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"1" * 1000)  # mtime == now: too close to the start
    store = make_store()
    s1 = store.backup_tree(str(src))
    st = os.stat(src / "a")
    (src / "a").write_bytes(b"2" * 1000)  # same size, same tick
    os.utime(src / "a", ns=(st.st_atime_ns, st.st_mtime_ns))
    s2 = store.backup_tree(str(src))
    assert s2.stats.get("files_unchanged", 0) == 0
    store.restore(s2.id, str(tmp_path / "o"))
    assert (tmp_path / "o" / "a").read_bytes() == b"2" * 1000


def test_subset_restore_and_stream(make_store, tmp_path):
    src = tmp_path / "src"
    write_tree(str(src), seed=5, files=12)
    store = make_store()
    snap = store.backup_tree(str(src))
    store.restore(snap.id, str(tmp_path / "sub"), paths=["d1/e1", "link"])
    got = snapshot_tree(str(tmp_path / "sub"))
    assert got and all(p.startswith("d1") or p == "link" for p in got)
    full = snapshot_tree(str(src))
    for p, v in got.items():
        if v[0] == "f":
            assert v[:3] == full[p][:3]
    data = random.Random(9).randbytes(5_000_000) + b"tail" * 1000
    s = store.backup_stream(io.BytesIO(data), name="dump.pgc")
    out = io.BytesIO()
    store.restore_stream(s.id, out)
    assert out.getvalue() == data
    store.restore(s.id, str(tmp_path / "dump.pgc"))
    assert (tmp_path / "dump.pgc").read_bytes() == data


def test_progress_and_cancel_leave_no_recovery_point(make_store, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(random.Random(1).randbytes(30 << 20))
    store = make_store()
    seen = []
    calls = []

    def cancel():  # a callable hook, checked between chunks
        calls.append(1)
        return len(calls) > 6

    with pytest.raises(Cancelled):
        store.backup_tree(str(src), progress=seen.append, cancel=cancel)
    assert seen and seen[-1].current == "big"
    ev = threading.Event()
    ev.set()
    with pytest.raises(Cancelled):
        store.backup_stream(io.BytesIO(b"x" * 100), cancel=ev)
    assert store.list_snapshots() == []
    assert not any(n for n in store.backend.list("snapshots/"))
    # nothing half-written anywhere (temp files, multipart uploads)
    assert store.backend.cleanup_incomplete(dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)) == (0, 0)
    snap = store.backup_tree(str(src), progress=seen.append)
    assert seen[-1].bytes_done == 30 << 20
    assert store.verify(snap.id).ok


def test_wrong_key_is_refused(make_store, tmp_path):
    from vaults.store import WrongKeyError
    store = make_store()
    with pytest.raises(WrongKeyError):
        Store.open(store.backend, bytes(32), cache_dir=str(tmp_path / "c2"))


def test_restore_never_writes_outside_target(make_store, tmp_path):
    # a link in the target directory must not be followed by a later file of the same name
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(b"inside")
    store = make_store()
    snap = store.backup_tree(str(src))
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(str(outside), target / "d")
    store.restore(snap.id, str(target))
    assert list(outside.iterdir()) == []
    assert (target / "d" / "f").read_bytes() == b"inside" and not (target / "d").is_symlink()


@pytest.mark.parametrize("change", ["grows", "shrinks"])
def test_a_file_that_changes_size_after_the_walk_saw_it_is_backed_up_as_read(make_local_store, tmp_path,
                                                                              monkeypatch, change):
    """GIVEN a file whose size changes between the walk's stat and its read (a log being written)
    WHEN it is backed up
    THEN the point holds what was read, whole (a grown file is streamed past its old size),
    and restores byte for byte."""
    src = tmp_path / "src"
    src.mkdir()
    target = src / "live.log"
    rnd = random.Random(41)
    before = rnd.randbytes(3 << 20) if change == "shrinks" else rnd.randbytes(100_000)
    after = before[:1000] if change == "shrinks" else before + rnd.randbytes(3 << 20)
    target.write_bytes(before)
    real_open = os.open

    def open_after_change(path, flags, *args, **kwargs):
        if os.fspath(path) == str(target):
            target.write_bytes(after)
        return real_open(path, flags, *args, **kwargs)

    store = make_local_store()
    monkeypatch.setattr(os, "open", open_after_change)
    snap = store.backup_tree(str(src))
    monkeypatch.setattr(os, "open", real_open)
    store.restore(snap.id, str(tmp_path / "out"))
    assert (tmp_path / "out" / "live.log").read_bytes() == after
    assert snap.stats["bytes_total"] == len(after)
