"""Configure protection's Datasources tab: the datasources a vault may protect (storage accounts, Elastic
SAN volumes, PostgreSQL servers, managed disks), each with whether it is offered and why not, and the
instances that already hold a datasource (one datasource, one vault, reference §3.2, §5.4)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Q

from portal.inventory.disks.models import ManagedDisk
from portal.inventory.models import Container, ElasticSan, PostgresServer, StorageAccount, Volume
from portal.models import ResourceGroup
from portal.shortcuts import visible
from protection import datasource_types, readiness
from protection.models import BackupInstance, ProtectionState
from security.operations import (
    CONTAINER_READ, DISK_READ, ELASTIC_SAN_READ, POSTGRES_READ, RESOURCE_GROUP_READ, STORAGE_ACCOUNT_READ, VAULT_READ,
    VOLUME_READ,
)
from security.rbac import authorize

# Recovery points are snapshots in the instance's snapshot resource group; datasources in the vault's
# subscription too, not only its region (reference §5.4).
SNAPSHOT_GROUP_TYPES = (datasource_types.ELASTIC_SAN, datasource_types.AZURE_DISK)

# One datasource, one vault (Azure's validateForBackup / PUT answer when another vault protects it).
ALREADY_PROTECTED_CODE = "UserErrorDppDatasourceAlreadyProtected"


@dataclass
class Candidate:
    """A datasource the Datasources tab lists for a vault, and whether it may be protected there."""

    key: str  # form-field prefix: "sa12", "vol3", "pg2"
    datasource_type: str
    obj: object
    resource_id: str
    name: str
    location: str
    default_instance_name: str
    resource_group: ResourceGroup
    set_resource_id: str = ""
    offered: bool = True
    reason: str = ""
    code: str = ""  # the error code when not offered because of a readiness check (shown as readiness)
    containers: list[str] = field(default_factory=list)  # ADLS: containers the user can see
    databases: list[str] = field(default_factory=list)  # PostgreSQL: discovered databases
    volume_group: str = ""  # Elastic SAN
    elastic_san: object = None  # Elastic SAN

    @classmethod
    def of(cls, key: str, datasource_type: str, row, **extra) -> "Candidate":
        """The candidate for a top-level resource ``row`` (its instance takes the resource's name)."""
        return cls(key=f"{key}{row.pk}", datasource_type=datasource_type, obj=row, resource_id=row.resource_id,
                   name=row.name, location=row.region_id, default_instance_name=row.name,
                   resource_group=row.resource_group, **extra)

    def datasource(self, snapshot_resource_group_id: str = "") -> readiness.Datasource:
        return readiness.Datasource(self.datasource_type, self.resource_id, self.name, self.set_resource_id,
                                    snapshot_resource_group_id if self.datasource_type in SNAPSHOT_GROUP_TYPES else "")


def _taken_reason(existing: BackupInstance, where: str = " in this vault") -> str:
    """Why a datasource already in a backup instance cannot be protected (again) here."""
    if existing.is_soft_deleted:
        purge = (f", purged on {existing.scheduled_purge_at:%Y-%m-%d %H:%M} UTC" if existing.scheduled_purge_at else "")
        return (f"Soft-deleted{where} (backup instance '{existing.name}'{purge}): a soft-deleted item cannot be "
                "protected again in the same vault. Undelete it (Backup instances, Protection status = Soft "
                "deleted) and resume its backup, or protect the datasource in another vault.")
    return f"Already protected{where} by the backup instance '{existing.name}'."


def already_protected_message(principal, existing: BackupInstance) -> str:
    """Azure's answer when another vault protects the datasource (its vault named only to those who may
    read that vault), with its recommended action."""
    readable = authorize(principal, VAULT_READ, existing.vault.resource_id).allowed
    if readable:
        return (f"Datasource is already protected under the Backup vault {existing.vault.resource_id}. "
                f"Delete the backup instance {existing.name} from the Backup vault {existing.vault.resource_id} "
                "to re-protect the datasource in any other vault.")
    return ("Datasource is already protected under another Backup vault. Delete its backup instance from that "
            "vault to re-protect the datasource in any other vault.")


def holding(vault, resource_ids):
    """Backup instances that keep ``resource_ids`` from being protected in ``vault``: any instance in
    ``vault`` itself (a soft-deleted one too: it cannot be protected again in the same vault), and any
    instance in another vault that is not soft-deleted (one datasource, one vault, as in Azure; a
    soft-deleted item may be protected in another vault, reference §3.2)."""
    soft = (ProtectionState.SOFT_DELETING, ProtectionState.SOFT_DELETED)
    return (BackupInstance.objects.filter(datasource_resource_id__in=resource_ids).select_related("vault")
            .exclude(~Q(vault=vault) & Q(protection_state__in=soft)))


def _protected_in(vault, resource_ids):
    """The instance holding each of ``resource_ids`` (see `holding`), keyed by lower-case datasource
    id; an instance in ``vault`` itself wins over one elsewhere."""
    out: dict[str, BackupInstance] = {}
    for r in sorted(holding(vault, resource_ids), key=lambda r: r.vault_id == vault.pk):
        out[r.datasource_resource_id.lower()] = r
    return out


def taken(principal, vault, existing: BackupInstance) -> tuple[str, str]:
    """(code, reason) for a datasource that already has a backup instance."""
    if existing.vault_id == vault.pk:
        return "UserErrorDatasourceAlreadyHasBackupInstance", _taken_reason(existing)
    return ALREADY_PROTECTED_CODE, already_protected_message(principal, existing)


def storage_account_candidates(principal, vault) -> list[Candidate]:
    """HNS storage accounts in the vault's region the user can read; flat-namespace ones are listed
    with the reason they are not offered (reference §5.4)."""
    accounts = visible(
        principal,
        StorageAccount.objects.filter(region=vault.region).select_related("resource_group__subscription", "region"),
        STORAGE_ACCOUNT_READ,
    ).order_by("name")
    accounts = list(accounts)
    protected = _protected_in(vault, [a.resource_id for a in accounts])
    containers = visible(principal, Container.objects.filter(account__in=accounts), CONTAINER_READ).order_by("name")
    by_account: dict[int, list[str]] = {}
    for c in containers:
        by_account.setdefault(c.account_id, []).append(c.name)
    result = []
    for account in accounts:
        cand = Candidate.of("sa", datasource_types.ADLS, account, containers=by_account.get(account.pk, []))
        existing = protected.get(account.resource_id.lower())
        if not account.hierarchical_namespace:
            cand.offered, cand.reason = False, (
                "Hierarchical namespace is not enabled on this account. Vaulted backup protects Azure Data Lake "
                "Storage accounts (hierarchical namespace) only."
            )
        elif existing is not None:
            cand.code, cand.reason = taken(principal, vault, existing)
            cand.offered = False
        elif not account.containers.exists():
            cand.offered, cand.reason = False, "The account has no container: create at least one container first."
        result.append(cand)
    return result


def elastic_sans_for(principal, vault):
    """Elastic SAN instances in the vault's subscription *and* region the user can read (reference §5.4)."""
    return visible(
        principal,
        ElasticSan.objects.filter(region=vault.region, resource_group__subscription=vault.resource_group.subscription)
        .select_related("resource_group__subscription"),
        ELASTIC_SAN_READ,
    ).order_by("name")


def volume_candidates(principal, vault, elastic_san=None) -> list[Candidate]:
    sans = elastic_sans_for(principal, vault)
    volumes = Volume.objects.filter(volume_group__elastic_san__in=sans).select_related(
        "volume_group__elastic_san__resource_group__subscription"
    )
    if elastic_san is not None:
        volumes = volumes.filter(volume_group__elastic_san=elastic_san)
    volumes = list(visible(principal, volumes, VOLUME_READ).order_by("volume_group__name", "name"))
    # One volume can be in one backup instance only, whichever the vault.
    users = {
        i.datasource_resource_id.lower(): i
        for i in BackupInstance.objects.filter(datasource_resource_id__in=[v.resource_id for v in volumes]).select_related("vault")
    }
    result = []
    for volume in volumes:
        group, san = volume.volume_group, volume.volume_group.elastic_san
        cand = Candidate(
            key=f"vol{volume.pk}", datasource_type=datasource_types.ELASTIC_SAN, obj=volume,
            resource_id=volume.resource_id, name=volume.name, location=san.region_id,
            default_instance_name=f"{san.name}-{group.name}-{volume.name}", resource_group=san.resource_group,
            set_resource_id=san.resource_id, volume_group=group.name, elastic_san=san,
        )
        existing = users.get(volume.resource_id.lower())
        if existing is not None:
            where = (f" in the vault '{existing.vault.name}'"
                     if authorize(principal, VAULT_READ, existing.vault.resource_id).allowed
                     else " in another vault")
            cand.code = ALREADY_PROTECTED_CODE if existing.vault_id != vault.pk else "UserErrorDatasourceAlreadyHasBackupInstance"
            if existing.is_soft_deleted and existing.vault_id == vault.pk:
                cand.offered, cand.reason = False, _taken_reason(existing)
            else:
                cand.offered, cand.reason = False, (
                    f"Already protected by the backup instance '{existing.name}'{where}"
                    f"{' (soft-deleted: undelete it there, or wait for its purge)' if existing.is_soft_deleted else ''}: "
                    "a volume can be in one backup instance only."
                )
        result.append(cand)
    return result


def postgres_candidates(principal, vault) -> list[Candidate]:
    servers = list(visible(
        principal,
        PostgresServer.objects.filter(region=vault.region).select_related("resource_group__subscription")
        .prefetch_related("databases"),
        POSTGRES_READ,
    ).order_by("name"))
    protected = _protected_in(vault, [s.resource_id for s in servers])
    result = []
    for server in servers:
        cand = Candidate.of("pg", datasource_types.POSTGRES_FLEX, server, databases=[d.name for d in server.databases.all()])
        existing = protected.get(server.resource_id.lower())
        if existing is not None:
            cand.code, cand.reason = taken(principal, vault, existing)
            cand.offered = False
        result.append(cand)
    return result


def disk_candidates(principal, vault) -> list[Candidate]:
    """Managed disks in the vault's subscription *and* region the user can read; each becomes its own instance."""
    disks = list(visible(principal, ManagedDisk.objects.filter(
        region=vault.region, resource_group__subscription=vault.resource_group.subscription)
        .select_related("resource_group__subscription"), DISK_READ).order_by("name"))
    protected = _protected_in(vault, [d.resource_id for d in disks])
    result = []
    for disk in disks:
        result.append(cand := Candidate.of("disk", datasource_types.AZURE_DISK, disk))
        if (existing := protected.get(disk.resource_id.lower())) is not None:
            cand.offered, (cand.code, cand.reason) = False, taken(principal, vault, existing)
    return result


def candidates(principal, vault, datasource_type: str, *, elastic_san=None) -> list[Candidate]:
    if datasource_type == datasource_types.ADLS:
        return storage_account_candidates(principal, vault)
    if datasource_type == datasource_types.ELASTIC_SAN:
        return volume_candidates(principal, vault, elastic_san)
    if datasource_type == datasource_types.POSTGRES_FLEX:
        return postgres_candidates(principal, vault)
    if datasource_type == datasource_types.AZURE_DISK:
        return disk_candidates(principal, vault)
    raise ValidationError({"datasource_type": "Choose a datasource type."})


def snapshot_resource_groups_for(principal, subscription):
    """Resource groups of the volume's subscription the user can see (the snapshot RG picker)."""
    return visible(principal, ResourceGroup.objects.filter(subscription=subscription), RESOURCE_GROUP_READ).order_by("name")
