"""Seeded benchmark data: a mixed tree, its ~5% mutation, and a sparse volume image."""
from __future__ import annotations

import json
import math
import os
import random
import shutil

MiB = 1 << 20


def _line_pool(rnd, n=40_000):
    words = ["alpha", "bravo", "charlie", "delta", "echo", "vault", "backup", "restore", "policy",
             "snapshot", "region", "westeurope", "northeurope", "error", "warning", "info", "job",
             "instance", "container", "blob", "volume", "database", "retention", "immutable"]
    pool = []
    for i in range(n):
        kind = i % 3
        if kind == 0:  # log line
            pool.append(f"2025-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}T{rnd.randint(0, 23):02d}:"
                        f"{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d}Z {rnd.choice(words).upper()} "
                        f"{' '.join(rnd.choices(words, k=rnd.randint(3, 12)))} id={rnd.getrandbits(48):x}\n")
        elif kind == 1:  # JSON
            pool.append(json.dumps({"id": rnd.getrandbits(40), "name": rnd.choice(words),
                                    "tags": rnd.choices(words, k=3), "size": rnd.randint(0, 10**9),
                                    "ok": rnd.random() < 0.9}) + "\n")
        else:  # CSV
            pool.append(",".join([str(rnd.getrandbits(32)), rnd.choice(words), f"{rnd.random():.6f}",
                                  rnd.choice(words), str(rnd.randint(0, 99999))]) + "\n")
    return [s.encode() for s in pool]


def _text(rnd, pool, size):
    out = []
    n = 0
    while n < size:
        lines = rnd.choices(pool, k=2048)
        b = b"".join(lines)
        out.append(b)
        n += len(b)
    return b"".join(out)[:size]


def _logsize(rnd, lo, hi):
    return int(math.exp(rnd.uniform(math.log(lo), math.log(hi))))


def make_tree(root: str, size_mib: int, seed: int = 42) -> dict:
    """~size_mib MiB: 45% incompressible, 35% compressible text/JSON/CSV (incl. many small
    files), 10% exact duplicates, 10% near duplicates."""
    rnd = random.Random(seed)
    pool = _line_pool(rnd)
    total = size_mib * MiB
    big = max(256 * 1024, min(64 * MiB, total // 8))
    files = []  # (relpath, size)
    os.makedirs(root, exist_ok=True)

    def write(rel, data):
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        files.append(rel)

    n = 0
    i = 0
    while n < total * 0.45:
        sz = min(_logsize(rnd, 4096, big), int(total * 0.45) - n + 4096)
        write(f"bin/{i % 16:02d}/blob{i:05d}.bin", rnd.randbytes(sz))
        n += sz
        i += 1
    m = 0
    i = 0
    while m < total * 0.35:
        if i % 4 == 0:
            sz = _logsize(rnd, 1024, max(2048, min(16 * MiB, total // 16)))
        else:
            sz = _logsize(rnd, 100, 8192)
        ext = ("log", "json", "csv")[i % 3]
        write(f"text/{i % 32:02d}/doc{i:05d}.{ext}", _text(rnd, pool, sz))
        m += sz
        i += 1
    srcs = list(files)
    d = 0
    i = 0
    while d < total * 0.10:
        s = rnd.choice(srcs)
        data = open(os.path.join(root, s), "rb").read()
        write(f"copies/{i:04d}/{os.path.basename(s)}", data)
        d += len(data) or 1
        i += 1
    nd = 0
    i = 0
    while nd < total * 0.10:
        s = rnd.choice(srcs)
        data = bytearray(open(os.path.join(root, s), "rb").read())
        for _ in range(3):
            pos = rnd.randrange(len(data) + 1)
            data[pos:pos] = rnd.randbytes(rnd.randint(1, 200))
        write(f"near/{i:04d}/{os.path.basename(s)}", bytes(data))
        nd += len(data)
        i += 1
    return {"files": len(files), "bytes": sum(os.path.getsize(os.path.join(root, f)) for f in files)}


def mutate(root: str, seed: int = 7, fraction: float = 0.05) -> dict:
    """Change ~fraction of the tree: edits inside big files, new files, deleted files."""
    rnd = random.Random(seed)
    all_files = []
    for dp, dn, fn in os.walk(root):
        dn.sort()
        for f in sorted(fn):
            p = os.path.join(dp, f)
            all_files.append((p, os.path.getsize(p)))
    total = sum(s for _, s in all_files)
    budget = total * fraction
    edited = new = deleted = 0
    bigs = [x for x in all_files if x[1] > 2 * MiB]
    rnd.shuffle(bigs)
    # edits inside big files: ~45% of the budget (counted as the bytes rewritten)
    for p, s in bigs:
        if edited >= budget * 0.45:
            break
        with open(p, "r+b") as f:
            for _ in range(4):
                ln = rnd.randint(4096, 256 * 1024)
                f.seek(rnd.randrange(max(1, s - ln)))
                f.write(rnd.randbytes(ln))
                edited += ln
    # new files: ~45%
    i = 0
    while new < budget * 0.45:
        sz = _logsize(rnd, 4096, 8 * MiB)
        p = os.path.join(root, "new", f"n{i:04d}.bin")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(rnd.randbytes(sz // 2) + b"abc,def,123\n" * (sz // 24))
        new += sz
        i += 1
    # deletions: ~10%
    rest = [x for x in all_files if x not in bigs[:0]]
    rnd.shuffle(rest)
    for p, s in rest:
        if deleted >= budget * 0.10:
            break
        if os.path.exists(p):
            os.unlink(p)
            deleted += s
    return {"edited": edited, "new": new, "deleted": deleted, "total": total}


def make_image(path: str, size_gib: float, seed: int = 5) -> dict:
    """A sparse image: ~1/8 of it data in scattered extents (random and compressible), one
    allocated all-zero region, the rest holes."""
    rnd = random.Random(seed)
    pool = _line_pool(rnd, 5000)
    size = int(size_gib * (1 << 30))
    data = 0
    with open(path, "wb") as f:
        f.truncate(size)
        n_ext = max(4, int(size / (1 << 30) * 32))
        for i in range(n_ext):
            ln = rnd.randint(1, 7) * MiB // 2
            off = rnd.randrange(0, max(1, size - ln)) // 4096 * 4096
            f.seek(off)
            f.write(rnd.randbytes(ln) if i % 2 else _text(rnd, pool, ln))
            data += ln
        f.seek(size // 3 // 4096 * 4096)
        f.write(bytes(min(32 * MiB, size // 16)))
    return {"size": size, "data_written": data}


def mutate_image(path: str, seed: int = 9) -> dict:
    """A day's change to a sparse image: 256 KiB pieces of new random data at scattered 4 KiB-aligned
    offsets (8 per GiB; some land on data, some in holes, as a disk's writes do)."""
    rnd = random.Random(seed)
    size = os.path.getsize(path)
    pieces = max(2, int(size / (1 << 30) * 8))
    ln = 256 << 10
    with open(path, "r+b") as f:
        for _ in range(pieces):
            f.seek(rnd.randrange(0, size - ln) // 4096 * 4096)
            f.write(rnd.randbytes(ln))
    return {"pieces": pieces, "bytes": pieces * ln}


def copy_tree(src: str, dst: str) -> None:
    if os.path.exists(dst):
        shutil.rmtree(dst)
    shutil.copytree(src, dst, symlinks=True)
