"""Backup instances on the wire: what a stored `BackupInstance` looks like as azure-mgmt-dataprotection's
`BackupInstanceResource` / `DeletedBackupInstanceResource`, and what a PUT or ``validateForBackup``
body asks for, as the `DatasourceSelection` the Configure protection services take.

The shapes (reference §1.4–1.5): ``dataSourceInfo`` is the protected resource (the storage account for
ADLS, the volume for Elastic SAN, the server for PostgreSQL flexible servers), ``dataSourceSetInfo`` its
set (the Elastic SAN for a volume; the resource itself otherwise), ``policyInfo.policyParameters`` the
ADLS containers (``AdlsBlobBackupDatasourceParameters``) and the Elastic SAN snapshot resource group
(``AzureOperationalStoreParameters``). PostgreSQL flexible servers are backed up with the vault's
identity (the Long Term Retention Backup role), as in Azure: no ``datasourceAuthCredentials``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from portal.api.envelope import proxy, system_data, timestamp
from portal.api.errors import ArmError
from protection import datasource_types
from protection.instances.services import DatasourceSelection
from protection.models import BackupInstance, BackupPolicy, ProtectionState
from security import operations as ops

DELETED_INSTANCE_TYPE = f"{ops.VAULT_TYPE}/deletedBackupInstances"
ADLS_PARAMETERS = "AdlsBlobBackupDatasourceParameters"
OPERATIONAL_STORE_PARAMETERS = "AzureOperationalStoreParameters"

# (resourceType of dataSourceInfo, resourceType of dataSourceSetInfo) per datasource type.
RESOURCE_TYPES = {
    datasource_types.ADLS: (ops.STORAGE_ACCOUNT_TYPE, ops.STORAGE_ACCOUNT_TYPE),
    datasource_types.ELASTIC_SAN: (ops.VOLUME_TYPE, ops.ELASTIC_SAN_TYPE),
    datasource_types.POSTGRES_FLEX: (ops.POSTGRES_SERVER_TYPE, ops.POSTGRES_SERVER_TYPE),
    datasource_types.AZURE_DISK: (ops.DISK_TYPE, ops.DISK_TYPE),
}
# Datasource types whose instances name a snapshot resource group (AzureOperationalStoreParameters).
SNAPSHOT_GROUP_TYPES = (datasource_types.ELASTIC_SAN, datasource_types.AZURE_DISK)

# provisioningState (reference §1.4: Provisioning / Updating / Succeeded / Failed) from the stored state.
PROVISIONING = {
    ProtectionState.CONFIGURING: "Provisioning",
    ProtectionState.CONFIGURING_FAILED: "Failed",
    ProtectionState.UPDATING: "Updating",
    ProtectionState.SOFT_DELETING: "Updating",
}


# --- out -----------------------------------------------------------------------------------------


def _datasource(bi: BackupInstance) -> dict:
    resource_type, _ = RESOURCE_TYPES[bi.datasource_type]
    return {
        "objectType": "Datasource", "datasourceType": bi.datasource_type, "resourceID": bi.datasource_resource_id,
        "resourceName": bi.datasource_name, "resourceType": resource_type, "resourceLocation": bi.datasource_location,
        "resourceUri": bi.datasource_resource_id,
    }


def _datasource_set(bi: BackupInstance) -> dict:
    _, set_type = RESOURCE_TYPES[bi.datasource_type]
    set_id = bi.datasource_set_resource_id or bi.datasource_resource_id
    return {
        "objectType": "DatasourceSet", "datasourceType": bi.datasource_type, "resourceID": set_id,
        "resourceName": set_id.rstrip("/").rsplit("/", 1)[-1], "resourceType": set_type,
        "resourceLocation": bi.datasource_location, "resourceUri": set_id,
    }


def _containers(bi: BackupInstance) -> list[str]:
    if not bi.all_containers:
        return list(bi.containers)
    names = getattr(bi, "_account_containers", None)
    if names is None:
        from portal.inventory.models import Container

        names = Container.objects.filter(account__resource_id__iexact=bi.datasource_resource_id).values_list("name", flat=True)
    return sorted(set(names) - set(bi.excluded_containers))


def load_containers(rows) -> None:
    """For a page of instances: the containers of every "all containers" ADLS account in one query
    (``_containers`` would ask once per instance); accounts matched without case, as ``_containers`` does."""
    from django.db.models.functions import Upper

    from portal.inventory.models import Container

    wanted = [bi for bi in rows if bi.datasource_type == datasource_types.ADLS and bi.all_containers]
    if not wanted:
        return
    keys = {bi.datasource_resource_id.upper() for bi in wanted}
    by_account: dict[str, list[str]] = {}
    found = (Container.objects.annotate(account_key=Upper("account__resource_id"))
             .filter(account_key__in=keys).values_list("account_key", "name"))
    for account_key, name in found:
        by_account.setdefault(account_key, []).append(name)
    for bi in wanted:  # an account with no container (or gone) has none: no query of its own either
        bi._account_containers = by_account.get(bi.datasource_resource_id.upper(), [])


def _policy_info(bi: BackupInstance) -> dict:
    parameters: dict = {}
    if bi.datasource_type == datasource_types.ADLS:
        parameters["backupDatasourceParametersList"] = [{"objectType": ADLS_PARAMETERS, "containersList": _containers(bi)}]
    if bi.datasource_type in SNAPSHOT_GROUP_TYPES:
        parameters["dataStoreParametersList"] = [{"objectType": OPERATIONAL_STORE_PARAMETERS,
                                                  "dataStoreType": "OperationalStore",
                                                  "resourceGroupId": bi.snapshot_resource_group_id}]
    info = {"policyId": bi.policy.resource_id}
    if parameters:
        info["policyParameters"] = parameters
    return info


def properties(bi: BackupInstance) -> dict:
    status = {"status": bi.protection_status}
    body = {
        "objectType": "BackupInstance",
        "friendlyName": bi.name,
        "dataSourceInfo": _datasource(bi),
        "dataSourceSetInfo": _datasource_set(bi),
        "policyInfo": _policy_info(bi),
        "protectionStatus": status,
        "currentProtectionState": bi.protection_state,
        "provisioningState": PROVISIONING.get(bi.protection_state, "Succeeded"),
    }
    if bi.error_code:
        error = {"code": bi.error_code, "message": bi.error_message}
        status["errorDetails"] = error
        body["protectionErrorDetails"] = dict(error)
    return body


# The columns ``resource`` reads (a list page loads these and its policy's id, not the vault, its group,
# subscription and region and the policy's rules for each of 200 rows: issue 22).
RESOURCE_COLUMNS = (
    "id", "name", "datasource_type", "datasource_resource_id", "datasource_name", "datasource_location",
    "datasource_set_resource_id", "policy", "policy__resource_id", "protection_state", "error_code", "error_message",
    "snapshot_resource_group_id", "containers", "excluded_containers", "all_containers", "resource_id", "created_at",
    "updated_at",
)


def resource(bi: BackupInstance) -> dict:
    return proxy(bi.resource_id, bi.name, ops.INSTANCE_TYPE, properties(bi),
                 systemData=system_data(bi.created_at, bi.updated_at))


def deleted_resource(bi: BackupInstance) -> dict:
    body = properties(bi)
    body["deletionInfo"] = {k: v for k, v in {
        "deletionTime": timestamp(bi.deleted_at),
        "billingEndDate": timestamp(bi.deleted_at),
        "scheduledPurgeTime": timestamp(bi.scheduled_purge_at),
    }.items() if v}
    resource_id = f"{bi.vault.resource_id}/deletedBackupInstances/{bi.name}"
    return proxy(resource_id, bi.name, DELETED_INSTANCE_TYPE, body, systemData=system_data(bi.created_at, bi.updated_at))


# --- in ------------------------------------------------------------------------------------------


def bad(message: str, target: str, code: str = "InvalidParameter") -> ArmError:
    return ArmError(400, code, message, target=target)


def json_body(request) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise bad("The request content is not valid JSON.", "body", "InvalidRequestContent") from None
    if not isinstance(body, dict):
        raise bad("The request content must be a JSON object.", "body", "InvalidRequestContent")
    return body


def _object(value, target: str, *, required: bool = True) -> dict:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise bad(f"'{target}' is required and must be an object.", target)
    return value


def _string(obj: dict, key: str, target: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise bad(f"'{target}.{key}' is required and must be a non-empty string.", f"{target}.{key}")
    return value.strip()


@dataclass(frozen=True)
class Requested:
    """What a BackupInstance body asks for: the policy and one datasource selection."""

    policy: BackupPolicy
    selection: DatasourceSelection


def policy_of(vault, policy_id: str, target: str) -> BackupPolicy:
    prefix = f"{vault.resource_id}/backupPolicies/"
    name = policy_id[len(prefix):] if policy_id.lower().startswith(prefix.lower()) else ""
    found = BackupPolicy.objects.filter(vault=vault, name__iexact=name).first() if name and "/" not in name else None
    if found is None:
        raise bad(f"The backup policy '{policy_id}' is not a policy of the Backup vault '{vault.name}'. "
                  f"Name one of its policies ({prefix}<name>).", target, "UserErrorPolicyNotFound")
    return found


def _adls_containers(parameters: dict, target: str) -> tuple[bool, tuple[str, ...]]:
    entries = parameters.get("backupDatasourceParametersList")
    if entries is None:
        return True, ()  # no list: every container (Strongroom's "all containers")
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
        raise bad(f"'{target}' must hold one {ADLS_PARAMETERS} object.", target)
    entry = entries[0]
    if entry.get("objectType") != ADLS_PARAMETERS:
        raise bad(f"Azure Data Lake Storage backup takes '{ADLS_PARAMETERS}' (objectType), not "
                  f"{entry.get('objectType')!r}.", f"{target}[0].objectType")
    names = entry.get("containersList")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise bad("'containersList' must be a list of container names.", f"{target}[0].containersList")
    return False, tuple(names)


def _snapshot_group(parameters: dict, target: str) -> str:
    entries = parameters.get("dataStoreParametersList")
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict):
        raise bad(f"Elastic SAN and Azure Disk backups need the snapshot resource group: one {OPERATIONAL_STORE_PARAMETERS} "
                  "with its resourceGroupId.", target)
    entry = entries[0]
    if entry.get("objectType") != OPERATIONAL_STORE_PARAMETERS:
        raise bad(f"Expected objectType '{OPERATIONAL_STORE_PARAMETERS}'.", f"{target}[0].objectType")
    return _string(entry, "resourceGroupId", f"{target}[0]")


def parse_instance(vault, props, name: str, target: str = "properties") -> Requested:
    """The BackupInstance ``props`` (its ``properties``) as a policy and a selection for ``vault``."""
    props = _object(props, target)
    if props.get("objectType", "BackupInstance") != "BackupInstance":
        raise bad("objectType must be 'BackupInstance'.", f"{target}.objectType")
    friendly = props.get("friendlyName")
    if friendly is not None and friendly != name:
        raise bad(f"friendlyName '{friendly}' differs from the backup instance name '{name}': a backup instance in "
                  "Strongroom is named once, by its path. Leave friendlyName out or make it the same.",
                  f"{target}.friendlyName")
    if props.get("datasourceAuthCredentials") is not None:
        raise bad("datasourceAuthCredentials are not used: PostgreSQL flexible servers are backed up with the vault's "
                  "managed identity (PostgreSQL Flexible Server Long Term Retention Backup Role on the server, Reader "
                  "on its resource group), as in Azure. Leave them out.", f"{target}.datasourceAuthCredentials")
    source = _object(props.get("dataSourceInfo"), f"{target}.dataSourceInfo")
    resource_id = _string(source, "resourceID", f"{target}.dataSourceInfo")
    policy_info = _object(props.get("policyInfo"), f"{target}.policyInfo")
    policy = policy_of(vault, _string(policy_info, "policyId", f"{target}.policyInfo"), f"{target}.policyInfo.policyId")
    kind = source.get("datasourceType") or policy.datasource_type
    if kind != policy.datasource_type:
        raise bad(f"The policy '{policy.name}' is for {policy.datasource_type}; dataSourceInfo.datasourceType is {kind!r}.",
                  f"{target}.dataSourceInfo.datasourceType")
    params = _object(policy_info.get("policyParameters"), f"{target}.policyInfo.policyParameters", required=False)
    ptarget = f"{target}.policyInfo.policyParameters"
    selection = {"resource_id": resource_id, "instance_name": name, "key": "ds"}
    if kind == datasource_types.ADLS:
        every, names = _adls_containers(params, f"{ptarget}.backupDatasourceParametersList")
        selection.update(all_containers=every, containers=names)
    elif kind in SNAPSHOT_GROUP_TYPES:
        selection["snapshot_resource_group_id"] = _snapshot_group(params, f"{ptarget}.dataStoreParametersList")
    return Requested(policy, DatasourceSelection(**selection))


# The service's form-field keys (selection key "ds") as the body's property paths.
TARGETS = {
    "ds_selected": "dataSourceInfo.resourceID",
    "datasources": "dataSourceInfo.resourceID",
    "ds_containers": "policyInfo.policyParameters.backupDatasourceParametersList",
    "ds_excluded": "policyInfo.policyParameters.backupDatasourceParametersList",
    "ds_scope": "policyInfo.policyParameters.backupDatasourceParametersList",
    "snapshot_resource_group": "policyInfo.policyParameters.dataStoreParametersList",
    "policy": "policyInfo.policyId",
}


def retarget(error: ArmError, prefix: str) -> ArmError:
    """A service's field names in an ArmError (and its details) as the body's property paths under
    ``prefix`` ("properties" of a PUT, "backupInstance" of validateForBackup)."""
    def path(field):
        if field == "ds_name":
            return "backupInstanceName"
        return f"{prefix}.{TARGETS[field]}" if field in TARGETS else field

    error.target = path(error.target)
    for detail in error.details:
        detail["target"] = path(detail.get("target"))
    return error
