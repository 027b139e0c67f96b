"""Every API route is guarded, as tests/test_entry_points.py proves for pages (the page proof leaves
the ``arm:`` routes to this module).

Every (method, path) the API serves must have a row in ``API_ROUTES``: read-only, or the guarded
operations (Azure action strings) it can reach. Then each route is driven with real input (the path's
names from the entry-point world, a body from ``BODIES``) under the lockdown guard: nothing changed,
every write was refused at an operation of its row, every read-only route was refused nothing, and
nothing answered 500.
"""

from __future__ import annotations

import uuid

import pytest

from portal.api import API_VERSION
from security import operations as ops
from tests._entry_world import build_world, difference, entry_lab_registered, fingerprint, lockdown
from tests.api.conftest import ArmClient
from security import operations as ops
from tests.test_entry_points import READ, refusal_problems

pytestmark = pytest.mark.django_db

DP = "Microsoft.DataProtection"
BV = f"{DP}/backupVaults"
LOCATION = "/subscriptions/{subscriptionId}/providers/Microsoft.DataProtection/locations/{location}"
RG = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.DataProtection"
VAULT = RG + "/backupVaults/{vaultName}"
POLICY = VAULT + "/backupPolicies/{backupPolicyName}"
SUB = "/subscriptions/{subscriptionId}/providers/Microsoft.DataProtection"
GUARD = RG + "/resourceGuards/{resourceGuardsName}"
PROXY = VAULT + "/backupResourceGuardProxies/{resourceGuardProxyName}"
INSTANCE = VAULT + "/backupInstances/{backupInstanceName}"
PIM_REQUEST = GUARD + "/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{roleAssignmentScheduleRequestName}"

BI = VAULT + "/backupInstances/{backupInstanceName}"
DELETED_BI = VAULT + "/deletedBackupInstances/{backupInstanceName}"

AUTHZ_VERSION = "2022-04-01"
ASSIGNMENT = "/{path:scope}/providers/Microsoft.Authorization/roleAssignments"

# (method, path template) -> READ or the set of guarded operations it may be refused at.
API_ROUTES: dict[tuple[str, str], object] = {
    # Microsoft.Authorization (portal.api.authorization)
    ("PUT", ASSIGNMENT + "/{roleAssignmentName}"): {ops.ROLE_ASSIGNMENT_WRITE},
    ("GET", ASSIGNMENT + "/{roleAssignmentName}"): READ,
    ("DELETE", ASSIGNMENT + "/{roleAssignmentName}"): {ops.ROLE_ASSIGNMENT_DELETE},
    ("GET", ASSIGNMENT): READ,
    ("GET", "/{path:scope}/providers/Microsoft.Authorization/roleDefinitions"): READ,
    ("GET", LOCATION + "/operationStatus/{operationId}"): READ,
    ("GET", LOCATION + "/operationResults/{operationId}"): READ,
    ("GET", VAULT + "/backupPolicies"): READ,
    ("GET", POLICY): READ,
    ("PUT", POLICY): {f"{BV}/backupPolicies/write"},
    ("DELETE", POLICY): {f"{BV}/backupPolicies/delete"},
    # backupVaults (vaults.api.vaults)
    ("PUT", VAULT): {ops.VAULT_WRITE},
    ("GET", VAULT): READ,
    ("PATCH", VAULT): {ops.VAULT_WRITE},
    ("DELETE", VAULT): {ops.VAULT_DELETE},
    ("GET", RG + "/backupVaults"): READ,
    ("GET", SUB + "/backupVaults"): READ,
    ("POST", RG + "/locations/{location}/checkNameAvailability"): {ops.CHECK_NAME_AVAILABILITY},
    # resourceGuards (portal.api.resource_guards)
    ("PUT", GUARD): {ops.GUARD_WRITE},
    ("GET", GUARD): READ,
    ("PATCH", GUARD): {ops.GUARD_WRITE},
    ("DELETE", GUARD): {ops.GUARD_DELETE},
    ("GET", RG + "/resourceGuards"): READ,
    ("GET", SUB + "/resourceGuards"): READ,
    # PIM's access requests on a Resource Guard (portal.api.pim; Microsoft.Authorization's api-version)
    ("PUT", PIM_REQUEST): {ops.REQUEST_ACCESS},
    ("GET", PIM_REQUEST): READ,
    ("POST", PIM_REQUEST + "/cancel"): {ops.CANCEL_REQUEST},
    # backupResourceGuardProxies (vaults.api.guard_proxies)
    ("PUT", PROXY): {ops.PROXY_WRITE},
    ("GET", PROXY): READ,
    ("DELETE", PROXY): {ops.PROXY_DELETE},
    ("GET", VAULT + "/backupResourceGuardProxies"): READ,
    ("POST", PROXY + "/unlockDelete"): {ops.PROXY_DELETE},
    # backupInstances (protection/api/instances.py)
    ("GET", VAULT + "/backupInstances"): READ,
    ("GET", BI): READ,
    ("PUT", BI): {ops.INSTANCE_WRITE},
    ("DELETE", BI): {ops.INSTANCE_DELETE},
    ("POST", VAULT + "/validateForBackup"): READ,  # readiness only: creates nothing, asks no guard
    ("POST", BI + "/stopProtection"): {ops.STOP_PROTECTION},
    ("POST", BI + "/suspendBackups"): {ops.SUSPEND_BACKUPS},
    ("POST", BI + "/resumeProtection"): {ops.RESUME_PROTECTION, ops.RESUME_BACKUPS},
    ("POST", BI + "/resumeBackups"): {ops.RESUME_PROTECTION, ops.RESUME_BACKUPS},
    ("GET", VAULT + "/deletedBackupInstances"): READ,
    ("GET", DELETED_BI): READ,
    ("POST", DELETED_BI + "/undelete"): {ops.UNDELETE},
    ("POST", INSTANCE + "/backup"): {ops.BACKUP_ACTION},
    ("POST", INSTANCE + "/validateRestore"): {ops.VALIDATE_RESTORE},
    ("POST", INSTANCE + "/restore"): {ops.RESTORE},
    # Cross Region Restore (locations/{location} = the vault's secondary region)
    ("POST", RG + "/locations/{location}/fetchSecondaryRecoveryPoints"): READ,
    ("POST", RG + "/locations/{location}/validateCrossRegionRestore"): {ops.VALIDATE_RESTORE},
    ("POST", RG + "/locations/{location}/crossRegionRestore"): {ops.RESTORE},
    ("POST", RG + "/locations/{location}/fetchCrossRegionRestoreJob"): READ,
    ("POST", RG + "/locations/{location}/fetchCrossRegionRestoreJobs"): READ,
    ("GET", INSTANCE + "/recoveryPoints"): READ,
    ("GET", INSTANCE + "/recoveryPoints/{recoveryPointId}"): READ,
    ("GET", VAULT + "/backupJobs"): READ,
    ("GET", VAULT + "/backupJobs/{jobId}"): READ,
}


def _instance_body(w, policy, resource_id, name) -> dict:
    return {"properties": {
        "objectType": "BackupInstance", "friendlyName": name,
        "dataSourceInfo": {"objectType": "Datasource", "datasourceType": policy.datasource_type, "resourceID": resource_id},
        "policyInfo": {"policyId": policy.resource_id, "policyParameters": {"backupDatasourceParametersList": [
            {"objectType": "AdlsBlobBackupDatasourceParameters", "containersList": ["documents"]}]}},
    }}


def _other_adls_policy(w):
    from protection.models import BackupPolicy

    return BackupPolicy.objects.get(vault=w.vault, name="adls-30d")


# (method, path template) -> w -> the JSON body a client would send.
def _restore_request(w) -> dict:
    """Every container of the world's ADLS point into the restore target account."""
    return {
        "objectType": "AzureBackupRecoveryPointBasedRestoreRequest",
        "recoveryPointId": str(w.point.pk),
        "sourceDataStoreType": w.point.datastore,
        "restoreTargetInfo": {
            "objectType": "ItemLevelRestoreTargetInfo", "recoveryOption": "FailIfExists",
            "restoreLocation": w.vault.region_id,
            "datasourceInfo": {"objectType": "Datasource", "resourceID": w.restore_target.resource_id},
            "restoreCriteria": [],
        },
    }


def _crr_request(w) -> dict:
    """The same restore, in the secondary region (a cross-region restore's restoreLocation)."""
    request = _restore_request(w)
    request["restoreTargetInfo"]["restoreLocation"] = w.vault.secondary_region.pk
    return request


def _crr_details(w) -> dict:
    return {"sourceRegion": w.vault.region_id, "sourceBackupInstanceId": w.instance.resource_id}


def _crr_jobs_request(w) -> dict:
    return {"sourceRegion": w.vault.region_id, "sourceBackupVaultId": w.vault.resource_id, "jobId": str(w.queued_job.pk)}


BODIES: dict[tuple[str, str], object] = {
    ("PUT", ASSIGNMENT + "/{roleAssignmentName}"): lambda w: {"properties": {
        "roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{w.assignment.role_id}",
        "principalId": str(w.lab.personas["backup-operator"].principal.id)}},
    ("POST", INSTANCE + "/backup"): lambda w: {"backupRuleOptions": {
        "ruleName": w.adls_policy.parsed.backup_rule_name, "triggerOption": {"retentionTagOverride": "Default"}}},
    ("POST", INSTANCE + "/validateRestore"): lambda w: {"restoreRequestObject": _restore_request(w)},
    ("POST", INSTANCE + "/restore"): _restore_request,
    ("PUT", POLICY): lambda w: {"properties": {
        "objectType": "BackupPolicy", "datasourceTypes": [w.adls_policy.datasource_type],
        "policyRules": w.adls_policy.policy_rules,
    }},
    ("PUT", VAULT): lambda w: {"location": w.vault.region_id, "tags": {"changed": "yes"}, "properties": {
        "storageSettings": [{"datastoreType": "VaultStore", "type": w.vault.storage_redundancy}]}},
    ("PATCH", VAULT): lambda w: {"tags": {"changed": "yes"}},
    ("POST", RG + "/locations/{location}/checkNameAvailability"): lambda w: {"name": "bv-free", "type": BV},
    ("PUT", GUARD): lambda w: {"location": w.guard.region, "tags": {"changed": "yes"}},
    ("PATCH", GUARD): lambda w: {"tags": {"changed": "yes"}},
    ("PUT", PROXY): lambda w: {"properties": {"resourceGuardResourceId": w.guard.resource_id}},
    ("POST", PROXY + "/unlockDelete"): lambda w: {"resourceGuardOperationRequests": []},
    ("PUT", PIM_REQUEST): lambda w: {"properties": {
        "principalId": str(w.lab.trainer.pk), "requestType": "SelfActivate", "justification": "entry drill",
        "roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/f54b6d04-23c6-443e-b462-9c16ab7b4a52",
        "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": "PT1H"}}}},
    # bi-entry moved to another policy (Change policy).
    ("PUT", BI): lambda w: _instance_body(w, _other_adls_policy(w), w.instance.datasource_resource_id, w.instance.name),
    ("POST", VAULT + "/validateForBackup"): lambda w: {
        "backupInstance": _instance_body(w, w.adls_policy, w.account2.resource_id, "bi-entry-2")["properties"]},
    # Cross Region Restore
    ("POST", RG + "/locations/{location}/fetchSecondaryRecoveryPoints"): _crr_details,
    ("POST", RG + "/locations/{location}/validateCrossRegionRestore"): lambda w: {
        "restoreRequestObject": _crr_request(w), "crossRegionRestoreDetails": _crr_details(w)},
    ("POST", RG + "/locations/{location}/crossRegionRestore"): lambda w: {
        "restoreRequestObject": _crr_request(w), "crossRegionRestoreDetails": _crr_details(w)},
    ("POST", RG + "/locations/{location}/fetchCrossRegionRestoreJob"): _crr_jobs_request,
    ("POST", RG + "/locations/{location}/fetchCrossRegionRestoreJobs"): _crr_jobs_request,
}

# (method, path template) -> w -> path values that differ from `path_values` for that route.
PATH_OVERRIDES: dict[tuple[str, str], object] = {
    ("GET", DELETED_BI): lambda w: {"backupInstanceName": w.soft_deleted.name},
    ("POST", DELETED_BI + "/undelete"): lambda w: {"backupInstanceName": w.soft_deleted.name},
    ("PUT", PIM_REQUEST): lambda w: {"roleAssignmentScheduleRequestName": str(uuid.uuid4())},  # a new request
    # Cross Region Restore: locations/{the vault's secondary region}
    **{("POST", RG + f"/locations/{{location}}/{name}"): lambda w: {"location": w.vault.secondary_region.pk}
       for name in ("fetchSecondaryRecoveryPoints", "validateCrossRegionRestore", "crossRegionRestore",
                    "fetchCrossRegionRestoreJob", "fetchCrossRegionRestoreJobs")},
}
# Who calls (default: the trainer, Owner at the root, so that only the lockdown refuses): only its
# requester cancels a request.
API_ACTORS: dict[tuple[str, str], str] = {("POST", PIM_REQUEST + "/cancel"): "backup-admin"}
# Routes of another provider speak its api-version.
API_VERSIONS: dict[tuple[str, str], str] = {
    ("PUT", PIM_REQUEST): "2020-10-01", ("GET", PIM_REQUEST): "2020-10-01", ("POST", PIM_REQUEST + "/cancel"): "2020-10-01",
}


def path_overrides(w, template: str) -> dict:
    """Names that differ by route: a Resource Guard lives in the security subscription's group, and the
    Resource Guard proxy routes name the vault the world's guard protects."""
    if "/resourceGuards" in template:
        guard_group = w.guard.resource_group_id.strip("/").split("/")
        return {"subscriptionId": guard_group[1], "resourceGroupName": guard_group[3]}
    if "/backupResourceGuardProxies" in template:
        return {"vaultName": w.guard.proxies.first().protected_resource_name}
    return {}


def path_values(w) -> dict:
    """What each path parameter names in the world (an unknown name stays unknown: the route must
    still answer without a 500)."""
    group = w.lab.lab_group
    return {
        "subscriptionId": str(group.subscription.subscription_id),
        "resourceGroupName": group.name,
        "location": group.region_id,
        "operationId": str(uuid.uuid4()),
        "vaultName": w.vault.name,
        "backupPolicyName": w.adls_policy.name,
        "backupInstanceName": w.instance.name,
        "recoveryPointId": str(w.point.pk),
        "jobId": str(w.queued_job.pk),
        "resourceGuardsName": w.guard.name,
        "resourceGuardProxyName": "DppResourceGuardProxy",
        "requestName": "default",
        # a role assignment's routes: the world's assignment, at its scope
        "scope": w.assignment.scope.lstrip("/"),
        "roleAssignmentName": str(w.assignment.id),
        "roleAssignmentScheduleRequestName": str(w.pending_request.pk),  # the backup admin's pending request
    }


def api_routes():
    """(method, path template, url name) for every route of the one API."""
    from portal.urls import arm_api

    out = []
    for prefix, router in arm_api._routers:
        for path, view in router.path_operations.items():
            for operation in view.operations:
                for method in operation.methods:
                    out.append((method, prefix + path, operation.url_name))
    return out


def test_every_api_route_is_classified():
    routes = {(m, p) for m, p, _ in api_routes()}
    unclassified = sorted(routes - set(API_ROUTES))
    assert not unclassified, "Classify these API routes in tests/api/test_api_entry_points.py: " + repr(unclassified)
    stale = sorted(set(API_ROUTES) - routes)
    assert not stale, "These rows name API routes that no longer exist: " + repr(stale)


def test_every_api_route_is_refused_when_the_guard_says_so(lab):
    with entry_lab_registered():
        w = build_world(lab)
    values = path_values(w)
    trainer = ArmClient(lab.trainer)
    problems = []
    for method, template, _name in api_routes():
        actor = API_ACTORS.get((method, template))
        client = ArmClient(lab.personas[actor].principal) if actor else trainer
        expected = API_ROUTES[(method, template)]
        names = values | path_overrides(w, template) | PATH_OVERRIDES.get((method, template), lambda w: {})(w)
        path = template.replace("{path:scope}", "{scope}").format(**names)
        body = BODIES.get((method, template), lambda w: {})(w)
        version = {"api_version": API_VERSIONS.get((method, template), AUTHZ_VERSION if "Microsoft.Authorization" in template else API_VERSION)}
        before = fingerprint()
        with lockdown() as state:
            response = getattr(client, method.lower())(path, **version, **({} if method in ("GET", "DELETE") else {"data": body}))
        if response.status_code >= 500:
            problems.append(f"{method} {template}: server error {response.status_code}")
        if changed := difference(before, fingerprint()):
            problems.append(f"{method} {template}: state changed under lockdown: {changed}")
        problems += refusal_problems(f"{method} {template}", state.operations, expected,
                                     nothing_reached=f" (status {response.status_code}: {response.content[:200]!r})")
    assert not problems, "\n".join(problems)
