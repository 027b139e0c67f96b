"""Restore targets: what a person asked for, kept on the job, and its REST shape (reference §1.6).

One dataclass per restore kind. They hold resource ids (never model instances), so a job's
``parameters["target"]`` round-trips through JSON and the worker resolves the rows again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from protection import datasource_types
from security import operations as ops

ADLS_KIND = "adls"
VOLUME_KIND = "volume"
PG_DATABASE_KIND = "pgDatabase"
PG_FILES_KIND = "pgFiles"
DISK_KIND = "disk"

MAX_CONTAINERS = 100
MAX_PREFIXES = 5


@dataclass(frozen=True)
class ContainerChoice:
    """One container of the recovery point, with optional prefixes and a new name."""

    name: str
    prefixes: tuple[str, ...] = ()
    rename_to: str = ""

    @property
    def target_name(self) -> str:
        return self.rename_to or self.name


@dataclass(frozen=True)
class AdlsTarget:
    """Azure Data Lake Storage: containers into another HNS account (ItemLevelRestoreTargetInfo)."""

    account_id: str
    all_containers: bool = True
    containers: tuple[ContainerChoice, ...] = ()  # the chosen ones; with all_containers, only renames
    kind: str = field(default=ADLS_KIND, init=False)

    def choice_for(self, name: str) -> ContainerChoice | None:
        return next((c for c in self.containers if c.name == name), None)

    def effective(self, point_containers: list[str]) -> list[ContainerChoice]:
        """The containers to restore, in the recovery point's order."""
        if self.all_containers:
            return [ContainerChoice(n, (), (self.choice_for(n).rename_to if self.choice_for(n) else ""))
                    for n in point_containers]
        return list(self.containers)


@dataclass(frozen=True)
class VolumeTarget:
    """Elastic SAN: a new volume in a volume group (RestoreTargetInfo, recoveryOption FailIfExists)."""

    volume_group_id: str
    volume_name: str
    kind: str = field(default=VOLUME_KIND, init=False)


@dataclass(frozen=True)
class PgDatabaseTarget:
    """PostgreSQL (a Strongroom extension): one database of the point into a new database."""

    database: str  # the database in the recovery point
    server_id: str
    database_name: str  # the new database on the target server
    kind: str = field(default=PG_DATABASE_KIND, init=False)


@dataclass(frozen=True)
class PgFilesTarget:
    """PostgreSQL: the dumps as files into a blob container (RestoreFilesTargetInfo)."""

    container_id: str
    file_prefix: str = ""
    database: str = ""  # "" = every database of the point (and the globals)
    kind: str = field(default=PG_FILES_KIND, init=False)


@dataclass(frozen=True)
class DiskTarget:
    """Azure Disk: a new managed disk in a resource group (RestoreTargetInfo; original location is not
    supported, and a restore never overwrites a disk)."""

    resource_group_id: str
    disk_name: str
    kind: str = field(default=DISK_KIND, init=False)

    @property
    def disk_id(self) -> str:
        return f"{self.resource_group_id}/providers/{ops.DISK_TYPE}/{self.disk_name}"


Target = AdlsTarget | VolumeTarget | PgDatabaseTarget | PgFilesTarget | DiskTarget


def to_json(target: Target) -> dict:
    data = asdict(target)
    if isinstance(target, AdlsTarget):
        data["containers"] = [{"name": c.name, "prefixes": list(c.prefixes), "rename_to": c.rename_to}
                              for c in target.containers]
    return data


def from_json(data: dict) -> Target:
    data = dict(data)
    kind = data.pop("kind", "")
    if kind == ADLS_KIND:
        containers = tuple(ContainerChoice(c["name"], tuple(c.get("prefixes") or ()), c.get("rename_to") or "")
                           for c in data.get("containers") or ())
        return AdlsTarget(data["account_id"], bool(data.get("all_containers")), containers)
    if kind == VOLUME_KIND:
        return VolumeTarget(**data)
    if kind == PG_DATABASE_KIND:
        return PgDatabaseTarget(**data)
    if kind == PG_FILES_KIND:
        return PgFilesTarget(**data)
    if kind == DISK_KIND:
        return DiskTarget(**data)
    raise ValueError(f"Unknown restore target kind {kind!r}.")


def kinds_for(datasource_type: str) -> tuple[str, ...]:
    return {
        datasource_types.ADLS: (ADLS_KIND,),
        datasource_types.ELASTIC_SAN: (VOLUME_KIND,),
        datasource_types.POSTGRES_FLEX: (PG_DATABASE_KIND, PG_FILES_KIND),
        datasource_types.AZURE_DISK: (DISK_KIND,),
    }[datasource_type]


def _new_resource_target(region: str, datasource_type: str, resource_id: str, name: str, resource_type: str, *,
                         set_id: str = "", set_type: str = "") -> dict:
    """A RestoreTargetInfo that creates a new resource ``name`` (never over an existing one) in ``region``,
    with the set it belongs to where the datasource type has one."""
    info = {
        "objectType": "RestoreTargetInfo",
        "recoveryOption": "FailIfExists",
        "restoreLocation": region,
        "datasourceInfo": {"objectType": "Datasource", "datasourceType": datasource_type, "resourceID": resource_id,
                           "resourceName": name, "resourceLocation": region, "resourceType": resource_type},
    }
    if set_id:
        info["datasourceSetInfo"] = {"objectType": "DatasourceSet", "resourceID": set_id, "resourceType": set_type}
    return info


def as_api(point, target: Target, *, region: str, resolved: dict | None = None) -> dict:
    """The restore request in the REST API's shape (reference §1.6), for the job and the review."""
    resolved = resolved or {}
    request = {
        "objectType": "AzureBackupRecoveryPointBasedRestoreRequest",
        "recoveryPointId": str(point.pk),
        "sourceDataStoreType": point.datastore,
        "sourceResourceId": point.instance.datasource_resource_id,
        "identityDetails": {"useSystemAssignedIdentity": True},
    }
    if isinstance(target, AdlsTarget):
        names = [p["item"] for p in point.manifests if p.get("kind") == "tree"]
        request["restoreTargetInfo"] = {
            "objectType": "ItemLevelRestoreTargetInfo",
            "recoveryOption": "FailIfExists",
            "restoreLocation": region,
            "datasourceInfo": {"objectType": "Datasource", "datasourceType": datasource_types.ADLS,
                               "resourceID": target.account_id, "resourceLocation": region,
                               "resourceName": target.account_id.rsplit("/", 1)[-1],
                               "resourceType": ops.STORAGE_ACCOUNT_TYPE},
            "restoreCriteria": [
                {"objectType": "ItemPathBasedRestoreCriteria", "itemPath": c.name, "isPathRelativeToBackupItem": True,
                 "subItemPathPrefix": list(c.prefixes), **({"renameTo": c.rename_to} if c.rename_to else {})}
                for c in target.effective(names)
            ],
        }
    elif isinstance(target, VolumeTarget):
        volume_id = f"{target.volume_group_id}/volumes/{target.volume_name}"
        request["restoreTargetInfo"] = _new_resource_target(
            region, datasource_types.ELASTIC_SAN, volume_id, target.volume_name, ops.VOLUME_TYPE,
            set_id=target.volume_group_id.rsplit("/volumeGroups/", 1)[0], set_type=ops.ELASTIC_SAN_TYPE)
    elif isinstance(target, DiskTarget):
        request["restoreTargetInfo"] = _new_resource_target(region, datasource_types.AZURE_DISK, target.disk_id,
                                                            target.disk_name, ops.DISK_TYPE)
    elif isinstance(target, PgDatabaseTarget):
        request["restoreTargetInfo"] = {
            **_new_resource_target(region, datasource_types.POSTGRES_FLEX, f"{target.server_id}/databases/{target.database_name}",
                                   target.database_name, ops.POSTGRES_DATABASE_TYPE,
                                   set_id=target.server_id, set_type=ops.POSTGRES_SERVER_TYPE),
            # Strongroom extension: which database of the recovery point goes there.
            "sourceDatabaseName": target.database,
        }
    elif isinstance(target, PgFilesTarget):
        account = target.container_id.split("/blobServices/")[0].rsplit("/", 1)[-1]
        container = target.container_id.rsplit("/", 1)[-1]
        request["restoreTargetInfo"] = {
            "objectType": "RestoreFilesTargetInfo",
            "recoveryOption": "FailIfExists",
            "restoreLocation": region,
            "targetDetails": {"url": f"https://{account}.blob.core.windows.net/{container}",
                              "filePrefix": target.file_prefix, "restoreTargetLocationType": "AzureBlobs",
                              "targetResourceArmId": target.container_id},
            **({"sourceDatabaseName": target.database} if target.database else {}),
        }
    return request
