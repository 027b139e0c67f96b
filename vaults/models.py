"""Backup vaults (`Microsoft.DataProtection/backupVaults`).

Stored values are the API's enums (reference §1.2); the labels are the portal's (§3.1, §3.2). Every
change goes through `vaults.services`; this module holds fields, constraints and small derived
properties only.
"""

import uuid

from django.db import models
from django.db.models.functions import Lower

from portal.models import ChildResource, TrackedResource
from security.models import Principal
from security import operations as ops
from security.operations import VAULT_TYPE


class StorageRedundancy(models.TextChoices):
    GEO_REDUNDANT = "GeoRedundant", "Geo-redundant"
    LOCALLY_REDUNDANT = "LocallyRedundant", "Locally-redundant"
    ZONE_REDUNDANT = "ZoneRedundant", "Zone-redundant"


class SoftDeleteState(models.TextChoices):
    OFF = "Off", "Disabled"
    ON = "On", "Enabled"
    ALWAYS_ON = "AlwaysOn", "Enabled and always-on"


class ImmutabilityState(models.TextChoices):
    DISABLED = "Disabled", "Disabled"
    UNLOCKED = "Unlocked", "Enabled"
    LOCKED = "Locked", "Enabled and locked"


class CrossRegionRestoreState(models.TextChoices):
    DISABLED = "Disabled", "Disabled"
    ENABLED = "Enabled", "Enabled"


class CrossSubscriptionRestoreState(models.TextChoices):
    ENABLED = "Enabled", "Enabled"
    DISABLED = "Disabled", "Disabled"
    PERMANENTLY_DISABLED = "PermanentlyDisabled", "Permanently disabled"


class EncryptionType(models.TextChoices):
    # Customer-managed keys (reference §3.8) come later; only the platform key is offered now.
    PLATFORM_MANAGED = "PlatformManagedKey", "Platform-managed key"


class ProvisioningState(models.TextChoices):
    PROVISIONING = "Provisioning", "Provisioning"
    SUCCEEDED = "Succeeded", "Succeeded"
    UPDATING = "Updating", "Updating"
    FAILED = "Failed", "Failed"


class PublicNetworkAccess(models.TextChoices):
    """`properties.publicNetworkAccess`; the Networking blade's labels."""

    ENABLED = "Enabled", "Allow from all networks"
    DISABLED = "Disabled", "Deny"


class PrivateEndpointConnectionState(models.TextChoices):
    """Private Link's connection states (`privateLinkServiceConnectionState.status`)."""

    PENDING = "Pending", "Pending"
    APPROVED = "Approved", "Approved"
    REJECTED = "Rejected", "Rejected"
    DISCONNECTED = "Disconnected", "Disconnected"


class SecurityLevel(models.TextChoices):
    """`bcdrSecurityLevel` (reference §1.2, §3.4; computed by decision 6, never stored)."""

    POOR = "Poor", "Poor"
    FAIR = "Fair", "Fair"
    GOOD = "Good", "Good"
    EXCELLENT = "Excellent", "Excellent"


SOFT_DELETE_MIN_DAYS = 14
SOFT_DELETE_MAX_DAYS = 180
SOFT_DELETE_DEFAULT_DAYS = 14


class BackupVault(TrackedResource):
    """A Backup vault: its settings, its system-assigned identity and (by `uuid`) its store folder."""

    RESOURCE_TYPE = VAULT_TYPE

    # Names the store folder: stable across renames and moves (the resource id is not).
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    storage_redundancy = models.CharField(
        max_length=20, choices=StorageRedundancy.choices, default=StorageRedundancy.GEO_REDUNDANT
    )
    soft_delete_state = models.CharField(max_length=10, choices=SoftDeleteState.choices, default=SoftDeleteState.ON)
    soft_delete_retention_days = models.PositiveSmallIntegerField(default=SOFT_DELETE_DEFAULT_DAYS)
    immutability_state = models.CharField(
        max_length=10, choices=ImmutabilityState.choices, default=ImmutabilityState.DISABLED
    )
    cross_region_restore_state = models.CharField(
        max_length=10, choices=CrossRegionRestoreState.choices, default=CrossRegionRestoreState.DISABLED
    )
    cross_subscription_restore_state = models.CharField(
        max_length=20, choices=CrossSubscriptionRestoreState.choices, default=CrossSubscriptionRestoreState.ENABLED
    )
    encryption_type = models.CharField(
        max_length=30, choices=EncryptionType.choices, default=EncryptionType.PLATFORM_MANAGED
    )
    # The system-assigned managed identity (None when the vault was created without one).
    identity = models.OneToOneField(
        Principal, null=True, blank=True, on_delete=models.SET_NULL, related_name="backup_vault"
    )
    # Set once by protection (`services.mark_protected_item_added`) and never cleared: the storage
    # redundancy is frozen from then on, as in Azure.
    has_ever_protected_item = models.BooleanField(default=False)
    # Set by configure protection's first attempt, succeeded or not, and never cleared: a vault's first private
    # endpoint needs a vault that never had one (reference §4).
    protection_attempted = models.BooleanField(default=False)
    public_network_access = models.CharField(max_length=10, choices=PublicNetworkAccess.choices,
                                             default=PublicNetworkAccess.ENABLED)
    provisioning_state = models.CharField(
        max_length=20, choices=ProvisioningState.choices, default=ProvisioningState.SUCCEEDED
    )
    store_id = models.CharField(max_length=64, blank=True)  # the engine's store id (config "id")
    created_by = models.ForeignKey(Principal, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(Lower("name"), "resource_group", name="unique_vault_name_per_resource_group"),
            models.CheckConstraint(
                condition=models.Q(soft_delete_retention_days__gte=SOFT_DELETE_MIN_DAYS)
                & models.Q(soft_delete_retention_days__lte=SOFT_DELETE_MAX_DAYS),
                name="vault_soft_delete_retention_14_180",
            ),
        ]

    @property
    def identity_enabled(self) -> bool:
        return bool(self.identity_id and self.identity.enabled)

    @property
    def identity_type(self) -> str:
        """`identity.type` as the API spells it."""
        return "SystemAssigned" if self.identity_enabled else "None"

    @property
    def is_geo_redundant(self) -> bool:
        return self.storage_redundancy == StorageRedundancy.GEO_REDUNDANT

    @property
    def secondary_region(self):
        """Where a geo-redundant vault's secondary copy lives: the paired region."""
        return self.region.paired_region if self.is_geo_redundant else None

    @property
    def soft_delete_enabled(self) -> bool:
        return self.soft_delete_state in (SoftDeleteState.ON, SoftDeleteState.ALWAYS_ON)

    @property
    def immutability_enabled(self) -> bool:
        return self.immutability_state in (ImmutabilityState.UNLOCKED, ImmutabilityState.LOCKED)


class PrivateEndpointConnection(ChildResource):
    """The vault's side of a private endpoint: its state, set by the vault owner's approval.

    ``private_endpoint`` is the network's side (`portal.inventory.models.PrivateEndpoint`); when that resource
    is deleted the connection stays, Disconnected. Only an Approved connection carries traffic.
    """

    RESOURCE_TYPE = ops.PRIVATE_ENDPOINT_CONNECTION_TYPE
    PARENT = "vault"
    CHILD_PATH = "privateEndpointConnections"

    vault = models.ForeignKey(BackupVault, on_delete=models.CASCADE, related_name="private_endpoint_connections")
    name = models.CharField(max_length=200)  # "<endpoint name>.<guid>", as Azure names them
    private_endpoint = models.ForeignKey("portal.PrivateEndpoint", null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="vault_connections")
    private_endpoint_resource_id = models.CharField(max_length=512)  # kept when the endpoint is deleted
    group_id = models.CharField(max_length=40)  # "AzureBackup" or "AzureBackup_Secondary"
    state = models.CharField(max_length=20, choices=PrivateEndpointConnectionState.choices,
                             default=PrivateEndpointConnectionState.PENDING)
    description = models.CharField(max_length=140, blank=True)  # the request message, then the decision's
    requested_by = models.ForeignKey(Principal, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_by = models.ForeignKey(Principal, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(ChildResource.Meta):
        ordering = ["created_at", "name"]
        constraints = [models.UniqueConstraint(Lower("name"), "vault", name="unique_pe_connection_per_vault")]

    @property
    def carries_traffic(self) -> bool:
        return self.state == PrivateEndpointConnectionState.APPROVED and self.private_endpoint_id is not None


# --- the backup storage location (issue 22: S3 per vault) -------------------------------------------------


class StorageLocationType(models.TextChoices):
    LOCAL = "Local", "Local"
    S3 = "S3", "S3-compatible bucket"


class S3CredentialSource(models.TextChoices):
    ENVIRONMENT = "Environment", "From the environment"
    ACCESS_KEY = "AccessKey", "Access key"


class VaultStorageLocation(models.Model):
    """Where a vault's store lives when it is not the local default (no row = Local).

    An S3 location names a bucket (and key prefix) on an S3-compatible endpoint: the primary store is
    ``<prefix>/primary``, the secondary-region replica ``<prefix>/secondary/<paired region>`` and the
    archive tier ``<prefix>/archive`` (see `vaults.storage`). Credentials come from the environment
    (``AWS_*`` / ``STRONGROOM_S3_*`` or a named ``profile``) or are an access key sealed at rest
    (`security.crypto.encrypt_secret`, never shown back).
    """

    vault = models.OneToOneField("vaults.BackupVault", on_delete=models.CASCADE, related_name="storage_location")
    location_type = models.CharField(max_length=10, choices=StorageLocationType.choices, default=StorageLocationType.LOCAL)
    endpoint_url = models.CharField(max_length=500, blank=True)
    bucket = models.CharField(max_length=63, blank=True)
    prefix = models.CharField(max_length=500, blank=True)
    region = models.CharField(max_length=64, blank=True)
    credential_source = models.CharField(max_length=12, choices=S3CredentialSource.choices,
                                         default=S3CredentialSource.ENVIRONMENT)
    profile = models.CharField(max_length=128, blank=True)
    # encrypt_secret(json {"id", "secret"}, purpose=secret_purpose); empty unless credential_source is AccessKey
    credentials_encrypted = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    @property
    def secret_purpose(self) -> str:
        return f"vault-storage:{self.vault.uuid}"

    @property
    def is_s3(self) -> bool:
        return self.location_type == StorageLocationType.S3

    def access_key(self) -> tuple[str, str]:
        """(access key id, secret access key), or ("", "") when none is stored."""
        if not self.credentials_encrypted:
            return "", ""
        import json

        from security.crypto import decrypt_secret

        data = json.loads(decrypt_secret(self.credentials_encrypted, purpose=self.secret_purpose))
        return data["id"], data["secret"]

    def describe(self) -> str:
        if not self.is_s3:
            return "Local"
        where = f"s3://{self.bucket}/{self.prefix.strip('/')}".rstrip("/")
        return f"{where} ({self.endpoint_url})" if self.endpoint_url else where
