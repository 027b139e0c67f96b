#!/usr/bin/env python3
"""What this machine can do for an initial backup: the bare work, nothing else.

    .venv/bin/python bench/ceiling.py SOURCE_DIR OUT_DIR [--procs 2]

``--procs`` processes (no GIL between them) each take every n-th file of the tree (in name
order) and read it in 1 MiB pieces, BLAKE3-hash each piece, compress it with zstd level 3 (kept
only when smaller), seal it with AES-256-GCM and append it to their own output file, fsync'ed
at the end — the same primitives, piece size and durability as an engine backup, with no
chunking, deduplication, index, manifest or locking. bench/engine.py runs it beside each
initial backup and prints the engine's time over this one.
"""
from __future__ import annotations

import argparse
import os
import sys
from multiprocessing import get_context

PIECE = 1 << 20
SYNC_EVERY = 16 << 20


def _files(root):
    out = []
    for dp, dn, fn in os.walk(root):
        dn.sort()
        out.extend(os.path.join(dp, f) for f in sorted(fn) if os.path.isfile(os.path.join(dp, f)))
    return out


def _work(args):
    files, out_path = args
    import blake3
    import zstandard
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    key = blake3.blake3(b"ceiling").digest()
    aead = AESGCM(key)
    zc = zstandard.ZstdCompressor(level=3)
    total = unsynced = 0
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for p in files:
            with open(p, "rb", buffering=0) as f:
                while piece := f.read(PIECE):
                    cid = blake3.blake3(piece, key=key).digest()
                    comp = zc.compress(piece)
                    payload = comp if len(comp) < len(piece) else piece
                    nonce = os.urandom(12)
                    unsynced += os.write(fd, nonce + aead.encrypt(nonce, payload, cid))
                    total += len(piece)
                    if unsynced >= SYNC_EVERY:
                        os.fsync(fd)
                        unsynced = 0
        os.fsync(fd)
    finally:
        os.close(fd)
    return total


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source")
    ap.add_argument("out_dir")
    ap.add_argument("--procs", type=int, default=2)
    args = ap.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    files = _files(args.source)
    jobs = [(files[i::args.procs], os.path.join(args.out_dir, f"part{i}")) for i in range(args.procs)]
    with get_context("fork").Pool(args.procs) as pool:
        total = sum(pool.map(_work, jobs))
    print(f"{total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
