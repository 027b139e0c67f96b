"""Inventory state changes: every create, delete, upload and job start goes through `guarded`.

Each function takes the acting principal first. Real data is created inside the guarded block as its
last step, so a refusal or a validation error leaves nothing behind, and a failure while writing
data rolls the row back.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
import zlib
from dataclasses import dataclass
from functools import partial
from typing import BinaryIO, Iterable

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from portal.inventory import blobs, fs, naming, postgres, volumes
from portal.inventory.models import (
    GIB,
    Container,
    ElasticSan,
    PostgresDatabase,
    PostgresServer,
    Snapshot,
    StorageAccount,
    Volume,
    VolumeGroup,
)
from portal.models import Operation, Region, ResourceGroup
from portal.services import finish_operation, start_operation
from security import clock
from security.audit import guarded, record, register_operation_name
from security.crypto import encrypt_secret
from security.guards import GuardDenied, evaluate
from security.models import ActivityLogEntry
from security.rbac import authorize
from security.services import remove_assignments_of_deleted_scope

logger = logging.getLogger(__name__)

# --- action strings (Azure's) ---------------------------------------------------------------------

STORAGE_ACCOUNT_READ = "Microsoft.Storage/storageAccounts/read"
STORAGE_ACCOUNT_WRITE = "Microsoft.Storage/storageAccounts/write"
STORAGE_ACCOUNT_DELETE = "Microsoft.Storage/storageAccounts/delete"
STORAGE_ACCOUNT_LIST_KEYS = "Microsoft.Storage/storageAccounts/listKeys/action"
CONTAINER_READ = "Microsoft.Storage/storageAccounts/blobServices/containers/read"
CONTAINER_WRITE = "Microsoft.Storage/storageAccounts/blobServices/containers/write"
CONTAINER_DELETE = "Microsoft.Storage/storageAccounts/blobServices/containers/delete"
BLOB_READ = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
BLOB_WRITE = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"
BLOB_DELETE = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete"

ELASTIC_SAN_READ = "Microsoft.ElasticSan/elasticSans/read"
ELASTIC_SAN_WRITE = "Microsoft.ElasticSan/elasticSans/write"
ELASTIC_SAN_DELETE = "Microsoft.ElasticSan/elasticSans/delete"
VOLUME_GROUP_READ = "Microsoft.ElasticSan/elasticSans/volumeGroups/read"
VOLUME_GROUP_WRITE = "Microsoft.ElasticSan/elasticSans/volumeGroups/write"
VOLUME_GROUP_DELETE = "Microsoft.ElasticSan/elasticSans/volumeGroups/delete"
VOLUME_READ = "Microsoft.ElasticSan/elasticSans/volumeGroups/volumes/read"
VOLUME_WRITE = "Microsoft.ElasticSan/elasticSans/volumeGroups/volumes/write"
VOLUME_DELETE = "Microsoft.ElasticSan/elasticSans/volumeGroups/volumes/delete"
VOLUME_SNAPSHOT_READ = "Microsoft.ElasticSan/elasticSans/volumeGroups/snapshots/read"
VOLUME_SNAPSHOT_WRITE = "Microsoft.ElasticSan/elasticSans/volumeGroups/snapshots/write"
VOLUME_SNAPSHOT_DELETE = "Microsoft.ElasticSan/elasticSans/volumeGroups/snapshots/delete"
SNAPSHOT_READ = "Microsoft.Compute/snapshots/read"
SNAPSHOT_WRITE = "Microsoft.Compute/snapshots/write"
SNAPSHOT_DELETE = "Microsoft.Compute/snapshots/delete"

POSTGRES_READ = "Microsoft.DBforPostgreSQL/flexibleServers/read"
POSTGRES_WRITE = "Microsoft.DBforPostgreSQL/flexibleServers/write"
POSTGRES_DELETE = "Microsoft.DBforPostgreSQL/flexibleServers/delete"
POSTGRES_DATABASE_READ = "Microsoft.DBforPostgreSQL/flexibleServers/databases/read"
POSTGRES_DATABASE_WRITE = "Microsoft.DBforPostgreSQL/flexibleServers/databases/write"
POSTGRES_DATABASE_DELETE = "Microsoft.DBforPostgreSQL/flexibleServers/databases/delete"
# Strongroom reaches a server's data with the admin login stored with it; in Azure only a principal
# who may update the server (flexibleServers/write) can set that login. So testing the connection,
# and reading what a database holds (a recovery point's table of contents), need this action.
POSTGRES_USE_ADMIN_LOGIN = POSTGRES_WRITE

for _action, _name in [
    (STORAGE_ACCOUNT_WRITE, "Create/Update Storage Account"),
    (STORAGE_ACCOUNT_DELETE, "Delete Storage Account"),
    (STORAGE_ACCOUNT_LIST_KEYS, "List Storage Account Keys"),
    (CONTAINER_WRITE, "Put blob container"),
    (CONTAINER_DELETE, "Delete blob container"),
    (BLOB_READ, "Read blob"),
    (BLOB_WRITE, "Write blob"),
    (BLOB_DELETE, "Delete blob"),
    (ELASTIC_SAN_WRITE, "Create/Update Elastic SAN"),
    (ELASTIC_SAN_DELETE, "Delete Elastic SAN"),
    (VOLUME_GROUP_WRITE, "Create/Update Volume Group"),
    (VOLUME_GROUP_DELETE, "Delete Volume Group"),
    (VOLUME_READ, "Read Volume"),
    (VOLUME_WRITE, "Create/Update Volume"),
    (VOLUME_DELETE, "Delete Volume"),
    (VOLUME_SNAPSHOT_WRITE, "Create/Update Volume Snapshot"),
    (VOLUME_SNAPSHOT_DELETE, "Delete Volume Snapshot"),
    (SNAPSHOT_WRITE, "Create or update snapshot"),
    (SNAPSHOT_DELETE, "Delete snapshot"),
    (POSTGRES_WRITE, "Create/Update PostgreSQL Server"),
    (POSTGRES_DELETE, "Delete PostgreSQL Server"),
    (POSTGRES_DATABASE_READ, "List PostgreSQL Databases"),
    (POSTGRES_DATABASE_WRITE, "Create/Update PostgreSQL Database"),
    (POSTGRES_DATABASE_DELETE, "Delete PostgreSQL Database"),
]:
    register_operation_name(_action, _name)


def _forget_assignments(op, resource_id: str, what: str) -> None:
    """A deleted resource takes the role assignments at and below it along (logged, same transaction)."""
    removed = remove_assignments_of_deleted_scope(op.principal, resource_id, cause=f"The {what} was deleted.")
    if removed:
        op.details["roleAssignmentsRemoved"] = removed


def _target(resource_group: ResourceGroup, resource_type: str, name: str) -> str:
    return f"{resource_group.resource_id}/providers/{resource_type}/{name}"


def _check_region(region) -> Region:
    if not isinstance(region, Region):
        region = Region.objects.filter(pk=region).first()
        if region is None:
            raise ValidationError({"region": "Choose a region."})
    return region


# =================================================================================================
# Storage accounts and containers
# =================================================================================================


def create_storage_account(
    principal,
    *,
    resource_group: ResourceGroup,
    name: str,
    region,
    hierarchical_namespace: bool = True,
    sku: str = StorageAccount.Redundancy.LRS,
    attach_path: str = "",
    tags: dict | None = None,
) -> StorageAccount:
    """Create a storage account with a new empty folder, or attach an existing folder.

    An attached folder's sub-folders whose names are valid container names become its containers.
    """
    name = (name or "").strip()
    target = _target(resource_group, StorageAccount.RESOURCE_TYPE, name or "-")
    details = {"hierarchicalNamespace": hierarchical_namespace, "sku": sku}
    if attach_path:
        details["attachedPath"] = attach_path
    with guarded(principal, STORAGE_ACCOUNT_WRITE, target, details=details) as op:
        naming.validate_storage_account_name(name)
        region = _check_region(region)
        if sku not in StorageAccount.Redundancy.values:
            raise ValidationError({"sku": "Choose a redundancy option."})
        if StorageAccount.objects.filter(name__iexact=name).exists():
            raise ValidationError({"name": f"The storage account named {name} is already taken."})
        attached = ""
        if attach_path:
            try:
                attached = str(fs.validate_attach_path(attach_path, kind="folder"))
            except fs.UnsafePath as exc:
                raise ValidationError({"attach_path": str(exc)}) from exc
            for other in StorageAccount.objects.exclude(attached_path=""):
                a, b = other.attached_path.rstrip("/") + "/", attached.rstrip("/") + "/"
                if a.startswith(b) or b.startswith(a):
                    raise ValidationError(
                        {"attach_path": f"'{attached}' overlaps the folder attached to storage account '{other.name}'."}
                    )
        try:
            with transaction.atomic():
                account = StorageAccount.objects.create(
                    name=name,
                    resource_group=resource_group,
                    region=region,
                    hierarchical_namespace=hierarchical_namespace,
                    sku=sku,
                    attached_path=attached,
                    tags=tags or {},
                )
        except IntegrityError as exc:
            raise ValidationError({"name": f"The storage account named {name} is already taken."}) from exc
        op.result_scope = account.resource_id
        if attached:
            found, skipped = _register_attached_containers(account)
            op.details["containers"] = found
            if skipped:
                op.details["skippedFolders"] = skipped
        else:
            os.close(fs.open_dir(account.data_path, create=True))
    return account


def _register_attached_containers(account: StorageAccount) -> tuple[list[str], list[str]]:
    found, skipped = [], []
    with fs.opened_dir(account.data_path) as dir_fd:
        with os.scandir(dir_fd) as entries:
            names = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    for folder in names:
        try:
            naming.validate_container_name(folder)
        except ValidationError:
            skipped.append(folder)
            continue
        Container.objects.create(account=account, name=folder)
        found.append(folder)
    return found, skipped


def delete_storage_account(principal, account: StorageAccount) -> None:
    """Delete the account. A managed folder is deleted with it; an attached folder is left in place."""
    with guarded(principal, STORAGE_ACCOUNT_DELETE, account, details={"attached": account.is_attached}) as op:
        containers = list(account.containers.all())
        attached = account.is_attached
        data_path = account.data_path
        _forget_assignments(op, account.resource_id, "storage account")
        account.delete()
        if not attached:
            fs.remove_tree(data_path)
        op.details["containers"] = [c.name for c in containers][:50]


def create_container(principal, account: StorageAccount, *, name: str) -> Container:
    name = (name or "").strip()
    with guarded(principal, CONTAINER_WRITE, account, details={"container": name}) as op:
        naming.validate_container_name(name)
        if account.containers.filter(name=name).exists():
            raise ValidationError({"name": f"The specified container '{name}' already exists."})
        container = Container.objects.create(account=account, name=name)
        op.result_scope = container.resource_id
        blobs.ensure_container_dir(container)
    return container


def delete_container(principal, container: Container) -> None:
    """Delete the container and every blob in it."""
    with guarded(principal, CONTAINER_DELETE, container) as op:
        count, size = blobs.container_stats(container)
        op.details.update(blobs=count, bytes=size)
        path = container.path
        _forget_assignments(op, container.resource_id, "container")
        container.delete()
        fs.remove_tree(path)


# --- blobs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlobAccess:
    """How a principal reaches blob data: with a data action (Microsoft Entra ID) or an access key."""

    operation: str
    change: dict
    method: str  # "Microsoft Entra user account" or "Access key"
    target: str = ""  # the scope the operation is asked at (the container, or the account for keys)


def blob_access(principal, container: Container, data_action: str) -> BlobAccess:
    """The data action when the principal holds it, else the account's listKeys (access-key mode).

    Azure's portal does the same: with no data role it lists the account keys and uses them, so
    Owners and Contributors can work with blobs while Readers cannot.
    """
    return blob_access_at(principal, container.account.resource_id, container.resource_id, data_action)


def blob_access_at(principal, account_id: str, container_id: str, data_action: str) -> BlobAccess:
    """`blob_access` by resource ids, for data whose container may no longer exist (a recovery point)."""
    if authorize(principal, data_action, container_id, data_action=True).allowed:
        return BlobAccess(data_action, {"data_action": True}, "Microsoft Entra user account", container_id)
    if authorize(principal, STORAGE_ACCOUNT_LIST_KEYS, account_id).allowed:
        return BlobAccess(STORAGE_ACCOUNT_LIST_KEYS, {}, "Access key", account_id)
    return BlobAccess(data_action, {"data_action": True}, "Microsoft Entra user account", container_id)


def container_resource_id(account_id: str, name: str) -> str:
    return f"{account_id}/blobServices/default/containers/{name}"


def _blob_target(access: BlobAccess, container: Container) -> str:
    return access.target or (
        container.account.resource_id if access.operation == STORAGE_ACCOUNT_LIST_KEYS else container.resource_id
    )


def can_use_blobs(principal, container: Container, data_action: str) -> bool:
    access = blob_access(principal, container, data_action)
    return evaluate(principal, access.operation, _blob_target(access, container), access.change).allowed


def blob_read_decision(principal, account_id: str, container_id: str):
    """Whether ``principal`` may read blob data in a container (live, or as a recovery point holds it)."""
    access = blob_access_at(principal, account_id, container_id, BLOB_READ)
    return evaluate(principal, access.operation, access.target, access.change)


def check_blob_read(principal, container: Container) -> None:
    """Raise GuardDenied unless the principal may read blob data (reads are not logged)."""
    decision = blob_read_decision(principal, container.account.resource_id, container.resource_id)
    if not decision.allowed:
        raise GuardDenied(decision)


def list_blobs(principal, container: Container, prefix: str = ""):
    check_blob_read(principal, container)
    return blobs.iter_blobs(container, prefix)


def open_blob(principal, container: Container, name: str) -> BinaryIO:
    check_blob_read(principal, container)
    return blobs.open_blob(container, name)


@dataclass(frozen=True)
class Upload:
    """One file to upload: its blob name and a binary file object (or iterable of chunks)."""

    name: str
    source: BinaryIO | Iterable[bytes]
    mtime: float | None = None


def upload_blobs(
    principal, container: Container, uploads: list[Upload], *, prefix: str = "", overwrite: bool = False
) -> list[tuple[str, int]]:
    """Upload several files under an optional folder prefix. All names are checked first."""
    access = blob_access(principal, container, BLOB_WRITE)
    prefix = blobs.validate_prefix(prefix)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    names = []
    details = {"container": container.name, "authenticationMethod": access.method}
    with guarded(principal, access.operation, _blob_target(access, container), change=access.change, details=details) as op:
        if not uploads:
            raise ValidationError({"files": "Choose one or more files to upload."})
        for upload in uploads:
            names.append(blobs.validate_blob_name(prefix + upload.name, field="files"))
        if len(set(names)) != len(names):
            raise ValidationError({"files": "Two of the files would get the same blob name."})
        written = []
        try:
            for name, upload in zip(names, uploads):
                written.append((name, blobs.write_blob(container, name, upload.source, overwrite=overwrite, mtime=upload.mtime)))
        except BaseException as exc:
            # Nothing half-done: blobs this request created are removed again (a replaced one stays replaced).
            if not overwrite:
                for name, _ in written:
                    blobs.delete_blob(container, name)
            if isinstance(exc, ValidationError):
                raise ValidationError({"files": exc.messages}) from exc
            if isinstance(exc, fs.UnsafePath):
                raise ValidationError({"files": str(exc)}) from exc
            raise
        op.details["blobs"] = [n for n, _ in written][:50]
        op.details["bytes"] = sum(size for _, size in written)
        op.result_scope = container.resource_id
    return written


def delete_blobs(principal, container: Container, names: list[str]) -> int:
    access = blob_access(principal, container, BLOB_DELETE)
    details = {"container": container.name, "authenticationMethod": access.method, "blobs": names[:50]}
    with guarded(principal, access.operation, _blob_target(access, container), change=access.change, details=details) as op:
        if not names:
            raise ValidationError("Select one or more blobs to delete.")
        checked = [blobs.validate_blob_name(n, field=None) for n in names]
        for name in checked:  # all of them exist, or nothing is deleted
            try:
                blobs.open_blob(container, name).close()
            except blobs.BlobNotFound:
                raise ValidationError(f"The blob '{name}' does not exist.") from None
        for name in checked:
            blobs.delete_blob(container, name)
        op.result_scope = container.resource_id
    return len(checked)


# =================================================================================================
# Elastic SAN
# =================================================================================================


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
) -> ElasticSan:
    name = (name or "").strip()
    target = _target(resource_group, ElasticSan.RESOURCE_TYPE, name or "-")
    with guarded(principal, ELASTIC_SAN_WRITE, target, details={"sku": sku, "baseSizeTiB": base_size_tib}) as op:
        naming.validate_elastic_san_name(name)
        region = _check_region(region)
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
        )
        op.result_scope = san.resource_id
        os.close(fs.open_dir(san.data_path, create=True))
    return san


def _remove_empty_dir(path) -> None:
    try:
        with fs.opened_dir(path.parent) as parent_fd:
            os.rmdir(path.name, dir_fd=parent_fd)
    except OSError:
        pass


def delete_elastic_san(principal, san: ElasticSan) -> None:
    with guarded(principal, ELASTIC_SAN_DELETE, san) as op:
        groups = list(san.volume_groups.values_list("name", flat=True))
        if groups:
            raise ValidationError(
                f"The Elastic SAN '{san.name}' still has volume groups ({', '.join(groups)}). Delete them first."
            )
        path = san.data_path
        _forget_assignments(op, san.resource_id, "Elastic SAN")
        san.delete()
        _remove_empty_dir(path)


def create_volume_group(principal, san: ElasticSan, *, name: str) -> VolumeGroup:
    name = (name or "").strip()
    with guarded(principal, VOLUME_GROUP_WRITE, f"{san.resource_id}/volumeGroups/{name or '-'}") as op:
        naming.validate_volume_group_name(name)
        if san.volume_groups.filter(name=name).exists():
            raise ValidationError({"name": f"A volume group named '{name}' already exists in '{san.name}'."})
        group = VolumeGroup.objects.create(elastic_san=san, name=name)
        op.result_scope = group.resource_id
        os.close(fs.open_dir(group.data_path, create=True))
    return group


def delete_volume_group(principal, group: VolumeGroup) -> None:
    with guarded(principal, VOLUME_GROUP_DELETE, group) as op:
        names = list(group.volumes.values_list("name", flat=True))
        if names:
            raise ValidationError(
                f"The volume group '{group.name}' still has volumes ({', '.join(names)}). Delete them first."
            )
        path = group.data_path
        _forget_assignments(op, group.resource_id, "volume group")
        group.delete()
        _remove_empty_dir(path)


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
        _measure(volume)
        volume.save(update_fields=["allocated_bytes", "allocated_measured_at"])
    return volume


def _measure(volume: Volume) -> None:
    info = volumes.image_info(volume.image_path)
    volume.allocated_bytes = info.allocated_bytes
    volume.allocated_measured_at = clock.now()


def delete_volume(principal, volume: Volume) -> None:
    """Delete the volume and its image (an attached image is left in place)."""
    with guarded(principal, VOLUME_DELETE, volume, details={"attached": volume.is_attached}) as op:
        locked = Volume.objects.select_for_update().get(pk=volume.pk)
        if locked.activity_running and not _activity_stale(locked):
            raise ValidationError(
                f"'{locked.get_activity_display()}' is running on volume '{locked.name}'. Wait for it to finish, then delete the volume."
            )
        path, attached = locked.image_path, locked.is_attached
        _forget_assignments(op, locked.resource_id, "volume")
        locked.delete()
        if not attached:
            volumes.remove_image(path)


# --- volume jobs ----------------------------------------------------------------------------------

STALE_AFTER = dt.timedelta(minutes=10)
# "Write sample data" waits this long for a backup that is reading the volume (its point-in-time copy)
WRITE_WAIT_SECONDS = 30 * 60
WAITING_FOR_BACKUP = ("Waiting: a backup is reading this volume (its point-in-time copy). The write starts as soon "
                      "as the backup has read the image.")
_JOB_ACTION = {
    Volume.Activity.WRITE_SAMPLE_DATA: VOLUME_WRITE,
    # Computing a checksum starts a job that reads every byte of the volume and records the result on
    # it: work, not a look, so read-only roles may not start it (the restore's identity, an Elastic SAN
    # Volume Importer, holds volumes/write).
    Volume.Activity.COMPUTE_CHECKSUM: VOLUME_WRITE,
}


def _activity_stale(volume: Volume) -> bool:
    beat = volume.activity_heartbeat_at or volume.activity_started_at
    return beat is None or clock.now() - beat > STALE_AFTER


def start_volume_job(principal, volume: Volume, activity: str, *, enqueue: bool = True) -> Operation:
    """Queue "Write sample data" or "Compute checksum" for a worker; returns the Operation."""
    if activity not in _JOB_ACTION:
        raise ValueError(activity)
    label = Volume.Activity(activity).label
    with guarded(principal, _JOB_ACTION[activity], volume, details={"job": label}) as op:
        locked = Volume.objects.select_for_update().get(pk=volume.pk)
        if locked.activity_running and not _activity_stale(locked):
            raise ValidationError(
                f"'{locked.get_activity_display()}' is already running on this volume. Wait for it to finish."
            )
        if locked.activity_running and locked.activity_operation_id:
            stale_op = Operation.objects.filter(pk=locked.activity_operation_id, status=Operation.Status.IN_PROGRESS).first()
            if stale_op:
                finish_operation(stale_op, succeeded=False, message="No worker finished this job within 10 minutes.")
        now = clock.now()
        operation = start_operation(
            principal,
            f"{label} on volume '{locked.name}'",
            resource_id=locked.resource_id,
            link=reverse("portal:volume_detail", args=[locked.pk]),
        )
        Volume.objects.filter(pk=locked.pk).update(
            activity=activity,
            activity_status=Volume.ActivityStatus.QUEUED,
            activity_progress=0,
            activity_message="",
            activity_started_at=now,
            activity_heartbeat_at=now,
            activity_operation=operation,
        )
        op.details["operationId"] = str(operation.pk)
        if enqueue:
            from portal.inventory import tasks

            # After commit: a worker that starts at once must find the Queued row and the Operation.
            transaction.on_commit(partial(tasks.run_volume_job.delay, locked.pk, str(operation.pk)))
    return operation


def run_volume_job(volume_id: int, operation_id: str) -> bool:
    """Do the queued job's work (on a worker). Idempotent: only the Queued job is claimed, once."""
    claimed = Volume.objects.filter(
        pk=volume_id, activity_operation_id=operation_id, activity_status=Volume.ActivityStatus.QUEUED
    ).update(activity_status=Volume.ActivityStatus.IN_PROGRESS, activity_heartbeat_at=clock.now())
    operation = Operation.objects.filter(pk=operation_id).first()
    if not claimed:
        if operation and operation.status == Operation.Status.IN_PROGRESS and not Volume.objects.filter(pk=volume_id).exists():
            finish_operation(operation, succeeded=False, message="The volume was deleted before the job ran.")
        return False
    volume = Volume.objects.select_related("volume_group__elastic_san__resource_group").get(pk=volume_id)
    principal = operation.principal
    activity = volume.activity
    action = _JOB_ACTION[activity]
    last = [0.0, -1]
    waited = []

    def progress(done: int, total: int) -> None:
        percent = int(done * 100 / total) if total else 100
        now = time.monotonic()
        if percent != last[1] and (now - last[0] > 0.5 or percent >= 100):
            last[0], last[1] = now, percent
            fields = {"activity_progress": min(percent, 99), "activity_heartbeat_at": clock.now()}
            if waited:
                fields["activity_message"] = ""  # the backup has read the volume: writing now
            Volume.objects.filter(pk=volume_id, activity_operation_id=operation_id).update(**fields)

    def waiting() -> None:  # a backup holds the volume: say so on its page (and keep the job alive)
        waited.append(1)
        Volume.objects.filter(pk=volume_id, activity_operation_id=operation_id).update(
            activity_message=WAITING_FOR_BACKUP, activity_heartbeat_at=clock.now())

    seed = volume.pk * 1_000_000 + volume.sample_writes + 1
    try:
        decision = evaluate(principal, action, volume)
        if not decision.allowed:
            raise GuardDenied(decision)
        if activity == Volume.Activity.WRITE_SAMPLE_DATA:
            try:
                result = volumes.write_sample_extents(volume.image_path, seed, progress, wait=WRITE_WAIT_SECONDS,
                                                      on_wait=waiting)
            except TimeoutError:
                raise ValidationError(
                    f"A backup was still reading the volume '{volume.name}' after {WRITE_WAIT_SECONDS // 60} minutes, "
                    "so nothing was written. Run “Write sample data” again once the backup has finished.") from None
        else:
            result = volumes.image_checksum(volume.image_path, progress)
        info = volumes.image_info(volume.image_path)
    except Exception as exc:  # the job fails with the reason; the worker stays healthy
        if isinstance(exc, GuardDenied):
            message = exc.decision.reason
        elif isinstance(exc, ValidationError):
            message = " ".join(exc.messages)
        else:
            message = f"{type(exc).__name__}: {exc}"
        logger.warning("Volume job %s on %s failed: %s", activity, volume.resource_id, message)
        Volume.objects.filter(pk=volume_id, activity_operation_id=operation_id).update(
            activity_status=Volume.ActivityStatus.FAILED, activity_message=message, activity_heartbeat_at=clock.now()
        )
        finish_operation(operation, succeeded=False, message=message)
        record(principal, action, volume.resource_id, status=ActivityLogEntry.Status.FAILED,
               sub_status="JobFailed", message=message, details={"job": Volume.Activity(activity).label})
        return False

    now = clock.now()
    details = {"job": Volume.Activity(activity).label, "operationId": operation_id}
    with guarded(principal, action, volume, details=details):
        fields = {
            "activity_status": Volume.ActivityStatus.SUCCEEDED,
            "activity_progress": 100,
            "activity_heartbeat_at": now,
            "allocated_bytes": info.allocated_bytes,
            "allocated_measured_at": now,
        }
        if activity == Volume.Activity.WRITE_SAMPLE_DATA:
            fields.update(sample_writes=volume.sample_writes + 1, sample_written_at=now, checksum_stale=bool(volume.last_checksum))
            message = f"Wrote {result / 1024**2:.1f} MiB of sample data (seed {seed})."
            details["seed"], details["bytes"] = seed, result
        else:
            fields.update(last_checksum=result, checksum_at=now, checksum_stale=False)
            message = f"SHA-256 {result}"
            details["sha256"] = result
        fields["activity_message"] = message
        Volume.objects.filter(pk=volume_id).update(**fields)
        finish_operation(operation, succeeded=True, message=message)
    return True


def write_sample_data_now(principal, volume: Volume) -> Volume:
    """Write sample data synchronously (the lab seed): the same job, run in this process."""
    operation = start_volume_job(principal, volume, Volume.Activity.WRITE_SAMPLE_DATA, enqueue=False)
    run_volume_job(volume.pk, str(operation.pk))
    return Volume.objects.get(pk=volume.pk)


def write_varied_data_now(principal, volume: Volume, *, total_bytes: int, seed: int) -> Volume:
    """Write ``total_bytes`` of varied sample data (incompressible, compressible, repeated, holes) in
    this process: the lab seed's large volume, big enough that a backup shows progress for a while."""
    details = {"job": Volume.Activity.WRITE_SAMPLE_DATA.label, "bytes": total_bytes, "seed": seed}
    with guarded(principal, VOLUME_WRITE, volume, details=details):
        locked = Volume.objects.select_for_update().get(pk=volume.pk)
        if locked.activity_running and not _activity_stale(locked):
            raise ValidationError(
                f"'{locked.get_activity_display()}' is running on volume '{locked.name}'. Wait for it to finish."
            )
        written = volumes.write_varied_data(locked.image_path, seed, total_bytes)
        info = volumes.image_info(locked.image_path)
        now = clock.now()
        Volume.objects.filter(pk=locked.pk).update(
            sample_writes=locked.sample_writes + 1, sample_written_at=now, checksum_stale=bool(locked.last_checksum),
            allocated_bytes=info.allocated_bytes, allocated_measured_at=now,
        )
        details["written"] = written
    return Volume.objects.get(pk=volume.pk)


def compute_checksum_now(principal, volume: Volume) -> Volume:
    operation = start_volume_job(principal, volume, Volume.Activity.COMPUTE_CHECKSUM, enqueue=False)
    run_volume_job(volume.pk, str(operation.pk))
    return Volume.objects.get(pk=volume.pk)


# --- snapshots (Elastic SAN recovery points) --------------------------------------------------------


def create_snapshot(
    principal,
    volume: Volume,
    *,
    resource_group: ResourceGroup,
    name: str,
    size_bytes: int | None = None,
    checksum: str = "",
    store_location: str = "",
    manifest_id: str = "",
    taken_at=None,
) -> Snapshot:
    """Record an incremental snapshot of ``volume`` in ``resource_group`` (the snapshot RG).

    As in Azure, this needs both the Elastic SAN's snapshot right on the volume group (the temporary
    volume snapshot) and the right to write snapshots in the snapshot resource group.
    """
    name = (name or "").strip()
    target = _target(resource_group, Snapshot.RESOURCE_TYPE, name or "-")
    decision = evaluate(principal, VOLUME_SNAPSHOT_WRITE, f"{volume.volume_group.resource_id}/snapshots/{name or '-'}")
    if not decision.allowed:
        from security.audit import record_denial

        record_denial(principal, decision)
        raise GuardDenied(decision)
    with guarded(principal, SNAPSHOT_WRITE, target, details={"sourceResourceId": volume.resource_id}) as op:
        naming.validate_snapshot_name(name)
        if resource_group.subscription_id != volume.resource_group.subscription_id:
            raise ValidationError(
                {"resource_group": "The snapshot resource group must be in the volume's subscription."}
            )
        if Snapshot.objects.filter(resource_group=resource_group, name__iexact=name).exists():
            raise ValidationError({"name": f"A snapshot named '{name}' already exists in {resource_group.name}."})
        snapshot = Snapshot.objects.create(
            name=name,
            resource_group=resource_group,
            region=volume.region,
            source_volume=volume,
            source_resource_id=volume.resource_id,
            size_bytes=volume.size_bytes if size_bytes is None else size_bytes,
            checksum=checksum,
            store_location=store_location,
            manifest_id=manifest_id,
            taken_at=taken_at or clock.now(),
        )
        op.result_scope = snapshot.resource_id
    return snapshot


def delete_snapshot(principal, snapshot: Snapshot) -> None:
    with guarded(principal, SNAPSHOT_DELETE, snapshot) as op:
        _forget_assignments(op, snapshot.resource_id, "snapshot")
        snapshot.delete()


# =================================================================================================
# PostgreSQL flexible servers
# =================================================================================================


def create_postgres_server(
    principal,
    *,
    resource_group: ResourceGroup,
    name: str,
    region,
    host: str,
    port: int = 5432,
    admin_user: str,
    password: str = "",
    tags: dict | None = None,
) -> PostgresServer:
    """Register a PostgreSQL server by its connection details; the password is sealed at rest."""
    name = (name or "").strip()
    host = (host or "").strip()
    admin_user = (admin_user or "").strip()
    target = _target(resource_group, PostgresServer.RESOURCE_TYPE, name or "-")
    with guarded(principal, POSTGRES_WRITE, target, details={"host": host, "port": port, "adminUser": admin_user}) as op:
        naming.validate_postgres_server_name(name)
        region = _check_region(region)
        errors = {}
        if not host or len(host) > 255 or any(c.isspace() for c in host) or "/" in host:
            errors["host"] = "Enter a host name or IP address, such as 127.0.0.1 or db.example.com."
        if not isinstance(port, int) or not 1 <= port <= 65535:
            errors["port"] = "Enter a port from 1 to 65535."
        if not naming.POSTGRES_USER.match(admin_user):
            errors["admin_user"] = "Enter the administrator login (1 to 63 characters, starting with a letter or _)."
        if errors:
            raise ValidationError(errors)
        if PostgresServer.objects.filter(name__iexact=name).exists():
            raise ValidationError({"name": f"The server name '{name}' is already in use. Choose another name."})
        server = PostgresServer(
            name=name, resource_group=resource_group, region=region, host=host, port=port,
            admin_user=admin_user, tags=tags or {},
        )
        server.resource_id = server.build_resource_id()
        if password:
            server.password_encrypted = encrypt_secret(password, purpose=server.secret_purpose)
        try:
            with transaction.atomic():
                server.save()
        except IntegrityError as exc:
            raise ValidationError({"name": f"The server name '{name}' is already in use. Choose another name."}) from exc
        op.result_scope = server.resource_id
    return server


def delete_postgres_server(principal, server: PostgresServer) -> None:
    """Remove the server from Strongroom. The PostgreSQL server itself and its data are untouched."""
    with guarded(principal, POSTGRES_DELETE, server) as op:
        _forget_assignments(op, server.resource_id, "PostgreSQL server")
        server.delete()


def refresh_postgres_server(principal, server: PostgresServer) -> postgres.ConnectionResult:
    """Test the connection and discover the server's user databases (stored for the pages).

    It logs in with the server's admin login and rewrites what the pages show, so it needs
    ``POSTGRES_USE_ADMIN_LOGIN`` (flexibleServers/write): read-only roles may not start it.
    """
    with guarded(principal, POSTGRES_USE_ADMIN_LOGIN, server, details={"check": "Test connection"}) as op:
        params = server.connection_params()
        result = postgres.test_connection(params)
        now = clock.now()
        server.checked_at = now
        server.connection_status = (
            PostgresServer.ConnectionStatus.SUCCEEDED if result.ok else PostgresServer.ConnectionStatus.FAILED
        )
        server.connection_message = result.message
        if result.ok:
            server.server_version = result.version
            try:
                found = postgres.discover_databases(params)
            except Exception as exc:  # noqa: BLE001 - shown to the user as the server's state
                server.connection_status = PostgresServer.ConnectionStatus.FAILED
                server.connection_message = postgres.describe_error(exc, params)
                found = None
            if found is not None:
                keep = {d.name for d in found}
                server.databases.exclude(name__in=keep).delete()
                for info in found:
                    PostgresDatabase.objects.update_or_create(
                        server=server,
                        name=info.name,
                        defaults={
                            "owner": info.owner,
                            "size_bytes": info.size_bytes,
                            "encoding": info.encoding,
                            "discovered_at": now,
                        },
                    )
                op.details["databases"] = sorted(keep)[:50]
        op.details["connection"] = server.connection_status
        server.save(update_fields=["checked_at", "connection_status", "connection_message", "server_version"])
    return result


def _database_target(server: PostgresServer, name: str) -> str:
    return f"{server.resource_id}/databases/{name or '-'}"


def _validate_new_database(server: PostgresServer, name: str) -> None:
    naming.validate_postgres_database_name(name)
    reason = postgres.exclusion_reason(name)
    if reason:
        raise ValidationError({"name": f"'{name}' is reserved ({reason}); choose another name."})


def create_sample_database(principal, server: PostgresServer, *, name: str) -> PostgresDatabase:
    """Create ``name`` from template0 and load the seeded sample schema (schemas, tables, rows)."""
    name = (name or "").strip()
    with guarded(principal, POSTGRES_DATABASE_WRITE, _database_target(server, name)) as op:
        _validate_new_database(server, name)
        params = server.connection_params()
        try:
            if postgres.database_exists(params, name):
                raise ValidationError({"name": f"A database named '{name}' already exists on {server.host}:{server.port}."})
            postgres.create_database(params, name)
        except postgres.psycopg.Error as exc:
            raise ValidationError(postgres.describe_error(exc, params)) from exc
        try:
            counts = postgres.load_sample_schema(params.with_database(name), seed=zlib.crc32(name.encode()))
            info = next((d for d in postgres.discover_databases(params) if d.name == name), None)
            database = PostgresDatabase.objects.create(
                server=server, name=name, is_sample=True, created_by_strongroom=True, discovered_at=clock.now(),
                owner=info.owner if info else server.admin_user, size_bytes=info.size_bytes if info else 0,
                encoding=info.encoding if info else "",
            )
        except BaseException:
            # Nothing half-created: the new database goes again if its schema could not be loaded.
            try:
                postgres.drop_database(params, name)
            except Exception:  # noqa: BLE001
                logger.exception("Could not drop %s after a failed sample load", name)
            raise
        op.details["tables"] = counts
        op.result_scope = database.resource_id
    return database


def create_database(principal, server: PostgresServer, *, name: str) -> PostgresDatabase:
    """Create an empty database from template0 (restores load into one of these)."""
    name = (name or "").strip()
    with guarded(principal, POSTGRES_DATABASE_WRITE, _database_target(server, name)) as op:
        _validate_new_database(server, name)
        params = server.connection_params()
        try:
            if postgres.database_exists(params, name):
                raise ValidationError({"name": f"A database named '{name}' already exists on {server.host}:{server.port}."})
            postgres.create_database(params, name)
        except postgres.psycopg.Error as exc:
            raise ValidationError(postgres.describe_error(exc, params)) from exc
        database = PostgresDatabase.objects.create(
            server=server, name=name, owner=server.admin_user, created_by_strongroom=True, discovered_at=clock.now()
        )
        op.result_scope = database.resource_id
    return database


def delete_database(principal, database: PostgresDatabase) -> None:
    """Drop the database on the server (Strongroom's own and templates can never be dropped)."""
    with guarded(principal, POSTGRES_DATABASE_DELETE, database) as op:
        if not database.created_by_strongroom:
            raise ValidationError(
                f"Strongroom drops only databases it created (sample databases and restore targets); "
                f"'{database.name}' was found on the server. Drop it with your own PostgreSQL tools if you mean to."
            )
        server = database.server
        params = server.connection_params()
        _forget_assignments(op, database.resource_id, "database")
        database.delete()
        try:
            postgres.drop_database(params, database.name)
        except (postgres.psycopg.Error, ValueError) as exc:
            raise ValidationError(f"Could not drop '{database.name}': {exc}") from exc
