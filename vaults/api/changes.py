"""A vault PUT (on an existing vault) or PATCH, applied through the vault pages' own services.

Each setting that differs goes through its service (`vaults.services`: tags, identity, backup storage
location, redundancy, restore options, soft delete, immutability), so its guard decides as it does for the page: leaving
always-on soft delete or locked immutability is the guard's 409, a Resource Guard refusal is the MUA
code. The order lets settings that depend on each other pass (Cross Region Restore is switched off
before the redundancy leaves Geo-redundant and switched on after it arrives). Each service is its own
transaction, as each blade's Save is: a refusal part-way leaves the earlier settings applied (the
answer names the refused one).

ARM's explicit values stand for the pages' confirmations: ``AlwaysOn`` is the "I understand this is
irreversible" tick, ``Locked`` is typing the vault's name.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError

from portal.api.errors import ArmError
from portal.api.errors import renamed_fields as fields
from security.guards import GuardDenied, evaluate
from security.operations import VAULT_WRITE
from vaults import services, storage
from vaults.api.schemas import StorageLocationIn, VaultSettingsIn
from vaults.models import CrossRegionRestoreState, ImmutabilityState, S3CredentialSource, SoftDeleteState
from vaults.services.storage_location import LocationSpec, update_storage_location

PROPS = "properties"
SOFT_DELETE = f"{PROPS}.securitySettings.softDeleteSettings"
IMMUTABILITY = f"{PROPS}.securitySettings.immutabilitySettings.state"
CROSS_REGION = f"{PROPS}.featureSettings.crossRegionRestoreSettings.state"
CROSS_SUBSCRIPTION = f"{PROPS}.featureSettings.crossSubscriptionRestoreSettings.state"
STORAGE = f"{PROPS}.storageSettings"
ALERTS = f"{PROPS}.monitoringSettings.azureMonitorAlertSettings.alertsForAllJobFailures"
ENCRYPTION = f"{PROPS}.securitySettings.encryptionSettings.state"
LOCATION = f"{PROPS}.strongroomStorageLocation"
# the storage location service's fields (`vaults.services.storage_location`) as the request names them
LOCATION_FIELDS = {
    "location_type": f"{LOCATION}.type",
    "endpoint_url": f"{LOCATION}.endpointUrl",
    "bucket": f"{LOCATION}.bucket",
    "prefix": f"{LOCATION}.prefix",
    "credential_source": f"{LOCATION}.credentialSource",
    "access_key_id": f"{LOCATION}.accessKeyId",
    "secret_access_key": f"{LOCATION}.secretAccessKey",
}

# A service's ValidationError fields, as the request's JSON paths name them.
CREATE_FIELDS = {
    "storage_redundancy": f"{STORAGE}.type",
    "soft_delete_state": f"{SOFT_DELETE}.state",
    "soft_delete_retention_days": f"{SOFT_DELETE}.retentionDurationInDays",
    "immutability_state": IMMUTABILITY,
    "cross_region_restore_state": CROSS_REGION,
    "cross_subscription_restore_state": CROSS_SUBSCRIPTION,
    "region": "location",
    **LOCATION_FIELDS,
}


@dataclass
class Wanted:
    """The settings a request asks for (None: leave as it is)."""

    tags: dict | None = None
    identity: bool | None = None
    redundancy: str | None = None
    soft_delete: str | None = None
    retention: int | None = None
    immutability: str | None = None
    cross_region: str | None = None
    cross_subscription: str | None = None
    location: LocationSpec | None = None


def identity_wanted(identity) -> bool | None:
    """``identity.type`` -> whether the system-assigned identity is wanted (None: not said)."""
    if identity is None or identity.type is None:
        return None
    kinds = {k.strip().lower() for k in identity.type.split(",") if k.strip()}
    if "userassigned" in kinds:
        raise ArmError(400, "InvalidIdentityType", "User-assigned identities are not supported for Backup vaults "
                       "in Strongroom: use 'SystemAssigned' or 'None'.", target="identity.type")
    if not kinds or kinds - {"systemassigned", "none"} or len(kinds) > 1:
        raise ArmError(400, "InvalidIdentityType", f"The identity type '{identity.type}' is not valid: use "
                       "'SystemAssigned' or 'None'.", target="identity.type")
    return "systemassigned" in kinds


def _retention(days) -> int | None:
    if days is None:
        return None
    if days != int(days):
        raise ValidationError({f"{SOFT_DELETE}.retentionDurationInDays": "Enter a whole number of days."})
    return int(days)


def _vault_store(storage_settings) -> str | None:
    for setting in storage_settings or []:
        if setting.datastoreType in (None, "VaultStore"):
            return setting.type
    if storage_settings:
        raise ValidationError({f"{STORAGE}.datastoreType": "A Backup vault's storage settings name the VaultStore."})
    return None


def location_spec(location: StorageLocationIn | None) -> LocationSpec | None:
    """``strongroomStorageLocation`` as the storage location service reads it. Without ``credentialSource``,
    an access key in the request means AccessKey, else the environment."""
    if location is None:
        return None
    source = location.credentialSource or (S3CredentialSource.ACCESS_KEY if location.accessKeyId or
                                           location.secretAccessKey else S3CredentialSource.ENVIRONMENT)
    return LocationSpec.of({"location_type": location.type, "endpoint_url": location.endpointUrl,
                            "bucket": location.bucket, "prefix": location.prefix, "region": location.region,
                            "credential_source": source, "profile": location.profile,
                            "access_key_id": location.accessKeyId, "secret_access_key": location.secretAccessKey})


def _location_differs(vault, spec: LocationSpec | None) -> bool:
    """Whether ``spec`` asks for another place, other settings or a new access key than the vault has."""
    if spec is None:
        return False
    current = storage.s3_location(vault)
    if current is None or not spec.is_s3:
        return spec.is_s3 != (current is not None)
    ours = (spec.endpoint_url.rstrip("/"), spec.bucket, spec.prefix.strip("/"), spec.region, spec.credential_source,
            spec.profile if spec.credential_source == S3CredentialSource.ENVIRONMENT else "")
    theirs = (current.endpoint_url, current.bucket, current.prefix, current.region, current.credential_source,
              current.profile)
    return ours != theirs or bool(spec.access_key_id or spec.secret_access_key)


def _unsupported(properties: VaultSettingsIn | None) -> None:
    if properties is None:
        return
    alerts = properties.monitoringSettings and properties.monitoringSettings.azureMonitorAlertSettings
    if alerts and alerts.alertsForAllJobFailures == "Disabled":
        raise ArmError(400, "InvalidParameter", "Strongroom raises the job-failure alerts (Backup Failure, Restore "
                       "Failure) for every vault: they cannot be disabled.", target=ALERTS)
    encryption = properties.securitySettings and properties.securitySettings.encryptionSettings
    if encryption and encryption.state == "Enabled":
        raise ArmError(400, "InvalidParameter", "Customer-managed keys are not offered yet: a Backup vault is "
                       "encrypted with the platform-managed key.", target=ENCRYPTION)


def wanted(tags, identity, properties: VaultSettingsIn | None, *, replace_tags: bool) -> Wanted:
    """What a PUT (``replace_tags``: its tags replace the vault's) or PATCH body asks for."""
    _unsupported(properties)
    want = Wanted(tags=dict(tags or {}) if (replace_tags or tags is not None) else None,
                  identity=identity_wanted(identity))
    if properties is None:
        return want
    want.location = location_spec(properties.strongroomStorageLocation)
    security, features = properties.securitySettings, properties.featureSettings
    if security and security.softDeleteSettings:
        want.soft_delete = security.softDeleteSettings.state
        want.retention = _retention(security.softDeleteSettings.retentionDurationInDays)
    if security and security.immutabilitySettings:
        want.immutability = security.immutabilitySettings.state
    if features and features.crossRegionRestoreSettings:
        want.cross_region = features.crossRegionRestoreSettings.state
    if features and features.crossSubscriptionRestoreSettings:
        want.cross_subscription = features.crossSubscriptionRestoreSettings.state
    want.redundancy = _vault_store(getattr(properties, "storageSettings", None))
    return want


def _differs(value, current) -> bool:
    return value is not None and value != current


def apply(principal, vault, want: Wanted):
    """Apply ``want`` to ``vault`` through the services; a request that changes nothing is still
    authorized as the write it is (so a caller without the right is told so)."""
    changed = False
    if want.tags is not None and want.tags != dict(vault.tags or {}):
        services.update_tags(principal, vault, tags=want.tags)
        changed = True
    if _differs(want.identity, vault.identity_enabled):
        services.set_identity_enabled(principal, vault, enabled=want.identity)
        changed = True
    if _location_differs(vault, want.location):  # before immutability: a move may bring Object Lock
        with fields(LOCATION_FIELDS):
            update_storage_location(principal, vault, want.location)
        changed = True
    changed |= _restore_and_redundancy(principal, vault, want)
    changed |= _soft_delete(principal, vault, want)
    if _differs(want.immutability, vault.immutability_state):
        with fields({"state": IMMUTABILITY, "confirm_name": IMMUTABILITY}):
            confirm = vault.name if want.immutability == ImmutabilityState.LOCKED else ""
            services.update_immutability(principal, vault, state=want.immutability, confirm_name=confirm)
        changed = True
    if not changed:
        decision = evaluate(principal, VAULT_WRITE, vault)
        if not decision.allowed:
            raise GuardDenied(decision)
    return vault


def _restore_and_redundancy(principal, vault, want: Wanted) -> bool:
    changed = False
    crr_off = want.cross_region == CrossRegionRestoreState.DISABLED
    if crr_off and _differs(want.cross_region, vault.cross_region_restore_state):
        with fields({"state": CROSS_REGION}):
            services.update_cross_region_restore(principal, vault, state=want.cross_region)
        changed = True
    if _differs(want.redundancy, vault.storage_redundancy):
        with fields({"storage_redundancy": f"{STORAGE}.type"}):
            services.update_storage_redundancy(principal, vault, redundancy=want.redundancy)
        changed = True
    if not crr_off and _differs(want.cross_region, vault.cross_region_restore_state):
        with fields({"state": CROSS_REGION}):
            services.update_cross_region_restore(principal, vault, state=want.cross_region)
        changed = True
    if _differs(want.cross_subscription, vault.cross_subscription_restore_state):
        with fields({"state": CROSS_SUBSCRIPTION}):
            services.update_cross_subscription_restore(principal, vault, state=want.cross_subscription)
        changed = True
    return changed


def _soft_delete(principal, vault, want: Wanted) -> bool:
    state = want.soft_delete or vault.soft_delete_state
    retention = want.retention if want.retention is not None else vault.soft_delete_retention_days
    if state == SoftDeleteState.OFF:
        retention = vault.soft_delete_retention_days  # kept, as the blade keeps it
    if (state, retention) == (vault.soft_delete_state, vault.soft_delete_retention_days):
        return False
    with fields({"state": f"{SOFT_DELETE}.state", "retention_days": f"{SOFT_DELETE}.retentionDurationInDays"}):
        services.update_soft_delete(principal, vault, state=state, retention_days=retention,
                                    acknowledge_irreversible=True)
    return True
