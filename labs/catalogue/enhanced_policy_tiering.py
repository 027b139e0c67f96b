"""The tiering half of the lab "Enhanced policy and tiering" (`labs.catalogue.enhanced_policy`), and the lab's
shared look-ups: a PostgreSQL policy whose Default rule tiers to archive after 3 months (read from its
targetDataStoreCopySettings), the server backed up under it, a point moved to Vault-archive once old enough
(`protection.archive_eligibility` says why not before), then rehydrated and restored as files.

A point cannot be made 3 months old by a trainee, nor a High priority rehydration shorter than an hour: the
checks say what is missing and when it will come, and the solves refuse with that reason (a Lab Instructor can
move the lab clock).
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError

from labs.catalogue import CheckResult, first_free_name
from portal.inventory import services as inventory
from portal.inventory.disks.models import ManagedDisk
from portal.inventory.models import Container
from protection import archive_eligibility, datasource_types, readiness
from protection.backups import services as backup_services
from protection.instances import services as instance_services
from protection.models import BackupInstance, BackupPolicy, Job, JobOperation, JobStatus, ProtectionState, RecoveryPoint
from protection.policies import services as policy_services
from protection.policies.services import PolicySpec, Retention, Tiering
from protection.policy_rules import PolicyError, tiering_rules
from protection.restores import rehydration, targets
from protection.restores import services as restore_services
from protection.tiering import services as tiering_services
from vaults.models import BackupVault

VAULT_NAME = "bv-tiering"
DISK_NAME = "disk-data"
DISK_POLICY = "disk-hourly"
PG_POLICY = "pg-archive"
RESTORE_CONTAINER = "pg-rehydrated"
RESTORE_PREFIX = "rehydrated/"
EVERY_HOURS = 4
TIER_AFTER_MONTHS = 3
DISK = datasource_types.AZURE_DISK
PG = datasource_types.POSTGRES_FLEX
DISK_LABEL = datasource_types.get(DISK).label
PG_LABEL = datasource_types.get(PG).label
DISK_SPEC = PolicySpec("Hourly", dt.time(8, 0), (), Retention(7, "Days"), {"Daily": Retention(30, "Days")},
                       every=EVERY_HOURS)
PG_SPEC = PolicySpec("Weekly", dt.time(2, 0), ("Sunday",), Retention(3, "Months"), {},
                     tiering=Tiering(TIER_AFTER_MONTHS, Retention(1, "Years")))
_GONE = (ProtectionState.SOFT_DELETED, ProtectionState.SOFT_DELETING)
_RUNNING = (JobStatus.IN_PROGRESS, JobStatus.CANCELLING)
CLOCK_WORDS = "a Lab Instructor can move the lab clock (Lab clock in the portal menu, or on the class page)"


def _at(moment) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


# --- what the checks look at -----------------------------------------------------------------------------


def _vault(ctx) -> BackupVault | None:
    group = ctx.world.backup_group
    return BackupVault.objects.filter(resource_group=group, name__iexact=VAULT_NAME).first() if group else None


def _disk(ctx) -> ManagedDisk | None:
    group = ctx.world.backup_group
    return ManagedDisk.objects.filter(resource_group=group, name__iexact=DISK_NAME).first() if group else None


def _missing_world(ctx, *, disk: bool = False, server: bool = False) -> CheckResult | None:
    """None when the lab's vault (and the disk or server asked for) are there; else what is gone."""
    if _vault(ctx) is None:
        return CheckResult.missing(f"The Backup vault {VAULT_NAME} is no longer in {ctx.names.backup_group}: reset the "
                                   "sandbox to get it back.")
    if disk and _disk(ctx) is None:
        return CheckResult.missing(f"The disk {DISK_NAME} is no longer in {ctx.names.backup_group}: reset the sandbox "
                                   "to get it back.")
    if server and ctx.world.pg_server is None:
        return CheckResult.missing(f"The PostgreSQL server {ctx.names.pg_server} is gone: reset the sandbox to get it back.")
    return None


def _refuse_unless(result: CheckResult | None) -> None:
    if result is not None and not result.passed:
        raise ValidationError(result.message)


def _policies(ctx, kind: str):
    return BackupPolicy.objects.filter(vault=_vault(ctx), datasource_type=kind).order_by("created_at")


def _instance(ctx, resource_id: str) -> BackupInstance | None:
    return (BackupInstance.objects.filter(vault=_vault(ctx), datasource_resource_id__iexact=resource_id)
            .exclude(protection_state__in=_GONE).select_related("vault", "policy").first())


def _disk_instance(ctx) -> BackupInstance | None:
    disk = _disk(ctx)
    return _instance(ctx, disk.resource_id) if disk else None


def _pg_instance(ctx) -> BackupInstance | None:
    server = ctx.world.pg_server
    return _instance(ctx, server.resource_id) if server else None


def _points(instance):
    return RecoveryPoint.objects.filter(instance=instance, state=RecoveryPoint.State.COMPLETED).order_by("recovery_point_time")


# --- 3. a PostgreSQL policy that tiers to archive ----------------------------------------------------------


def _tiering(policy: BackupPolicy):
    """The Default rule's tiering rule (read from its targetDataStoreCopySettings), or None."""
    try:
        return tiering_rules(policy.policy_rules).get("Default")
    except PolicyError:
        return None


def _tier_problem(policy: BackupPolicy) -> str:
    rule = _tiering(policy)
    if rule is None:
        return "its Default rule has no Tier to archive (no targetDataStoreCopySettings)"
    if rule.copy_after is None:
        return (f"it tiers On expiry (CopyOnExpiryOption, after {rule.vault_duration.label()}), not After "
                f"{TIER_AFTER_MONTHS} months")
    months = rule.copy_after.months + 12 * rule.copy_after.years
    if months != TIER_AFTER_MONTHS or rule.copy_after.days or rule.copy_after.weeks:
        return f"it tiers after {rule.copy_after.label()} (CustomCopyOption {rule.copy_after.iso()}), not after {TIER_AFTER_MONTHS} months"
    return ""


def _good_pg_policy(ctx) -> BackupPolicy | None:
    return next((p for p in _policies(ctx, PG) if not _tier_problem(p)), None)


def _policy_check(ctx, kind: str, label: str, problem, *, create: str, fix: str):
    """(the first policy of ``kind`` in which ``problem`` finds nothing, None), or (None, why there is none:
    no policy of ``kind`` yet, ``create`` says how; or the first is not the one asked for, ``fix`` says how)."""
    policies = list(_policies(ctx, kind))
    if not policies:
        return None, CheckResult.missing(
            f"The vault {VAULT_NAME} has no backup policy with Datasource type {label} yet: Protection policies > {create}")
    good = next((p for p in policies if not problem(p)), None)
    if good is None:
        return None, CheckResult.missing(
            f"The {label} policy {policies[0].name} is not the one asked for: {problem(policies[0])}. {fix}")
    return good, None


def check_pg_policy(ctx) -> CheckResult:
    if gone := _missing_world(ctx):
        return gone
    good, missing = _policy_check(
        ctx, PG, PG_LABEL, _tier_problem, create="+ Create Policy, then the Tiering section.",
        fix=f"In its Tiering section tick Tier to archive, choose After (months) {TIER_AFTER_MONTHS}.")
    if missing:
        return missing
    rule = _tiering(good)
    return CheckResult.ok(f"The policy {good.name}'s Default rule copies to ArchiveStore after {rule.copy_after.label()} "
                          f"(targetDataStoreCopySettings: CustomCopyOption {rule.copy_after.iso()}); a point is kept "
                          f"{rule.archive_duration.label()} in all.")


def solve_pg_policy(ctx) -> None:
    _refuse_unless(_missing_world(ctx))
    if _good_pg_policy(ctx) is None:
        taken = set(BackupPolicy.objects.filter(vault=_vault(ctx)).values_list("name", flat=True))
        name = first_free_name(PG_POLICY, taken.__contains__)
        policy_services.create_policy(ctx.trainee, vault=_vault(ctx), name=name, datasource_type=PG, spec=PG_SPEC)


# --- 4. back the server up with it, and read when its point may move ---------------------------------------


def _pg_datasource(ctx) -> readiness.Datasource:
    server = ctx.world.pg_server
    return readiness.Datasource(PG, server.resource_id, server.name)


def _tiered_points(ctx):
    """The PostgreSQL instance (with a policy tiering after 3 months) and its completed points, or (None, [])."""
    instance = _pg_instance(ctx)
    if instance is None or _tier_problem(instance.policy):
        return instance, []
    return instance, list(_points(instance))


def check_pg_backup(ctx) -> CheckResult:
    if gone := _missing_world(ctx, server=True):
        return gone
    instance, points = _tiered_points(ctx)
    server = ctx.names.pg_server
    if instance is None:
        return CheckResult.missing(
            f"The vault {VAULT_NAME} has no backup instance of the server {server} yet: + Backup, Datasource type "
            f"{PG_LABEL}, your tiering policy, add {server}, Assign missing roles, then Configure Backup.")
    if problem := _tier_problem(instance.policy):
        return CheckResult.missing(f"{instance.name} uses the policy {instance.policy.name}, but {problem}: Change policy "
                                   "to your tiering one.")
    if not points:
        job = Job.objects.filter(instance=instance, operation=JobOperation.BACKUP).order_by("-start_time").first()
        if job is not None and job.status in _RUNNING:
            return CheckResult.missing(f"The backup of {instance.name} is still {job.get_status_display()}: wait for it.")
        failed = f" Its last backup {job.get_status_display()}: {job.error_code} {job.error_message}" if job else ""
        return CheckResult.missing(f"{instance.name} has no recovery point yet: select Backup now (Retention rule "
                                   f"Default).{failed}")
    point = points[-1]
    rule = _tiering(instance.policy)
    moves = rule.move_at(point.recovery_point_time)
    why = archive_eligibility.ineligible_reason(point)
    state = "It is in Vault-archive already." if point.datastore == RecoveryPoint.Datastore.ARCHIVE else (
        f"Move to archive says: {why}." if why else "It may move to archive now.")
    return CheckResult.ok(f"The recovery point of {_at(point.recovery_point_time)} is in {point.datastore}; the policy "
                          f"moves it to archive at {_at(moves)} and it expires at {_at(point.expiry_time)}. {state}")


def solve_pg_backup(ctx) -> None:
    _refuse_unless(_missing_world(ctx, server=True))
    vault = _vault(ctx)
    if _pg_instance(ctx) is None:
        policy = _good_pg_policy(ctx)
        if policy is None:
            raise ValidationError(f"{VAULT_NAME} has no {PG_LABEL} policy tiering after {TIER_AFTER_MONTHS} months: "
                                  "solve step 3 first.")
        instance_services.assign_missing_roles(ctx.trainee, vault=vault, datasources=[_pg_datasource(ctx)],
                                               level=readiness.SCOPE_RESOURCE)
        server = ctx.world.pg_server
        candidate = next(c for c in instance_services.candidates(ctx.trainee, vault, PG) if c.resource_id == server.resource_id)
        selection = instance_services.DatasourceSelection(candidate.resource_id, candidate.default_instance_name,
                                                          key=candidate.key)
        for instance in instance_services.configure_protection(ctx.trainee, vault=vault, policy=policy, selections=[selection]):
            for job in Job.objects.filter(instance=instance, operation=JobOperation.CONFIGURE_PROTECTION, status__in=_RUNNING):
                ctx.job_started(job)
    instance, points = _tiered_points(ctx)
    if instance is not None and not points and instance.protection_state == ProtectionState.CONFIGURED:
        ctx.job_started(backup_services.backup_now(ctx.trainee, instance, retention_rule="Default"))


# --- 6. Move to archive ------------------------------------------------------------------------------------


def check_archived(ctx) -> CheckResult:
    if gone := _missing_world(ctx, server=True):
        return gone
    instance, points = _tiered_points(ctx)
    if not points:
        return CheckResult.missing("There is no recovery point of the server under a tiering policy yet: do step 4 first.")
    archived = [p for p in points if p.datastore == RecoveryPoint.Datastore.ARCHIVE]
    if archived:
        point = archived[-1]
        return CheckResult.ok(f"The recovery point of {_at(point.recovery_point_time)} is in Vault-archive; restoring it "
                              "needs rehydration first (Restore > Rehydration priority, Rehydration duration).")
    running = Job.objects.filter(instance=instance, operation=JobOperation.TIERING, status__in=_RUNNING).exists()
    if running:
        return CheckResult.missing("A Move to archive (Tiering) job is running: wait for it.")
    oldest = points[0]
    why = archive_eligibility.ineligible_reason(oldest)
    if why:
        moves = _tiering(instance.policy).move_at(oldest.recovery_point_time)
        return CheckResult.missing(
            f"The recovery point of {_at(oldest.recovery_point_time)} cannot move yet: {why}. It may move from "
            f"{_at(moves)} (the policy moves it then by itself). That takes lab time: {CLOCK_WORDS}.")
    return CheckResult.missing(f"The recovery point of {_at(oldest.recovery_point_time)} may move to archive now: open it "
                               "in the backup instance's recovery points and select Move to archive.")


def solve_archived(ctx) -> None:
    _refuse_unless(_missing_world(ctx, server=True))
    instance, points = _tiered_points(ctx)
    if not points:
        raise ValidationError("There is no recovery point of the server under a tiering policy yet: solve step 4 first.")
    if any(p.datastore == RecoveryPoint.Datastore.ARCHIVE for p in points):
        return
    oldest = points[0]
    if why := archive_eligibility.ineligible_reason(oldest):
        raise ValidationError(f"Move to archive is refused for the point of {_at(oldest.recovery_point_time)}: {why}. "
                              f"Only lab time makes it old enough: {CLOCK_WORDS}.")
    ctx.job_started(tiering_services.move_to_archive(ctx.trainee, oldest))


# --- 7. rehydrate, then restore ---------------------------------------------------------------------------


def _rehydrated_restores(instance):
    return [j for j in Job.objects.filter(instance=instance, operation=JobOperation.RESTORE).order_by("-start_time")
            if (j.parameters or {}).get("rehydrateJobId")]


def check_rehydrated(ctx) -> CheckResult:
    if gone := _missing_world(ctx, server=True):
        return gone
    instance, points = _tiered_points(ctx)
    archived = [p for p in points if p.datastore == RecoveryPoint.Datastore.ARCHIVE]
    if not archived:
        return CheckResult.missing("No recovery point of the server is in Vault-archive yet: do step 6 first.")
    restores = _rehydrated_restores(instance)
    done = [j for j in restores if j.status in (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_WARNINGS)]
    if done:
        summary = (done[0].extended_info or {}).get("restore") or {}
        where = summary.get("target") or RESTORE_CONTAINER
        return CheckResult.ok(f"The Restore after rehydration completed ({done[0].get_status_display()}): the dumps of the "
                              f"archived point are in {where}.")
    if restores:
        last = restores[0]
        if last.status in _RUNNING:
            return CheckResult.missing("The restore after rehydration is running: wait for it.")
        return CheckResult.missing(f"The restore after rehydration {last.get_status_display()}: {last.error_code} "
                                   f"{last.error_message} Restore again from the rehydrated copy.")
    point = archived[-1]
    if point.rehydration_status == rehydration.CREATE_IN_PROGRESS:
        when = f" from {_at(point.rehydration_ready_at)}" if point.rehydration_ready_at else ""
        return CheckResult.missing(f"The point is being rehydrated ({point.rehydration_priority} priority): it is "
                                   f"restorable{when}, then the restore starts by itself. Wait (or {CLOCK_WORDS}).")
    return CheckResult.missing(
        "The archived point has not been rehydrated for a restore yet: Restore, choose it, Restore type Restore as "
        f"files into a storage container ({ctx.names.target_account} > {RESTORE_CONTAINER}), Rehydration priority High, "
        "Rehydration duration (days) 10.")


def _restore_target(ctx) -> targets.PgFilesTarget:
    account = ctx.world.target_account
    container = Container.objects.filter(account=account, name=RESTORE_CONTAINER).first()
    if container is None:
        container = inventory.create_container(ctx.trainee, account, name=RESTORE_CONTAINER)
    return targets.PgFilesTarget(container.resource_id, RESTORE_PREFIX)


def solve_rehydrated(ctx) -> None:
    _refuse_unless(_missing_world(ctx, server=True))
    instance, points = _tiered_points(ctx)
    archived = [p for p in points if p.datastore == RecoveryPoint.Datastore.ARCHIVE]
    if not archived:
        raise ValidationError("No recovery point of the server is in Vault-archive yet: solve step 6 first.")
    if _rehydrated_restores(instance):
        return
    point = archived[-1]
    if point.rehydration_status == rehydration.CREATE_IN_PROGRESS:
        raise ValidationError(f"The point is being rehydrated; it is restorable from {_at(point.rehydration_ready_at)} "
                              f"and the restore then starts by itself. Only time brings it: {CLOCK_WORDS}.")
    target = _restore_target(ctx)
    ready = restore_services.restore_readiness(ctx.trainee, point, target)
    if ready is not None and not ready.ok:
        restore_services.assign_restore_roles(ctx.trainee, point, target, readiness.SCOPE_RESOURCE)
    ctx.job_started(rehydration.start_rehydrated_restore(ctx.trainee, point, target, priority="High", duration="P10D"))
