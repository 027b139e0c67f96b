"""``backupInstances/{name}/backup``: an ad hoc backup (TriggerBackupRequest), the portal's **Backup now**.

It calls `protection.backups.services.backup_now` (guarded: RBAC, the network guard, a Resource Guard,
the daily limit) and answers 202 with a long-running operation that follows the Backup job it created;
its result is ``{"objectType": "OperationJobExtendedInfo", "jobId": <the job's GUID>}``.
"""

from __future__ import annotations

import ninja
from django.core.exceptions import ValidationError

from portal.api import lro
from portal.api.errors import ArmError
from protection.api.lookups import INSTANCE_PATH, instance
from protection.backups import services
from protection.policy_rules import PolicyError
from security import operations as ops

router = ninja.Router(tags=["Backup instances"])

RULE_NAME = "backupRuleOptions.ruleName"
TAG = "backupRuleOptions.triggerOption.retentionTagOverride"
DEFAULT_TAG = "Default"


class AdhocBackupTriggerOption(ninja.Schema):
    retentionTagOverride: str | None = None


class AdHocBackupRuleOptions(ninja.Schema):
    ruleName: str
    triggerOption: AdhocBackupTriggerOption


class TriggerBackupRequest(ninja.Schema):
    backupRuleOptions: AdHocBackupRuleOptions


def _check_rule(found, rule_name: str, tag: str) -> None:
    """The rule must be the policy's backup rule and the tag one of its retention rules (as Azure checks)."""
    try:
        policy = found.policy.parsed
    except PolicyError as exc:  # pragma: no cover - a stored policy always parses
        raise ArmError(400, "UserErrorInvalidPolicy", str(exc)) from None
    if rule_name != policy.backup_rule_name:
        raise ArmError(400, "UserErrorInvalidBackupRule",
                       f"The policy '{found.policy.name}' has no backup rule '{rule_name}'; its backup rule is "
                       f"'{policy.backup_rule_name}'.", target=RULE_NAME)
    tags = [r.tag for r in policy.retention_rules]
    if tag not in tags:
        raise ArmError(400, "UserErrorInvalidRetentionTag",
                       f"The policy '{found.policy.name}' has no retention rule tagged '{tag}'; choose one of: "
                       f"{', '.join(tags)}.", target=TAG)


@router.post(INSTANCE_PATH + "/backup", url_name="backup_instances_adhoc_backup")
def adhoc_backup(request, subscriptionId: str, resourceGroupName: str, vaultName: str, backupInstanceName: str,
                 payload: TriggerBackupRequest):
    # RBAC first (403 before anything about the instance or its policy is said); the service's guard
    # then judges the backup itself (RBAC again, the network guard, a Resource Guard).
    found = instance(request, subscriptionId, resourceGroupName, vaultName, backupInstanceName, action=ops.BACKUP_ACTION)
    options = payload.backupRuleOptions
    tag = options.triggerOption.retentionTagOverride or DEFAULT_TAG
    _check_rule(found, options.ruleName, tag)
    try:
        job = services.backup_now(request.auth, found, retention_rule=tag)
    except ValidationError as exc:
        if hasattr(exc, "error_dict") and "retention_rule" in exc.error_dict:
            raise ArmError(400, "UserErrorInvalidRetentionTag", " ".join(exc.messages), target=TAG) from None
        raise
    op = lro.start(request, kind=ops.BACKUP_ACTION, resource_id=found.resource_id,
                   location=found.vault.region_id, job_id=str(job.pk))
    return lro.accepted(request, op)
