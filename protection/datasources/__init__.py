"""Datasource drivers: how each protected type's real data goes into a store (see `base`)."""

from __future__ import annotations

from protection import datasource_types
from protection.datasources.base import BackupOutcome, Driver, RunContext


def driver_for(datasource_type: str) -> Driver:
    from protection.datasources.adls import AdlsDriver
    from protection.datasources.elastic_san import ElasticSanDriver
    from protection.datasources.managed_disk import ManagedDiskDriver
    from protection.datasources.postgres import PostgresDriver

    drivers = {
        datasource_types.ADLS: AdlsDriver,
        datasource_types.ELASTIC_SAN: ElasticSanDriver,
        datasource_types.POSTGRES_FLEX: PostgresDriver,
        datasource_types.AZURE_DISK: ManagedDiskDriver,
    }
    return drivers[datasource_type]()


__all__ = ["BackupOutcome", "Driver", "RunContext", "driver_for"]
