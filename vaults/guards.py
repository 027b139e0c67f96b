"""Guards that `vaults` registers with `security.guards` (DESIGN §7), and the hooks they ask.

**Vault deletion rules.** A Backup vault cannot be deleted while it holds backup instances (in any
state, soft-deleted included) or backup policies. `vaults` does not know those models (they live in
`protection`, above it), so the guard asks *contents checks* that upper apps register at start-up::

    from vaults.guards import register_contents_check

    def vault_has_contents(vault) -> bool:
        return BackupInstance.objects.filter(vault=vault).exists() or ...

    register_contents_check(vault_has_contents)   # in protection's AppConfig.ready()

When any check answers yes, `evaluate(principal, VAULT_DELETE, vault)` refuses with Azure's exact
message (`VAULT_NOT_EMPTY_MESSAGE`). The immutability and soft-delete guards below plug in the same way,
through `security.guards.register_guard` (called from `VaultsConfig.ready`), reading the object passed
as ``target`` and the ``change`` dict each service describes (see `vaults.services`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Callable

from security import clock
from security.guards import Refusal, register_guard, target_scope
from security.operations import (
    INSTANCE_DELETE,
    INSTANCE_WRITE,
    POLICY_WRITE,
    RECOVERY_POINT_DELETE,
    UNDELETE,
    VAULT_DELETE,
    VAULT_WRITE,
)

DELETION_RULES_GUARD = "Vault deletion rules"
DELETION_RULES_ORDER = 50  # after RBAC (0) and the MUA / immutability / soft-delete guards

VAULT_NOT_EMPTY_CODE = "UserErrorVaultNotEmpty"
VAULT_NOT_EMPTY_MESSAGE = (
    "Cannot delete the Backup vault as there are existing backup instances or backup policies in the "
    "vault. Delete all backup instances and backup policies that are present in the vault and then try "
    "deleting the vault."
)
VAULT_NOT_EMPTY_REMEDY = (
    "Stop protection and delete the data of every backup instance (soft-deleted instances count too: "
    "wait for their purge or undelete and delete them), delete every backup policy, then delete the vault."
)

ContentsCheck = Callable[[object], bool]
_contents_checks: list[ContentsCheck] = []


def register_contents_check(check: ContentsCheck) -> None:
    """Register ``check(vault) -> bool``: True when the vault holds backup instances or policies."""
    if check not in _contents_checks:
        _contents_checks.append(check)


def unregister_contents_check(check: ContentsCheck) -> None:
    if check in _contents_checks:
        _contents_checks.remove(check)


def vault_has_contents(vault) -> bool:
    return any(check(vault) for check in list(_contents_checks))


def _vault_of(target):
    from vaults.models import BackupVault

    if isinstance(target, BackupVault):
        return target
    if isinstance(target, str):
        return BackupVault.objects.filter(resource_id__iexact=target.rstrip("/")).first()
    return None


def vault_deletion_guard(principal, operation, target, change) -> Refusal | None:
    if operation.lower() != VAULT_DELETE.lower():
        return None
    vault = _vault_of(target)
    if vault is None or not vault_has_contents(vault):
        return None
    return Refusal(
        guard=DELETION_RULES_GUARD,
        code=VAULT_NOT_EMPTY_CODE,
        reason=VAULT_NOT_EMPTY_MESSAGE,
        remedy=VAULT_NOT_EMPTY_REMEDY,
    )


# --- immutability (reference §3.1, decision 5) ----------------------------------------------------------
#
# While a vault is immutable (Unlocked = "Enabled", Locked = "Enabled and locked") the guard refuses:
#
# * stop protection with deletion of data (``backupInstances/delete``);
# * deleting or expiring a vault-tier recovery point before its expiry (``recoveryPoints/delete`` with
#   ``change["expiry_time"]`` later than now, or no expiry at all: a point kept forever);
# * reducing retention: a policy edit (``backupPolicies/write``) or moving an instance to another
#   policy (``backupInstances/write``) whose ``change`` says the retention gets shorter
#   (``max_retention_days_before`` / ``_after``, and per retention tag ``retention_before`` /
#   ``retention_after`` as ISO 8601 durations). Raising retention stays allowed;
# * leaving the Locked state (``backupVaults/write`` with ``change["setting"] == "immutability"``): the
#   service refuses it too; the guard makes the preview say so and holds even if a service forgot.
#
# Operational-tier data (Elastic SAN snapshots) is outside immutability, as in Azure: a ``change`` with
# ``datastore == "OperationalStore"``, or a target whose ``datasource.datastore`` says so, passes.
# `vaults` cannot import `protection`, so the guard reads actions as strings and targets by duck typing.

IMMUTABILITY_GUARD = "Immutability"
IMMUTABILITY_ORDER = 20  # after RBAC (0) and MUA (10), before the vault deletion rules (50)

OPERATIONAL_STORE = "OperationalStore"

IMMUTABLE_CODE = "UserErrorImmutableVaultOperationNotAllowed"
LOCKED_CODE = "UserErrorImmutabilityLocked"

_VAULT_ID_RE = re.compile(r"^(/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.DataProtection/"
                          r"backupVaults/[^/]+)", re.I)
_ISO_RE = re.compile(r"^P(\d+)([DWMY])$", re.I)
_UNIT_DAYS = {"D": 1, "W": 7, "M": 30.4375, "Y": 365}


def iso_days(duration) -> float | None:
    """Approximate days of a retention duration ("P30D", "P12W", "P6M", "P10Y"); None if unknown."""
    match = _ISO_RE.match(str(duration or "").strip())
    if not match:
        return None
    return int(match.group(1)) * _UNIT_DAYS[match.group(2).upper()]


def retention_reduced(change: dict) -> list[str]:
    """What in ``change`` makes retention shorter, as readable lines (empty when nothing does).

    A new policy or instance (``max_retention_days_before`` None) reduces nothing. A removed tag reduces
    retention only when the new Default, which its points fall back to, is shorter than it was."""
    before, after = change.get("max_retention_days_before"), change.get("max_retention_days_after")
    lines = []
    if before is not None and after is not None and float(after) < float(before):
        lines.append(f"the longest retention goes from {float(before):g} to {float(after):g} days")
    old, new = change.get("retention_before") or {}, change.get("retention_after") or {}
    if old and new:
        for tag, duration in old.items():
            was, becomes = iso_days(duration), iso_days(new.get(tag))
            if tag not in new:
                # Its points fall back to Default: shorter only if the new Default is (issue 21).
                fallback = iso_days(new.get("Default"))
                if was is None or fallback is None or fallback < was:
                    lines.append(f"the {tag} rule ({duration}) is removed")
            elif was is not None and becomes is not None and becomes < was:
                lines.append(f"{tag} goes from {duration} to {new[tag]}")
    return lines


def _vault_state_of(target) -> tuple[str, str] | None:
    """(immutability state, vault name) of the vault that holds ``target``, read fresh."""
    from vaults.models import BackupVault

    try:
        scope = target_scope(target)
    except TypeError:
        return None
    match = _VAULT_ID_RE.match(scope)
    if not match:
        return None
    row = (BackupVault.objects.filter(resource_id__iexact=match.group(1))
           .values_list("immutability_state", "name").first())
    return row


def _datastore_of(target, change) -> str:
    if change.get("datastore"):
        return str(change["datastore"])
    datasource = getattr(target, "datasource", None)
    if datasource is None and getattr(target, "instance", None) is not None:  # a recovery point
        return getattr(target, "datastore", "") or ""
    return getattr(datasource, "datastore", "") or ""


def _when(value):
    if value is None or isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _immutable_refusal(state: str, vault_name: str, what: str, *, extra: dict | None = None) -> Refusal:
    locked = state == "Locked"
    label = "enabled and locked" if locked else "enabled"
    if locked:
        remedy = ("Immutability is locked and can never be disabled: the data stays until it expires. "
                  "To stop protecting the datasource, stop backup and retain the data instead.")
    else:
        remedy = ("Wait until the data expires, or disable immutability in the vault's Properties > Immutable "
                  "vault (a protected operation when a Resource Guard protects the vault). To stop protecting the "
                  "datasource now, stop backup and retain the data instead.")
    return Refusal(
        guard=IMMUTABILITY_GUARD,
        code=IMMUTABLE_CODE,
        reason=f"The Backup vault '{vault_name}' is immutable (immutability {label}): {what}",
        remedy=remedy,
        extra={"immutability_state": state, "vault": vault_name, **(extra or {})},
    )


def immutability_guard(principal, operation, target, change) -> Refusal | None:
    change = change or {}
    op = operation.lower()
    if op == VAULT_WRITE.lower() and change.get("setting") == "immutability":
        before = (change.get("from") or {}).get("state")
        after = (change.get("to") or {}).get("state")
        if before == "Locked" and after != "Locked":
            name = getattr(target, "name", "") or target_scope(target).rsplit("/", 1)[-1]
            return Refusal(
                guard=IMMUTABILITY_GUARD,
                code=LOCKED_CODE,
                reason=f"Immutability is locked for the Backup vault '{name}': it cannot be disabled or unlocked "
                       "by anyone.",
                remedy="Nothing lifts it: locking is irreversible. The vault's data can only expire.",
                extra={"immutability_state": "Locked"},
            )
        return None
    if op not in (INSTANCE_DELETE.lower(), RECOVERY_POINT_DELETE.lower(), POLICY_WRITE.lower(),
                  INSTANCE_WRITE.lower()):
        return None
    if _datastore_of(target, change) == OPERATIONAL_STORE:
        return None  # Elastic SAN snapshots: outside immutability, as in Azure
    found = _vault_state_of(target)
    if found is None or found[0] not in ("Unlocked", "Locked"):
        return None
    state, vault_name = found
    if op == INSTANCE_DELETE.lower():
        return _immutable_refusal(state, vault_name, "stopping protection with deletion of backup data is not "
                                  "allowed. Recovery points cannot be deleted before they expire.")
    if op == RECOVERY_POINT_DELETE.lower():
        expiry = _when(change.get("expiry_time"))
        now = _when(change.get("now")) or clock.now()
        if expiry is not None and expiry <= now:
            return None  # expired: retention may delete it
        when = f"before its expiry ({expiry:%Y-%m-%d %H:%M} UTC)" if expiry else "while it is kept forever"
        return _immutable_refusal(state, vault_name, f"a recovery point cannot be deleted {when}.",
                                  extra={"expiry_time": expiry.isoformat() if expiry else None})
    reduced = retention_reduced(change)
    if not reduced:
        return None
    what = ("moving the backup instance to a policy with shorter retention" if op == INSTANCE_WRITE.lower()
            else "reducing the policy's retention")
    return _immutable_refusal(state, vault_name, f"{what} is not allowed ({'; '.join(reduced)}). Raising "
                              "retention is allowed.", extra={"reduced": reduced})



# --- soft delete (reference §3.2, decision 4) -----------------------------------------------------------
#
# What soft delete forbids, refused before the click (the previews ask the same guard):
#
# * leaving AlwaysOn (``backupVaults/write`` with ``change["setting"] == "softDelete"``): irreversible;
# * deleting the backup data of an instance that is soft deleted, or being soft deleted
#   (``backupInstances/delete``);
# * moving a soft-deleted instance to another policy (``backupInstances/write``, ``setting == "policy"``);
# * undeleting (``deletedBackupInstances/undelete/action``) an instance that is not soft deleted, is still
#   being soft deleted, or is past its scheduled purge (its purge has begun; the lab clock decides).
#
# Instances are judged by their stored state (fetched again through the target's own model: a caller's
# copy may be older than a job that moved it on), read by duck typing as `vaults` cannot import
# `protection`. The services ask the same rules again under their row lock.

SOFT_DELETE_GUARD = "Soft delete"
SOFT_DELETE_ORDER = 30  # after RBAC (0), MUA (10) and immutability (20), before the vault deletion rules (50)

ALWAYS_ON = "AlwaysOn"
SOFT_DELETING = "SoftDeleting"
SOFT_DELETED = "SoftDeleted"

ALWAYS_ON_CODE = "UserErrorSoftDeleteAlwaysOn"
INSTANCE_SOFT_DELETED_CODE = "UserErrorBackupInstanceSoftDeleted"
NOT_SOFT_DELETED_CODE = "UserErrorBackupInstanceNotSoftDeleted"
PURGE_STARTED_CODE = "UserErrorSoftDeletePurgeStarted"


def _soft_delete_refusal(code: str, reason: str, remedy: str, **extra) -> Refusal:
    return Refusal(guard=SOFT_DELETE_GUARD, code=code, reason=reason, remedy=remedy, extra=extra)


def always_on_refusal(current_state, new_state) -> Refusal | None:
    """Why soft delete may not go from ``current_state`` to ``new_state`` (None when it may)."""
    if current_state != ALWAYS_ON or new_state == ALWAYS_ON:
        return None
    return _soft_delete_refusal(
        ALWAYS_ON_CODE,
        "Soft delete is always-on for this vault: it is permanently enabled and cannot be changed.",
        "Nothing lifts it: always-on is irreversible. Only the retention period can change.",
        field="state", soft_delete_state=ALWAYS_ON)


def _state_label(instance) -> str:
    display = getattr(instance, "get_protection_state_display", None)
    return (display() if display else instance.protection_state).lower()


def _is_soft_deleted(instance) -> bool:
    return instance.protection_state in (SOFT_DELETING, SOFT_DELETED)


def delete_data_refusal(instance) -> Refusal | None:
    """Deleting the backup data of a soft-deleted (or soft-deleting) instance: refused."""
    if not _is_soft_deleted(instance):
        return None
    return _soft_delete_refusal(
        INSTANCE_SOFT_DELETED_CODE,
        f"'{instance.name}' is {_state_label(instance)}: its backup data cannot be deleted now. Undelete it first, "
        "or wait for its purge.",
        "Its data is already deleted and kept only until its purge. Undelete it to act on it again.")


def change_policy_refusal(instance) -> Refusal | None:
    """Moving a soft-deleted (or soft-deleting) instance to another policy: refused."""
    if not _is_soft_deleted(instance):
        return None
    return _soft_delete_refusal(
        INSTANCE_SOFT_DELETED_CODE, "A soft-deleted backup instance cannot change policy: undelete it first.",
        "Undelete the backup instance, then change its policy.")


def undelete_refusal(instance, now) -> Refusal | None:
    """Why ``instance`` cannot be undeleted at ``now`` (None when it can)."""
    name, state = instance.name, instance.protection_state
    if state == SOFT_DELETING:
        return _soft_delete_refusal(
            NOT_SOFT_DELETED_CODE, f"'{name}' is still being soft deleted: try again in a moment.",
            "Wait until its Delete backup data job has finished, then undelete it.")
    if state != SOFT_DELETED:
        return _soft_delete_refusal(
            NOT_SOFT_DELETED_CODE,
            f"'{name}' is {_state_label(instance)}, not soft deleted: there is nothing to undelete.",
            "Undelete applies to soft-deleted backup instances only.")
    purge_at = instance.scheduled_purge_at
    if instance.purge_started_at is None and not (purge_at and purge_at <= now):
        return None
    when = f" ({purge_at:%Y-%m-%d %H:%M} UTC)" if purge_at else ""
    return _soft_delete_refusal(
        PURGE_STARTED_CODE,
        f"'{name}' passed its scheduled purge time{when} and is being purged: it can no longer be undeleted.",
        "Nothing lifts it: its soft-delete retention is over and the purge deletes its data for good.")


def _stored(target):
    """The target's stored row as it is now (the target itself when it is not a stored model object)."""
    manager = getattr(type(target), "_default_manager", None)
    if manager is None or getattr(target, "pk", None) is None:
        return target
    return manager.filter(pk=target.pk).first() or target


def soft_delete_guard(principal, operation, target, change) -> Refusal | None:
    change = change or {}
    op = operation.lower()
    if op == VAULT_WRITE.lower():
        if change.get("setting") != "softDelete":
            return None
        return always_on_refusal((change.get("from") or {}).get("state"), (change.get("to") or {}).get("state"))
    if getattr(target, "protection_state", None) is None:
        return None  # not a backup instance
    if op == INSTANCE_DELETE.lower():
        return delete_data_refusal(_stored(target))
    if op == INSTANCE_WRITE.lower() and change.get("setting") == "policy":
        return change_policy_refusal(_stored(target))
    if op == UNDELETE.lower():
        return undelete_refusal(_stored(target), clock.now())
    return None


def register_vault_guards() -> None:
    """Called from `VaultsConfig.ready()`."""
    register_guard(IMMUTABILITY_GUARD, immutability_guard, order=IMMUTABILITY_ORDER)
    register_guard(SOFT_DELETE_GUARD, soft_delete_guard, order=SOFT_DELETE_ORDER)
    register_guard(DELETION_RULES_GUARD, vault_deletion_guard, order=DELETION_RULES_ORDER)
