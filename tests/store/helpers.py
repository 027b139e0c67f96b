"""Shared helpers for the store tests (imported as tests.store.helpers or by path)."""
import hashlib
import os
import random
import stat
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEY = bytes(range(32))


def subprocess_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def cli(*args):
    return [sys.executable, "-m", "vaults.store", *args]


def write_tree(root, seed=1, files=20, max_size=3 << 20):
    rnd = random.Random(seed)
    os.makedirs(root, exist_ok=True)
    for i in range(files):
        d = os.path.join(root, f"d{i % 4}", f"e{i % 3}")
        os.makedirs(d, exist_ok=True)
        size = rnd.choice([0, 1, 100, 5000, 300_000, rnd.randint(0, max_size)])
        if rnd.random() < 0.5:
            data = rnd.randbytes(size)
        else:
            data = (f"line {rnd.randint(0, 99)} of some text\n" * (size // 20 + 1)).encode()[:size]
        with open(os.path.join(d, f"f{i}.bin"), "wb") as f:
            f.write(data)
    os.symlink("d0/e0", os.path.join(root, "link"))


def snapshot_tree(root):
    """{relpath: (kind, content-or-target, mode, mtime_ns)} without following links."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            full = os.path.join(dirpath, n)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(full), None, None)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", None, stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            else:
                with open(full, "rb") as f:
                    h = hashlib.sha256(f.read()).hexdigest()
                out[rel] = ("f", h, stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return out


def file_sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()
