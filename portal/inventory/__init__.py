"""The inventory: storage accounts, Elastic SAN, PostgreSQL servers, each with real data; virtual networks
private endpoints and private DNS zones, the networks they are reached through.

`PortalConfig.ready()` calls `register_resource_types()` so that IAM, search, resource-group
contents and breadcrumbs find these resources by their resource ids.

Where backups read and restores write (all paths walked without following links, see `fs`):

- Storage: ``Container.path`` (a folder); ``blobs.iter_blobs(container, prefix)`` → BlobInfo(name,
  size, mtime); ``blobs.open_blob(container, name)``; ``blobs.write_blob(container, name, fileobj_or_chunks,
  mtime=...)`` (temp file + rename; refuses to overwrite); ``blobs.validate_blob_name`` /
  ``validate_prefix`` for traversal-safe names. Services: ``create_container``, ``upload_blobs``.
- Elastic SAN: ``Volume.image_path`` (raw image, sparse); ``volumes.image_info(path)`` (size,
  allocated bytes from st_blocks); ``volumes.image_checksum(path, progress)`` (``blocks-sha256:``,
  of the blocks holding data); ``volumes.open_image(path, write=...)``. Services: ``create_volume``
  (a new sparse image for a restore target), ``create_snapshot`` / ``delete_snapshot`` (recovery points as Snapshot
  resources in a snapshot resource group), ``compute_checksum_now``.
- Managed disks (`portal.inventory.disks`): ``ManagedDisk.image_path`` (raw image, sparse, as a volume's);
  services ``create_disk`` (a new sparse image, or a restored image adopted in place), ``delete_disk``,
  ``write_sample_data``; their recovery points are ``Snapshot`` rows too (``source_disk``).
- PostgreSQL: ``PostgresServer.connection_params(dbname)`` → ``ConnectionParams`` with ``kwargs()``
  for psycopg and ``env()`` for pg_dump/pg_restore (PGPASSWORD, never argv);
  ``postgres.discover_databases(params)`` (user databases only), ``postgres.table_counts(params)``.
  Services: ``refresh_postgres_server``, ``create_database`` (empty, from template0),
  ``create_sample_database``.
"""


def register_resource_types() -> None:
    from portal import resources
    from portal.inventory.disks.models import ManagedDisk
    from portal.inventory.models import (
        Container,
        DnsRecord,
        ElasticSan,
        PostgresDatabase,
        PostgresServer,
        PrivateDnsZone,
        PrivateEndpoint,
        Snapshot,
        StorageAccount,
        Subnet,
        VirtualNetwork,
        VirtualNetworkLink,
        Volume,
        VolumeGroup,
    )
    from portal.resources import ResourceType
    from security import operations as ops

    for spec in [
        (StorageAccount, "Storage account", "portal:storage_account_detail", ops.STORAGE_ACCOUNT_READ, "storage", True),
        (Container, "Container", "portal:container_detail", ops.CONTAINER_READ, "container", False),
        (ElasticSan, "Elastic SAN", "portal:elastic_san_detail", ops.ELASTIC_SAN_READ, "elastic-san", True),
        (VolumeGroup, "Volume group", "portal:volume_group_detail", ops.VOLUME_GROUP_READ, "volume-group", False),
        (Volume, "Volume", "portal:volume_detail", ops.VOLUME_READ, "volume", False),
        (ManagedDisk, "Disk", "portal:disk_detail", ops.DISK_READ, "disk", True),
        (Snapshot, "Snapshot", "portal:snapshot_detail", ops.SNAPSHOT_READ, "snapshot", True),
        (PostgresServer, "Azure Database for PostgreSQL flexible server", "portal:postgres_server_detail",
         ops.POSTGRES_READ, "postgres", True),
        (PostgresDatabase, "PostgreSQL database", "portal:postgres_database_detail",
         ops.POSTGRES_DATABASE_READ, "database", False),
        (VirtualNetwork, "Virtual network", "portal:vnet_detail", ops.VNET_READ, "vnet", True),
        (Subnet, "Subnet", "portal:subnet_detail", ops.SUBNET_READ, "subnet", False),
        (PrivateEndpoint, "Private endpoint", "portal:private_endpoint_detail", ops.PRIVATE_ENDPOINT_READ,
         "private-endpoint", True),
        (PrivateDnsZone, "Private DNS zone", "portal:dns_zone_detail", ops.DNS_ZONE_READ, "dns-zone", True),
        (DnsRecord, "Private DNS A record", "portal:dns_record_detail", ops.DNS_RECORD_READ, "dns-record", False),
        (VirtualNetworkLink, "Virtual network link", "portal:dns_link_detail", ops.DNS_LINK_READ, "dns-link", False),
    ]:
        model, label, url_name, read_action, icon, in_group = spec
        resources.register(
            ResourceType(model.RESOURCE_TYPE, label, model, url_name, read_action, icon=icon, in_resource_group=in_group)
        )


def register_guards() -> None:
    """The inventory's guards (`PortalConfig.ready`): a subnet in use cannot be deleted, nor its VNet."""
    from portal.inventory import subnet_guard

    subnet_guard.register()
