"""Backup instances: configure protection, backup readiness, assign missing roles, change policy, reads.

Reference §1.4, §2.2–2.3, §5.4, §5.8. Every write runs in `security.audit.guarded`:

* ``configure_protection(principal, vault=, policy=, selections=)`` creates one BackupInstance per
  datasource in ``ConfiguringProtection`` and one ConfigureProtection `Job` each (enqueued on commit).
  The job (`protection.instances.configure_job`) re-checks the datasource and the vault identity's
  roles and settles the instance in ``ProtectionConfigured`` (with ``next_backup_at`` from the
  policy) or ``ConfiguringProtectionFailed`` (code + reason).
* ``assign_missing_roles(principal, vault=, datasources=, level=)`` assigns exactly the §2.2 roles the
  vault identity lacks, at Resource / Resource group / Subscription, through
  `security.services.assign_role` as the signed-in user (so the activity log names them).
* ``change_policy(principal, instance, policy)`` moves an instance to another policy of its vault and
  datasource type; ``change`` tells guards the retention before and after.

``next_backup_at`` follows the policy's schedule (see `protection.scheduling`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from portal.models import ResourceGroup
from portal.shortcuts import visible
from protection import datasource_types, readiness, redating
from protection.instances.candidates import (  # noqa: F401 (the Datasources tab's reads, used through this module)
    ALREADY_PROTECTED_CODE, SNAPSHOT_GROUP_TYPES, Candidate, already_protected_message, candidates, disk_candidates,
    elastic_sans_for, holding, postgres_candidates, snapshot_resource_groups_for, storage_account_candidates, taken,
    volume_candidates,
)
from protection.datasources.adls import CONTAINER_LIMIT_CODE, MAX_CONTAINERS, container_limit_error
from protection.datasources.base import MISSING_PERMISSIONS
from protection.jobs import runner as jobs
from protection.models import BackupInstance, BackupPolicy, Job, JobCategory, JobOperation, ProtectionState
from protection.scheduling import reschedule
from security import clock, scopes
from security.audit import caller_label, guarded
from security.guards import evaluate
from security.models import RoleAssignment
from security.operations import INSTANCE_WRITE, VALIDATE_FOR_BACKUP
from security.rbac import authorize
from vaults.guards import retention_reduced
from vaults import services as vault_services

INSTANCE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
INSTANCE_NAME_MAX = 150
INSTANCE_NAME_RULE = (
    "A backup instance name must be 1 to 150 characters long, start with a letter or a digit, and contain "
    "only letters, digits, periods, underscores and hyphens."
)

# --- reads -------------------------------------------------------------------------------------


def instances_for(principal):
    """Backup instances the principal may read (every list starts here)."""
    from protection.selectors import visible_instances

    return visible_instances(
        principal, BackupInstance.objects.select_related("vault__resource_group__subscription", "vault__region", "policy"))


def may_validate(principal, vault) -> bool:
    """``validateForBackup`` on the vault: what the readiness check (and Revalidate) needs."""
    return authorize(principal, VALIDATE_FOR_BACKUP, vault.resource_id).allowed


def may_configure(principal, vault) -> bool:
    return authorize(principal, INSTANCE_WRITE, vault.resource_id).allowed


# --- readiness and roles -----------------------------------------------------------------------


def check_readiness(principal, vault, candidate: Candidate, snapshot_resource_group_id: str = "") -> readiness.Readiness:
    return readiness.check(principal, vault, candidate.datasource(snapshot_resource_group_id))


def assign_missing_roles(principal, *, vault, datasources: list[readiness.Datasource], level: str) -> list[RoleAssignment]:
    """Assign the vault identity exactly the §2.2 roles it lacks for ``datasources``, at ``level``
    (Resource / Resource group / Subscription), as ``principal`` (each assignment is its own logged
    write). All or nothing: every assignment is authorized before the first is made."""
    needs = [need for ds in datasources for need in readiness.needs_for(ds)]
    return readiness.assign_missing(principal, vault, needs, level, purpose="backup")


# --- configure protection ----------------------------------------------------------------------


@dataclass(frozen=True)
class DatasourceSelection:
    """One datasource chosen on the Datasources tab."""

    resource_id: str
    instance_name: str
    key: str = ""  # the candidate key, for errors beside the right row
    all_containers: bool = False
    containers: tuple[str, ...] = ()
    excluded_containers: tuple[str, ...] = ()
    snapshot_resource_group_id: str = ""


def name_rule_error(name: str) -> str:
    if not name or len(name) > INSTANCE_NAME_MAX or not INSTANCE_NAME_RE.match(name):
        return INSTANCE_NAME_RULE
    return ""


def _validate_selection(principal, vault, policy, cand: Candidate | None, sel: DatasourceSelection, errors: dict) -> None:
    key = sel.key or (cand.key if cand else "datasources")
    if cand is None:
        errors.setdefault("datasources", []).append(
            f"The datasource '{sel.resource_id}' cannot be protected in this vault: it does not exist, you cannot read it, "
            "or it is not in the vault's region" + (" and subscription" if policy.datasource_type in SNAPSHOT_GROUP_TYPES else "") + "."
        )
        return
    if not cand.offered:
        errors.setdefault(f"{key}_selected", []).append(
            ValidationError(f"{cand.name}: {cand.reason}", code=cand.code or "UserErrorDatasourceNotProtectable"))
        return
    if problem := name_rule_error(sel.instance_name):
        errors.setdefault(f"{key}_name", []).append(problem)
    elif BackupInstance.objects.filter(vault=vault, name__iexact=sel.instance_name).exists():
        errors.setdefault(f"{key}_name", []).append(
            f"A backup instance named '{sel.instance_name}' already exists in the vault '{vault.name}'. Choose another name."
        )
    if cand.datasource_type == datasource_types.ADLS:
        existing = set(cand.obj.containers.values_list("name", flat=True))
        if sel.all_containers:
            unknown = [c for c in sel.excluded_containers if c not in existing]
            if unknown:
                errors.setdefault(f"{key}_excluded", []).append(f"No such container: {', '.join(unknown)}.")
            elif not existing - set(sel.excluded_containers):
                errors.setdefault(f"{key}_excluded", []).append("Every container is excluded: leave at least one to back up.")
            elif problem := container_limit_error(len(existing - set(sel.excluded_containers)), all_containers=True):
                errors.setdefault(f"{key}_scope", []).append(problem)
        else:
            if not sel.containers:
                errors.setdefault(f"{key}_containers", []).append("Select at least one container, or choose all containers.")
            elif problem := container_limit_error(len(set(sel.containers)), all_containers=False):
                errors.setdefault(f"{key}_containers", []).append(problem)
            elif unknown := [c for c in sel.containers if c not in existing]:
                errors.setdefault(f"{key}_containers", []).append(f"No such container: {', '.join(unknown)}.")
    if cand.datasource_type in SNAPSHOT_GROUP_TYPES:
        if problem := snapshot_group_error(cand, sel.snapshot_resource_group_id):
            errors.setdefault("snapshot_resource_group", []).append(problem)


def snapshot_group_error(cand: Candidate, rg_id: str) -> str:
    """What is wrong with ``rg_id`` as ``cand``'s snapshot resource group ("" if nothing; reference §5.4)."""
    what = "disk" if cand.datasource_type == datasource_types.AZURE_DISK else "volume"
    rg = ResourceGroup.objects.filter(resource_id__iexact=rg_id).select_related("subscription").first() if rg_id else None
    if rg is None:
        return "Select the snapshot resource group."
    if rg.subscription_id != cand.resource_group.subscription_id:
        return f"The snapshot resource group must be in the {what}'s subscription."
    if what == "disk" and rg.pk == cand.resource_group.pk:
        return (f"The snapshot resource group cannot be the disk's own resource group ('{rg.name}'). Choose another "
                "resource group of the disk's subscription (a dedicated one for snapshots is recommended).")
    return ""


def configure_protection(principal, *, vault, policy: BackupPolicy, selections: list[DatasourceSelection]) -> list[BackupInstance]:
    """Create one backup instance per selection (ConfiguringProtection) and its ConfigureProtection job.

    Everything is checked first — the policy, each datasource (offered for this vault, names free,
    containers, snapshot resource group) and each row's backup readiness — so nothing is created when
    any of it fails. Each instance is then its own guarded, logged write; all in one transaction.
    """
    if policy is None or policy.vault_id != vault.pk:
        raise ValidationError({"policy": "Choose a backup policy of this vault."})
    if not selections:
        raise ValidationError({"datasources": "Add at least one datasource to protect."})
    kind = policy.datasource_type
    # Authorization first: someone who may not create instances learns that before anything else.
    for sel in selections:
        target = f"{vault.resource_id}/backupInstances/{sel.instance_name}"
        change = _create_change(policy, None) | {"datasource": sel.resource_id}
        if not evaluate(principal, INSTANCE_WRITE, target, change).allowed:
            with guarded(principal, INSTANCE_WRITE, target, change=change):
                pass  # logs the refusal and raises GuardDenied
    # An authorized attempt counts, whatever comes of it: before anything below can fail and roll back.
    vault_services.mark_protection_attempted(vault)
    names = [s.instance_name.lower() for s in selections]
    errors: dict[str, list[str]] = {}
    for sel in selections:
        if names.count(sel.instance_name.lower()) > 1:
            errors.setdefault(f"{sel.key}_name" if sel.key else "datasources", []).append(
                f"The name '{sel.instance_name}' is used for two datasources: give each backup instance its own name.")
    pool = {c.resource_id.lower(): c for c in candidates(principal, vault, kind)}
    resolved = []
    for sel in selections:
        cand = pool.get(sel.resource_id.lower())
        _validate_selection(principal, vault, policy, cand, sel, errors)
        resolved.append((sel, cand))
    if errors:
        raise ValidationError(errors)
    for sel, cand in resolved:
        result = check_readiness(principal, vault, cand, sel.snapshot_resource_group_id)
        if not result.ok:
            errors.setdefault(f"{sel.key}_selected" if sel.key else "datasources", []).append(
                readiness_error(cand.name, result))
    if errors:
        raise ValidationError(errors)
    created = []
    with transaction.atomic():
        for sel, cand in resolved:
            created.append(_create_instance(principal, vault, policy, cand, sel))
    return created


READINESS_CODES = {readiness.ROLE_ASSIGNMENT_NOT_DONE: MISSING_PERMISSIONS, readiness.INSUFFICIENT_PERMISSION: MISSING_PERMISSIONS,
                   readiness.IDENTITY_OFF: "UserErrorMSIDisabled"}


def readiness_error(name: str, result: readiness.Readiness) -> ValidationError:
    """A row's failed backup readiness, as the page words it, with Azure's code (the API's error code)."""
    return ValidationError(f"{name}: backup readiness is '{result.status}'. {result.message}",
                           code=READINESS_CODES.get(result.status, "UserErrorBackupReadinessFailed"))


def validate_for_backup(principal, *, vault, policy: BackupPolicy, selection: DatasourceSelection) -> readiness.Readiness:
    """``validateForBackup``: the checks `configure_protection` makes of one datasource, creating nothing.
    Input problems (the policy, the datasource, its containers) raise ValidationError; the outcome is
    the row's backup readiness."""
    if policy is None or policy.vault_id != vault.pk:
        raise ValidationError({"policy": "Choose a backup policy of this vault."})
    errors: dict[str, list[str]] = {}
    cand = {c.resource_id.lower(): c for c in candidates(principal, vault, policy.datasource_type)}.get(
        selection.resource_id.lower())
    _validate_selection(principal, vault, policy, cand, selection, errors)
    if errors:
        raise ValidationError(errors)
    return check_readiness(principal, vault, cand, selection.snapshot_resource_group_id)


def _create_change(policy, cand) -> dict:
    return {"setting": "create", "policy": policy.name, "datasource": cand.resource_id if cand else "",
            "max_retention_days_before": None, "max_retention_days_after": policy.parsed.max_retention_days()}


def _create_instance(principal, vault, policy, cand: Candidate, sel: DatasourceSelection) -> BackupInstance:
    target = f"{vault.resource_id}/backupInstances/{sel.instance_name}"
    details = {"name": sel.instance_name, "datasource": cand.resource_id, "policy": policy.name,
               "datasourceType": policy.datasource_type}
    with guarded(principal, INSTANCE_WRITE, target, change=_create_change(policy, cand), details=details) as op:
        instance = BackupInstance(
            vault=vault, name=sel.instance_name, datasource_type=policy.datasource_type,
            datasource_resource_id=cand.resource_id, datasource_name=cand.name, datasource_location=cand.location,
            datasource_set_resource_id=cand.set_resource_id, policy=policy,
            protection_state=ProtectionState.CONFIGURING,
            created_by=principal if getattr(principal, "pk", None) else None,
        )
        if policy.datasource_type == datasource_types.ADLS:
            instance.all_containers = sel.all_containers
            instance.containers = [] if sel.all_containers else sorted(sel.containers)
            instance.excluded_containers = sorted(sel.excluded_containers) if sel.all_containers else []
            op.details["containers"] = "all" if sel.all_containers else instance.containers
        if policy.datasource_type in SNAPSHOT_GROUP_TYPES:
            instance.snapshot_resource_group_id = scopes.normalize(sel.snapshot_resource_group_id)
            op.details["snapshotResourceGroup"] = instance.snapshot_resource_group_id
        # One datasource, one vault: re-checked under a lock on the datasource's inventory row, so two
        # vaults configuring the same datasource at once cannot both win (the unique constraint only
        # covers one vault).
        type(cand.obj).objects.select_for_update().filter(pk=cand.obj.pk).first()
        holder = holding(vault, [cand.resource_id]).first()
        if holder is not None:
            code, reason = taken(principal, vault, holder)
            raise ValidationError({f"{sel.key}_selected" if sel.key else "datasources": f"{cand.name}: {reason}"},
                                  code=code)
        try:
            with transaction.atomic():
                instance.save()
        except IntegrityError:  # a concurrent configure won the unique name / datasource race
            raise ValidationError({f"{sel.key}_name" if sel.key else "datasources":
                                   f"'{sel.instance_name}' or its datasource was just protected by someone else."}) from None
        job = Job.objects.create(
            vault=vault, instance=instance, instance_name=instance.name, datasource_type=instance.datasource_type,
            datasource_name=instance.datasource_name, operation=JobOperation.CONFIGURE_PROTECTION,
            category=JobCategory.MANAGEMENT, is_user_triggered=True,
            initiated_by=principal if getattr(principal, "pk", None) else None,
            initiated_by_name=caller_label(principal), start_time=clock.now(),
        )
        jobs.enqueue(job)
        op.result_scope = instance.resource_id
        op.details["jobId"] = str(job.pk)
    return instance


# --- change policy -----------------------------------------------------------------------------


def policies_for_instance(principal, instance: BackupInstance):
    """Policies the instance may move to: same vault, same datasource type, readable."""
    from protection.policies.services import policies_for

    return policies_for(principal).filter(vault=instance.vault, datasource_type=instance.datasource_type).order_by("name")


def change_policy_change(instance: BackupInstance, policy: BackupPolicy | None) -> dict:
    """The ``change`` guards see when ``instance`` moves to ``policy`` (also used by the preview)."""
    from protection.policies.services import retention_map

    old = instance.policy
    return {
        "setting": "policy",
        "critical_operation": INSTANCE_WRITE,
        "policy_before": old.name,
        "policy_after": policy.name if policy else None,
        "max_retention_days_before": old.parsed.max_retention_days(),
        "max_retention_days_after": policy.parsed.max_retention_days() if policy else None,
        "retention_before": retention_map(old.policy_rules),
        "retention_after": retention_map(policy.policy_rules) if policy else {},
        "datastore": instance.datasource.datastore,
    }


def change_policy(principal, instance: BackupInstance, policy: BackupPolicy) -> BackupInstance:
    """Move ``instance`` to ``policy`` (same vault and datasource type); the new retention applies to
    it from now on and its next backup follows the new schedule. Guarded as backupInstances/write
    (the "Change policy" critical operation), with the retention before and after in ``change``."""
    old = instance.policy
    change = change_policy_change(instance, policy)
    details = {"name": instance.name, "from": old.name, "to": policy.name if policy else None}
    with guarded(principal, INSTANCE_WRITE, instance, change=change, details=details) as op:
        row = BackupInstance.objects.select_for_update().get(pk=instance.pk)
        if policy is None:
            raise ValidationError({"policy": "Choose a backup policy."})
        if policy.vault_id != row.vault_id:
            raise ValidationError({"policy": "Choose a policy of the instance's own vault."})
        if policy.datasource_type != row.datasource_type:
            raise ValidationError({"policy": (
                f"The policy '{policy.name}' is for {policy.datasource.label}; this backup instance protects "
                f"{row.datasource.label}. Choose a {row.datasource.label} policy."
            )})
        if row.is_soft_deleted:
            raise ValidationError("A soft-deleted backup instance cannot change policy: undelete it first.")
        if policy.pk == row.policy_id:
            raise ValidationError({"policy": f"The instance already uses the policy '{policy.name}'."})
        row.policy = policy
        row.save(update_fields=["policy", "updated_at"])
        reschedule(row)
        # The new retention applies to the instance's existing recovery points (issue 21, §5.5).
        redated = redating.redate(BackupInstance.objects.filter(pk=row.pk), policy.policy_rules, row.vault)
        op.details["redated"] = redated.as_details()
        _alert_protection_shorter(principal, row, old, policy, retention_reduced(change), redated)
    instance.policy, instance.next_backup_at = row.policy, row.next_backup_at
    instance.redated = redated  # for the page's message
    return instance


def _alert_protection_shorter(principal, row, old, policy, reduced: list[str], redated) -> None:
    """"Modify Protection with Shorter Retention": only when something actually gets shorter (a rule
    of the new policy, or an existing point's expiry); see `_alert_policy_shorter` in policies."""
    from protection.policies.services import raise_shorter_retention_alert

    raise_shorter_retention_alert(
        "Modify Protection with Shorter Retention", row.resource_id, principal, reduced, redated,
        who=f"The backup instance '{row.name}' moved from the policy '{old.name}' to '{policy.name}', which",
        details={"instance": row.name, "from": old.name, "to": policy.name})


# --- vault contents (the vault deletion rule) ---------------------------------------------------


def vault_has_contents(vault) -> bool:
    """True while the vault holds any backup instance (any state, soft-deleted too) or any policy."""
    return (BackupInstance.objects.filter(vault_id=vault.pk).exists()
            or BackupPolicy.objects.filter(vault_id=vault.pk).exists())


__all__ = [
    "CONTAINER_LIMIT_CODE", "MAX_CONTAINERS", "Candidate", "DatasourceSelection", "assign_missing_roles", "candidates", "change_policy", "check_readiness",
    "configure_protection", "instances_for", "readiness_error", "validate_for_backup", "vault_has_contents",
]
