"""The backend contract, on a local directory and on a real S3 API server (moto, loopback)."""
import datetime as dt
import io
import random

import pytest

from tests.store.conftest import KEY, make_bucket
from tests.store.helpers import assert_intact, delete_markers, snapshot_tree, stored_bytes, write_tree
from vaults.store import (COMPLIANCE, GOVERNANCE, ImmutabilityUnsupported, NotFound, RetentionError, Store,
                          StoreError, open_backend, retention_mode_for)

NOW = dt.datetime.now(dt.timezone.utc)


def test_objects_round_trip(backends):
    b = backends.make()
    rnd = random.Random(1)
    small = rnd.randbytes(1000)
    big = rnd.randbytes(12 << 20)  # > 2 parts of 5 MiB on S3: a multipart upload
    b.put("index/aa", small)
    b.put_chunks("packs/bb/big", [big[i:i + (3 << 20)] for i in range(0, len(big), 3 << 20)])
    b.put_chunks("snapshots/empty", [])
    assert b.get("index/aa") == small
    assert b.get("packs/bb/big") == big
    assert b.get("snapshots/empty") == b""
    assert b.get_range("packs/bb/big", (5 << 20) - 7, 100) == big[(5 << 20) - 7:(5 << 20) + 93]
    assert b.get_range("index/aa", 990, 100) == small[990:]
    assert b.size("packs/bb/big") == len(big)
    with b.open("packs/bb/big") as f:
        assert f.read(10) == big[:10]
        assert f.read() == big[10:]
    assert list(b.list()) == ["index/aa", "packs/bb/big", "snapshots/empty"]
    assert list(b.list("packs/")) == ["packs/bb/big"]
    infos = list(b.list_info("packs/"))
    assert [(i.name, i.size) for i in infos] == [("packs/bb/big", len(big))]
    assert abs((infos[0].mtime - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 120
    assert b.exists("index/aa") and not b.exists("index/zz")
    for call in (lambda: b.get("index/zz"), lambda: b.size("index/zz"), lambda: b.delete("index/zz"),
                 lambda: b.get_range("index/zz", 0, 1), lambda: b.open("index/zz")):
        with pytest.raises(NotFound):
            call()
    b.delete("index/aa")
    assert not b.exists("index/aa") and stored_bytes(b, "index/aa") == []  # really gone, every version
    assert delete_markers(b, "index/aa") == 0


def test_staged_objects_appear_only_when_committed(backends, tmp_path):
    b = backends.make()
    rnd = random.Random(3)
    big = rnd.randbytes(12 << 20)  # > 2 parts of 5 MiB on S3: uploaded part by part from the spool file
    staged = b.stage(str(tmp_path / "spool"))
    for i in range(0, len(big), 1 << 20):
        staged.write(big[i:i + (1 << 20)])
    assert list(b.list()) == []  # nothing visible while it is written
    staged.commit("packs/dd/staged")
    assert b.get("packs/dd/staged") == big
    dropped = b.stage(str(tmp_path / "spool"))
    dropped.write(rnd.randbytes(1000))
    dropped.discard()
    one = b.stage(str(tmp_path / "spool"))
    one.write(b"small")
    one.commit("index/ee")
    assert list(b.list()) == ["index/ee", "packs/dd/staged"] and b.get("index/ee") == b"small"
    leftovers = [f for d in (tmp_path / "spool", tmp_path / "store") if d.exists()
                 for f in d.rglob(".tmp-*")]
    assert leftovers == []


def test_failed_upload_leaves_no_object(backends):
    b = backends.make()

    def chunks():
        yield random.Random(2).randbytes(7 << 20)  # the first part is already uploaded on S3
        raise OSError("source vanished")

    with pytest.raises(OSError):
        b.put_chunks("packs/cc/partial", chunks())
    assert not b.exists("packs/cc/partial")
    assert list(b.list()) == []
    assert b.cleanup_incomplete(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)) == (0, 0)


def test_retention_refuses_delete_and_overwrite(backends):
    b = backends.make()
    assert b.supports_retention()
    b.put("packs/aa/obj", b"precious")
    b.set_retention("packs/aa/obj", NOW + dt.timedelta(days=1), COMPLIANCE)
    attempts = [lambda: b.delete("packs/aa/obj"), lambda: b.delete("packs/aa/obj", bypass_governance=True),
                lambda: b.put("packs/aa/obj", b"other"), lambda: b.put_chunks("packs/aa/obj", [b"x"]),
                lambda: b.set_retention("packs/aa/obj", NOW + dt.timedelta(hours=1), COMPLIANCE),
                lambda: b.set_retention("packs/aa/obj", NOW + dt.timedelta(days=2), GOVERNANCE)]
    for attempt in attempts:
        with pytest.raises(RetentionError, match="retention"):
            attempt()
        assert_intact(b, "packs/aa/obj", b"precious")  # read back after every refused attempt
    r = b.get_retention("packs/aa/obj")
    assert r.mode == COMPLIANCE and r.until >= NOW + dt.timedelta(days=1) - dt.timedelta(seconds=1)
    b.set_retention("packs/aa/obj", NOW + dt.timedelta(days=3), COMPLIANCE)  # extending is allowed
    assert b.get_retention("packs/aa/obj").until >= NOW + dt.timedelta(days=3) - dt.timedelta(seconds=1)
    # retention survives a fresh backend object
    b2 = open_backend(backends.location())
    assert b2.get_retention("packs/aa/obj").mode == COMPLIANCE
    with pytest.raises(RetentionError):
        b2.delete("packs/aa/obj")
    assert_intact(b2, "packs/aa/obj", b"precious")


def test_governance_bypass_and_expiry(backends):
    b = backends.make()
    b.put("x/g", b"g")
    b.set_retention("x/g", NOW + dt.timedelta(days=1), GOVERNANCE)
    with pytest.raises(RetentionError):
        b.delete("x/g")
    assert_intact(b, "x/g", b"g")
    b.delete("x/g", bypass_governance=True)
    assert not b.exists("x/g") and stored_bytes(b, "x/g") == []
    b.put("x/old", b"o")
    b.set_retention("x/old", dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1), GOVERNANCE)
    import time
    time.sleep(1.5)  # expired
    b.delete("x/old")
    assert not b.exists("x/old")


def test_retained_snapshot_cannot_be_deleted(make_store, tmp_path):
    src = tmp_path / "src"
    write_tree(str(src), seed=2, files=6)
    store = make_store()
    snap = store.backup_tree(str(src), retain_until=NOW + dt.timedelta(days=7), retention_mode=COMPLIANCE)
    s = store.get_snapshot(snap.id)
    assert s.retention_mode == COMPLIANCE and s.retain_until
    mname = f"snapshots/{snap.id}"
    before = store.backend.get(mname)
    with pytest.raises(RetentionError):
        store.delete_snapshot(snap.id, bypass_governance=True)
    assert_intact(store.backend, mname, before)
    packs = list(store.backend.list("packs/"))
    assert packs
    for p in packs:
        data = store.backend.get(p)
        with pytest.raises(RetentionError):
            store.backend.delete(p)
        assert_intact(store.backend, p, data)
    assert store.verify(snap.id).ok
    s2 = store.backup_tree(str(src))  # an unretained point can be deleted
    store.delete_snapshot(s2.id)
    assert [x.id for x in store.list_snapshots()] == [snap.id]


def test_retention_extends_to_the_latest_recovery_point(make_store, tmp_path):
    src = tmp_path / "src"
    write_tree(str(src), seed=4, files=6)
    store = make_store()
    s1 = store.backup_tree(str(src), retain_until=NOW + dt.timedelta(days=1), retention_mode=GOVERNANCE)
    packs = list(store.backend.list("packs/"))
    s2 = store.backup_tree(str(src), retain_until=NOW + dt.timedelta(days=5), retention_mode=GOVERNANCE)
    assert s2.stats.get("chunks_new", 0) == 0  # everything reused
    for p in packs:
        r = store.backend.get_retention(p)
        assert r.until >= NOW + dt.timedelta(days=5) - dt.timedelta(seconds=1), p
    # a later, shorter retention never shortens what is there; compliance is never lowered
    store.backup_tree(str(src), retain_until=NOW + dt.timedelta(days=2), retention_mode=COMPLIANCE)
    for p in packs:
        r = store.backend.get_retention(p)
        assert r.until >= NOW + dt.timedelta(days=5) - dt.timedelta(seconds=1) and r.mode == COMPLIANCE
    assert store.get_snapshot(s1.id).retain_until


def test_s3_bucket_without_object_lock_refuses_immutability(s3_endpoint, tmp_path):
    from vaults.store import S3Backend
    bucket = make_bucket(s3_endpoint, object_lock=False)
    b = S3Backend(bucket, "vault", endpoint_url=s3_endpoint)
    assert not b.supports_retention()
    store = Store.init(b, KEY, cache_dir=str(tmp_path / "c"))
    try:
        assert not store.supports_immutability()
        with pytest.raises(ImmutabilityUnsupported, match="Object Lock") as ei:
            store.require_immutability()
        assert bucket in str(ei.value) and "create a bucket with Object Lock" in str(ei.value)
        src = tmp_path / "src"
        write_tree(str(src), seed=5, files=3)
        with pytest.raises(ImmutabilityUnsupported):
            store.backup_tree(str(src), retain_until=NOW + dt.timedelta(days=1))
        assert store.list_snapshots() == [] and list(b.list("packs/")) == []  # refused before writing
        b.put("x/y", b"y")
        with pytest.raises(ImmutabilityUnsupported):
            b.set_retention("x/y", NOW + dt.timedelta(days=1))
        snap = store.backup_tree(str(src))  # plain backups work
        assert store.verify(snap.id).ok
    finally:
        store.close()
    lockbucket = make_bucket(s3_endpoint, object_lock=True)
    assert S3Backend(lockbucket, "", endpoint_url=s3_endpoint).supports_retention()


def test_s3_versioned_bucket_delete_removes_versions_not_hides_them(s3_endpoint):
    from vaults.store import S3Backend
    bucket = make_bucket(s3_endpoint, object_lock=False, versioned=True)
    b = S3Backend(bucket, "p", endpoint_url=s3_endpoint)
    assert b.versioned
    b.put("locks/one", b"v1")
    b.put("locks/one", b"v2")  # a second version
    assert b.get("locks/one") == b"v2" and len(stored_bytes(b, "locks/one")) == 2
    b.delete("locks/one")
    assert stored_bytes(b, "locks/one") == [] and delete_markers(b, "locks/one") == 0


def test_s3_location_never_holds_credentials(s3_endpoint, tmp_path):
    with pytest.raises(StoreError, match="credentials"):
        open_backend(f"s3://AKIA:secret@bucket/x?endpoint={s3_endpoint}")
    with pytest.raises(StoreError, match="unknown option"):
        open_backend(f"s3://bucket/x?endpoint={s3_endpoint}&secret=1")
    bucket = make_bucket(s3_endpoint)
    b = open_backend(f"s3://{bucket}/vault-1?endpoint={s3_endpoint}")
    store = Store.init(b, KEY, cache_dir=str(tmp_path / "c"))
    store.close()
    assert "strongroom-test" not in b.location and "strongroom-test" not in repr(b)
    cfg = b.get("config")
    assert b"strongroom-test" not in cfg and b"endpoint" not in cfg  # nothing about the backend in the store
    with pytest.raises(NotFound, match="does not exist"):
        open_backend(f"s3://no-such-bucket-here/x?endpoint={s3_endpoint}")


def test_s3_retries_throttling_dropped_connections_and_cut_downloads(s3_endpoint, tmp_path):
    from tests.store.flaky_proxy import FlakyProxy
    from vaults.store import S3Backend
    bucket = make_bucket(s3_endpoint)
    src = tmp_path / "src"
    write_tree(str(src), seed=8, files=6, max_size=2 << 20)
    with FlakyProxy(s3_endpoint, every=3) as proxy:
        b = S3Backend(bucket, "flaky", endpoint_url=proxy.url, part_size=5 << 20, backoff=0.01, max_attempts=3)
        store = Store.init(b, KEY, cache_dir=str(tmp_path / "c"), lock_wait=30)
        try:
            store.pack_target = 6 << 20  # multipart packs
            snap = store.backup_tree(str(src))
            stream = store.backup_stream(io.BytesIO(random.Random(3).randbytes(7 << 20)), name="dump")
            store.restore(snap.id, str(tmp_path / "out"))
            assert snapshot_tree(str(tmp_path / "out")) == snapshot_tree(str(src))
            out = io.BytesIO()
            store.restore_stream(stream.id, out)
            assert out.getvalue() == random.Random(3).randbytes(7 << 20)
            assert store.verify().ok
        finally:
            store.close()
    assert proxy.injected["slowdown"] > 3 and proxy.injected["drop"] > 3 and proxy.injected["cut"] > 1, proxy.injected


def test_retention_mode_for_immutability_states():
    assert retention_mode_for("Unlocked") == GOVERNANCE
    assert retention_mode_for("Locked") == COMPLIANCE
    assert retention_mode_for("Disabled") is None
