"""Replication: copy a recovery point's objects into a replica store.

A replica (made once with :meth:`Store.init_replica`, e.g. in a geo-redundant vault's paired
region, later an archive tier) shares the source's secret, so packs and manifests are copied
byte for byte and the replica restores with the same keys; it has its own store id, cache and
index files. Copying one recovery point:

1. under a shared lock on both stores (garbage collection waits on either side);
2. every pack the recovery point needs is copied unless the replica already lists it and has
   it. Each copy is checked twice: the source bytes against the pack's BLAKE3 name before
   sending (damage is never replicated), and the replica's bytes read back afterwards;
3. the replica's own index files are written every 64 packs, so an interrupted run resumes
   where it stopped: packs already copied are found (a copied but not yet indexed pack is
   re-checked by hash and adopted, not sent again);
4. the manifest goes last, so the recovery point exists in the replica only once everything
   it needs is there (as for a backup), and is read back and authenticated;
5. the source's retention (until, mode) is applied to the replica's objects;
6. optionally (default) the replica's copy is verified in full (:meth:`Store.verify`).

Running it again for a replicated recovery point is cheap and changes nothing.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Optional

import blake3

from .errors import IntegrityError, NotFound, StoreError
from .index import write_index_file
from .manifest import ManifestReader
from .pack import pack_object, read_trailer
from .progress import Throttle, check_cancel

INDEX_PACKS = 64


@dataclasses.dataclass
class ReplicationReport:
    snapshot_id: str
    target: str
    already_replicated: bool = False
    packs_needed: int = 0
    packs_copied: int = 0
    packs_present: int = 0
    packs_adopted: int = 0  # found in the replica from an interrupted run, checked and indexed
    bytes_copied: int = 0
    index_files_written: int = 0
    manifest_copied: bool = False
    retention: Optional[str] = None
    verified: Optional[bool] = None
    verify_errors: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        if self.already_replicated:
            head = f"{self.snapshot_id}: already in {self.target}"
        else:
            head = (f"{self.snapshot_id} -> {self.target}: {self.packs_copied} packs copied "
                    f"({self.bytes_copied / 2**20:.1f} MiB), {self.packs_present} present, "
                    f"{self.packs_adopted} resumed, {self.index_files_written} index files")
        ver = {None: "not verified", True: "verified", False: "VERIFY FAILED"}[self.verified]
        ret = f", retained {self.retention}" if self.retention else ""
        return f"{head}{ret}; {ver} ({self.seconds:.1f}s)"


def _same_keys(a, b) -> bool:
    return a.keys.id_key == b.keys.id_key and a.keys.data_key == b.keys.data_key


def replicate(source, snap_id: str, target, *, verify: bool = True, progress=None, cancel=None,
              retention: bool = True) -> ReplicationReport:
    if target is source or target.id == source.id:
        raise StoreError("a store cannot be replicated into itself")
    if not _same_keys(source, target):
        raise StoreError(f"the store at {target.backend.location} is not a replica of {source.backend.location} "
                         f"(create it with Store.init_replica)")
    t0 = time.monotonic()
    rep = ReplicationReport(snapshot_id=snap_id, target=target.backend.location)
    prog = Throttle(progress, "replicate")
    mname = f"snapshots/{snap_id}"
    with source._op, source.lock(owner=source.owner or "replication (source)"):
        with target._op, target.lock(owner=target.owner or "replication (target)") as tlk:
            # ``retention=False``: a temporary copy (an archive tier's rehydrated copy) carries no lock
            ret = source.backend.get_retention(mname) if retention else None
            if ret is not None and ret.active():
                target.require_immutability()
                rep.retention = f"{ret.mode} until {ret.until.isoformat()}"
            target.sync_index()
            if target.backend.exists(mname):
                rep.already_replicated = True
            else:
                source.sync_index()
                _copy(source, target, snap_id, rep, prog, lambda: (check_cancel(cancel), tlk.check()))
            if ret is not None and ret.active():
                target._set_snapshot_retention(snap_id, ret.until, ret.mode)
    if verify:
        vr = target.verify(snap_id)
        rep.verified = vr.ok
        rep.verify_errors = vr.errors + [f"damaged item {i}" for i in vr.damaged_items] + \
            [f"missing chunk {c}" for c in vr.missing_chunks]
    rep.seconds = time.monotonic() - t0
    return rep


def _copy(source, target, snap_id, rep, prog, checkpoint):
    packs = _packs_needed(source, snap_id)
    rep.packs_needed = len(packs)
    prog.p.items_total = len(packs)
    batch = _IndexBatch(target, rep)
    for name in sorted(packs):
        checkpoint()
        if target.index.has_pack(name) and target.backend.exists(pack_object(name)):
            rep.packs_present += 1
            prog.update(items=1, current=name)
            continue
        data = _copy_pack(source, target, name, rep)
        batch.packs.append((name, read_trailer(source.keys, data, name)))
        del data
        prog.update(nbytes=0, items=1, current=name)
        if len(batch.packs) >= INDEX_PACKS:
            batch.write()
    batch.write()
    checkpoint()
    _copy_manifest(source, target, snap_id)
    rep.manifest_copied = True
    _check_manifest(target, snap_id)
    prog.update(force=True)


def _packs_needed(source, snap_id) -> set:
    packs = set()
    for cid in source._chunk_ids(snap_id):
        loc = source.index.locate(cid)
        if loc is None:
            raise StoreError(f"recovery point {snap_id} needs chunk {cid.hex()} which no index of the source lists; "
                             f"not replicated (run verify on the source)")
        packs.add(loc[0])
    return packs


def _copy_pack(source, target, name, rep) -> bytes:
    """The bytes of pack ``name`` as the replica now holds them: adopted when an interrupted run
    left an intact copy, else copied from the source and read back."""
    obj = pack_object(name)
    if target.backend.exists(obj):
        try:
            got = target.backend.get(obj)
        except NotFound:
            got = b""
        if blake3.blake3(got).hexdigest() == name:
            rep.packs_adopted += 1
            return got
    data = source.backend.get(obj)
    if blake3.blake3(data).hexdigest() != name:
        raise IntegrityError(f"pack {name} of the source does not match its hash (damaged); not replicated")
    target.backend.put_chunks(obj, [data])
    back = target.backend.get(obj)
    if blake3.blake3(back).hexdigest() != name:
        raise IntegrityError(f"the replica's copy of pack {name} does not match what was sent")
    del back
    rep.packs_copied += 1
    rep.bytes_copied += len(data)
    return data


class _IndexBatch:
    """Copied packs not yet in one of the replica's own index files (written every
    ``INDEX_PACKS`` packs, so an interrupted run resumes where it stopped)."""

    def __init__(self, target, rep):
        self.target = target
        self.rep = rep
        self.packs = []  # (name, entries)

    def write(self):
        if not self.packs:
            return
        iname, _ = write_index_file(self.target.backend, self.target.keys, self.packs)
        self.target.index.load_index_file(iname, self.packs)
        self.rep.index_files_written += 1
        self.packs = []


def _copy_manifest(source, target, snap_id):
    mname = f"snapshots/{snap_id}"
    f = source.backend.open(mname)
    try:
        def gen():
            while True:
                b = f.read(4 << 20)
                if not b:
                    return
                yield b
        target.backend.put_chunks(mname, gen())
    finally:
        f.close()


def _check_manifest(target, snap_id):
    """Read back and authenticate every segment of the replica's manifest."""
    mname = f"snapshots/{snap_id}"
    try:
        r = ManifestReader(target.keys, snap_id, target.backend.open(mname), mname)
        try:
            for _ in r.records():
                pass
        finally:
            r.close()
    except IntegrityError:
        try:
            target.backend.delete(mname)  # not a recovery point until it reads back intact
        except Exception:
            pass
        raise
