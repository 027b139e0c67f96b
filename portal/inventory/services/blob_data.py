"""Blob data: who may read, write or delete blobs (a data action, or the account's keys) and the
uploads and deletes themselves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Iterable

from django.core.exceptions import ValidationError

from portal.inventory import blobs, fs
from portal.inventory.models import Container
from security.audit import guarded
from security.guards import GuardDenied, evaluate
from security.operations import BLOB_DELETE, BLOB_READ, BLOB_WRITE, STORAGE_ACCOUNT_LIST_KEYS
from security.rbac import authorize


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
