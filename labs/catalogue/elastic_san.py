"""Lab 2, "Protect an Elastic SAN volume": policy, Configure protection with "Role assignment not done",
Assign missing roles at the right scope, Revalidate, Backup now, Verify, restore to a new volume and
compare checksums.

Follows "Configure Azure Elastic SAN backup using Azure portal (preview)" (../shared/seeds/000_*.txt) with
the labels of reference §2.2–§2.3, §5.3–§5.6. The lab's vault ``bv-esan`` is made by `prepare` (as the
trainee). The roles are the backup column of reference §2.2 as `protection.readiness` states them: Elastic
SAN Snapshot Exporter on the Elastic SAN (its Scope *Resource*) and Disk Snapshot Contributor on the
snapshot resource group. Readiness accepts a role inherited from a wider scope; this lab asks for least
privilege, so a wider assignment of the same role is a near miss the check names.
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError

from labs.catalogue import CheckResult, Document, Lab, Step, register
from portal.inventory import volumes as volume_files
from portal.inventory.models import Volume
from portal.lab import LAB_REGION
from portal.models import Region
from protection import datasource_types, readiness
from protection.backups import services as backup_services
from protection.instances import services as instance_services
from protection.models import BackupInstance, BackupPolicy, Job, JobOperation, JobStatus, ProtectionState, RecoveryPoint
from protection.policies import services as policy_services
from protection.policies.services import PolicySpec, Retention
from protection.restores import layout, targets
from protection.restores import services as restore_services
from security import clock, scopes
from security import services as security_services
from security.models import RoleAssignment
from vaults import services as vault_services
from vaults.models import BackupVault, StorageRedundancy

VAULT_NAME = "bv-esan"
POLICY_NAME = "esan-daily"
POLICY_SPEC = PolicySpec("Daily", dt.time(1, 0), (), Retention(7, "Days"), {})
ESAN = datasource_types.ELASTIC_SAN
ESAN_LABEL = datasource_types.get(ESAN).label
RESTORED_SUFFIX = "-restore"  # the wizard's default Volume name: <volume>-restore
_DONE = (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_WARNINGS)
_GONE = (ProtectionState.SOFT_DELETED, ProtectionState.SOFT_DELETING)


# --- what the checks look at -----------------------------------------------------------------------------


def _vault(ctx) -> BackupVault | None:
    group = ctx.world.backup_group
    return BackupVault.objects.filter(resource_group=group, name__iexact=VAULT_NAME).first() if group else None


def _missing_world(ctx) -> CheckResult | None:
    """None when the lab's vault and volume are there, else what is gone (only a reset brings them back)."""
    if _vault(ctx) is None:
        return CheckResult.missing(f"The Backup vault {VAULT_NAME} is no longer in {ctx.names.backup_group}: reset the "
                                   "sandbox to get it back.")
    if ctx.world.volume is None:
        return CheckResult.missing(f"The volume {ctx.names.volume} is no longer in {ctx.names.elastic_san}/"
                                   f"{ctx.names.volume_group}: reset the sandbox to get it back.")
    return None


def _solved_vault(ctx) -> BackupVault:
    if gone := _missing_world(ctx):
        raise ValidationError(gone.message)
    return _vault(ctx)


def _instance(ctx) -> BackupInstance | None:
    """The backup instance of the sandbox's volume in the lab's vault (not a soft-deleted one)."""
    return (BackupInstance.objects.filter(vault=_vault(ctx), datasource_resource_id__iexact=ctx.world.volume.resource_id)
            .exclude(protection_state__in=_GONE).select_related("vault", "policy").first())


def _snapshot_group_id(ctx) -> str:
    instance = _instance(ctx)
    return scopes.normalize(instance.snapshot_resource_group_id if instance else ctx.world.backup_group.resource_id)


def _datasource(ctx) -> readiness.Datasource:
    volume = ctx.world.volume
    return readiness.Datasource(ESAN, volume.resource_id, volume.name, volume.volume_group.elastic_san.resource_id,
                                _snapshot_group_id(ctx))


def _points(instance):
    return RecoveryPoint.objects.filter(instance=instance, state=RecoveryPoint.State.COMPLETED).order_by("-recovery_point_time")


def _other_instances(ctx) -> str:
    """", which protects vol-other" style words for the near miss of another volume."""
    names = sorted(BackupInstance.objects.filter(vault=_vault(ctx)).exclude(
        datasource_resource_id__iexact=ctx.world.volume.resource_id).values_list("datasource_name", flat=True))
    return f" ({', '.join(names)} {'is' if len(names) == 1 else 'are'} protected there, not {ctx.names.volume})" if names else ""


# --- 1. the policy ---------------------------------------------------------------------------------------


def check_policy(ctx) -> CheckResult:
    if gone := _missing_world(ctx):
        return gone
    vault = _vault(ctx)
    policy = BackupPolicy.objects.filter(vault=vault, datasource_type=ESAN).order_by("created_at").first()
    if policy is None:
        others = sorted(BackupPolicy.objects.filter(vault=vault).values_list("name", flat=True))
        also = f" ({', '.join(others)} is for another datasource type)" if others else ""
        return CheckResult.missing(
            f"The vault {vault.name} has no backup policy with Datasource type {ESAN_LABEL} yet{also}: Protection "
            "policies > + Create Policy > Create Backup Policy.")
    return CheckResult.ok(f"The policy {policy.name} ({ESAN_LABEL}) is in {vault.name}: "
                          + "; ".join(policy.parsed.summary()) + ".")


def solve_policy(ctx) -> None:
    vault = _solved_vault(ctx)
    if not BackupPolicy.objects.filter(vault=vault, datasource_type=ESAN).exists():
        policy_services.create_policy(ctx.trainee, vault=vault, name=POLICY_NAME, datasource_type=ESAN, spec=POLICY_SPEC)


# --- 2. the roles, at the right scope --------------------------------------------------------------------


def _assignments(identity, role: str):
    return [a for a in RoleAssignment.objects.active_at(clock.now()).filter(principal=identity, role__name=role)]


def _right_scopes(need: readiness.RoleNeed) -> set[str]:
    """Where the lab accepts ``need``: the scope "Resource" assigns at, or the datasource itself."""
    return {scopes.normalize(need.resource_scope).lower(), scopes.normalize(need.check_scope).lower()}


def _broader(need: readiness.RoleNeed, assignments) -> list:
    right = scopes.normalize(need.resource_scope)
    return [a for a in assignments
            if scopes.covers(a.scope, right) and scopes.normalize(a.scope).lower() != right.lower()]


def _scope_words(scope: str) -> str:
    scope = scopes.normalize(scope)
    level = scopes.level_of(scope).lower()
    return level if scope == scopes.ROOT else f"{level} {scope.rsplit('/', 1)[-1]}"


def _role_problems(ctx) -> list[str]:
    vault = _vault(ctx)
    identity = vault.identity if vault.identity_id else None
    if identity is None or not identity.enabled:
        return [f"the system-assigned identity of {vault.name} is off: turn it on in the vault's Identity blade"]
    problems = []
    for need in readiness.needs_for(_datasource(ctx)):
        held = _assignments(identity, need.role)
        right = any(scopes.normalize(a.scope).lower() in _right_scopes(need) for a in held)
        wide = _broader(need, held)
        if wide:
            problems.append(
                f"it holds {need.role} on the {_scope_words(wide[0].scope)}, wider than needed: the lab asks for it on "
                f"the {need.where} only (Scope: Resource). Remove that assignment in the {_scope_words(wide[0].scope)}'s "
                "Access control (IAM), then Revalidate and Assign missing roles with Scope Resource")
        elif not right:
            problems.append(f"it does not yet hold {need.role} on the {need.where}")
    return problems


def check_roles(ctx) -> CheckResult:
    if gone := _missing_world(ctx):
        return gone
    problems = _role_problems(ctx)
    if problems:
        return CheckResult.missing(
            f"The identity of the vault {VAULT_NAME}: " + "; ".join(problems) + ". In Configure protection > Datasources, "
            f"the Backup readiness of {ctx.names.volume} says \"{readiness.ROLE_ASSIGNMENT_NOT_DONE}\" until it does: "
            "select Assign missing roles, choose Scope Resource, Assign roles, then Revalidate.")
    needs = readiness.needs_for(_datasource(ctx))
    return CheckResult.ok(f"The identity of {VAULT_NAME} holds " + readiness.describe(needs)
                          + f", and no wider: Backup readiness of {ctx.names.volume} is {readiness.SUCCESS}.")


def solve_roles(ctx) -> None:
    vault = _solved_vault(ctx)
    identity = vault.identity
    for need in readiness.needs_for(_datasource(ctx)):
        for assignment in _broader(need, _assignments(identity, need.role)):
            security_services.remove_role_assignment(ctx.trainee, assignment)
    instance_services.assign_missing_roles(ctx.trainee, vault=vault, datasources=[_datasource(ctx)],
                                           level=readiness.SCOPE_RESOURCE)


# --- 3. configure protection -----------------------------------------------------------------------------


def check_configured(ctx) -> CheckResult:
    if gone := _missing_world(ctx):
        return gone
    instance = _instance(ctx)
    volume = ctx.names.volume
    if instance is None:
        elsewhere = (BackupInstance.objects.filter(datasource_resource_id__iexact=ctx.world.volume.resource_id)
                     .exclude(protection_state__in=_GONE).select_related("vault").first())
        if elsewhere is not None:
            return CheckResult.missing(f"{volume} is protected in the vault {elsewhere.vault.name}; the lab asks for "
                                       f"{VAULT_NAME}.")
        return CheckResult.missing(
            f"The vault {VAULT_NAME} has no backup instance of {volume} yet{_other_instances(ctx)}: in Configure protection "
            f"add {ctx.names.elastic_san} > {ctx.names.volume_group} > {volume}, then Review + configure > Configure Backup.")
    if instance.protection_state == ProtectionState.CONFIGURING:
        return CheckResult.missing(f"The backup instance {instance.name} is still Configuring protection: wait for its "
                                   "Configure protection job (Backup jobs).")
    if instance.protection_state != ProtectionState.CONFIGURED:
        why = f" ({instance.error_code}: {instance.error_message})" if instance.error_code else ""
        return CheckResult.missing(f"The backup instance {instance.name} is {instance.get_protection_state_display()}"
                                   f"{why}, not Protection configured.")
    return CheckResult.ok(f"{instance.name} protects {volume} with the policy {instance.policy.name}: Protection configured.")


def solve_configured(ctx) -> None:
    vault = _solved_vault(ctx)
    if _instance(ctx) is not None:
        return
    policy = BackupPolicy.objects.filter(vault=vault, datasource_type=ESAN).order_by("created_at").first()
    if policy is None:
        raise ValidationError(f"{VAULT_NAME} has no {ESAN_LABEL} policy: solve step 1 first.")
    volume = ctx.world.volume
    candidate = next(c for c in instance_services.candidates(ctx.trainee, vault, ESAN) if c.resource_id == volume.resource_id)
    selection = instance_services.DatasourceSelection(candidate.resource_id, candidate.default_instance_name,
                                                      key=candidate.key, snapshot_resource_group_id=_snapshot_group_id(ctx))
    for instance in instance_services.configure_protection(ctx.trainee, vault=vault, policy=policy, selections=[selection]):
        for job in Job.objects.filter(instance=instance, operation=JobOperation.CONFIGURE_PROTECTION,
                                      status=JobStatus.IN_PROGRESS):
            ctx.job_started(job)


# --- 4. Backup now ---------------------------------------------------------------------------------------


def _needs_instance(ctx) -> CheckResult | None:
    if gone := _missing_world(ctx):
        return gone
    if _instance(ctx) is None:
        return CheckResult.missing(f"The vault {VAULT_NAME} has no backup instance of {ctx.names.volume}: do step 3 first.")
    return None


def check_backup(ctx) -> CheckResult:
    if gone := _needs_instance(ctx):
        return gone
    instance = _instance(ctx)
    point = _points(instance).first()
    if point is not None:
        return CheckResult.ok(f"{instance.name} has a recovery point of {point.recovery_point_time:%Y-%m-%d %H:%M:%S} UTC "
                              f"({point.retention_tag}).")
    job = Job.objects.filter(instance=instance, operation=JobOperation.BACKUP).order_by("-start_time").first()
    if job is not None and job.status in (JobStatus.IN_PROGRESS, JobStatus.CANCELLING):
        return CheckResult.missing(f"The backup of {instance.name} is still {job.get_status_display()}: wait for it.")
    failed = f" Its last backup {job.get_status_display()}: {job.error_code} {job.error_message}" if job else ""
    return CheckResult.missing(
        f"{instance.name} has no recovery point of {ctx.names.volume} yet{_other_instances(ctx)}: open the backup "
        f"instance and select Backup now, choose a Retention rule and select Backup now.{failed}")


def _solved_instance(ctx) -> BackupInstance:
    instance = _instance(ctx) if _missing_world(ctx) is None else None
    if instance is None:
        raise ValidationError(f"The vault {VAULT_NAME} has no backup instance of {ctx.names.volume}: solve step 3 first.")
    return instance


def solve_backup(ctx) -> None:
    instance = _solved_instance(ctx)
    if _points(instance).exists():
        return
    ctx.job_started(backup_services.backup_now(ctx.trainee, instance, retention_rule="Default"))


# --- 5. Verify -------------------------------------------------------------------------------------------


def check_verified(ctx) -> CheckResult:
    if gone := _needs_instance(ctx):
        return gone
    instance = _instance(ctx)
    points = list(_points(instance))
    if not points:
        return CheckResult.missing(f"{instance.name} has no recovery point yet: do step 4 first.")
    # The trainee's own Verify (the hourly scheduled verify may have read the point too; it does not count).
    verified = (Job.objects.filter(instance=instance, operation=JobOperation.VERIFY, initiated_by=ctx.trainee,
                                   status__in=_DONE, recovery_point__health=RecoveryPoint.Health.HEALTHY)
                .select_related("recovery_point").order_by("-start_time").first())
    if verified is not None:
        point = verified.recovery_point
        return CheckResult.ok(f"You verified the recovery point of {point.recovery_point_time:%Y-%m-%d %H:%M:%S} UTC: "
                              "every block it needs was read back and matched (Healthy).")
    damaged = [p for p in points if p.health == RecoveryPoint.Health.DAMAGED]
    if damaged:
        return CheckResult.missing(f"Verify found the recovery point of {damaged[0].recovery_point_time:%Y-%m-%d %H:%M:%S} "
                                   "UTC damaged: take a new backup (Backup now) and verify that one.")
    return CheckResult.missing(
        f"No recovery point of {instance.name} is verified yet{_other_instances(ctx)}: open the backup instance, "
        "select its recovery point and select Verify; the Verify job reads every block back.")


def _solved_point(ctx) -> RecoveryPoint:
    point = _points(_solved_instance(ctx)).first()
    if point is None:
        raise ValidationError(f"{ctx.names.volume} has no recovery point yet: solve step 4 first.")
    return point


def solve_verified(ctx) -> None:
    point = _solved_point(ctx)
    ctx.job_started(restore_services.start_verify(ctx.trainee, point))


# --- 6. restore to a new volume, equal checksums ---------------------------------------------------------


def _restores(instance):
    return Job.objects.filter(instance=instance, operation=JobOperation.RESTORE).select_related("recovery_point").order_by("-start_time")


def check_restored(ctx) -> CheckResult:
    if gone := _needs_instance(ctx):
        return gone
    instance = _instance(ctx)
    jobs = list(_restores(instance))
    done = [j for j in jobs if j.status in _DONE]
    if not done:
        last = (f" The last restore {jobs[0].get_status_display()}: {jobs[0].error_code} {jobs[0].error_message}"
                if jobs and jobs[0].status not in (JobStatus.IN_PROGRESS, JobStatus.CANCELLING) else
                " A restore is still running: wait for it." if jobs else "")
        return CheckResult.missing(
            f"No restore of {instance.name} to a new volume has completed yet{_other_instances(ctx)}: open the backup "
            "instance, select Restore, choose the recovery point, and under Restore parameters a new Volume name "
            f"(e.g. {ctx.names.volume}{RESTORED_SUFFIX}); select Validate, Assign missing roles if it asks, then "
            f"Review + restore > Restore.{last}")
    problems = []
    for job in done:
        summary = (job.extended_info or {}).get("restore") or {}
        volume = Volume.objects.filter(resource_id__iexact=summary.get("targetResourceId", "")).first()
        expected = layout.volume_checksum(job.recovery_point) if job.recovery_point_id else ""
        if volume is None:
            problems.append(f"the volume {summary.get('target', '?')} that a restore made is gone")
            continue
        actual = volume_files.image_checksum(volume.image_path, like=expected)
        if expected and actual == expected:
            return CheckResult.ok(
                f"The restored volume {volume.name} has checksum {actual}, equal to {ctx.names.volume}'s at backup "
                f"({job.recovery_point.recovery_point_time:%Y-%m-%d %H:%M:%S} UTC).")
        problems.append(f"the restored volume {volume.name} has checksum {actual}, which differs from {ctx.names.volume}'s "
                        f"at backup ({expected or 'not recorded'}): it was changed after the restore")
    return CheckResult.missing("Not equal yet: " + "; ".join(problems) + ". Restore again to a new Volume name.")


def solve_restored(ctx) -> None:
    point = _solved_point(ctx)
    group = ctx.world.volume.volume_group
    name = f"{ctx.names.volume}{RESTORED_SUFFIX}"
    taken = set(Volume.objects.filter(volume_group=group).values_list("name", flat=True))
    index = 1
    while name in taken:
        index += 1
        name = f"{ctx.names.volume}{RESTORED_SUFFIX}{index}"
    target = targets.VolumeTarget(group.resource_id, name)
    ready = restore_services.restore_readiness(ctx.trainee, point, target)
    if ready is not None and not ready.ok:
        restore_services.assign_restore_roles(ctx.trainee, point, target, readiness.SCOPE_RESOURCE)
    ctx.job_started(restore_services.start_restore(ctx.trainee, point, target))


# --- the lab ---------------------------------------------------------------------------------------------


def prepare(ctx) -> None:
    """The lab's vault, made by the trainee's own hand (their Contributor role on the backup group)."""
    if _vault(ctx) is None:
        vault_services.create_vault(ctx.trainee, name=VAULT_NAME, region=Region.objects.get(name=LAB_REGION),
                                    resource_group=ctx.world.backup_group,
                                    storage_redundancy=StorageRedundancy.LOCALLY_REDUNDANT)


def _unavailable() -> str:
    if ESAN not in datasource_types.TYPES:
        return "Elastic SAN backup is not part of this installation."
    return ""


STEPS = (
    Step(
        "policy", "Create a backup policy for Elastic SAN",
        f"""Your sandbox already has a Backup vault, **{VAULT_NAME}** in `{{backup_group}}`, made for you when the lab
started (Elastic SAN backup needs a vault in the same subscription and region as the volume).

Go to **Protection policies** and select **+ Create Policy** (or open {VAULT_NAME} > **Backup policies** > **+ Add**).

- **Basics**: **Policy name** `{POLICY_NAME}`, **Datasource type** *{ESAN_LABEL}*, **Vault** `{VAULT_NAME}`.
- **Schedule + retention**: **Backup frequency** *Daily* (the default). Keep the **Default** retention rule
  at **7 Days**. At most 450 recovery points are kept at any time across all rules.

Select **Review + create**, then **Create**.""",
        check_policy, solve_policy,
        hints=(f"The Datasource type decides which datasources may use the policy: choose {ESAN_LABEL}.",),
    ),
    Step(
        "roles", "Assign missing roles at the right scope",
        f"""Go to **Home** > **+ Configure protection**: **Resource managed by** *Azure*, **Datasource type**
*{ESAN_LABEL}*, **Solution** *Azure Backup* > **Continue** (or open {VAULT_NAME} > **+ Backup**). On **Basics**
choose the **Vault** `{VAULT_NAME}`, and on **Backup policy** your policy.

On **Datasources** choose the **Elastic SAN** `{{elastic_san}}`, **Volume group** `vg-lab`, keep the **Snapshot
resource group** `{{backup_group}}`, and select the volume `vol-data`. Its **Backup readiness** says
*{readiness.ROLE_ASSIGNMENT_NOT_DONE}*: the vault's system-assigned identity needs **Elastic SAN Snapshot
Exporter** on the Elastic SAN and **Disk Snapshot Contributor** on the snapshot resource group.

Select **Assign missing roles**. In **Grant missing permissions** choose the **Scope** **Resource** (least
privilege: a resource group or subscription scope would let the vault snapshot every volume there), select
**Assign roles**, then **Revalidate** until the readiness says *{readiness.SUCCESS}*. Stay in the wizard for the
next step.""",
        check_roles, solve_roles,
        hints=("Assign missing roles is disabled without Role Based Access Control Administrator on the scope: you "
               "hold it on {backup_group}.",
               "Chose Resource group by mistake? Readiness is Success, but the role is wider than needed: remove it in "
               "{backup_group} > Access control (IAM), Revalidate, and assign at Resource."),
    ),
    Step(
        "configure", "Configure Backup",
        """Still in **Configure protection**, with `vol-data` selected and its readiness *Success*, go to
**Review + configure** and select **Configure Backup**.

A **Configure protection** job runs (see **Backup jobs**); the backup instance appears under **Backup
instances** as *Configuring protection*, then *Protection configured*. A volume can be in one backup instance
only: protect `vol-data`, not another volume.""",
        check_configured, solve_configured,
        hints=("The instance name is filled in for you ({elastic_san}-vg-lab-vol-data); keep it or choose another.",),
    ),
    Step(
        "backup", "Backup now",
        """The policy will back the volume up daily; do not wait. Open the backup instance (**Backup instances** >
`{elastic_san}-vg-lab-vol-data`), select **Backup now**, choose the **Retention rule** *Default* and select
**Backup now**. Follow the Backup job in **Backup jobs** until it is *Completed*.

The recovery point is an incremental snapshot named `AzureBackup_<datasource id>_<time>` in the snapshot
resource group: it lives in the operational tier, next to your data, not in the vault.""",
        check_backup, solve_backup,
        hints=("Backup now is on the backup instance's command bar.",),
    ),
    Step(
        "verify", "Verify the recovery point",
        """On the backup instance's list of recovery points, select **Verify** on the new one (or open it and
select **Verify**). The Verify job reads every block the recovery point needs back from the store and checks
it; the recovery point then shows *Healthy*. A recovery point that no one has read back is a hope, not a backup.""",
        check_verified, solve_verified,
        hints=("Verify is on the recovery point's page, next to Restore.",),
    ),
    Step(
        "restore", "Restore to a new volume and compare checksums",
        """On the backup instance select **Restore**. **Select recovery point**: the one you verified. Under
**Restore parameters** keep the **Target Elastic SAN instance** `{elastic_san}` and **Target Elastic SAN volume
group** `vg-lab`, and give a new **Volume name** (e.g. `vol-data-restore`; a restore never overwrites a
volume). Select **Validate**: the vault's identity also needs **Elastic SAN Volume Importer** on the target
Elastic SAN and **Reader** on the snapshot resource group; select **Assign missing roles** (Scope *Resource*)
and **Validate** again. Then **Review + restore** > **Restore**.

When the Restore job is *Completed*, open the new volume: its **Checksum** equals the recovery
point's *Checksum at backup*, which is `vol-data`'s at backup time. Select **# Compute checksum** to read it
again yourself.""",
        check_restored, solve_restored,
        hints=("The restore job's page links to the new volume.",
               "Validate fails while the vault's identity lacks Elastic SAN Volume Importer: Assign missing roles."),
    ),
)

LAB = register(Lab(
    slug="elastic-san-backup",
    title="Protect an Elastic SAN volume",
    summary="Back up an Elastic SAN volume: create its policy, configure protection, give the vault's identity "
            "exactly the roles it needs, take and verify a backup, and restore it to a new volume with the same checksum.",
    learn=(
        "A backup policy for Elastic SAN (Daily, 7 days, at most 450 recovery points)",
        "Backup readiness: \"Role assignment not done\", Assign missing roles at the right scope, Revalidate",
        "Backup now and Verify: a recovery point you have read back",
        "Restoring to a new volume and proving it equal with a checksum",
    ),
    minutes=30,
    document=Document("Configure Azure Elastic SAN backup using Azure portal (preview)", "000_83cfb95f813fca61.txt"),
    order=20,
    protects=("volume",),
    steps=STEPS,
    unavailable=_unavailable,
    prepare=prepare,
))
