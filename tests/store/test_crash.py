"""The CLI killed with SIGKILL at points chosen by bytes written leaves a usable store."""
import os
import random
import signal
import subprocess

from tests.store.helpers import cli, snapshot_tree, subprocess_env, write_tree

KEYHEX = "11" * 32


def run(args, store, cache, **env):
    return subprocess.run(cli("--store", store, "--cache-dir", cache, *args), capture_output=True,
                          env=subprocess_env(STRONGROOM_STORE_KEY=KEYHEX, **env), timeout=120)


def test_sigkill_at_any_byte_leaves_every_recovery_point_intact(tmp_path):
    src = tmp_path / "src"
    write_tree(str(src), seed=21, files=24, max_size=1 << 20)
    store, cache = str(tmp_path / "store"), str(tmp_path / "cache")
    assert run(["init"], store, cache).returncode == 0
    assert run(["backup", str(src)], store, cache).returncode == 0
    expected = {}  # snapshot id -> tree it must restore to
    listing = run(["list"], store, cache).stdout.decode().split()
    expected[listing[0]] = snapshot_tree(str(src))
    rnd = random.Random(1234)
    killed = 0
    for trial in range(6):
        # change the source a little, then back it up with a kill after N bytes
        victim = src / f"d{trial % 4}" / f"e{trial % 3}"
        victim.mkdir(parents=True, exist_ok=True)
        (victim / f"new{trial}.bin").write_bytes(rnd.randbytes(rnd.randint(100_000, 3_000_000)))
        limit = rnd.choice([rnd.randint(1, 4096), rnd.randint(4096, 1 << 20), rnd.randint(1 << 20, 4 << 20)])
        before = set(run(["list"], store, cache).stdout.decode().split())
        # a fresh cache sometimes, so index rebuilds are crash-tested too
        c = cache if trial % 2 == 0 else str(tmp_path / f"cache{trial}")
        r = run(["backup", str(src)], store, c, STRONGROOM_FAULT_KILL_AFTER_BYTES=str(limit))
        state = snapshot_tree(str(src))
        if r.returncode == -signal.SIGKILL:
            killed += 1
        else:
            assert r.returncode == 0, r.stderr
        after = [x for x in run(["list"], store, cache).stdout.decode().splitlines()]
        new = {line.split()[0] for line in after} - {x for x in before}
        for sid in new:
            expected[sid] = state
        # no temp files are visible as objects; every recovery point verifies and restores
        v = run(["verify", "all"], store, str(tmp_path / f"vcache{trial}"))
        assert v.returncode == 0, v.stdout.decode() + v.stderr.decode()
        for sid, tree in expected.items():
            out = tmp_path / f"out-{trial}-{sid}"
            r = run(["restore", sid, str(out)], store, cache)
            assert r.returncode == 0, r.stderr
            assert snapshot_tree(str(out)) == tree
    assert killed >= 3
    # and the store keeps working: a clean backup after the crashes
    assert run(["backup", str(src)], store, cache).returncode == 0
    assert run(["verify", "latest"], store, cache).returncode == 0
