"""The policy, instance, recovery point or job a path names, inside the vault it names (see
``vaults.api.lookups.vault``: authorized at the path's scope first, then found)."""

from portal.api import lookups
from portal.api.errors import ArmError, not_found
from protection.models import BackupInstance, BackupPolicy, ProtectionState
from security import operations as ops
from vaults.api.lookups import VAULT_PATH, vault, vault_scope


INSTANCE_PATH = VAULT_PATH + "/backupInstances/{backupInstanceName}"

SOFT_DELETED_STATES = (ProtectionState.SOFT_DELETING, ProtectionState.SOFT_DELETED)


def child_scope(subscription_id, resource_group_name, vault_name, kind: str, name: str) -> str:
    return f"{vault_scope(subscription_id, resource_group_name, vault_name)}/{kind}/{name}"


def policy(request, subscription_id, resource_group_name, vault_name, policy_name, *, action=ops.POLICY_READ) -> BackupPolicy:
    if action:
        lookups.require(request.auth, action, child_scope(subscription_id, resource_group_name, vault_name, "backupPolicies", policy_name))
    found_vault = vault(request, subscription_id, resource_group_name, vault_name, action=None)
    found = BackupPolicy.objects.filter(vault=found_vault, name__iexact=policy_name).first()
    if found is None:
        raise not_found(ops.POLICY_TYPE, f"{vault_name}/{policy_name}", found_vault.resource_group.name)
    return found


def instance(request, subscription_id, resource_group_name, vault_name, instance_name, *, action=ops.INSTANCE_READ,
             deleted=False, write: str | None = None) -> BackupInstance:
    """A backup instance by name; ``deleted`` finds a soft-deleted one (``deletedBackupInstances``),
    otherwise a soft-deleted instance is not found. ``action`` (a read) is authorized before the lookup;
    with ``action=None`` the service called next authorizes the ``write``, and a group, vault or instance
    that is not there is 404 only for a caller who may do ``write`` at the path (403 otherwise, as ARM
    authorizes before it looks: no one learns which names exist)."""
    kind = "deletedBackupInstances" if deleted else "backupInstances"
    scope = child_scope(subscription_id, resource_group_name, vault_name, kind, instance_name)
    if action:
        lookups.require(request.auth, action, scope)
    try:
        return _instance(request, subscription_id, resource_group_name, vault_name, instance_name, deleted)
    except ArmError as exc:
        if exc.status == 404 and write and not action:
            lookups.require(request.auth, write, scope)
        raise


def _instance(request, subscription_id, resource_group_name, vault_name, instance_name, deleted) -> BackupInstance:
    found_vault = vault(request, subscription_id, resource_group_name, vault_name, action=None)
    rows = BackupInstance.objects.filter(vault=found_vault, name__iexact=instance_name)
    # As `BackupInstance.is_soft_deleted` says: a hard delete in progress (deleted_at set, UpdatingProtection)
    # is no deleted backup instance, and stays a backup instance until its job removes it.
    rows = rows.filter(protection_state__in=SOFT_DELETED_STATES) if deleted else rows.exclude(protection_state__in=SOFT_DELETED_STATES)
    found = rows.select_related("vault", "policy").first()
    if found is None:
        kind = f"{ops.VAULT_TYPE}/deletedBackupInstances" if deleted else ops.INSTANCE_TYPE
        raise not_found(kind, f"{vault_name}/{instance_name}", found_vault.resource_group.name)
    return found
