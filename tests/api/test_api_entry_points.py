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

from security import operations as ops
from tests._entry_world import build_world, difference, entry_lab_registered, fingerprint, lockdown
from tests.api.conftest import ArmClient
from tests.test_entry_points import READ, refusal_problems

pytestmark = pytest.mark.django_db

DP = "Microsoft.DataProtection"
BV = f"{DP}/backupVaults"
LOCATION = "/subscriptions/{subscriptionId}/providers/Microsoft.DataProtection/locations/{location}"
RG = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.DataProtection"
VAULT = RG + "/backupVaults/{vaultName}"
INSTANCE = VAULT + "/backupInstances/{backupInstanceName}"

# (method, path template) -> READ or the set of guarded operations it may be refused at.
API_ROUTES: dict[tuple[str, str], object] = {
    ("GET", LOCATION + "/operationStatus/{operationId}"): READ,
    ("GET", LOCATION + "/operationResults/{operationId}"): READ,
    ("POST", INSTANCE + "/backup"): {ops.BACKUP_ACTION},
    ("POST", INSTANCE + "/validateRestore"): {ops.VALIDATE_RESTORE},
    ("POST", INSTANCE + "/restore"): {ops.RESTORE},
    ("GET", INSTANCE + "/recoveryPoints"): READ,
    ("GET", INSTANCE + "/recoveryPoints/{recoveryPointId}"): READ,
    ("GET", VAULT + "/backupJobs"): READ,
    ("GET", VAULT + "/backupJobs/{jobId}"): READ,
}

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


BODIES: dict[tuple[str, str], object] = {
    ("POST", INSTANCE + "/backup"): lambda w: {"backupRuleOptions": {
        "ruleName": w.adls_policy.parsed.backup_rule_name, "triggerOption": {"retentionTagOverride": "Default"}}},
    ("POST", INSTANCE + "/validateRestore"): lambda w: {"restoreRequestObject": _restore_request(w)},
    ("POST", INSTANCE + "/restore"): _restore_request,
}


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
    client = ArmClient(lab.trainer)
    problems = []
    for method, template, _name in api_routes():
        expected = API_ROUTES[(method, template)]
        path = template.format(**values)
        body = BODIES.get((method, template), lambda w: {})(w)
        before = fingerprint()
        with lockdown() as state:
            response = getattr(client, method.lower())(path, **({} if method in ("GET", "DELETE") else {"data": body}))
        if response.status_code >= 500:
            problems.append(f"{method} {template}: server error {response.status_code}")
        if changed := difference(before, fingerprint()):
            problems.append(f"{method} {template}: state changed under lockdown: {changed}")
        problems += refusal_problems(f"{method} {template}", state.operations, expected,
                                     nothing_reached=f" (status {response.status_code}: {response.content[:200]!r})")
    assert not problems, "\n".join(problems)
