"""Byte-for-byte proof that restored blobs equal a recovery point: SHA-256 of every blob on both sides.

The recovery point's side is read from the vault store the way a restore reads it (the engine restores
the container, or the blobs under the chosen prefixes, into a private scratch folder that is removed at
once); the restored side is read through `portal.inventory.blobs`. Nothing is written to the activity
log: a check reads, it never acts. Expensive by design, so it runs in the worker, never while a page
renders.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field

CHUNK = 1 << 20


class PointUnreadable(Exception):
    """The recovery point's data cannot be read back (gone from the store, or damaged)."""


def _sha256(handle) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(CHUNK), b""):
        digest.update(block)
    return digest.hexdigest()


def _tree_hashes(root: str) -> dict[str, tuple[str, int]]:
    """{blob name: (sha256, size)} of the regular files below ``root`` (links are never blobs)."""
    out = {}
    for dirpath, _dirs, files in os.walk(root, followlinks=False):
        for name in files:
            full = os.path.join(dirpath, name)
            info = os.lstat(full)
            if not stat.S_ISREG(info.st_mode):
                continue
            with open(full, "rb") as handle:
                out[os.path.relpath(full, root).replace(os.sep, "/")] = (_sha256(handle), info.st_size)
    return out


def point_hashes(point, container: str, prefixes=()) -> dict[str, tuple[str, int]]:
    """{blob name: (sha256, size)} of ``container`` in ``point``, limited to ``prefixes`` as a restore
    with those prefixes would be (`protection.restores.adls.plan_container` decides which blobs)."""
    from portal.inventory import fs
    from protection.restores import adls, layout
    from vaults.store import DamageError, StoreError

    part = next((p for p in layout.containers(point) if p.item == container), None)
    if part is None:
        raise PointUnreadable(f"the recovery point holds no container '{container}'")
    try:
        with fs.scratch_folder() as folder:
            with layout.open_point_store(point) as store:
                plan = adls.plan_container(store, part, prefixes)
                if plan.paths == []:
                    return {}
                dest = os.path.join(folder, "c")
                store.restore(part.snapshot_id, dest, paths=plan.paths)
            return _tree_hashes(dest)
    except DamageError as exc:
        raise PointUnreadable(f"the recovery point's data is damaged ({exc})") from None
    except StoreError as exc:
        raise PointUnreadable(f"the vault store could not give the data back ({exc})") from None


def container_hashes(container) -> dict[str, tuple[str, int]]:
    """{blob name: (sha256, size)} of every blob in a storage container, read through the inventory."""
    from portal.inventory import blobs

    out = {}
    for info in blobs.iter_blobs(container):
        try:
            with blobs.open_blob(container, info.name) as handle:
                out[info.name] = (_sha256(handle), info.size)
        except blobs.BlobNotFound:
            continue  # deleted while we read: it is then missing, as the comparison says
    return out


@dataclass
class Comparison:
    """Where the restored side differs from the recovery point's side (names carry the container)."""

    missing: list[str] = field(default_factory=list)  # in the point, not restored
    different: list[tuple[str, str, str]] = field(default_factory=list)  # (name, point sha, restored sha)
    extra: list[str] = field(default_factory=list)  # restored, not in the point
    blobs: int = 0
    bytes: int = 0

    @property
    def containers(self) -> list[str]:
        """The containers with a difference, in the order `describe` names them."""
        names = [*(d[0] for d in self.different), *self.missing, *self.extra]
        return list(dict.fromkeys(name.split("/", 1)[0] for name in names))

    @property
    def equal(self) -> bool:
        return not (self.missing or self.different or self.extra)

    def add(self, container: str, expected: dict, actual: dict) -> None:
        for name in sorted(expected):
            where = f"{container}/{name}"
            if name not in actual:
                self.missing.append(where)
            elif actual[name][0] != expected[name][0]:
                self.different.append((where, expected[name][0], actual[name][0]))
            else:
                self.blobs += 1
                self.bytes += expected[name][1]
        self.extra += [f"{container}/{name}" for name in sorted(set(actual) - set(expected))]

    def describe(self, target: str, limit: int = 4) -> str:
        """The differences in words: "images/a.raw differs (SHA-256 ab12… in the recovery point, …)"."""
        words = [f"{name} differs (SHA-256 {want[:12]}… in the recovery point, {got[:12]}… in {target})"
                 for name, want, got in self.different]
        words += [f"{name} is missing from {target}" for name in self.missing]
        words += [f"{name} in {target} is not in the recovery point" for name in self.extra]
        more = len(words) - limit
        return "; ".join(words[:limit]) + (f"; and {more} more" if more > 0 else "")
