"""The datasource types Strongroom protects (reference decision 2), with their API strings,
portal labels and the rules that differ per type."""

from __future__ import annotations

from dataclasses import dataclass

from security import operations as ops

ADLS = ops.ADLS_DATASOURCE_TYPE
ELASTIC_SAN = ops.VOLUME_TYPE
POSTGRES_FLEX = ops.POSTGRES_SERVER_TYPE
AZURE_DISK = ops.DISK_TYPE


@dataclass(frozen=True)
class DatasourceType:
    api_name: str
    label: str  # portal label
    short: str  # for URLs and filters
    backup_type: str  # AzureBackupParams.backupType
    datastore: str  # where recovery points live: VaultStore or OperationalStore
    schedules: tuple[str, ...]  # "Daily", "Weekly"
    default_retention: str  # ISO 8601 duration
    min_retention_days: int
    max_retention_days: int
    max_recovery_points: int | None
    on_demand_per_day: int | None
    restores_per_day: int | None


TYPES = {
    ADLS: DatasourceType(ADLS, "Azure Data Lake Storage", "adls", "Discrete", "VaultStore",
                         ("Daily", "Weekly"), "P30D", 7, 3650, None, 4, None),
    ELASTIC_SAN: DatasourceType(ELASTIC_SAN, "Elastic SAN (Preview)", "esan", "Incremental", "OperationalStore",
                                ("Daily", "Weekly"), "P7D", 1, 3650, 450, 10, 10),
    POSTGRES_FLEX: DatasourceType(POSTGRES_FLEX, "Azure Database for PostgreSQL flexible servers", "pgflex", "Full",
                                  "VaultStore", ("Weekly",), "P3M", 7, 3650, None, None, None),
    AZURE_DISK: DatasourceType(AZURE_DISK, "Azure Disk", "disk", "Incremental", "OperationalStore",
                               ("Hourly", "Daily"), "P7D", 1, 365, 450, None, None),
}

CHOICES = [(t.api_name, t.label) for t in TYPES.values()]


def get(api_name: str) -> DatasourceType:
    return TYPES[api_name]


def by_short(short: str) -> DatasourceType | None:
    return next((t for t in TYPES.values() if t.short == short), None)
