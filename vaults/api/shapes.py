"""A Backup vault and its Resource Guard link as the SDK reads them (``BackupVaultResource``,
``ResourceGuardProxyBaseResource``).

Stored values are already the API's enums (``vaults.models``); the security level maps to
``secureScore`` as reference §3.4 pairs them (Excellent = Maximum, Good = Adequate, Fair = Minimum,
Poor = None) and is ``bcdrSecurityLevel`` as it is.

``storageSettings`` stays Azure's (datastoreType ``VaultStore`` and its redundancy). Where the vault store
physically lives, a local folder or an S3-compatible bucket, is Strongroom's own extension beside it:
``properties.strongroomStorageLocation`` (the SDK has no such property and ignores it). It names the bucket
and says where credentials come from, never a credential.
"""

from __future__ import annotations

from portal.api import envelope, tokens
from security import mua
from security.operations import VAULT_TYPE
from vaults import storage
from vaults.models import S3CredentialSource, SecurityLevel, StorageLocationType
from vaults.services import is_resource_guard_linked, security_level

PROXY_TYPE = f"{VAULT_TYPE}/backupResourceGuardProxies"
VAULT_STORE = "VaultStore"
STORAGE_LOCATION = "strongroomStorageLocation"  # Strongroom's extension: where the VaultStore lives
SECURE_SCORE = {
    SecurityLevel.EXCELLENT: "Maximum",
    SecurityLevel.GOOD: "Adequate",
    SecurityLevel.FAIR: "Minimum",
    SecurityLevel.POOR: "None",
}
# Strongroom raises the job-failure alerts (Backup Failure, Restore Failure) for every vault; there is
# no switch to turn them off, so the vault reports them Enabled and a PATCH may not say Disabled.
JOB_FAILURE_ALERTS = "Enabled"


def identity(vault) -> dict:
    if not vault.identity_enabled:
        return {"type": "None"}
    return {"type": "SystemAssigned", "principalId": str(vault.identity_id), "tenantId": tokens.tenant_id()}


def storage_location(vault) -> dict:
    """The vault's backup storage location: ``{"type": "Local"}`` or the bucket, and whether credentials come
    from the workers' environment (optionally a named profile) or a stored access key. No key, no secret."""
    loc = storage.s3_location(vault)
    if loc is None:
        return {"type": StorageLocationType.LOCAL}
    body = {"type": StorageLocationType.S3, "endpointUrl": loc.endpoint_url, "bucket": loc.bucket,
            "prefix": loc.prefix, "region": loc.region, "credentialSource": loc.credential_source}
    if loc.credential_source == S3CredentialSource.ENVIRONMENT and loc.profile:
        body["profile"] = loc.profile
    return body


def vault_properties(vault) -> dict:
    level = security_level(vault).level
    return {
        "storageSettings": [{"datastoreType": VAULT_STORE, "type": vault.storage_redundancy}],
        STORAGE_LOCATION: storage_location(vault),
        "provisioningState": vault.provisioning_state,
        "securitySettings": {
            "softDeleteSettings": {
                "state": vault.soft_delete_state,
                "retentionDurationInDays": float(vault.soft_delete_retention_days),
            },
            "immutabilitySettings": {"state": vault.immutability_state},
        },
        "featureSettings": {
            "crossRegionRestoreSettings": {"state": vault.cross_region_restore_state},
            "crossSubscriptionRestoreSettings": {"state": vault.cross_subscription_restore_state},
        },
        "monitoringSettings": {"azureMonitorAlertSettings": {"alertsForAllJobFailures": JOB_FAILURE_ALERTS}},
        "publicNetworkAccess": vault.public_network_access,
        "isVaultProtectedByResourceGuard": is_resource_guard_linked(vault),
        "secureScore": SECURE_SCORE[level],
        "bcdrSecurityLevel": level,
    }


def vault_json(vault) -> dict:
    body = envelope.tracked(vault, VAULT_TYPE, vault_properties(vault), identity=identity(vault))
    if vault.updated_at:
        body.setdefault("systemData", {})["lastModifiedAt"] = envelope.timestamp(vault.updated_at)
    return body


def proxy_json(proxy) -> dict:
    guard = proxy.guard
    details = [
        {"vaultCriticalOperation": row["operation"].action,
         "defaultResourceRequest": mua.request_resource_id(guard, row["operation"].request_type)}
        for row in mua.protected_operations(guard)
        if row["protected"]
    ]
    properties = {
        "resourceGuardResourceId": guard.resource_id,
        "resourceGuardOperationDetails": details,
        "lastUpdatedTime": envelope.timestamp(proxy.linked_at),
        "description": guard.description,
    }
    return envelope.proxy(proxy.resource_id, proxy.name, PROXY_TYPE, properties)
