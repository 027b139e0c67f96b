"""Who may look inside a recovery point: its file list, a database's table of contents, one item.

That is data access — it shows the data itself — so it needs what reading the live data needs, or
the permission to restore it (reference §2.1: ``backupInstances/restore/action``):

* **Listing** (a container's folders and files, a dump's table of contents): the right to read the
  datasource's data live, *or* the restore permission on the backup instance (whoever may restore
  the point may see what it holds to choose from it).
* **Downloading an item** is an item-level restore that hands the bytes to the caller: it needs the
  restore permission (it is logged as a restore) *and* the right to read that data live. A Backup
  Operator who cannot read a blob in the storage account cannot read it out of a backup either.
* Either way the backup instance must be in a state that allows restore: never while it is soft
  deleted (or being deleted) or while protection is being configured.

What "reading the live data" means per datasource:

* ADLS: reading blobs of that container — the blob read data action on the container, or listing the
  account's keys (the access-key path the portal takes for Owners and Contributors), as
  `portal.inventory.services.blob_access` decides for the live container.
* PostgreSQL: using the server's stored admin login, ``flexibleServers/write`` on the server
  (`portal.inventory.services.POSTGRES_USE_ADMIN_LOGIN`).

Every refusal is a `GuardDenied` carrying the decision, so the page shows the explained denial (and
any API the same decision). Refusals are recorded in the activity log; successful listings are reads
and are not, a download is (as a restore of that item).
"""

from __future__ import annotations

import dataclasses

from protection import datasource_types, network
from protection.models import ProtectionState
from security.audit import record_denial
from security.guards import Decision, GuardDenied, Refusal, evaluate
from security.operations import RESTORE, UNDELETE

STATE_GUARD = "Backup instance state"
SOFT_DELETED_CODE = "UserErrorBackupInstanceSoftDeleted"
NOT_PROTECTED_CODE = "UserErrorBackupInstanceNotProtected"
POINT_SOFT_DELETED_CODE = "UserErrorRecoveryPointSoftDeleted"

_SOFT_DELETED = (ProtectionState.SOFT_DELETED, ProtectionState.SOFT_DELETING)
_CONFIGURING = (ProtectionState.CONFIGURING, ProtectionState.CONFIGURING_FAILED)

LIST = "list"
DOWNLOAD = "download"


def _name(principal) -> str:
    return getattr(principal, "display_name", "anonymous")


def live_read(principal, instance, item: str = "") -> Decision:
    """May ``principal`` read the datasource's data live? ``item`` is the container (ADLS)."""
    from portal.inventory import services as inventory

    source = instance.datasource_resource_id
    if instance.datasource_type == datasource_types.ADLS:
        return inventory.blob_read_decision(principal, source, inventory.container_resource_id(source, item or "-"))
    if instance.datasource_type == datasource_types.POSTGRES_FLEX:
        return evaluate(principal, inventory.POSTGRES_USE_ADMIN_LOGIN, source)
    # Elastic SAN points show a volume's size and checksum, never its blocks: nothing to browse.
    raise ValueError(f"Recovery points of {instance.datasource_type!r} hold nothing to browse or download.")


def state_refusal(instance) -> Refusal | None:
    """Why the instance's state forbids reading its recovery points' data (None when it allows it)."""
    state = instance.protection_state
    label = instance.get_protection_state_display().lower()
    if state in _SOFT_DELETED:
        return Refusal(
            guard=STATE_GUARD, code=SOFT_DELETED_CODE,
            reason=(f"The backup instance '{instance.name}' is {label}: the data of its recovery points cannot be "
                    "browsed, downloaded or restored while it is soft deleted."),
            remedy=("Undelete the backup instance first (vault > Backup instances > Deleted; it needs "
                    f"'{UNDELETE}'), then try again."),
        )
    if state in _CONFIGURING:
        return Refusal(
            guard=STATE_GUARD, code=NOT_PROTECTED_CODE,
            reason=f"The backup instance '{instance.name}' is {label}: its recovery points cannot be read yet.",
            remedy="Wait until protection is configured (or configure protection again), then try again.",
        )
    return None


def _with_remedy(decision: Decision, remedy: str) -> Decision:
    if decision.refusal is None or decision.guard != "RBAC":
        return decision
    return dataclasses.replace(decision, refusal=dataclasses.replace(decision.refusal, remedy=remedy))


def _live_action_words(instance, item: str) -> str:
    from portal.inventory import services as inventory

    if instance.datasource_type == datasource_types.ADLS:
        return (f"read the blobs of the container '{item}' live ('{inventory.BLOB_READ}', e.g. Storage Blob Data "
                f"Contributor, or '{inventory.STORAGE_ACCOUNT_LIST_KEYS}' on the storage account, as "
                "Contributors hold)")
    if instance.datasource_type == datasource_types.POSTGRES_FLEX:
        return (f"use the server's admin login ('{inventory.POSTGRES_USE_ADMIN_LOGIN}' on the server, e.g. "
                "Contributor)")
    return f"read the datasource '{instance.datasource_name}' live"


def decide(principal, point, kind: str, item: str = "") -> Decision:
    """The decision for listing (``LIST``) or downloading (``DOWNLOAD``) ``item`` of ``point``.

    No side effect: pages call it to show or disable their links; `require` logs and raises.
    """
    instance = point.instance
    live = live_read(principal, instance, item)
    if kind == LIST:
        if live.allowed:
            decision = live
        else:
            restore = evaluate(principal, RESTORE, instance)
            decision = restore if restore.allowed else _with_remedy(restore, (
                "What a recovery point holds is data: listing it needs the permission to restore this backup "
                f"instance ('{RESTORE}', e.g. Backup Operator or Backup Contributor) or the right to "
                f"{_live_action_words(instance, item)}. Ask someone who can assign roles (Owner, User Access "
                "Administrator or Role Based Access Control Administrator) for one of them."))
    elif kind == DOWNLOAD:
        if not live.allowed:
            decision = _with_remedy(live, (
                "Downloading from a recovery point reads the data itself, so it needs the same right as reading "
                f"it live: {_live_action_words(instance, item)}, besides the permission to restore. Ask someone "
                "who can assign roles (Owner, User Access Administrator or Role Based Access Control "
                "Administrator) for it."))
        else:
            decision = evaluate(principal, RESTORE, instance)
    else:
        raise ValueError(kind)
    if not decision.allowed:
        return decision
    network_refused = network.decision(principal, instance, RESTORE,
                                       what=network.BROWSE_WHAT if kind == LIST else "Downloading from the recovery point")
    if network_refused is not None:
        return network_refused
    refusal = state_refusal(instance) or point_refusal(point)
    if refusal is not None:
        return Decision(False, RESTORE, instance.resource_id, _name(principal), refusal)
    return decision


def point_refusal(point) -> Refusal | None:
    """A point being soft deleted (a shorter retention expired it, issue 21) is not read: like a restore."""
    if not getattr(point, "is_soft_deleted", False):
        return None
    return Refusal(
        guard=STATE_GUARD, code=POINT_SOFT_DELETED_CODE,
        reason=(f"This recovery point is being soft deleted: the backup policy's shorter retention expired it, and it "
                f"is purged on {point.expiry_time:%Y-%m-%d %H:%M} UTC. Its data cannot be browsed, downloaded or "
                "restored."),
        remedy="Raise the retention of the instance's backup policy before the purge to bring it back, or use another "
               "recovery point.",
    )


def require(principal, point, kind: str, item: str = "", *, what: str = "") -> Decision:
    """`decide`, logging a refusal (with what was asked for) and raising it as `GuardDenied`."""
    decision = decide(principal, point, kind, item)
    if not decision.allowed:
        details = {"recoveryPointId": str(point.pk), "instance": point.instance.name,
                   "dataAccess": what or kind}
        if item:
            details["item"] = item[:200]
        record_denial(principal, decision, details)
        raise GuardDenied(decision)
    return decision
