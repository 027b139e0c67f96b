"""Elastic SAN: SANs, their volume groups and volumes (a raw image file each), and the snapshots
backups take of volumes and managed disks (incremental snapshots in a snapshot resource group)."""

from __future__ import annotations

import os

from django.core.exceptions import ValidationError

from portal.inventory import fs, naming, volumes
from portal.inventory.models import GIB, ElasticSan, Snapshot, Volume, VolumeGroup
from portal.inventory.services.common import forget_assignments, make_data_dir, new_resource_id
from portal.inventory.services.network import datasource_region, join_subnet_first
from portal.inventory.services.volume_jobs import lock_idle_volume
from portal.models import ResourceGroup
from security import clock
from security.audit import guarded, record_denial
from security.guards import GuardDenied, evaluate
from security.operations import (
    DISK_BEGIN_GET_ACCESS,
    DISK_TYPE,
    ELASTIC_SAN_DELETE,
    ELASTIC_SAN_WRITE,
    SNAPSHOT_DELETE,
    SNAPSHOT_WRITE,
    VOLUME_DELETE,
    VOLUME_GROUP_DELETE,
    VOLUME_GROUP_WRITE,
    VOLUME_SNAPSHOT_WRITE,
    VOLUME_WRITE,
)


def create_elastic_san(
    principal,
    *,
    resource_group: ResourceGroup,
    name: str,
    region,
    sku: str = ElasticSan.Sku.PREMIUM_LRS,
    base_size_tib: int = 1,
    extended_capacity_size_tib: int = 0,
    tags: dict | None = None,
    network_subnet=None,
) -> ElasticSan:
    name = (name or "").strip()
    target = new_resource_id(resource_group, ElasticSan.RESOURCE_TYPE, name or "-")
    details = {"sku": sku, "baseSizeTiB": base_size_tib}
    join_subnet_first(principal, network_subnet, target, details)
    with guarded(principal, ELASTIC_SAN_WRITE, target, details=details) as op:
        naming.validate_elastic_san_name(name)
        region = datasource_region(region, network_subnet, name)
        if sku not in ElasticSan.Sku.values:
            raise ValidationError({"sku": "Choose Premium_LRS or Premium_ZRS."})
        if not isinstance(base_size_tib, int) or not 1 <= base_size_tib <= 100:
            raise ValidationError({"base_size_tib": "The base size must be from 1 to 100 TiB."})
        if not isinstance(extended_capacity_size_tib, int) or not 0 <= extended_capacity_size_tib <= 600:
            raise ValidationError({"extended_capacity_size_tib": "The additional capacity must be from 0 to 600 TiB."})
        if ElasticSan.objects.filter(resource_group=resource_group, name__iexact=name).exists():
            raise ValidationError({"name": f"An Elastic SAN named '{name}' already exists in {resource_group.name}."})
        san = ElasticSan.objects.create(
            name=name,
            resource_group=resource_group,
            region=region,
            sku=sku,
            base_size_tib=base_size_tib,
            extended_capacity_size_tib=extended_capacity_size_tib,
            tags=tags or {},
            network_subnet=network_subnet,
        )
        op.result_scope = san.resource_id
        make_data_dir(san.data_path)
    return san


def _delete_when_empty(principal, action: str, obj, children, *, what: str, children_label: str) -> None:
    """Delete a SAN or volume group, and its folder, only when it holds nothing any more: its data
    lives in its children, which are deleted one by one (each with its own rules)."""
    with guarded(principal, action, obj) as op:
        names = list(children.values_list("name", flat=True))
        if names:
            raise ValidationError(
                f"The {what} '{obj.name}' still has {children_label} ({', '.join(names)}). Delete them first."
            )
        path = obj.data_path
        forget_assignments(op, obj.resource_id, what)
        obj.delete()
        try:
            with fs.opened_dir(path.parent) as parent_fd:
                os.rmdir(path.name, dir_fd=parent_fd)
        except OSError:
            pass


def delete_elastic_san(principal, san: ElasticSan) -> None:
    _delete_when_empty(principal, ELASTIC_SAN_DELETE, san, san.volume_groups, what="Elastic SAN",
                       children_label="volume groups")


def create_volume_group(principal, san: ElasticSan, *, name: str) -> VolumeGroup:
    name = (name or "").strip()
    with guarded(principal, VOLUME_GROUP_WRITE, f"{san.resource_id}/volumeGroups/{name or '-'}") as op:
        naming.validate_volume_group_name(name)
        if san.volume_groups.filter(name=name).exists():
            raise ValidationError({"name": f"A volume group named '{name}' already exists in '{san.name}'."})
        group = VolumeGroup.objects.create(elastic_san=san, name=name)
        op.result_scope = group.resource_id
        make_data_dir(group.data_path)
    return group


def delete_volume_group(principal, group: VolumeGroup) -> None:
    _delete_when_empty(principal, VOLUME_GROUP_DELETE, group, group.volumes, what="volume group",
                       children_label="volumes")


def create_volume(principal, group: VolumeGroup, *, name: str, size_gib: int | None = None, attach_path: str = "") -> Volume:
    """A new sparse image of ``size_gib``, or an existing image attached from an allowed root."""
    name = (name or "").strip()
    target = f"{group.resource_id}/volumes/{name or '-'}"
    with guarded(principal, VOLUME_WRITE, target, details={"sizeGiB": size_gib, "attachedPath": attach_path}) as op:
        naming.validate_volume_name(name)
        if group.volumes.filter(name=name).exists():
            raise ValidationError({"name": f"A volume named '{name}' already exists in '{group.name}'."})
        attached = ""
        if attach_path:
            try:
                attached = str(fs.validate_attach_path(attach_path, kind="file"))
            except fs.UnsafePath as exc:
                raise ValidationError({"attach_path": str(exc)}) from exc
            if Volume.objects.filter(attached_path=attached).exists():
                raise ValidationError({"attach_path": f"'{attached}' is already attached to another volume."})
            size_bytes = volumes.image_info(attached).size_bytes
            if size_bytes <= 0:
                raise ValidationError({"attach_path": f"'{attached}' is empty; an image needs a size."})
            size_gib = -(-size_bytes // GIB)
        else:
            naming.validate_volume_size(size_gib)
            size_bytes = size_gib * GIB
        san = group.elastic_san
        used = sum(v.size_gib for v in Volume.objects.filter(volume_group__elastic_san=san))
        capacity = san.total_size_tib * 1024
        if used + size_gib > capacity:
            raise ValidationError(
                {"size_gib": f"The Elastic SAN '{san.name}' has {capacity - used} GiB left of {capacity} GiB; "
                 f"choose a smaller size or add capacity to the Elastic SAN."}
            )
        if not attached and (leftover := group.data_path / f"{name}.img").exists():
            # A file no volume owns (left by an interrupted creation): never overwrite data, say so instead.
            raise ValidationError({"name": f"An image file '{leftover}' already exists for the name '{name}' and "
                                           "belongs to no volume; choose another name, or move that file away."})
        volume = Volume.objects.create(
            volume_group=group, name=name, size_gib=size_gib, size_bytes=size_bytes, attached_path=attached
        )
        op.result_scope = volume.resource_id
        if not attached:
            volumes.create_image(volume.image_path, size_bytes)
        volumes.measure(volume)
        volume.save(update_fields=["allocated_bytes", "allocated_measured_at"])
    return volume


def delete_volume(principal, volume: Volume) -> None:
    """Delete the volume and its image (an attached image is left in place)."""
    with guarded(principal, VOLUME_DELETE, volume, details={"attached": volume.is_attached}) as op:
        locked = lock_idle_volume(volume, "'{job}' is running on volume '{name}'. Wait for it to finish, then delete the volume.")
        path, attached = locked.image_path, locked.is_attached
        forget_assignments(op, locked.resource_id, "volume")
        locked.delete()
        if not attached:
            volumes.remove_image(path)


# --- snapshots (Elastic SAN recovery points) --------------------------------------------------------


def create_snapshot(
    principal,
    source,
    *,
    resource_group: ResourceGroup,
    name: str,
    size_bytes: int | None = None,
    checksum: str = "",
    store_location: str = "",
    manifest_id: str = "",
    taken_at=None,
) -> Snapshot:
    """Record an incremental snapshot of ``source`` (an Elastic SAN volume or a managed disk) in
    ``resource_group`` (the snapshot RG).

    As in Azure, this needs both the right to read the source for a snapshot (a volume: the Elastic
    SAN's snapshot right on the volume group, for the temporary volume snapshot; a disk: its
    beginGetAccess, which Disk Backup Reader grants) and the right to write snapshots in the snapshot
    resource group.
    """
    name = (name or "").strip()
    target = new_resource_id(resource_group, Snapshot.RESOURCE_TYPE, name or "-")
    is_disk = source.RESOURCE_TYPE == DISK_TYPE
    what = "disk" if is_disk else "volume"
    read_action, read_scope = ((DISK_BEGIN_GET_ACCESS, source.resource_id) if is_disk else
                               (VOLUME_SNAPSHOT_WRITE, f"{source.volume_group.resource_id}/snapshots/{name or '-'}"))
    decision = evaluate(principal, read_action, read_scope)
    if not decision.allowed:
        record_denial(principal, decision)
        raise GuardDenied(decision)
    with guarded(principal, SNAPSHOT_WRITE, target, details={"sourceResourceId": source.resource_id}) as op:
        naming.validate_snapshot_name(name)
        if resource_group.subscription_id != source.resource_group.subscription_id:
            raise ValidationError(
                {"resource_group": f"The snapshot resource group must be in the {what}'s subscription."}
            )
        if Snapshot.objects.filter(resource_group=resource_group, name__iexact=name).exists():
            raise ValidationError({"name": f"A snapshot named '{name}' already exists in {resource_group.name}."})
        snapshot = Snapshot.objects.create(
            name=name,
            resource_group=resource_group,
            region=source.region,
            source_volume=None if is_disk else source,
            source_disk=source if is_disk else None,
            source_resource_id=source.resource_id,
            size_bytes=source.size_bytes if size_bytes is None else size_bytes,
            checksum=checksum,
            store_location=store_location,
            manifest_id=manifest_id,
            taken_at=taken_at or clock.now(),
        )
        op.result_scope = snapshot.resource_id
    return snapshot


def delete_snapshot(principal, snapshot: Snapshot) -> None:
    with guarded(principal, SNAPSHOT_DELETE, snapshot) as op:
        forget_assignments(op, snapshot.resource_id, "snapshot")
        snapshot.delete()
