"""The vault a path names: authorized at the path's scope first (403), then found (404)."""

from portal.api import lookups
from portal.api.errors import not_found
from security import operations as ops
from vaults.models import BackupVault


def vault_scope(subscription_id: str, resource_group_name: str, vault_name: str) -> str:
    return f"{lookups.rg_scope(subscription_id, resource_group_name)}/providers/{ops.VAULT_TYPE}/{vault_name}"


def vault(request, subscription_id: str, resource_group_name: str, vault_name: str, *, action: str | None = ops.VAULT_READ) -> BackupVault:
    """``action`` (a read, by default) is authorized at the vault's scope before anything is looked up;
    pass ``action=None`` when the service called next authorizes the write itself."""
    sub = lookups.subscription(subscription_id)
    if action:
        lookups.require(request.auth, action, vault_scope(str(sub.subscription_id), resource_group_name, vault_name))
    group = lookups.resource_group(request.auth, subscription_id, resource_group_name)
    found = (
        BackupVault.objects.filter(resource_group=group, name__iexact=vault_name)
        .select_related("resource_group__subscription", "region")
        .first()
    )
    if found is None:
        raise not_found(ops.VAULT_TYPE, vault_name, group.name)
    return found
