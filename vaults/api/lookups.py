"""The vault a path names: authorized at the path's scope first (403), then found (404)."""

from portal.api import lookups
from portal.api.errors import ArmError, not_found
from portal.models import ResourceGroup
from security import operations as ops
from vaults.models import BackupVault


# The path of a Backup vault in the management API; every vault-scoped route hangs below it.
VAULT_PATH = ("/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.DataProtection"
              "/backupVaults/{vaultName}")


def vault_scope(subscription_id: str, resource_group_name: str, vault_name: str) -> str:
    return f"{lookups.rg_scope(subscription_id, resource_group_name)}/providers/{ops.VAULT_TYPE}/{vault_name}"


def vault(request, subscription_id: str, resource_group_name: str, vault_name: str, *, action: str | None = ops.VAULT_READ) -> BackupVault:
    """``action`` (a read, by default) is authorized at the vault's scope before anything is looked up;
    pass ``action=None`` when the service called next authorizes the write itself."""
    sub = lookups.subscription(subscription_id)
    if action:
        lookups.require(request.auth, action, vault_scope(str(sub.subscription_id), resource_group_name, vault_name))
    group = lookups.resource_group(request.auth, subscription_id, resource_group_name, sub=sub)
    found = (
        BackupVault.objects.filter(resource_group=group, name__iexact=vault_name)
        .select_related("resource_group__subscription", "region")
        .first()
    )
    if found is None:
        raise not_found(ops.VAULT_TYPE, vault_name, group.name)
    return found


def group_for_write(request, subscription_id: str, resource_group_name: str, vault_name: str, *, action: str):
    """The resource group a write names. A missing group is 404 only for a caller who may write there
    (403 first otherwise, as ARM authorizes before it looks); an existing one is left to the service's
    guard."""
    sub = lookups.subscription(subscription_id)
    group = ResourceGroup.objects.filter(subscription=sub, name__iexact=resource_group_name).select_related(
        "region", "subscription").first()
    if group is None:
        lookups.require(request.auth, action, vault_scope(str(sub.subscription_id), resource_group_name, vault_name))
        raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{resource_group_name}' could not be found.")
    return group


def vault_in(group, vault_name: str) -> BackupVault | None:
    return (
        BackupVault.objects.filter(resource_group=group, name__iexact=vault_name)
        .select_related("resource_group__subscription", "region", "identity")
        .first()
    )


def vault_for_write(request, subscription_id: str, resource_group_name: str, vault_name: str, *, action: str):
    """An existing vault a write names, left to the write's service to authorize; when it does not
    exist, 404 only for a caller who may do ``action`` there (403 otherwise)."""
    group = group_for_write(request, subscription_id, resource_group_name, vault_name, action=action)
    found = vault_in(group, vault_name)
    if found is None:
        lookups.require(request.auth, action, vault_scope(subscription_id, resource_group_name, vault_name))
        raise not_found(ops.VAULT_TYPE, vault_name, group.name)
    return found
