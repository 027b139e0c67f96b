"""Storage accounts and their containers: a folder per account (managed, or attached from an allowed
root), a sub-folder per container."""

from __future__ import annotations

import os

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from portal.inventory import blobs, fs, naming
from portal.inventory.models import Container, StorageAccount
from portal.inventory.services.common import forget_assignments, make_data_dir, new_resource_id
from portal.inventory.services.network import datasource_region, join_subnet_first
from portal.models import ResourceGroup
from security.audit import guarded
from security.operations import CONTAINER_DELETE, CONTAINER_WRITE, STORAGE_ACCOUNT_DELETE, STORAGE_ACCOUNT_WRITE


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
    network_subnet=None,
) -> StorageAccount:
    """Create a storage account with a new empty folder, or attach an existing folder.

    An attached folder's sub-folders whose names are valid container names become its containers.
    """
    name = (name or "").strip()
    target = new_resource_id(resource_group, StorageAccount.RESOURCE_TYPE, name or "-")
    details = {"hierarchicalNamespace": hierarchical_namespace, "sku": sku}
    if attach_path:
        details["attachedPath"] = attach_path
    join_subnet_first(principal, network_subnet, target, details)
    with guarded(principal, STORAGE_ACCOUNT_WRITE, target, details=details) as op:
        naming.validate_storage_account_name(name)
        region = datasource_region(region, network_subnet, name)
        if sku not in StorageAccount.Redundancy.values:
            raise ValidationError({"sku": "Choose a redundancy option."})
        if StorageAccount.objects.filter(name__iexact=name).exists():
            raise ValidationError({"name": f"The storage account named {name} is already taken."})
        attached = _check_attach_path(attach_path) if attach_path else ""
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
                    network_subnet=network_subnet,
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
            make_data_dir(account.data_path)
    return account


def _check_attach_path(attach_path: str) -> str:
    """The folder to attach, resolved below an allowed root and overlapping no other account's folder."""
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
    return attached


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
        forget_assignments(op, account.resource_id, "storage account")
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
        forget_assignments(op, container.resource_id, "container")
        container.delete()
        fs.remove_tree(path)


def container_resource_id(account_id: str, name: str) -> str:
    return f"{account_id}/blobServices/default/containers/{name}"
