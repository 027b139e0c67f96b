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


def stored_bytes(backend, name):
    """Every stored version of object ``name``, read directly from the storage (for S3 by
    version id, so a delete marker cannot hide a version; for a directory, the file)."""
    from vaults.store import LocalBackend
    if isinstance(backend, LocalBackend):
        path = backend._path(name)
        if not os.path.exists(path):
            return []
        with open(path, "rb") as f:
            return [f.read()]
    c, key = backend.client, backend._key(name)
    out = []
    page = c.list_object_versions(Bucket=backend.bucket, Prefix=key)
    for v in page.get("Versions", []):
        if v["Key"] == key:
            out.append(c.get_object(Bucket=backend.bucket, Key=key, VersionId=v["VersionId"])["Body"].read())
    return out


def delete_markers(backend, name):
    from vaults.store import LocalBackend
    if isinstance(backend, LocalBackend):
        return 0
    key = backend._key(name)
    page = backend.client.list_object_versions(Bucket=backend.bucket, Prefix=key)
    return sum(1 for m in page.get("DeleteMarkers", []) if m["Key"] == key)


def assert_intact(backend, name, data):
    """The object is still there, readable as usual, and no version was lost or hidden."""
    assert backend.get(name) == data
    versions = stored_bytes(backend, name)
    assert versions and all(v == data for v in versions), f"{name}: versions changed"
    assert delete_markers(backend, name) == 0, f"{name}: a delete marker hides it"
