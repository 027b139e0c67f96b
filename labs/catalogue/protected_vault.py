"""What the multi-user authorization lab and the ransomware drill share (seed 004, reference §1.8 and §3).

Seeding, through the services: a Backup vault in the sandbox's backup group protecting the source storage
account (one recovery point), and the Resource Guard the sandbox's security admin creates in the security
group (its approver; the trainee reads it through their Reader on the subscription, which linking needs).
Reads for the checks: the vault, its items, the guard, its link, and the Resource Guard's refusals in the
activity log.
"""

from __future__ import annotations

import dataclasses

from django.core.exceptions import ValidationError

from labs.catalogue import CheckResult
from labs.roleplay import sandbox_guard
from protection import datasource_types, readiness
from protection.backups import services as backups
from protection.instances import services as instance_services
from protection.models import BackupInstance, BackupPolicy, Job, JobOperation, JobStatus, RecoveryPoint
from protection.policies import services as policy_services
from security import mua
from security.models import ActivityLogEntry, ResourceGuard
from vaults import services as vault_services
from vaults.models import BackupVault, StorageRedundancy

FAILED = ActivityLogEntry.Status.FAILED
SUCCEEDED = ActivityLogEntry.Status.SUCCEEDED
DONE = (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_WARNINGS)


def guard_name(code: str) -> str:
    return f"guard-{code}"


def guard_description(code: str) -> str:
    return (f"Critical operations on the vaults of sandbox {code} need the security admin's approval: select "
            "Request access on the refusal (Backup MUA Operator; 5 minutes is enough in a lab). In self-study, "
            "approve it yourself from the lab page (Role-play the security admin).")


def inline(ctx):
    """A context whose jobs run here and now: a lab starts from a recovery point that already exists."""
    return dataclasses.replace(ctx, run_jobs_inline=True, jobs=[])


def run_job(ctx, job) -> Job:
    job = ctx.job_started(job)
    job.refresh_from_db()
    if job.status not in DONE:
        raise ValidationError(f"The lab could not be prepared: {job.get_operation_display()} of "
                              f"{job.datasource_name} ended {job.status} ({job.error_code} {job.error_message}).")
    return job


# --- seeding ------------------------------------------------------------------------------------------------


def create_vault(ctx, name: str) -> BackupVault:
    group = ctx.world.backup_group
    return vault_services.create_vault(ctx.trainee, name=name, resource_group=group, region=group.region,
                                       storage_redundancy=StorageRedundancy.LOCALLY_REDUNDANT)


def create_policy(ctx, vault, name: str, datasource_type: str, spec=None) -> BackupPolicy:
    return policy_services.create_policy(ctx.trainee, vault=vault, name=name, datasource_type=datasource_type,
                                         spec=spec or policy_services.default_spec(datasource_type))


def _protect(ctx, vault, policy, datasource: readiness.Datasource, selection) -> BackupInstance:
    instance_services.assign_missing_roles(ctx.trainee, vault=vault, datasources=[datasource],
                                           level=readiness.SCOPE_RESOURCE)
    [instance] = instance_services.configure_protection(ctx.trainee, vault=vault, policy=policy, selections=[selection])
    for job in Job.objects.filter(instance=instance, operation=JobOperation.CONFIGURE_PROTECTION):
        run_job(ctx, job)
    instance.refresh_from_db()
    return instance


def protect_account(ctx, vault, policy) -> BackupInstance:
    """Protect the sandbox's source account (all containers) with ``policy``."""
    account = ctx.world.source_account
    datasource = readiness.Datasource(datasource_types.ADLS, account.resource_id, account.name)
    selection = instance_services.DatasourceSelection(account.resource_id, account.name, all_containers=True)
    return _protect(ctx, vault, policy, datasource, selection)


def protect_volume(ctx, vault, policy) -> BackupInstance:
    """Protect the sandbox's Elastic SAN volume, its snapshots kept in the backup group."""
    volume, group_id = ctx.world.volume, ctx.world.backup_group.resource_id
    san = volume.volume_group.elastic_san
    datasource = readiness.Datasource(datasource_types.ELASTIC_SAN, volume.resource_id, volume.name, san.resource_id,
                                      group_id)
    selection = instance_services.DatasourceSelection(volume.resource_id, volume.name,
                                                      snapshot_resource_group_id=group_id)
    return _protect(ctx, vault, policy, datasource, selection)


def back_up(ctx, instance) -> RecoveryPoint:
    run_job(ctx, backups.backup_now(ctx.trainee, instance, retention_rule="Default"))
    return RecoveryPoint.objects.filter(instance=instance).order_by("-recovery_point_time").first()


def create_guard(ctx) -> ResourceGuard:
    """The security admin's Resource Guard in the security group, with the admin as its approver."""
    admin, group = ctx.world.security_admin, ctx.world.security_group
    return mua.create_resource_guard(admin, resource_group_id=group.resource_id, name=guard_name(ctx.names.code),
                                     region=group.region_id, description=guard_description(ctx.names.code),
                                     approvers=[admin])


# --- reads --------------------------------------------------------------------------------------------------


def vault_named(ctx, name: str) -> BackupVault | None:
    return BackupVault.objects.filter(resource_group=ctx.world.backup_group, name__iexact=name).first()


def item_of(vault, resource_id: str) -> BackupInstance | None:
    """The vault's backup instance of a datasource (the newest, should it have been protected twice)."""
    if vault is None or resource_id is None:
        return None
    return (BackupInstance.objects.filter(vault=vault, datasource_resource_id__iexact=resource_id)
            .order_by("-created_at").first())


def guard_of(ctx, home=None) -> ResourceGuard | None:
    """The Resource Guard meant to protect the sandbox's vault: the security admin's in the sandbox's security
    group or, given ``home`` (a paired lab: the partner's SandboxWorld), guard-<code> in the partner's."""
    if home is None:
        return sandbox_guard(ctx.world)
    group = home.security_group
    if group is None:
        return None
    return ResourceGuard.objects.filter(resource_group_id__iexact=group.resource_id,
                                        name__iexact=guard_name(ctx.names.code)).first()


def in_vault(ctx, vault, **filters):
    """The sandbox's activity since the lab started on the vault or anything in it (the trainee's)."""
    vault_id = vault.resource_id.lower()
    return [e for e in ctx.activity(principal_ref=ctx.trainee, **filters)
            if e.scope.lower() == vault_id or e.scope.lower().startswith(vault_id + "/")]


def guard_refusals(ctx, vault, guard, **filters) -> list:
    """The trainee's operations in ``vault`` that the Resource Guard ``guard`` refused."""
    return [e for e in in_vault(ctx, vault, status=FAILED, **filters)
            if e.details.get("guard") == "MUA" and e.details.get("resourceGuard") == guard.name]


def group_name(resource_id: str) -> str:
    parts = resource_id.strip("/").split("/")
    return parts[3] if len(parts) > 3 else resource_id


def gone(what: str) -> CheckResult:
    return CheckResult.missing(f"{what} is gone from your sandbox. Reset the sandbox to get a fresh one.")


# --- the link (both labs) -----------------------------------------------------------------------------------


def check_link(ctx, vault_name: str, home=None, whose: str = "the security admin's") -> CheckResult:
    """``home`` and ``whose``: where the guard is and whose it is, in a paired lab (see `guard_of`)."""
    vault, guard = vault_named(ctx, vault_name), guard_of(ctx, home)
    group = (home or ctx.world).names.security_group
    if vault is None:
        return gone(f"The Backup vault {vault_name}")
    if guard is None and home is not None:
        return CheckResult.missing(f"{whose.capitalize()} Resource Guard {guard_name(ctx.names.code)} is gone from "
                                   f"{group}. Reset your sandbox (your partner's is reset with it) to get both again.")
    if guard is None:
        return gone(f"The security admin's Resource Guard {guard_name(ctx.names.code)}")
    proxy = mua.proxy_for(vault.resource_id)
    if proxy is None:
        return CheckResult.missing(
            f"The vault {vault.name} is not protected by a Resource Guard yet: in its Properties, under "
            f"Multi-user authorization select Update, tick Protect with Resource Guard, choose {guard.name} "
            "and Save.")
    if proxy.guard_id != guard.pk:
        return CheckResult.missing(
            f"The vault {vault.name} is protected by the Resource Guard '{proxy.guard.name}' in "
            f"{group_name(proxy.guard.resource_id)}, not by {guard.name} in {group}. A guard the backup admin "
            f"can pass alone protects nothing: remove that MUA protection and link {whose} guard {guard.name}.")
    return CheckResult.ok(f"{vault.name} is protected by the Resource Guard {guard.name} (multi-user authorization).")


def solve_link(ctx, vault_name: str, home=None) -> None:
    vault, guard = vault_named(ctx, vault_name), guard_of(ctx, home)
    if mua.is_linked(vault.resource_id):
        return
    mua.link_resource_guard(ctx.trainee, vault, guard_id=guard.resource_id, region=vault.region_id)
