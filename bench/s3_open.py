#!/usr/bin/env python3
"""Benchmark: what opening an S3 vault store costs, and a small backup job that opens it as the portal does.

    .venv/bin/python bench/s3_open.py [--opens 50] [--rounds 5] [--files 64]

Against moto's S3 server on loopback (its own process, bench/engine.py's MotoServer):

* ``first open``: the first ``open_backend`` + ``Store.open`` + ``close`` after ``Store.init`` in this process;
* ``open``: each later one (median and total of ``--opens``), as every job, page and retention pass does;
* ``job``: a small backup as a job runs it: open + back up a tree of ``--files`` files of 16 KiB + close,
  open + verify the point + close, open + list the points + close (median of ``--rounds``, the first
  round included: a worker's first job pays for its first open too);
* ``two identities``: opens alternating between two credential sets on one endpoint (each keeps its own
  client; nothing is shared between them).

It only uses the engine's public API, so the same file times an older checkout (copy it into that
checkout's bench/ and run it there) for a before/after figure.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

KEY = bytes(range(32))
CREDS = {"access_key_id": "bench", "secret_access_key": "bench-secret"}
OTHER = {"access_key_id": "bench-2", "secret_access_key": "bench-secret-2"}


def _tree(root: str, files: int) -> None:
    rnd = __import__("random").Random(22)
    for i in range(files):
        sub = os.path.join(root, f"d{i % 4}")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"f{i}.bin"), "wb") as fh:
            fh.write(rnd.randbytes(8 << 10) + bytes(8 << 10))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--opens", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--files", type=int, default=64)
    args = ap.parse_args(argv)

    from engine import MotoServer

    work = tempfile.mkdtemp(prefix="s3-open-bench-")
    moto = MotoServer(work)
    try:
        from vaults.store import Store, open_backend

        url = f"s3://{moto.bucket}/open-bench?endpoint={moto.endpoint}"
        cache = os.path.join(work, "cache")

        def opened(creds=CREDS):
            return Store.open(open_backend(url, **creds), KEY, cache_dir=cache)

        t0 = time.perf_counter()
        Store.init(open_backend(url, **CREDS), KEY, cache_dir=cache).close()
        init_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        opened().close()
        first_ms = (time.perf_counter() - t0) * 1000

        opens = []
        for _ in range(args.opens):
            t0 = time.perf_counter()
            opened().close()
            opens.append((time.perf_counter() - t0) * 1000)

        tree = os.path.join(work, "tree")
        _tree(tree, args.files)
        jobs = []
        for i in range(args.rounds):
            with open(os.path.join(tree, "d0", "f0.bin"), "ab") as fh:  # each round has something new
                fh.write(i.to_bytes(4, "big") * 1024)
            t0 = time.perf_counter()
            with opened() as store:
                snap = store.backup_tree(tree, source_id="bench")
            with opened() as store:
                assert store.verify(snap.id).ok
            with opened() as store:
                assert any(s.id == snap.id for s in store.list_snapshots())
            jobs.append(time.perf_counter() - t0)

        other = []
        for i in range(10):
            t0 = time.perf_counter()
            opened(OTHER if i % 2 else CREDS).close()
            other.append((time.perf_counter() - t0) * 1000)
    finally:
        moto.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"S3 store opens against moto on loopback ({args.opens} opens, {args.rounds} job rounds, {args.files} files)")
    print(f"{'store init':28} {init_s * 1000:9.1f} ms")
    print(f"{'first open':28} {first_ms:9.1f} ms")
    print(f"{'open (median)':28} {statistics.median(opens):9.1f} ms   (min {min(opens):.1f}, max {max(opens):.1f})")
    print(f"{'open x' + str(args.opens) + ' (total)':28} {sum(opens) / 1000:9.2f} s")
    print(f"{'job: backup+verify+list':28} {statistics.median(jobs) * 1000:9.1f} ms   (median; min "
          f"{min(jobs) * 1000:.1f}, max {max(jobs) * 1000:.1f})")
    print(f"{'open, two identities':28} {statistics.median(other):9.1f} ms   (median of 10, alternating)")


if __name__ == "__main__":
    main()
