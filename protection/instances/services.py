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
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q

from portal.inventory.models import Container, ElasticSan, PostgresServer, StorageAccount, Volume
from portal.models import ResourceGroup
from portal.shortcuts import visible
from protection import datasource_types, readiness, redating
from protection.datasources.adls import CONTAINER_LIMIT_CODE, MAX_CONTAINERS, container_limit_error
from protection.datasources.base import MISSING_PERMISSIONS
from protection.jobs import runner as jobs
from protection.models import BackupInstance, BackupPolicy, Job, JobCategory, JobOperation, ProtectionState
from protection.scheduling import reschedule
from security import clock, scopes
from security.audit import caller_label, guarded
from security.guards import evaluate
from security.models import RoleAssignment
from security.operations import (
    CONTAINER_READ, ELASTIC_SAN_READ, INSTANCE_WRITE, POSTGRES_READ, RESOURCE_GROUP_READ,
    STORAGE_ACCOUNT_READ, VALIDATE_FOR_BACKUP, VAULT_READ, VOLUME_READ,
)
from security.rbac import authorize
from vaults.guards import retention_reduced
from vaults import services as vault_services

INSTANCE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
INSTANCE_NAME_MAX = 150
INSTANCE_NAME_RULE = (
    "A backup instance name must be 1 to 150 characters long, start with a letter or a digit, and contain "
    "only letters, digits, periods, underscores and hyphens."
)

# One datasource, one vault (Azure's validateForBackup / PUT answer when another vault protects it).
ALREADY_PROTECTED_CODE = "UserErrorDppDatasourceAlreadyProtected"
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


# --- datasource candidates ---------------------------------------------------------------------


@dataclass
class Candidate:
    """A datasource the Datasources tab lists for a vault, and whether it may be protected there."""

    key: str  # form-field prefix: "sa12", "vol3", "pg2"
    datasource_type: str
    obj: object
    resource_id: str
    name: str
    location: str
    default_instance_name: str
    resource_group: ResourceGroup
    set_resource_id: str = ""
    offered: bool = True
    reason: str = ""
    code: str = ""  # the error code when not offered because of a readiness check (shown as readiness)
    containers: list[str] = field(default_factory=list)  # ADLS: containers the user can see
    databases: list[str] = field(default_factory=list)  # PostgreSQL: discovered databases
    volume_group: str = ""  # Elastic SAN
    elastic_san: object = None  # Elastic SAN

    def datasource(self, snapshot_resource_group_id: str = "") -> readiness.Datasource:
        return readiness.Datasource(self.datasource_type, self.resource_id, self.name, self.set_resource_id,
                                    snapshot_resource_group_id if self.datasource_type == datasource_types.ELASTIC_SAN else "")


def _taken_reason(existing: BackupInstance, where: str = " in this vault") -> str:
    """Why a datasource already in a backup instance cannot be protected (again) here."""
    if existing.is_soft_deleted:
        purge = (f", purged on {existing.scheduled_purge_at:%Y-%m-%d %H:%M} UTC" if existing.scheduled_purge_at else "")
        return (f"Soft-deleted{where} (backup instance '{existing.name}'{purge}): a soft-deleted item cannot be "
                "protected again in the same vault. Undelete it (Backup instances, Protection status = Soft "
                "deleted) and resume its backup, or protect the datasource in another vault.")
    return f"Already protected{where} by the backup instance '{existing.name}'."


def already_protected_message(principal, existing: BackupInstance) -> str:
    """Azure's answer when another vault protects the datasource (its vault named only to those who may
    read that vault), with its recommended action."""
    readable = authorize(principal, VAULT_READ, existing.vault.resource_id).allowed
    if readable:
        return (f"Datasource is already protected under the Backup vault {existing.vault.resource_id}. "
                f"Delete the backup instance {existing.name} from the Backup vault {existing.vault.resource_id} "
                "to re-protect the datasource in any other vault.")
    return ("Datasource is already protected under another Backup vault. Delete its backup instance from that "
            "vault to re-protect the datasource in any other vault.")


def _holding(vault, resource_ids):
    """Backup instances that keep ``resource_ids`` from being protected in ``vault``: any instance in
    ``vault`` itself (a soft-deleted one too: it cannot be protected again in the same vault), and any
    instance in another vault that is not soft-deleted (one datasource, one vault, as in Azure; a
    soft-deleted item may be protected in another vault, reference §3.2)."""
    soft = (ProtectionState.SOFT_DELETING, ProtectionState.SOFT_DELETED)
    return (BackupInstance.objects.filter(datasource_resource_id__in=resource_ids).select_related("vault")
            .exclude(~Q(vault=vault) & Q(protection_state__in=soft)))


def _protected_in(vault, resource_ids):
    """The instance holding each of ``resource_ids`` (see `_holding`), keyed by lower-case datasource
    id; an instance in ``vault`` itself wins over one elsewhere."""
    out: dict[str, BackupInstance] = {}
    for r in sorted(_holding(vault, resource_ids), key=lambda r: r.vault_id == vault.pk):
        out[r.datasource_resource_id.lower()] = r
    return out


def _taken(principal, vault, existing: BackupInstance) -> tuple[str, str]:
    """(code, reason) for a datasource that already has a backup instance."""
    if existing.vault_id == vault.pk:
        return "UserErrorDatasourceAlreadyHasBackupInstance", _taken_reason(existing)
    return ALREADY_PROTECTED_CODE, already_protected_message(principal, existing)


def storage_account_candidates(principal, vault) -> list[Candidate]:
    """HNS storage accounts in the vault's region the user can read; flat-namespace ones are listed
    with the reason they are not offered (reference §5.4)."""
    accounts = visible(
        principal,
        StorageAccount.objects.filter(region=vault.region).select_related("resource_group__subscription", "region"),
        STORAGE_ACCOUNT_READ,
    ).order_by("name")
    accounts = list(accounts)
    protected = _protected_in(vault, [a.resource_id for a in accounts])
    containers = visible(principal, Container.objects.filter(account__in=accounts), CONTAINER_READ).order_by("name")
    by_account: dict[int, list[str]] = {}
    for c in containers:
        by_account.setdefault(c.account_id, []).append(c.name)
    result = []
    for account in accounts:
        cand = Candidate(
            key=f"sa{account.pk}", datasource_type=datasource_types.ADLS, obj=account,
            resource_id=account.resource_id, name=account.name, location=account.region_id,
            default_instance_name=account.name, resource_group=account.resource_group,
            containers=by_account.get(account.pk, []),
        )
        existing = protected.get(account.resource_id.lower())
        if not account.hierarchical_namespace:
            cand.offered, cand.reason = False, (
                "Hierarchical namespace is not enabled on this account. Vaulted backup protects Azure Data Lake "
                "Storage accounts (hierarchical namespace) only."
            )
        elif existing is not None:
            cand.code, cand.reason = _taken(principal, vault, existing)
            cand.offered = False
        elif not account.containers.exists():
            cand.offered, cand.reason = False, "The account has no container: create at least one container first."
        result.append(cand)
    return result


def elastic_sans_for(principal, vault):
    """Elastic SAN instances in the vault's subscription *and* region the user can read (reference §5.4)."""
    return visible(
        principal,
        ElasticSan.objects.filter(region=vault.region, resource_group__subscription=vault.resource_group.subscription)
        .select_related("resource_group__subscription"),
        ELASTIC_SAN_READ,
    ).order_by("name")


def volume_candidates(principal, vault, elastic_san=None) -> list[Candidate]:
    sans = elastic_sans_for(principal, vault)
    volumes = Volume.objects.filter(volume_group__elastic_san__in=sans).select_related(
        "volume_group__elastic_san__resource_group__subscription"
    )
    if elastic_san is not None:
        volumes = volumes.filter(volume_group__elastic_san=elastic_san)
    volumes = list(visible(principal, volumes, VOLUME_READ).order_by("volume_group__name", "name"))
    # One volume can be in one backup instance only, whichever the vault.
    users = {
        i.datasource_resource_id.lower(): i
        for i in BackupInstance.objects.filter(datasource_resource_id__in=[v.resource_id for v in volumes]).select_related("vault")
    }
    result = []
    for volume in volumes:
        group, san = volume.volume_group, volume.volume_group.elastic_san
        cand = Candidate(
            key=f"vol{volume.pk}", datasource_type=datasource_types.ELASTIC_SAN, obj=volume,
            resource_id=volume.resource_id, name=volume.name, location=san.region_id,
            default_instance_name=f"{san.name}-{group.name}-{volume.name}", resource_group=san.resource_group,
            set_resource_id=san.resource_id, volume_group=group.name, elastic_san=san,
        )
        existing = users.get(volume.resource_id.lower())
        if existing is not None:
            where = (f" in the vault '{existing.vault.name}'"
                     if authorize(principal, VAULT_READ, existing.vault.resource_id).allowed
                     else " in another vault")
            cand.code = ALREADY_PROTECTED_CODE if existing.vault_id != vault.pk else "UserErrorDatasourceAlreadyHasBackupInstance"
            if existing.is_soft_deleted and existing.vault_id == vault.pk:
                cand.offered, cand.reason = False, _taken_reason(existing)
            else:
                cand.offered, cand.reason = False, (
                    f"Already protected by the backup instance '{existing.name}'{where}"
                    f"{' (soft-deleted: undelete it there, or wait for its purge)' if existing.is_soft_deleted else ''}: "
                    "a volume can be in one backup instance only."
                )
        result.append(cand)
    return result


def postgres_candidates(principal, vault) -> list[Candidate]:
    servers = list(visible(
        principal,
        PostgresServer.objects.filter(region=vault.region).select_related("resource_group__subscription")
        .prefetch_related("databases"),
        POSTGRES_READ,
    ).order_by("name"))
    protected = _protected_in(vault, [s.resource_id for s in servers])
    result = []
    for server in servers:
        cand = Candidate(
            key=f"pg{server.pk}", datasource_type=datasource_types.POSTGRES_FLEX, obj=server,
            resource_id=server.resource_id, name=server.name, location=server.region_id,
            default_instance_name=server.name, resource_group=server.resource_group,
            databases=[d.name for d in server.databases.all()],
        )
        existing = protected.get(server.resource_id.lower())
        if existing is not None:
            cand.code, cand.reason = _taken(principal, vault, existing)
            cand.offered = False
        result.append(cand)
    return result


def candidates(principal, vault, datasource_type: str, *, elastic_san=None) -> list[Candidate]:
    if datasource_type == datasource_types.ADLS:
        return storage_account_candidates(principal, vault)
    if datasource_type == datasource_types.ELASTIC_SAN:
        return volume_candidates(principal, vault, elastic_san)
    if datasource_type == datasource_types.POSTGRES_FLEX:
        return postgres_candidates(principal, vault)
    raise ValidationError({"datasource_type": "Choose a datasource type."})


def snapshot_resource_groups_for(principal, subscription):
    """Resource groups of the volume's subscription the user can see (the snapshot RG picker)."""
    return visible(principal, ResourceGroup.objects.filter(subscription=subscription), RESOURCE_GROUP_READ).order_by("name")


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
            "or it is not in the vault's region" + (" and subscription" if policy.datasource_type == datasource_types.ELASTIC_SAN else "") + "."
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
    if cand.datasource_type == datasource_types.ELASTIC_SAN:
        rg_id = sel.snapshot_resource_group_id
        rg = ResourceGroup.objects.filter(resource_id__iexact=rg_id).select_related("subscription").first() if rg_id else None
        if rg is None:
            errors.setdefault("snapshot_resource_group", []).append("Select the snapshot resource group.")
        elif rg.subscription_id != cand.resource_group.subscription_id:
            errors.setdefault("snapshot_resource_group", []).append(
                "The snapshot resource group must be in the volume's subscription.")


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
        if policy.datasource_type == datasource_types.ELASTIC_SAN:
            instance.snapshot_resource_group_id = scopes.normalize(sel.snapshot_resource_group_id)
            op.details["snapshotResourceGroup"] = instance.snapshot_resource_group_id
        # One datasource, one vault: re-checked under a lock on the datasource's inventory row, so two
        # vaults configuring the same datasource at once cannot both win (the unique constraint only
        # covers one vault).
        type(cand.obj).objects.select_for_update().filter(pk=cand.obj.pk).first()
        holder = _holding(vault, [cand.resource_id]).first()
        if holder is not None:
            code, reason = _taken(principal, vault, holder)
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
    if not reduced and not redated.shorter:
        return
    from protection.policies.services import raise_shorter_retention_alert

    what = "; ".join(reduced) if reduced else "its retention rules are not shorter"
    raise_shorter_retention_alert(
        "Modify Protection with Shorter Retention", resource_id=row.resource_id, principal=principal,
        description=f"The backup instance '{row.name}' moved from the policy '{old.name}' to '{policy.name}', "
                    f"which keeps recovery points for less time: {what}. {redated.describe()}".rstrip(),
        details={"instance": row.name, "from": old.name, "to": policy.name, "changes": reduced,
                 "redated": redated.as_details()})


# --- vault contents (the vault deletion rule) ---------------------------------------------------


def vault_has_contents(vault) -> bool:
    """True while the vault holds any backup instance (any state, soft-deleted too) or any policy."""
    return (BackupInstance.objects.filter(vault_id=vault.pk).exists()
            or BackupPolicy.objects.filter(vault_id=vault.pk).exists())


__all__ = [
    "CONTAINER_LIMIT_CODE", "MAX_CONTAINERS", "Candidate", "DatasourceSelection", "assign_missing_roles", "candidates", "change_policy", "check_readiness",
    "configure_protection", "instances_for", "readiness_error", "validate_for_backup", "vault_has_contents",
]
