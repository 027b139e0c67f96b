"""Inventory: the simulated cloud resources that get protected, each a row *and* real data.

- StorageAccount → Container (a folder; blobs are files below it, folder paths as name prefixes)
- ElasticSan → VolumeGroup → Volume (a sparse raw image file), and Snapshot (Elastic SAN recovery
  points, tracked resources in a snapshot resource group)
- PostgresServer (a DSN; the password sealed at rest) → PostgresDatabase (discovered)
- VirtualNetwork → Subnet; PrivateEndpoint (in a subnet, with private IPs from it); PrivateDnsZone → DnsRecord
  (A records) and VirtualNetworkLink. Each datasource sits on the public network or in a subnet
  (``network_subnet``), the network it reaches a vault from.

Where the real data lives is answered by the models (`StorageAccount.data_path`,
`Container.path`, `Volume.image_path`, `PostgresServer.connection_params()`), so backups and
restores read and write the same places the portal shows.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from portal.models import ChildResource, Operation, TrackedResource
from security import operations as ops

GIB = 1024**3


def data_root() -> Path:
    return Path(settings.STRONGROOM_DATA_ROOT)


# --- storage accounts ----------------------------------------------------------------------------


class StorageAccount(TrackedResource):
    """A storage account: a folder whose sub-folders are its containers.

    Hierarchical namespace (HNS, "Azure Data Lake Storage") accounts are the ones Azure Backup's
    vaulted blob backup protects; a flat-namespace account is kept to show why it is not offered.
    """

    RESOURCE_TYPE = ops.STORAGE_ACCOUNT_TYPE

    class Redundancy(models.TextChoices):
        LRS = "Standard_LRS", "Locally-redundant storage (LRS)"
        ZRS = "Standard_ZRS", "Zone-redundant storage (ZRS)"
        GRS = "Standard_GRS", "Geo-redundant storage (GRS)"

    hierarchical_namespace = models.BooleanField(default=True)
    sku = models.CharField(max_length=20, choices=Redundancy.choices, default=Redundancy.LRS)
    # Empty: a folder Strongroom manages under STRONGROOM_DATA_ROOT/storage/<name>.
    # Otherwise an existing folder, attached from below STRONGROOM_ATTACH_ROOTS.
    attached_path = models.CharField(max_length=1024, blank=True)
    # None: the public network; otherwise the subnet it reaches a vault from.
    network_subnet = models.ForeignKey("Subnet", null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta(TrackedResource.Meta):
        constraints = [models.UniqueConstraint(Lower("name"), name="unique_storage_account_name")]

    @property
    def kind(self) -> str:
        return "StorageV2"

    @property
    def is_attached(self) -> bool:
        return bool(self.attached_path)

    @property
    def data_path(self) -> Path:
        """The account's folder: one sub-folder per container."""
        if self.attached_path:
            return Path(self.attached_path)
        return data_root() / "storage" / self.name

    @property
    def blob_endpoint(self) -> str:
        return f"https://{self.name}.blob.core.windows.net/"

    @property
    def dfs_endpoint(self) -> str:
        return f"https://{self.name}.dfs.core.windows.net/"


class Container(ChildResource):
    """A blob container: the folder ``account.data_path / name``; blobs are the files below it."""

    RESOURCE_TYPE = ops.CONTAINER_TYPE
    PARENT = "account"
    CHILD_PATH = "blobServices/default/containers"

    account = models.ForeignKey(StorageAccount, on_delete=models.CASCADE, related_name="containers")
    name = models.CharField(max_length=63)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(ChildResource.Meta):
        constraints = [models.UniqueConstraint("account", "name", name="unique_container_per_account")]

    @property
    def path(self) -> Path:
        return self.account.data_path / self.name


# --- Elastic SAN ---------------------------------------------------------------------------------


class ElasticSan(TrackedResource):
    """An Elastic SAN instance: a capacity pool holding volume groups."""

    RESOURCE_TYPE = ops.ELASTIC_SAN_TYPE

    class Sku(models.TextChoices):
        PREMIUM_LRS = "Premium_LRS", "Premium locally-redundant storage (LRS)"
        PREMIUM_ZRS = "Premium_ZRS", "Premium zone-redundant storage (ZRS)"

    sku = models.CharField(max_length=20, choices=Sku.choices, default=Sku.PREMIUM_LRS)
    base_size_tib = models.PositiveIntegerField(default=1)
    extended_capacity_size_tib = models.PositiveIntegerField(default=0)
    network_subnet = models.ForeignKey("Subnet", null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta(TrackedResource.Meta):
        constraints = [
            models.UniqueConstraint(Lower("name"), "resource_group", name="unique_elastic_san_per_group")
        ]

    @property
    def data_path(self) -> Path:
        # Names are unique per resource group only, so the folder carries the row's id too.
        return data_root() / "elasticsan" / f"{self.pk}-{self.name}"

    @property
    def total_size_tib(self) -> int:
        return self.base_size_tib + self.extended_capacity_size_tib


class VolumeGroup(ChildResource):
    """A volume group: network and encryption settings shared by its volumes."""

    RESOURCE_TYPE = ops.VOLUME_GROUP_TYPE
    PARENT = "elastic_san"
    CHILD_PATH = "volumeGroups"

    elastic_san = models.ForeignKey(ElasticSan, on_delete=models.CASCADE, related_name="volume_groups")
    name = models.CharField(max_length=63)
    protocol_type = models.CharField(max_length=20, default="Iscsi")
    encryption = models.CharField(max_length=60, default="EncryptionAtRestWithPlatformKey")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(ChildResource.Meta):
        constraints = [models.UniqueConstraint("elastic_san", "name", name="unique_volume_group_per_san")]

    @property
    def data_path(self) -> Path:
        return self.elastic_san.data_path / self.name


class Volume(ChildResource):
    """A volume: a raw image file of its size (sparse when Strongroom creates it).

    Jobs on the volume ("Write sample data", "Compute checksum") run on a worker; their state is kept
    here (``activity_*``) and in the portal Operation that notifies the person who started them.
    """

    RESOURCE_TYPE = ops.VOLUME_TYPE
    PARENT = "volume_group"
    CHILD_PATH = "volumes"

    class Activity(models.TextChoices):
        NONE = "", "None"
        WRITE_SAMPLE_DATA = "WriteSampleData", "Write sample data"
        COMPUTE_CHECKSUM = "ComputeChecksum", "Compute checksum"

    class ActivityStatus(models.TextChoices):
        NONE = "", "None"
        QUEUED = "Queued", "Queued"
        IN_PROGRESS = "InProgress", "In progress"
        SUCCEEDED = "Succeeded", "Succeeded"
        FAILED = "Failed", "Failed"

    volume_group = models.ForeignKey(VolumeGroup, on_delete=models.CASCADE, related_name="volumes")
    name = models.CharField(max_length=63)
    size_gib = models.PositiveIntegerField()
    size_bytes = models.BigIntegerField()
    # Empty: STRONGROOM_DATA_ROOT/elasticsan/<san>/<group>/<volume>.img, created sparse.
    attached_path = models.CharField(max_length=1024, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    allocated_bytes = models.BigIntegerField(default=0)
    allocated_measured_at = models.DateTimeField(null=True, blank=True)
    sample_writes = models.PositiveIntegerField(default=0)
    sample_written_at = models.DateTimeField(null=True, blank=True)
    last_checksum = models.CharField(max_length=80, blank=True)  # volumes.image_checksum
    checksum_at = models.DateTimeField(null=True, blank=True)
    checksum_stale = models.BooleanField(default=False)  # data written since the checksum

    activity = models.CharField(max_length=30, choices=Activity.choices, blank=True, default="")
    activity_status = models.CharField(max_length=20, choices=ActivityStatus.choices, blank=True, default="")
    activity_progress = models.PositiveSmallIntegerField(default=0)  # percent
    activity_message = models.TextField(blank=True)
    activity_started_at = models.DateTimeField(null=True, blank=True)
    activity_heartbeat_at = models.DateTimeField(null=True, blank=True)
    activity_operation = models.ForeignKey(
        Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta(ChildResource.Meta):
        constraints = [models.UniqueConstraint("volume_group", "name", name="unique_volume_per_group")]

    @property
    def is_attached(self) -> bool:
        return bool(self.attached_path)

    @property
    def image_path(self) -> Path:
        """The raw image backups read (as a point-in-time copy) and restores create anew."""
        if self.attached_path:
            return Path(self.attached_path)
        return self.volume_group.data_path / f"{self.name}.img"

    @property
    def elastic_san(self):
        return self.volume_group.elastic_san

    @property
    def activity_running(self) -> bool:
        return self.activity_status in (self.ActivityStatus.QUEUED, self.ActivityStatus.IN_PROGRESS)


class Snapshot(TrackedResource):
    """An incremental snapshot of an Elastic SAN volume or an Azure managed disk in a snapshot resource group.

    Backups of Elastic SAN volumes and managed disks create these as their recovery points
    (``AzureBackup_<datasource id>_<timestamp>``); the data itself lives in the operational store
    the backup names in ``store_location`` / ``manifest_id``.
    """

    RESOURCE_TYPE = ops.DISK_SNAPSHOT_TYPE

    source_volume = models.ForeignKey(Volume, null=True, blank=True, on_delete=models.SET_NULL, related_name="snapshots")
    source_resource_id = models.CharField(max_length=512)  # kept when the volume is deleted
    # Azure Disk backups: the managed disk the snapshot was taken of (None for volumes, or once deleted).
    source_disk = models.ForeignKey("portal.ManagedDisk", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="snapshots")
    size_bytes = models.BigIntegerField(default=0)
    incremental = models.BooleanField(default=True)
    checksum = models.CharField(max_length=80, blank=True)
    store_location = models.CharField(max_length=1024, blank=True)
    manifest_id = models.CharField(max_length=200, blank=True)
    taken_at = models.DateTimeField(null=True, blank=True)

    class Meta(TrackedResource.Meta):
        constraints = [
            models.UniqueConstraint(Lower("name"), "resource_group", name="unique_snapshot_per_group")
        ]

    @property
    def size_gib(self) -> float:
        return self.size_bytes / GIB


# --- PostgreSQL flexible servers -----------------------------------------------------------------


class PostgresServer(TrackedResource):
    """A PostgreSQL server reached by DSN. The whole server is the datasource."""

    RESOURCE_TYPE = ops.POSTGRES_SERVER_TYPE

    class ConnectionStatus(models.TextChoices):
        UNKNOWN = "Unknown", "Not tested yet"
        SUCCEEDED = "Succeeded", "Connected"
        FAILED = "Failed", "Cannot connect"

    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField(default=5432)
    admin_user = models.CharField(max_length=63)
    # encrypt_secret(password, purpose=f"postgres-server:{resource_id}"); empty for trust auth.
    password_encrypted = models.TextField(blank=True)
    server_version = models.CharField(max_length=40, blank=True)
    connection_status = models.CharField(
        max_length=20, choices=ConnectionStatus.choices, default=ConnectionStatus.UNKNOWN
    )
    connection_message = models.TextField(blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    # A training sandbox's server on the shared lab cluster: discovery and backups see only the databases
    # the login owns (as an Azure flexible server holds only its own), never another sandbox's.
    only_owned_databases = models.BooleanField(default=False)
    network_subnet = models.ForeignKey("Subnet", null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta(TrackedResource.Meta):
        constraints = [models.UniqueConstraint(Lower("name"), name="unique_postgres_server_name")]

    @property
    def fqdn(self) -> str:
        return f"{self.name}.postgres.database.azure.com"

    @property
    def secret_purpose(self) -> str:
        return f"postgres-server:{self.resource_id}"

    def password(self) -> str:
        if not self.password_encrypted:
            return ""
        from security.crypto import decrypt_secret

        return decrypt_secret(self.password_encrypted, purpose=self.secret_purpose)

    def connection_params(self, dbname: str = "postgres"):
        """Connection parameters (host, port, user, password, dbname) for psycopg or pg_dump."""
        from portal.inventory.postgres import ConnectionParams

        return ConnectionParams(
            host=self.host, port=self.port, user=self.admin_user, password=self.password(), dbname=dbname
        )


class PostgresDatabase(ChildResource):
    """A user database found on a server by discovery (templates and Strongroom's own excluded)."""

    RESOURCE_TYPE = ops.POSTGRES_DATABASE_TYPE
    PARENT = "server"
    CHILD_PATH = "databases"

    server = models.ForeignKey(PostgresServer, on_delete=models.CASCADE, related_name="databases")
    name = models.CharField(max_length=63)
    owner = models.CharField(max_length=63, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    encoding = models.CharField(max_length=30, blank=True)
    is_sample = models.BooleanField(default=False)  # created by "Create sample database"
    # Strongroom drops only databases it created itself (sample databases, restore targets).
    created_by_strongroom = models.BooleanField(default=False)
    discovered_at = models.DateTimeField()

    class Meta(ChildResource.Meta):
        constraints = [models.UniqueConstraint("server", "name", name="unique_database_per_server")]

    def connection_params(self):
        return self.server.connection_params(dbname=self.name)


# --- networking -----------------------------------------------------------------------------------


class VirtualNetwork(TrackedResource):
    """A virtual network: address spaces (CIDR), subnets, and a DNS resolver of its own.

    ``resolver_number`` (the highest in use plus one) gives the VNet its resolver's loopback address
    (`portal.inventory.network.dns.resolver_address`): the answers there come from the private DNS
    zones linked to this VNet, otherwise the public answer.
    """

    RESOURCE_TYPE = ops.VIRTUAL_NETWORK_TYPE

    address_prefixes = models.JSONField(default=list)  # ["10.20.0.0/16"]
    resolver_number = models.PositiveIntegerField(unique=True)

    class Meta(TrackedResource.Meta):
        constraints = [models.UniqueConstraint(Lower("name"), "resource_group", name="unique_vnet_per_group")]


class Subnet(ChildResource):
    """A subnet of a VNet: one CIDR inside the VNet's address space, overlapping no other subnet of it.
    Azure keeps five addresses of each (network, .1 gateway, .2 and .3 DNS, broadcast)."""

    RESOURCE_TYPE = ops.SUBNET_TYPE
    PARENT = "virtual_network"
    CHILD_PATH = "subnets"

    virtual_network = models.ForeignKey(VirtualNetwork, on_delete=models.CASCADE, related_name="subnets")
    name = models.CharField(max_length=80)
    address_prefix = models.CharField(max_length=43)  # "10.20.1.0/24"
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(ChildResource.Meta):
        constraints = [models.UniqueConstraint(Lower("name"), "virtual_network", name="unique_subnet_per_vnet")]

    def __str__(self):
        return f"{self.virtual_network.name}/{self.name}"


class PrivateEndpoint(TrackedResource):
    """A private endpoint (Microsoft.Network/privateEndpoints): private IPs in a subnet, connected to a
    target resource's sub-resource (a vault's ``AzureBackup`` or ``AzureBackup_Secondary``).

    The target's side of the connection (its state: Pending, Approved, Rejected, Disconnected) belongs to the
    target (`vaults.models.PrivateEndpointConnection`); this row is the network's side.
    """

    RESOURCE_TYPE = ops.PRIVATE_ENDPOINT_TYPE

    subnet = models.ForeignKey(Subnet, on_delete=models.PROTECT, related_name="private_endpoints")
    target_resource_id = models.CharField(max_length=512)
    target_sub_resource = models.CharField(max_length=40)  # "AzureBackup", "AzureBackup_Secondary"
    # [{"fqdn": "<vault>-ab-pod01-prot1.privatelink.eus.backup.windowsazure.com", "ip": "10.20.1.4"}, …]
    ip_configurations = models.JSONField(default=list)
    integrate_with_private_dns = models.BooleanField(default=True)
    request_message = models.CharField(max_length=140, blank=True)

    class Meta(TrackedResource.Meta):
        constraints = [models.UniqueConstraint(Lower("name"), "resource_group", name="unique_private_endpoint_per_group")]

    @property
    def private_ips(self) -> list[str]:
        return [c["ip"] for c in self.ip_configurations]


class PrivateDnsZone(TrackedResource):
    """A private DNS zone (``privatelink.eus.backup.windowsazure.com``): A records, and the VNets it answers in."""

    RESOURCE_TYPE = ops.PRIVATE_DNS_ZONE_TYPE

    class Meta(TrackedResource.Meta):
        constraints = [models.UniqueConstraint(Lower("name"), "resource_group", name="unique_dns_zone_per_group")]


class DnsRecord(ChildResource):
    """An A record of a private DNS zone: ``name`` is relative to the zone (``<vault>-ab-pod01-prot1``)."""

    RESOURCE_TYPE = ops.DNS_A_RECORD_TYPE
    PARENT = "zone"
    CHILD_PATH = "A"

    zone = models.ForeignKey(PrivateDnsZone, on_delete=models.CASCADE, related_name="records")
    name = models.CharField(max_length=253)
    ip = models.GenericIPAddressField(protocol="IPv4")
    ttl = models.PositiveIntegerField(default=10)
    # The endpoint that wrote it (Integrate with private DNS zone = Yes); None: added by hand.
    private_endpoint = models.ForeignKey(PrivateEndpoint, null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="dns_records")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(ChildResource.Meta):
        constraints = [models.UniqueConstraint(Lower("name"), "zone", name="unique_a_record_per_zone")]

    def __str__(self):
        return f"{self.name}.{self.zone.name}"

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.zone.name}".lower()


class VirtualNetworkLink(ChildResource):
    """A private DNS zone linked to a VNet: the VNet's resolver answers from the zone."""

    RESOURCE_TYPE = ops.VIRTUAL_NETWORK_LINK_TYPE
    PARENT = "zone"
    CHILD_PATH = "virtualNetworkLinks"

    zone = models.ForeignKey(PrivateDnsZone, on_delete=models.CASCADE, related_name="links")
    virtual_network = models.ForeignKey(VirtualNetwork, on_delete=models.CASCADE, related_name="dns_links")
    name = models.CharField(max_length=80)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(ChildResource.Meta):
        constraints = [models.UniqueConstraint("zone", "virtual_network", name="unique_link_per_zone_and_vnet")]
