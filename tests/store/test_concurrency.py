"""Several processes on one store, on both backends: two backups and a garbage collection at
once lose nothing; a garbage collection killed with SIGKILL leaves a store that verifies and a
lock the next run breaks."""
import datetime as dt
import json
import os
import random
import signal
import subprocess
import time

from tests.store.conftest import KEY
from tests.store.helpers import cli, snapshot_tree, subprocess_env, write_tree
from vaults.store import EXCLUSIVE, Store, open_backend

KEYHEX = KEY.hex()
SMALL = dict(chunk_min=16 << 10, chunk_avg=64 << 10, chunk_max=256 << 10, pack_size=512 << 10)


def popen(loc, cache, *args, stdin=None, **env):
    return subprocess.Popen(cli("--store", loc, "--cache-dir", cache, "--lock-wait", "120", *args),
                            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=subprocess_env(STRONGROOM_STORE_KEY=KEYHEX, **env))


def finish(p, timeout=180):
    if p.stdin is not None and p.stdin.closed:
        p.stdin = None
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out.decode(), err.decode()


def interleaved(root, seed, n=6):
    """Small survivors interleaved with big files in the same packs (so GC has repacking to do)."""
    rnd = random.Random(seed)
    os.makedirs(root, exist_ok=True)
    for i in range(n):
        (root / f"f{i}a").write_bytes(rnd.randbytes(80_000))
        (root / f"f{i}b").write_bytes(rnd.randbytes(160_000))


def check_all(loc, tmp_path, expected, tag):
    """Every recovery point verifies (fresh cache) and restores byte-identically."""
    store = Store.open(open_backend(loc), KEY, cache_dir=str(tmp_path / f"check-{tag}"))
    try:
        rep = store.verify()
        assert rep.ok, (rep.errors, rep.damaged_items, rep.missing_chunks)
        ids = {s.id for s in store.list_snapshots()}
        assert set(expected) <= ids, set(expected) - ids
        for sid, tree in expected.items():
            out = tmp_path / f"out-{tag}-{sid}"
            if isinstance(tree, bytes):  # a stream
                store.restore(sid, str(out))
                assert out.read_bytes() == tree, sid
                continue
            store.restore(sid, str(out))
            assert snapshot_tree(str(out)) == tree, sid
    finally:
        store.close()


def test_two_backups_and_a_gc_at_once_lose_nothing(backends, tmp_path):
    loc = backends.location("store")
    store = Store.init(open_backend(loc, create=True), KEY, cache_dir=str(tmp_path / "c0"), **SMALL)
    old = tmp_path / "old"
    interleaved(old, 1)
    expected = {}
    s_old = store.backup_tree(str(old), source_id="old")
    for i in range(6):
        os.unlink(old / f"f{i}b")
    s_keep = store.backup_tree(str(old), source_id="old")
    expected[s_keep.id] = snapshot_tree(str(old))
    store.delete_snapshot(s_old.id)
    store.close()
    freed = 0
    for rnd, order in enumerate(["gc first", "backups first"]):
        src = tmp_path / f"src{rnd}"
        write_tree(str(src), seed=10 * rnd, files=14, max_size=1 << 20)
        dump = random.Random(rnd).randbytes(6 << 20)
        gc_args = ("gc", "--safety-window", "0", "--wait", "120", "--json")
        procs = {}
        if order == "gc first":
            procs["gc"] = popen(loc, str(tmp_path / "cA"), *gc_args)
            time.sleep(0.2)
        # writer 1 shares its cache with the GC process; writer 2 is "another machine" and
        # backs up a stream fed slowly, so it holds its lock for a while
        procs["b1"] = popen(loc, str(tmp_path / "cA"), "backup", str(src), "--source-id", "one")
        procs["b2"] = popen(loc, str(tmp_path / "cB"), "backup", "-", "--name", "dump", "--source-id", "two",
                            stdin=subprocess.PIPE)
        procs["b2"].stdin.write(dump[:3 << 20])  # returns once b2 (holding its lock) has read most of it
        procs["b2"].stdin.flush()
        if order == "backups first":
            procs["gc"] = popen(loc, str(tmp_path / "cA"), *gc_args)
            watcher = Store.open(open_backend(loc), KEY, cache_dir=str(tmp_path / "cW"))
            deadline = time.monotonic() + 60
            while not any(i.kind == EXCLUSIVE for i in watcher.locks()):  # the GC's claim is there
                assert time.monotonic() < deadline and procs["gc"].poll() is None
                time.sleep(0.05)
            watcher.close()
            time.sleep(0.8)  # ... and waits, while the stream backup still holds its shared lock
        procs["b2"].stdin.write(dump[3 << 20:])
        procs["b2"].stdin.close()
        res = {k: finish(p) for k, p in procs.items()}
        for k, (rc, out, err) in res.items():
            assert rc == 0, (k, out, err)
        expected[res["b1"][1].split()[1]] = snapshot_tree(str(src))
        expected[res["b2"][1].split()[1]] = dump
        report = json.loads(res["gc"][1])
        assert not report["errors"], report
        freed += report["bytes_freed"]
        if order == "backups first":
            assert report["lock_waited"] > 0.5, report  # it waited for the running backup
        check_all(loc, tmp_path, expected, f"r{rnd}")
        # garbage for the next round: the first writer's point goes
        victim = res["b1"][1].split()[1]
        s = Store.open(open_backend(loc), KEY, cache_dir=str(tmp_path / "c0"))
        s.delete_snapshot(victim)
        s.close()
        del expected[victim]
    assert freed > 600_000  # both rounds reclaimed the deleted points' data
    check_all(loc, tmp_path, expected, "final")


def test_gc_killed_mid_run_leaves_a_verifying_store_and_a_lock_the_next_gc_breaks(backends, tmp_path):
    loc = backends.location("store")
    Store.init(open_backend(loc, create=True), KEY, cache_dir=str(tmp_path / "c0"), **SMALL).close()
    src = tmp_path / "src"
    expected = {}

    def make_garbage(gen):
        """A deleted point whose packs are mostly dead: repacking and deleting to do."""
        store = Store.open(open_backend(loc), KEY, cache_dir=str(tmp_path / "c0"))
        try:
            interleaved(src, 100 + gen)
            doomed = store.backup_tree(str(src)).id
            for i in range(6):
                os.unlink(src / f"f{i}b")
            s = store.backup_tree(str(src))
            expected[s.id] = snapshot_tree(str(src))
            store.delete_snapshot(doomed)
        finally:
            store.close()

    cache = str(tmp_path / "cG")
    kills = [{"STRONGROOM_FAULT_KILL_AFTER_DELETES": "0"},  # after the new index files, before any delete
             {"STRONGROOM_FAULT_KILL_AFTER_BYTES": "150000"},  # in the middle of writing a repacked pack
             {"STRONGROOM_FAULT_KILL_AFTER_DELETES": "2"}]  # after deleting an old index file
    for n, fault in enumerate(kills):
        make_garbage(n)
        rc, out, err = finish(popen(loc, cache, "gc", "--safety-window", "0", "--json", **fault))
        assert rc == -signal.SIGKILL, (fault, rc, out, err)
        s = Store.open(open_backend(loc), KEY, cache_dir=str(tmp_path / f"c{n}"))
        try:
            held = s.locks()
            assert [i.kind for i in held] == [EXCLUSIVE] and held[0].stale(), held
        finally:
            s.close()
        if n % 2:
            check_all(loc, tmp_path, expected, f"k{n}")  # a reader breaks the dead GC's lock too
        else:
            rc, out, err = finish(popen(loc, cache, "gc", "--safety-window", "0", "--json"))
            assert rc == 0, (out, err)
            rep = json.loads(out)
            assert len(rep["locks_broken"]) == 1 and "garbage collection" in rep["locks_broken"][0], rep
            check_all(loc, tmp_path, expected, f"k{n}")
    make_garbage(len(kills))
    rc, out, err = finish(popen(loc, cache, "gc", "--safety-window", "0", "--json"))
    assert rc == 0, (out, err)
    rep = json.loads(out)
    assert rep["packs_repacked"] > 0 or rep["bytes_freed"] > 0, rep
    check_all(loc, tmp_path, expected, "final")
    s = Store.open(open_backend(loc), KEY, cache_dir=str(tmp_path / "cz"))
    try:
        assert s.locks() == []
        # interrupted runs may have left duplicate copies of chunks: they go, then nothing is left
        freed = [s.gc(safety_window=dt.timedelta(0)).bytes_freed for _ in range(3)]
        assert freed[-1] == 0, freed
        assert s.verify().ok
    finally:
        s.close()
