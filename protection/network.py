"""What protection tells the vault's network guard (`vaults.networking.guard`): which operations move data
between a datasource and the vault, and which datasource.

* ``backup/action`` on a backup instance (Backup now, and the Backup job authorized again when it runs):
  the instance's datasource → the vault.
* ``restore/action`` on a backup instance (Restore, its job, downloading from a recovery point): the vault → the
  restore target's datasource (``change["targetResourceId"]``), or the instance's own datasource when the
  target is not told (the instance page's preview; a download hands the bytes to the datasource's side).
* Browsing a recovery point (`restores.access`) asks `refusal` directly: a listing may be allowed by the live
  read right alone, without ``restore/action``.

Verify stays inside the vault; validation, policies, properties and IAM are management: none is judged.
A datasource is the storage account, Elastic SAN or PostgreSQL server whose ``network_subnet`` says where it
reaches the vault from (a container, volume group or volume belongs to its account or SAN).
"""

from __future__ import annotations

from django.db.models.functions import Lower

from protection.models import BackupInstance, RecoveryPoint
from security import operations as ops
from security.guards import Decision

BACKUP_WHAT = "Backup"
RESTORE_WHAT = "Restore"
CROSS_REGION_WHAT = "Restore to the secondary region"
BROWSE_WHAT = "Browsing the recovery point"


def _prefixes(resource_id: str) -> list[str]:
    parts = (resource_id or "").strip().rstrip("/").lower().split("/")
    return ["/".join(parts[:i]) for i in range(len(parts), 8, -2)]  # /subscriptions/s/resourceGroups/g/providers/p/t/n


def datasource_for(resource_id: str):
    """The inventory row (storage account, Elastic SAN, PostgreSQL server) that ``resource_id`` is or belongs to."""
    from portal.inventory.models import ElasticSan, PostgresServer, StorageAccount

    candidates = _prefixes(resource_id)
    if not candidates:
        return None
    for model in (StorageAccount, ElasticSan, PostgresServer):
        row = (model.objects.annotate(rid=Lower("resource_id")).filter(rid__in=candidates)
               .select_related("network_subnet__virtual_network").first())
        if row is not None:
            return row
    return None


def _instance(target):
    if isinstance(target, BackupInstance):
        return target
    if isinstance(target, RecoveryPoint):
        return target.instance
    return None


def _fresh_vault(instance):
    """The vault as stored now (a page's or a job's instance may carry a vault read before Deny was applied)."""
    from vaults.models import BackupVault

    return BackupVault.objects.select_related("region").filter(pk=instance.vault_id).first()


def movements(principal, operation: str, target, change: dict):
    """The network guard's adapter: [(vault, datasource, what)] for an operation that moves data."""
    op = operation.lower()
    if op not in (ops.BACKUP_ACTION.lower(), ops.RESTORE.lower()):
        return []
    instance = _instance(target)
    if instance is None:
        return []
    vault = _fresh_vault(instance)
    if op == ops.BACKUP_ACTION.lower():
        return [(vault, datasource_for(instance.datasource_resource_id), BACKUP_WHAT)]
    target_id = change.get("targetResourceId") or instance.datasource_resource_id
    if change.get("crossRegion"):  # a restore to the secondary region goes through the secondary endpoints
        from vaults.networking.names import SECONDARY

        return [(vault, datasource_for(target_id), CROSS_REGION_WHAT, SECONDARY)]
    return [(vault, datasource_for(target_id), RESTORE_WHAT)]


def refusal(instance, *, what: str = BROWSE_WHAT, target_resource_id: str = "", secondary: bool = False):
    """The network guard's refusal for moving data of ``instance`` (None: allowed); ``secondary``: through the
    vault's secondary-region endpoints (``AzureBackup_Secondary``), as a restore to the secondary region."""
    from vaults.networking.guard import data_path_refusal
    from vaults.networking.names import PRIMARY, SECONDARY

    return data_path_refusal(_fresh_vault(instance), datasource_for(target_resource_id or instance.datasource_resource_id),
                             what=what, group_id=SECONDARY if secondary else PRIMARY)


def decision(principal, instance, operation: str, *, what: str = BROWSE_WHAT) -> Decision | None:
    """`refusal` as a refusing Decision (None: allowed)."""
    found = refusal(instance, what=what)
    if found is None:
        return None
    return Decision(False, operation, instance.resource_id, getattr(principal, "display_name", "anonymous"), found)


def target_resource_id(target) -> str:
    """The resource a restore target writes into (its datasource is found from it)."""
    for attr in ("account_id", "volume_group_id", "server_id", "container_id", "resource_group_id"):
        value = getattr(target, attr, "")
        if value:
            return value
    return ""


def register() -> None:
    from vaults.networking.guard import register_network_guard

    register_network_guard(movements)
