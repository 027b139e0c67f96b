"""The inventory: storage accounts, Elastic SAN, PostgreSQL servers, each with real data.

`PortalConfig.ready()` calls `register_resource_types()` so that IAM, search, resource-group
contents and breadcrumbs find these resources by their resource ids.
"""


def register_resource_types() -> None:
    from portal import resources
    from portal.inventory import services, tasks  # noqa: F401  (operation names; Celery tasks)
    from portal.inventory.models import (
        Container,
        ElasticSan,
        PostgresDatabase,
        PostgresServer,
        Snapshot,
        StorageAccount,
        Volume,
        VolumeGroup,
    )
    from portal.resources import ResourceType

    for spec in [
        (StorageAccount, "Storage account", "portal:storage_account_detail", services.STORAGE_ACCOUNT_READ, "storage", True),
        (Container, "Container", "portal:container_detail", services.CONTAINER_READ, "container", False),
        (ElasticSan, "Elastic SAN", "portal:elastic_san_detail", services.ELASTIC_SAN_READ, "elastic-san", True),
        (VolumeGroup, "Volume group", "portal:volume_group_detail", services.VOLUME_GROUP_READ, "volume-group", False),
        (Volume, "Volume", "portal:volume_detail", services.VOLUME_READ, "volume", False),
        (Snapshot, "Snapshot", "portal:snapshot_detail", services.SNAPSHOT_READ, "snapshot", True),
        (PostgresServer, "Azure Database for PostgreSQL flexible server", "portal:postgres_server_detail",
         services.POSTGRES_READ, "postgres", True),
        (PostgresDatabase, "PostgreSQL database", "portal:postgres_database_detail",
         services.POSTGRES_DATABASE_READ, "database", False),
    ]:
        model, label, url_name, read_action, icon, in_group = spec
        resources.register(
            ResourceType(model.RESOURCE_TYPE, label, model, url_name, read_action, icon=icon, in_resource_group=in_group)
        )
