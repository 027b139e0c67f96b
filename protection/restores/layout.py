"""Where a recovery point's bytes are: one small function per datasource type.

The backup drivers (`protection.datasources`) decide the layout; restores, browsing and verify read
it only through this module, so a change in a driver is a change here and nowhere else.

* Azure Data Lake Storage: one engine *tree* snapshot per container in the vault store
  (``RecoveryPoint.manifests``: ``{"item": <container>, "kind": "tree", "id": ...}``).
* Elastic SAN: one engine *volume* snapshot in the operational store of the instance's snapshot
  resource group (``{"item": <volume>, "kind": "volume", "store": "operational",
  "resource_group_id": ...}``); the image's checksum (`portal.inventory.volumes`) is kept in
  ``verify_details["backup"]["checksum"]``
  and on the Snapshot resource.
* Azure Disk: as Elastic SAN (``"item": <disk>``), the disk's image in the snapshot resource group's
  operational store.
* PostgreSQL: one *stream* snapshot for ``globals.sql`` and one per database (``<db>.dump``, a
  ``pg_dump -Fc`` stream, ``"database": <db>``) in the vault store.
"""

from __future__ import annotations

from dataclasses import dataclass

from protection import datasource_types
from protection.jobs import runner as jobs

GLOBALS_ITEM = "globals.sql"


@dataclass(frozen=True)
class Part:
    """One engine snapshot of a recovery point."""

    item: str  # container name, volume name, "globals.sql" or "<db>.dump"
    kind: str  # tree | volume | stream
    snapshot_id: str
    bytes: int = 0
    files: int | None = None
    database: str = ""


def parts(point) -> list[Part]:
    out = []
    for m in point.manifests or []:
        out.append(Part(item=str(m.get("item", "")), kind=str(m.get("kind", "")), snapshot_id=str(m["id"]),
                        bytes=int(m.get("bytes") or 0), files=m.get("files"), database=str(m.get("database") or "")))
    if not out and point.manifest_id:  # points made before manifests were recorded
        kind = {datasource_types.ADLS: "tree", datasource_types.ELASTIC_SAN: "volume",
                datasource_types.AZURE_DISK: "volume"}.get(
            point.instance.datasource_type, "stream")
        out.append(Part(item=point.instance.datasource_name, kind=kind, snapshot_id=point.manifest_id))
    return out


def containers(point) -> list[Part]:
    """ADLS: the containers a recovery point holds, by name."""
    return [p for p in parts(point) if p.kind == "tree"]


def databases(point) -> list[Part]:
    """PostgreSQL: the database dumps a recovery point holds (globals excluded)."""
    return [p for p in parts(point) if p.kind == "stream" and p.item != GLOBALS_ITEM]


def globals_part(point) -> Part | None:
    return next((p for p in parts(point) if p.item == GLOBALS_ITEM), None)


def volume_part(point) -> Part:
    found = [p for p in parts(point) if p.kind == "volume"]
    if not found:
        raise jobs.JobError("UserErrorRecoveryPointNotFound", "The recovery point holds no volume image.")
    return found[0]


def volume_checksum(point) -> str:
    """The checksum the volume had when it was backed up ('' when unknown)."""
    backup = (point.verify_details or {}).get("backup") or {}
    if backup.get("checksum"):
        return str(backup["checksum"])
    if point.snapshot_resource_id:
        from portal.inventory.models import Snapshot

        snap = Snapshot.objects.filter(resource_id__iexact=point.snapshot_resource_id).only("checksum").first()
        if snap is not None:
            return snap.checksum
    return ""


def _snapshot_group(point):
    from portal.models import ResourceGroup

    rg_id = ""
    for m in point.manifests or []:
        if m.get("resource_group_id"):
            rg_id = m["resource_group_id"]
            break
    rg_id = rg_id or point.instance.snapshot_resource_group_id
    group = ResourceGroup.objects.filter(resource_id__iexact=rg_id).first()
    if group is None:
        raise jobs.JobError("UserErrorSnapshotResourceGroupNotFound",
                            f"The snapshot resource group '{rg_id}' that holds this recovery point no longer exists.")
    return group


def snapshot_group_id(point) -> str:
    for m in point.manifests or []:
        if m.get("resource_group_id"):
            return m["resource_group_id"]
    return point.instance.snapshot_resource_group_id


def open_point_store(point):
    """The open engine store holding ``point`` (use as a context manager): the vault's secondary-region store
    for a point marked by `cross_region.read_from_secondary`, which never opens the primary."""
    if point.instance.datasource_type in (datasource_types.ELASTIC_SAN, datasource_types.AZURE_DISK):
        from protection.operational_store import open_operational_store
        from vaults.store import NotFound

        try:
            return open_operational_store(_snapshot_group(point), create=False)
        except NotFound:
            raise jobs.JobError("UserErrorRecoveryPointNotFound",
                                "The operational store of this recovery point's snapshot resource group is missing.") from None
    if getattr(point, "read_from_secondary", False):  # a restore to the secondary region (`cross_region`)
        from vaults.storage import open_secondary_store
        from vaults.store import NotFound

        try:
            return open_secondary_store(point.instance.vault)
        except NotFound:
            raise jobs.JobError("UserErrorRecoveryPointNotFound",
                                "The vault's store in the secondary region is missing: nothing was restored.") from None
    from vaults.storage import open_store

    if point.datastore == "ArchiveStore" and not point.is_rehydrated():
        # archive tier (issue 21): an archived point is read from the archive store (verify); a restore
        # reads its rehydrated copy in the standard store (restores refuse an archived point without one)
        from vaults.storage import open_archive_store
        from vaults.store import NotFound

        try:
            return open_archive_store(point.instance.vault)
        except NotFound:
            raise jobs.JobError("UserErrorRecoveryPointNotFound",
                                "The vault's archive store that holds this recovery point is missing.") from None
    return open_store(point.instance.vault)


def item_name(point, engine_item: str) -> str:
    """An engine damage name (``<snapshot id>:<path>``) as a person reads it (``documents/a.txt``)."""
    snap_id, _, path = engine_item.partition(":")
    for p in parts(point):
        if p.snapshot_id == snap_id:
            if path == "<manifest>":
                return f"{p.item} (its manifest)"
            if p.kind == "tree" and path:
                return f"{p.item}/{path}"
            return p.item
    return engine_item
