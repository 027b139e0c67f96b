import datetime as dt
import os

import pytest

from tests.store.helpers import write_tree
from vaults.store import COMPLIANCE, GOVERNANCE, LocalBackend, RetentionError

NOW = dt.datetime.now(dt.timezone.utc)


def test_backend_refuses_delete_of_retained_object(tmp_path):
    b = LocalBackend(str(tmp_path / "b"), create=True)
    b.put("packs/aa/obj", b"precious")
    b.set_retention("packs/aa/obj", NOW + dt.timedelta(days=1), COMPLIANCE)
    with pytest.raises(RetentionError, match="retention"):
        b.delete("packs/aa/obj")
    with pytest.raises(RetentionError):
        b.delete("packs/aa/obj", bypass_governance=True)
    with pytest.raises(RetentionError):
        b.put("packs/aa/obj", b"other")
    with pytest.raises(RetentionError):
        b.set_retention("packs/aa/obj", NOW + dt.timedelta(hours=1), COMPLIANCE)
    with pytest.raises(RetentionError):
        b.set_retention("packs/aa/obj", NOW + dt.timedelta(days=2), GOVERNANCE)
    assert b.get("packs/aa/obj") == b"precious"
    # retention survives a fresh backend object (durable)
    b2 = LocalBackend(str(tmp_path / "b"))
    assert b2.get_retention("packs/aa/obj").mode == COMPLIANCE
    with pytest.raises(RetentionError):
        b2.delete("packs/aa/obj")
    assert b2.get("packs/aa/obj") == b"precious"


def test_governance_bypass_and_expiry(tmp_path):
    b = LocalBackend(str(tmp_path / "b"), create=True)
    b.put("x/g", b"g")
    b.set_retention("x/g", NOW + dt.timedelta(days=1), GOVERNANCE)
    with pytest.raises(RetentionError):
        b.delete("x/g")
    b.delete("x/g", bypass_governance=True)
    assert not b.exists("x/g")
    b.put("x/old", b"o")
    b.set_retention("x/old", NOW - dt.timedelta(seconds=1), GOVERNANCE)  # already expired
    b.delete("x/old")


def test_damaged_retention_metadata_fails_closed(tmp_path):
    b = LocalBackend(str(tmp_path / "b"), create=True)
    b.put("x/y", b"y")
    b.set_retention("x/y", NOW + dt.timedelta(days=1), GOVERNANCE)
    side = tmp_path / "b" / ".retention" / "x" / "y.json"
    raw = bytearray(side.read_bytes())
    raw[len(raw) // 2] ^= 1
    side.write_bytes(bytes(raw))
    with pytest.raises(RetentionError):
        b.delete("x/y", bypass_governance=True)
    assert b.get("x/y") == b"y"


def test_retained_snapshot_cannot_be_deleted(make_store, tmp_path):
    src = tmp_path / "src"
    write_tree(str(src), seed=2, files=6)
    store = make_store()
    snap = store.backup_tree(str(src), retain_until=NOW + dt.timedelta(days=7), retention_mode=COMPLIANCE)
    s = store.get_snapshot(snap.id)
    assert s.retention_mode == COMPLIANCE and s.retain_until
    manifest = store.backend._path(f"snapshots/{snap.id}")
    before = open(manifest, "rb").read()
    with pytest.raises(RetentionError):
        store.delete_snapshot(snap.id, bypass_governance=True)
    packs = list(store.backend.list("packs/"))
    assert packs
    for p in packs:
        with pytest.raises(RetentionError):
            store.backend.delete(p)
    assert open(manifest, "rb").read() == before
    assert store.verify(snap.id).ok
    # an unretained point can be deleted
    s2 = store.backup_tree(str(src))
    store.delete_snapshot(s2.id)
    assert [x.id for x in store.list_snapshots()] == [snap.id]
