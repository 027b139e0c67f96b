"""What a client may send for a Backup vault, in the SDK's wire names (``BackupVaultResource``,
``PatchResourceRequestInput``, ``CheckNameAvailabilityRequest``, ``ResourceGuardProxyBaseResource``,
``UnlockDeleteRequest``).

Enumerations are the SDK's own values (``models/_enums.py``), so a wrong value is ARM's 400 naming the
field (``properties.securitySettings.softDeleteSettings.state``) before any service is asked. Fields
the server computes (``provisioningState``, ``secureScore``, ...) are accepted and ignored, as ARM does.
"""

from __future__ import annotations

from typing import Literal, Optional

from ninja import Schema
from pydantic import Field


class StorageSettingIn(Schema):
    datastoreType: Optional[Literal["ArchiveStore", "OperationalStore", "VaultStore"]] = None
    type: Optional[Literal["GeoRedundant", "LocallyRedundant", "ZoneRedundant"]] = None


class SoftDeleteIn(Schema):
    state: Optional[Literal["Off", "On", "AlwaysOn"]] = None
    retentionDurationInDays: Optional[float] = None


class ImmutabilityIn(Schema):
    state: Optional[Literal["Disabled", "Unlocked", "Locked"]] = None


class EncryptionIn(Schema):
    state: Optional[Literal["Enabled", "Disabled", "Inconsistent"]] = None


class SecurityIn(Schema):
    softDeleteSettings: Optional[SoftDeleteIn] = None
    immutabilitySettings: Optional[ImmutabilityIn] = None
    encryptionSettings: Optional[EncryptionIn] = None


class CrossRegionIn(Schema):
    state: Optional[Literal["Disabled", "Enabled"]] = None


class CrossSubscriptionIn(Schema):
    state: Optional[Literal["Disabled", "PermanentlyDisabled", "Enabled"]] = None


class FeatureIn(Schema):
    crossRegionRestoreSettings: Optional[CrossRegionIn] = None
    crossSubscriptionRestoreSettings: Optional[CrossSubscriptionIn] = None


class AlertSettingsIn(Schema):
    alertsForAllJobFailures: Optional[Literal["Enabled", "Disabled"]] = None


class MonitoringIn(Schema):
    azureMonitorAlertSettings: Optional[AlertSettingsIn] = None


class IdentityIn(Schema):
    type: Optional[str] = Field(None, max_length=60)


class StorageLocationIn(Schema):
    """Strongroom's ``strongroomStorageLocation`` (not in the SDK): where the vault store lives. The access key
    is write-only (never returned); left out on an update, a stored one is kept."""

    type: Literal["Local", "S3"]
    endpointUrl: Optional[str] = Field(None, max_length=500)
    bucket: Optional[str] = Field(None, max_length=63)
    prefix: Optional[str] = Field(None, max_length=500)
    region: Optional[str] = Field(None, max_length=64)
    credentialSource: Optional[Literal["Environment", "AccessKey"]] = None
    profile: Optional[str] = Field(None, max_length=128)
    accessKeyId: Optional[str] = Field(None, max_length=128)
    secretAccessKey: Optional[str] = Field(None, max_length=256)


class VaultSettingsIn(Schema):
    """What PATCH may change (``PatchBackupVaultInput``); PUT's properties add storageSettings. Both may
    carry Strongroom's ``strongroomStorageLocation``."""

    strongroomStorageLocation: Optional[StorageLocationIn] = None
    securitySettings: Optional[SecurityIn] = None
    featureSettings: Optional[FeatureIn] = None
    monitoringSettings: Optional[MonitoringIn] = None
    resourceGuardOperationRequests: Optional[list[str]] = None


class VaultPropertiesIn(VaultSettingsIn):
    storageSettings: list[StorageSettingIn] = Field(..., min_length=1, max_length=3)


Tags = dict[str, Optional[str]]


class VaultIn(Schema):
    location: str = Field(..., min_length=1, max_length=60)
    tags: Optional[Tags] = None
    identity: Optional[IdentityIn] = None
    properties: VaultPropertiesIn


class VaultPatchIn(Schema):
    tags: Optional[Tags] = None
    identity: Optional[IdentityIn] = None
    properties: Optional[VaultSettingsIn] = None


class CheckNameIn(Schema):
    name: str = Field(..., max_length=260)
    type: str = Field(..., max_length=200)


class ProxyPropertiesIn(Schema):
    resourceGuardResourceId: str = Field(..., min_length=1, max_length=512)
    description: Optional[str] = Field(None, max_length=1000)


class ProxyIn(Schema):
    properties: ProxyPropertiesIn


class UnlockDeleteIn(Schema):
    resourceGuardOperationRequests: Optional[list[str]] = None
    resourceToBeDeleted: Optional[str] = Field(None, max_length=512)
