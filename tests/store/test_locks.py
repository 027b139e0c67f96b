"""Store locks on both backends: shared/exclusive, waiting, TTL refresh, stale locks broken."""
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import wait_until

from tests.store.helpers import write_tree
from vaults.store import EXCLUSIVE, SHARED, LockError
from vaults.store import lock as locks


def forge(store, kind, *, owner="gc on host-b", host="host-b", pid=4242, age=0.0, ttl=300.0, boot="", pidns=""):
    """A lock object as another process would have written it."""
    name = f"locks/{time.time_ns():020d}-forged{kind[:2]}"
    t = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=age)
    doc = {"kind": kind, "owner": owner, "host": host, "pid": pid, "boot": boot, "pidns": pidns, "start": "",
           "created": t.isoformat(), "refreshed": t.isoformat(), "ttl": ttl}
    store.backend.put(name, store.keys.seal(locks.AAD + name.encode(), json.dumps(doc).encode()))
    return name


def test_shared_locks_coexist_and_exclude_gc(make_store, tmp_path):
    store = make_store()
    a = store.lock(SHARED, owner="backup A", wait=0)
    b = store.lock(SHARED, owner="backup B", wait=0)
    with pytest.raises(LockError, match="backup [AB]") as ei:
        store.lock(EXCLUSIVE, owner="gc", wait=0.3)
    assert len(ei.value.holders) == 2
    assert sorted(i.owner for i in store.locks()) == ["backup A", "backup B"]  # the claim withdrew
    a.release()
    b.release()
    g = store.lock(EXCLUSIVE, owner="gc", wait=0)
    with pytest.raises(LockError, match="exclusive lock of gc"):
        store.lock(SHARED, owner="restore", wait=0.3)
    # a backup started now waits for the garbage collection, then runs
    src = tmp_path / "src"
    write_tree(str(src), seed=1, files=4, max_size=100_000)
    done = {}

    def backup():
        t = time.monotonic()
        done["snap"] = store.backup_tree(str(src))
        done["waited"] = time.monotonic() - t

    th = threading.Thread(target=backup)
    th.start()
    time.sleep(0.6)
    assert "snap" not in done
    g.release()
    th.join(30)
    assert done["waited"] >= 0.6 and store.verify(done["snap"].id).ok
    assert store.locks() == []


def test_stale_locks_are_broken_live_ones_are_not(make_store):
    store = make_store()
    fresh = forge(store, EXCLUSIVE, owner="gc on host-b")
    with pytest.raises(LockError, match="gc on host-b"):
        store.lock(SHARED, wait=0.2)
    assert store.backend.exists(fresh)
    store.backend.delete(fresh)
    old = forge(store, EXCLUSIVE, owner="gc that died", age=3600, ttl=300)  # not refreshed for an hour
    lk = store.lock(SHARED, owner="backup", wait=0)
    assert [b.owner for b in lk.broken] == ["gc that died"] and not store.backend.exists(old)
    lk.release()
    # same host, same boot: a lock whose process is gone is stale at once
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = forge(store, SHARED, owner="killed backup", host=locks.HOST, pid=int(p.stdout), boot=locks.BOOT,
                 pidns=locks.PIDNS)
    alive = forge(store, SHARED, owner="running backup", host=locks.HOST, pid=os.getpid(), boot=locks.BOOT,
                  pidns=locks.PIDNS)
    store.backend.put("locks/00000000000000000001-garbage", b"not a lock")
    with pytest.raises(LockError, match="running backup"):
        store.lock(EXCLUSIVE, owner="gc", wait=0.3)
    assert not store.backend.exists(dead) and not store.backend.exists("locks/00000000000000000001-garbage")
    store.backend.delete(alive)
    g = store.lock(EXCLUSIVE, owner="gc", wait=0)
    g.release()


def test_a_held_lock_is_refreshed_and_a_broken_one_stops_the_backup(make_store, tmp_path):
    store = make_store(lock_ttl=3.0)
    lk = store.lock(SHARED, owner="long backup", wait=0)
    first = store.locks()[0].refreshed
    # Past the TTL, only the refresher keeps it alive: wait for its refreshes (not a fixed sleep, which a
    # loaded machine outruns), until the lock has lived longer than one TTL.
    started = time.monotonic()
    wait_until(lambda: time.monotonic() - started > 3.5 and store.locks()[0].refreshed > first, 30,
               "the lock to be refreshed past its TTL", every=0.1)
    info = store.locks()[0]
    assert info.refreshed > first and not info.stale()
    with pytest.raises(LockError, match="long backup"):
        store.lock(EXCLUSIVE, owner="gc", wait=0.2)
    lk.release()
    store.lock_ttl = 300.0
    # someone breaks our lock while we back up: the backup must not commit
    src = tmp_path / "src"
    write_tree(str(src), seed=2, files=6, max_size=300_000)

    def breaker(p):
        for name in store.backend.list("locks/"):
            store.backend.delete(name)

    with pytest.raises(LockError, match="lost the store lock"):
        store.backup_tree(str(src), progress=breaker)
    assert store.list_snapshots() == []
    snap = store.backup_tree(str(src))
    assert store.verify(snap.id).ok
