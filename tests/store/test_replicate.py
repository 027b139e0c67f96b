"""Replication into a replica store (each backend as source, the other as the replica)."""
import datetime as dt
import io
import random
import subprocess

import pytest

from tests.store.conftest import KEY, Backends
from tests.store.helpers import cli, snapshot_tree, stored_bytes, subprocess_env, write_tree
from vaults.store import Cancelled, GOVERNANCE, Store, StoreError, open_backend

OTHER_KEY = bytes(range(100, 132))  # the paired region's platform key


@pytest.fixture
def pair(backends, tmp_path, request):
    """(source store, replica store): the source on one backend, the replica on the other."""
    other = Backends("s3" if backends.kind == "local" else "local", tmp_path / "replica-side", request)
    (tmp_path / "replica-side").mkdir()
    src = Store.init(backends.make("primary"), KEY, cache_dir=str(tmp_path / "c-src"), chunk_min=16 << 10,
                     chunk_avg=64 << 10, chunk_max=256 << 10, pack_size=512 << 10, lock_wait=30)
    dst = Store.init_replica(other.make("secondary"), src, OTHER_KEY, cache_dir=str(tmp_path / "c-dst"),
                             lock_wait=30)
    yield src, dst, other
    src.close()
    dst.close()


def test_replica_verifies_and_restores_byte_identically(pair, tmp_path):
    src_store, replica, other = pair
    tree = tmp_path / "tree"
    write_tree(str(tree), seed=3, files=16, max_size=600_000)
    s1 = src_store.backup_tree(str(tree), retain_until=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2),
                               retention_mode=GOVERNANCE)
    dump = random.Random(4).randbytes(3 << 20)
    s2 = src_store.backup_stream(io.BytesIO(dump), name="db.dump")
    rep = src_store.replicate(s1.id, replica)
    assert rep.verified and rep.packs_copied == rep.packs_needed > 1 and rep.manifest_copied, rep
    assert rep.retention and rep.retention.startswith("governance")
    rep2 = src_store.replicate(s2.id, replica)
    assert rep2.verified and rep2.packs_copied >= 1
    # the replica is a store of its own: another id, wrapped by the paired region's key
    assert replica.id != src_store.id and replica.config["replica_of"] == src_store.id
    with pytest.raises(Exception):
        Store.open(replica.backend, KEY, cache_dir=str(tmp_path / "wrong"))
    fresh = Store.open(open_backend(other.location("secondary")), OTHER_KEY, cache_dir=str(tmp_path / "c-fresh"))
    try:
        assert [s.id for s in fresh.list_snapshots()] == [s1.id, s2.id]
        assert fresh.verify().ok
        fresh.restore(s1.id, str(tmp_path / "out"))
        assert snapshot_tree(str(tmp_path / "out")) == snapshot_tree(str(tree))
        out = io.BytesIO()
        fresh.restore_stream(s2.id, out)
        assert out.getvalue() == dump
        # retention came along: the replica refuses to delete the retained point
        r = fresh.backend.get_retention(f"snapshots/{s1.id}")
        assert r is not None and r.mode == GOVERNANCE
        with pytest.raises(Exception, match="retention"):
            fresh.delete_snapshot(s1.id)
        assert stored_bytes(fresh.backend, f"snapshots/{s1.id}")
    finally:
        fresh.close()
    # idempotent: a second run copies nothing
    again = src_store.replicate(s1.id, replica, verify=False)
    assert again.already_replicated and again.packs_copied == 0 and again.bytes_copied == 0


def test_replication_resumes_after_an_interruption(pair, tmp_path):
    src_store, replica, _ = pair
    tree = tmp_path / "tree"
    tree.mkdir()
    rnd = random.Random(6)
    for i in range(16):
        (tree / f"f{i}").write_bytes(rnd.randbytes(200_000))  # incompressible: about 6 packs
    snap = src_store.backup_tree(str(tree))
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 2  # stop after two packs

    with pytest.raises(Cancelled):
        src_store.replicate(snap.id, replica, cancel=cancel)
    assert replica.list_snapshots() == []  # not a recovery point before its manifest is there
    copied = len(list(replica.backend.list("packs/")))
    assert copied >= 2
    rep = src_store.replicate(snap.id, replica)
    assert rep.verified and rep.packs_copied + rep.packs_present + rep.packs_adopted == rep.packs_needed
    assert rep.packs_copied <= rep.packs_needed - copied + 1, rep  # what was there was not sent again
    replica.restore(snap.id, str(tmp_path / "out"))
    assert snapshot_tree(str(tmp_path / "out")) == snapshot_tree(str(tree))


def test_replicate_refuses_an_unrelated_store_and_works_from_the_cli(pair, tmp_path):
    src_store, replica, other = pair
    stranger = Store.init(open_backend(str(tmp_path / "stranger"), create=True), KEY,
                          cache_dir=str(tmp_path / "c-str"))
    tree = tmp_path / "tree"
    write_tree(str(tree), seed=7, files=6, max_size=300_000)
    snap = src_store.backup_tree(str(tree))
    try:
        with pytest.raises(StoreError, match="not a replica"):
            src_store.replicate(snap.id, stranger)
    finally:
        stranger.close()
    src_loc = src_store.backend.location if hasattr(src_store.backend, "bucket") else src_store.backend.root
    src_store.close()
    keyfile = tmp_path / "k2"
    keyfile.write_bytes(OTHER_KEY.hex().encode())
    target = other.location("cli-replica")
    r = subprocess.run(cli("--store", src_loc, "--cache-dir", str(tmp_path / "c-cli"), "replicate", "all",
                           "--to", target, "--to-key-file", str(keyfile), "--to-cache-dir", str(tmp_path / "c-cli2")),
                       capture_output=True, text=True, env=subprocess_env(STRONGROOM_STORE_KEY=KEY.hex()), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "created replica store" in r.stdout and "verified" in r.stdout and snap.id in r.stdout
    r = subprocess.run(cli("--store", target, "--cache-dir", str(tmp_path / "c-cli3"), "verify", "all"),
                       capture_output=True, text=True, env=subprocess_env(STRONGROOM_STORE_KEY=OTHER_KEY.hex()),
                       timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stdout + r.stderr
