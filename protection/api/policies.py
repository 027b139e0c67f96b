"""``backupVaults/{vault}/backupPolicies``: PUT (create or update), GET, list, DELETE.

A thin translator: the body is read into the wizard's spec (`policy_body.parse`), then the same
`create_policy` / `update_policy` / `delete_policy` the pages call run it, guarded. In
azure-mgmt-dataprotection 2.2.0 the policy PUT is synchronous: 200 with the policy, for a create as
for an update; DELETE answers 200, or 204 when there was nothing to delete.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import HttpResponse
from ninja import Body, Router

from portal.api import envelope, lookups
from portal.api.errors import ArmError
from protection.api import lookups as protection_lookups
from protection.api.policy_body import parse
from protection.models import BackupPolicy
from protection.policies import services as svc
from security import operations as ops
from vaults.api.lookups import VAULT_PATH, vault, vault_scope

router = Router(tags=["Backup policies"])

VAULT = VAULT_PATH
POLICIES = VAULT + "/backupPolicies"
POLICY = POLICIES + "/{backupPolicyName}"


def serialize(policy: BackupPolicy) -> dict:
    """A BaseBackupPolicyResource: the stored policyRules as they are (they are kept in the API's shape)."""
    api = policy.as_api()
    return envelope.proxy(
        api["id"], api["name"], api["type"], api["properties"],
        systemData=envelope.system_data(policy.created_at, policy.updated_at),
    )


@router.get(POLICIES, url_name="backup_policies_list")
def list_policies(request, subscriptionId: str, resourceGroupName: str, vaultName: str):
    lookups.require(request.auth, ops.POLICY_READ, vault_scope(subscriptionId, resourceGroupName, vaultName))
    found = vault(request, subscriptionId, resourceGroupName, vaultName, action=None)
    policies = svc.policies_for(request.auth).filter(vault=found)
    return envelope.page(request, policies, serialize)


@router.get(POLICY, url_name="backup_policy_get")
def get_policy(request, subscriptionId: str, resourceGroupName: str, vaultName: str, backupPolicyName: str):
    return serialize(protection_lookups.policy(request, subscriptionId, resourceGroupName, vaultName, backupPolicyName))


@router.put(POLICY, url_name="backup_policy_put")
def put_policy(request, subscriptionId: str, resourceGroupName: str, vaultName: str, backupPolicyName: str,
               parameters: dict = Body(..., description="BaseBackupPolicyResource")):
    """Create the policy, or change the schedule and retention of the one of that name."""
    lookups.require(request.auth, ops.POLICY_WRITE, protection_lookups.child_scope(
        subscriptionId, resourceGroupName, vaultName, "backupPolicies", backupPolicyName))
    found_vault = vault(request, subscriptionId, resourceGroupName, vaultName, action=None)
    parsed = parse(parameters)
    existing = BackupPolicy.objects.filter(vault=found_vault, name__iexact=backupPolicyName).first()
    if existing is not None and existing.datasource_type != parsed.datasource_type:
        raise ArmError(
            400, "InvalidParameter",
            f"The backup policy '{existing.name}' protects '{existing.datasource_type}'; a policy's datasource type "
            "cannot be changed. Create a policy with another name for the other type.",
            target="properties.datasourceTypes[0]",
        )
    try:
        if existing is None:
            policy = svc.create_policy(request.auth, vault=found_vault, name=backupPolicyName,
                                       datasource_type=parsed.datasource_type, spec=parsed.spec)
        else:
            policy = svc.update_policy(request.auth, existing, spec=parsed.spec)
    except ValidationError as exc:
        raise parsed.arm_error(exc) from None
    policy.refresh_from_db()
    return serialize(policy)


@router.delete(POLICY, url_name="backup_policy_delete")
def delete_policy(request, subscriptionId: str, resourceGroupName: str, vaultName: str, backupPolicyName: str):
    """Delete an unused policy (one that backup instances use is a conflict: 409, the service's words)."""
    lookups.require(request.auth, ops.POLICY_DELETE, protection_lookups.child_scope(
        subscriptionId, resourceGroupName, vaultName, "backupPolicies", backupPolicyName))
    found_vault = vault(request, subscriptionId, resourceGroupName, vaultName, action=None)
    policy = BackupPolicy.objects.filter(vault=found_vault, name__iexact=backupPolicyName).first()
    if policy is None:
        return HttpResponse(status=204)  # ARM: deleting what is not there is not an error
    try:
        svc.delete_policy(request.auth, policy)
    except ValidationError as exc:
        if getattr(exc, "code", None) == svc.POLICY_IN_USE:
            raise ArmError(409, svc.POLICY_IN_USE, " ".join(exc.messages)) from None
        raise
    return HttpResponse(status=200)

