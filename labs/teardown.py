"""Retiring a sandbox (a reset, a closed class) and taking it down through the services.

Retiring hides it from the trainee at once (their role assignments in it go, and the app registrations they
made for it: `sandbox_apps`, their service principals and those principals' roles with them). Taking it down deletes what
it holds through the same services and guards as anyone's clicks, as the sandbox provisioner, in the order
a person would have to follow:

1. each Backup vault: lower what may be lowered (immutability that is enabled but not locked, soft delete
   that is on but not always-on), stop protection and delete the backup data of every instance (Delete
   Backup Data: an UnConfigure job a worker runs), let the purge schedule purge soft-deleted instances
   whose retention has ended, then delete the policies and the vault (its Resource Guard link goes with
   it, as in Azure);
2. the Resource Guards in rg-security;
3. what the resource groups hold (snapshots, storage accounts, Elastic SAN volumes, volume groups and
   SANs, PostgreSQL databases, the sandbox's login on the lab cluster, then the server registration),
   whoever made it (the seed, or the trainee's restores), then the networks: the private endpoints of all
   groups first, then each group's private DNS zones and virtual networks;
4. the resource groups (their role assignments go with them).

Before all that, the sandbox's app registrations that retiring could not delete (refused by a guard: kept and
named for the lab's owner like everything else).

Where a guard or a rule refuses (locked immutability, always-on soft delete, soft-delete retention, a
Resource Guard), or a job of the deletion still runs, it stops: the sandbox stays Retired with the words
in ``kept_because`` (for the lab's owner), and a later call goes on from there (`labs.tasks.take_down_retired`
runs on a schedule, and when a job in a retired sandbox ends). Nothing is wiped around a guard. Every step
reads the state afresh, so calling it again, even while its jobs run, is safe. A sandbox's PostgreSQL
databases stay listed under its server registration until they are dropped: none is left orphaned.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.db import transaction

from labs.models import Sandbox
from labs.sandboxes import SandboxWorld, drop_pg_login, provisioner
from portal import services as portal_services
from portal.inventory import services as inventory
from portal.inventory.disks import services as disk_services
from portal.inventory.disks.models import ManagedDisk
from portal.inventory.models import (
    ElasticSan,
    PostgresServer,
    PrivateDnsZone,
    PrivateEndpoint,
    Snapshot,
    StorageAccount,
    VirtualNetwork,
)
from portal.models import ResourceGroup
from protection.backups import services as backups
from protection.deletion import services as deletion
from protection.models import TERMINAL_JOB_STATUSES, BackupInstance, BackupPolicy, Job, ProtectionState
from protection.policies import services as policy_services
from security import applications, clock, mua, scopes
from security import operations as ops
from security import services as security_services
from security.guards import GuardDenied, evaluate
from security.models import AppRegistration, ResourceGuard, RoleAssignment
from vaults import services as vault_services
from vaults.guards import always_on_refusal
from vaults.models import BackupVault, ImmutabilityState, SoftDeleteState

logger = logging.getLogger(__name__)

DELETE_REASON = "Not needed any more"


class Kept(Exception):
    """Why the sandbox is not gone yet: a guard's or a rule's words, or work that is still running."""


def running_jobs(sandbox: Sandbox) -> str:
    """The jobs not yet ended in the sandbox's vaults, as words ("" when none)."""
    if not sandbox.subscription_id:
        return ""
    jobs = (Job.objects.filter(vault__resource_id__istartswith=sandbox.subscription_id + "/")
            .exclude(status__in=TERMINAL_JOB_STATUSES))
    return ", ".join(f"{j.operation} of {j.datasource_name or j.vault.name}" for j in jobs[:3])


def retired_sandbox_of(job: Job) -> Sandbox | None:
    """The retired sandbox whose vault ran ``job`` (its take-down goes on when the job ends), or None."""
    subscription_id = scopes.subscription_of(job.vault.resource_id) if job.vault_id else None
    if not subscription_id:
        return None
    return Sandbox.objects.filter(status=Sandbox.Status.RETIRED, subscription_id__iexact=subscription_id).first()


def sandbox_apps(sandbox: Sandbox) -> list[AppRegistration]:
    """The app registrations the sandbox's trainee made for it: theirs, whose service principal holds roles in
    this sandbox's subscription only, or no role at all when no sandbox of theirs still in use is newer (the lab
    they made it for; an app with roles elsewhere is another sandbox's, or not a lab's)."""
    if not sandbox.subscription_id:
        return []
    newer = (Sandbox.objects.filter(owner=sandbox.owner, status=Sandbox.Status.ACTIVE,
                                    created_at__gt=sandbox.created_at).exclude(pk=sandbox.pk).exists())
    found = []
    for app in (AppRegistration.objects.filter(created_by=sandbox.owner).select_related("principal")
                .prefetch_related("principal__assignments").order_by("created_at")):
        held = [a.scope for a in app.principal.assignments.all()]
        if all(scopes.covers(sandbox.subscription_id, scope) for scope in held) and (held or not newer):
            found.append(app)
    return found


def retire(sandbox: Sandbox) -> Sandbox:
    """Hide the sandbox from its trainee (their role assignments in it are removed, the apps they made for it are
    deleted) and mark it Retired. An app a guard keeps is deleted by the take-down, or named in its words."""
    actor = provisioner()
    with transaction.atomic():
        apps = sandbox_apps(sandbox)  # before the trainee's roles go: they tell which sandbox an app is for
        if sandbox.subscription_id:
            mine = RoleAssignment.objects.filter(principal=sandbox.owner,
                                                 scope__istartswith=sandbox.subscription_id)
            for assignment in mine.select_related("role", "principal"):
                security_services.remove_role_assignment(actor, assignment)
        for app in apps:
            try:
                applications.delete_application(actor, app)
            except (GuardDenied, ValidationError):
                logger.info("The app registration %s stays until the take-down of %s", app.pk, sandbox.code)
        Sandbox.objects.filter(pk=sandbox.pk).update(status=Sandbox.Status.RETIRED, retired_at=clock.now())
    sandbox.refresh_from_db()
    return sandbox


def take_down(sandbox: Sandbox) -> Sandbox:
    """Delete what a retired sandbox holds, as far as the guards allow (see the module docstring).

    Returns the sandbox: Deleted once nothing of it is left, else still Retired with ``kept_because``."""
    sandbox.refresh_from_db()
    if sandbox.status == Sandbox.Status.DELETED:
        return sandbox
    if sandbox.status != Sandbox.Status.RETIRED:
        raise ValidationError(f"The sandbox {sandbox.code} is in use: reset it first (that retires it).")
    try:
        _take_down(provisioner(), SandboxWorld(sandbox))
    except Kept as kept:
        _keep(sandbox, str(kept))
    except Exception as exc:  # noqa: BLE001 - kept with the reason; the next sweep tries again
        logger.exception("Taking down the sandbox %s stopped", sandbox.code)
        _keep(sandbox, f"Taking it down stopped on an error ({type(exc).__name__}: {exc}). It is tried again later.")
    else:
        Sandbox.objects.filter(pk=sandbox.pk, status=Sandbox.Status.RETIRED).update(
            status=Sandbox.Status.DELETED, kept_because="")
    sandbox.refresh_from_db()
    return sandbox


def _keep(sandbox: Sandbox, words: str) -> None:
    Sandbox.objects.filter(pk=sandbox.pk, status=Sandbox.Status.RETIRED).update(kept_because=words)


def _take_down(actor, world: SandboxWorld) -> None:
    sandbox, subscription = world.sandbox, world.subscription
    groups = list(ResourceGroup.objects.filter(subscription=subscription)) if subscription else []
    for app in sandbox_apps(sandbox):
        _do(evaluate(actor, ops.APPLICATION_DELETE, app), lambda a=app: applications.delete_application(actor, a),
            f"Delete the app registration '{app.display_name}' (client id {app.client_id})")
    if subscription is not None:
        _empty_vaults(actor, world)
        for guard in ResourceGuard.objects.filter(resource_id__istartswith=subscription.resource_id + "/"):
            _do(evaluate(actor, ops.GUARD_DELETE, guard), lambda g=guard: mua.delete_resource_guard(actor, g),
                f"Delete the Resource Guard '{guard.name}'")
        _delete_private_endpoints(actor, groups)
        for group in groups:
            _delete_contents(actor, group, sandbox)
    if sandbox.pg_login:
        _drop_login(sandbox.pg_login)
    for group in groups:
        _do(None, lambda g=group: portal_services.delete_resource_group(actor, g),
            f"Delete the resource group '{group.name}'")


# --- running a service, or saying why not --------------------------------------------------------------


def _words(decision) -> str:
    remedy = decision.refusal.remedy if decision.refusal else ""
    return f"{decision.reason} {remedy}".strip()


def _do(preview, action, what: str):
    """Run ``action`` (one service call) unless ``preview`` (the same `evaluate` the service asks, so a
    sweep that is refused again writes no new refusal) says no. A refusal, by a guard or by the service's
    own rule, becomes `Kept` with its words."""
    if preview is not None and not preview.allowed:
        raise Kept(f"{what}: {_words(preview)}")
    try:
        return action()
    except GuardDenied as exc:
        raise Kept(f"{what}: {_words(exc.decision)}") from None
    except ValidationError as exc:
        raise Kept(f"{what}: {' '.join(exc.messages)}") from None


# --- 1. the Backup vaults --------------------------------------------------------------------------------


def _empty_vaults(actor, world: SandboxWorld) -> None:
    """Empty and delete every vault of the sandbox; `Kept` names every vault that is not gone yet."""
    vaults = BackupVault.objects.filter(resource_id__istartswith=world.subscription.resource_id + "/")
    kept = []
    for vault in vaults.select_related("identity", "region"):
        try:
            _empty_vault(actor, vault)
        except Kept as exc:
            kept.append(str(exc))
    if kept:
        raise Kept(" ".join(kept))


def _empty_vault(actor, vault: BackupVault) -> None:
    deletable = list(BackupInstance.objects.filter(vault=vault, protection_state__in=deletion.DELETABLE_STATES))
    if deletable and vault.immutability_state == ImmutabilityState.LOCKED:
        _stop_new_backups(actor, vault, deletable)
    if deletable:
        _lower_protection(actor, vault)
        for instance in deletable:
            _do(deletion.deletion_preview(actor, instance),
                lambda i=instance: deletion.delete_backup_data(
                    actor, i, confirm_name=i.name, reason=DELETE_REASON,
                    comments="The training sandbox was reset; its backup data is deleted with it."),
                f"Delete backup data of '{instance.name}' in the Backup vault '{vault.name}'")
    waiting = _still_in(vault)
    if waiting:
        raise Kept(" ".join(waiting))
    for policy in BackupPolicy.objects.filter(vault=vault):
        _do(evaluate(actor, ops.POLICY_DELETE, policy), lambda p=policy: policy_services.delete_policy(actor, p),
            f"Delete the backup policy '{policy.name}'")
    _do(vault_services.delete_preview(actor, vault), lambda: vault_services.delete_vault(actor, vault),
        f"Delete the Backup vault '{vault.name}'")


def _stop_new_backups(actor, vault: BackupVault, instances) -> None:
    """A locked vault keeps its data until it expires: stop its schedules (Stop backup, Retain as per policy)
    so that the kept sandbox does not go on growing. Refused (by a Resource Guard) or not, the deletion that
    follows says why the sandbox is kept."""
    for instance in instances:
        if instance.protection_state != ProtectionState.CONFIGURED:
            continue
        try:
            _do(evaluate(actor, ops.SUSPEND_BACKUPS, instance, {"retain": backups.RETAIN_AS_PER_POLICY}),
                lambda i=instance: backups.stop_backup(actor, i, retain=backups.RETAIN_AS_PER_POLICY,
                                                       comments="The training sandbox was reset."),
                f"Stop backup of '{instance.name}'")
        except Kept:
            pass


def _lower_protection(actor, vault: BackupVault) -> None:
    """What a backup admin does before deleting a vault's data for good: disable immutability (when it is
    not locked) and soft delete (when it is not always-on). Each is refused as for anyone (MUA)."""
    if vault.immutability_state == ImmutabilityState.UNLOCKED:
        change = vault_services.immutability_change(vault, state=ImmutabilityState.DISABLED)
        _do(evaluate(actor, ops.VAULT_WRITE, vault, change),
            lambda: vault_services.update_immutability(actor, vault, state=ImmutabilityState.DISABLED),
            f"Disable immutability of the Backup vault '{vault.name}'")
    if vault.soft_delete_state == SoftDeleteState.ON:
        change = vault_services.soft_delete_change(vault, state=SoftDeleteState.OFF)
        _do(evaluate(actor, ops.VAULT_WRITE, vault, change),
            lambda: vault_services.update_soft_delete(actor, vault, state=SoftDeleteState.OFF),
            f"Disable soft delete of the Backup vault '{vault.name}'")


def _still_in(vault: BackupVault) -> list[str]:
    """Why each instance left in ``vault`` is still there; starts the purges that are due."""
    now = clock.now()
    words, due = [], False
    for instance in BackupInstance.objects.filter(vault=vault).order_by("name"):
        name = f"'{instance.name}' in the Backup vault '{vault.name}'"
        purge_at = instance.scheduled_purge_at
        if instance.protection_state != ProtectionState.SOFT_DELETED:
            words.append(f"{name} is {instance.get_protection_state_display().lower()}: waiting for its job to end.")
        elif instance.purge_started_at is not None or (purge_at is not None and purge_at <= now):
            due = True
            words.append(f"{name} is being purged: its soft-delete retention has ended.")
        else:
            always_on = always_on_refusal(vault.soft_delete_state, SoftDeleteState.OFF)
            when = f" at {purge_at:%Y-%m-%d %H:%M} UTC" if purge_at else ""
            words.append(f"{name} is soft deleted and kept until its purge{when} (soft-delete retention)."
                         + (f" {always_on.reason}" if always_on else ""))
    if due:
        deletion.start_purges(now=now)  # the purge schedule's own step, now rather than at its next run
    return words


# --- 3. what the resource groups hold --------------------------------------------------------------------


def _delete_contents(actor, group: ResourceGroup, sandbox: Sandbox) -> None:
    for snapshot in Snapshot.objects.filter(resource_group=group):
        _do(None, lambda s=snapshot: inventory.delete_snapshot(actor, s), f"Delete the snapshot '{snapshot.name}'")
    for account in StorageAccount.objects.filter(resource_group=group):
        _do(None, lambda a=account: inventory.delete_storage_account(actor, a),
            f"Delete the storage account '{account.name}'")
    for san in ElasticSan.objects.filter(resource_group=group):
        _delete_elastic_san(actor, san)
    for server in PostgresServer.objects.filter(resource_group=group):
        _delete_postgres(actor, server, sandbox)
    for disk in ManagedDisk.objects.filter(resource_group=group):
        _do(None, lambda d=disk: disk_services.delete_disk(actor, d), f"Delete the disk '{disk.name}'")
    # Networks last: a subnet holding a datasource or a private endpoint cannot be deleted (the datasources above
    # are gone by now, the private endpoints of every group went before, `_delete_private_endpoints`).
    for zone in PrivateDnsZone.objects.filter(resource_group=group):
        _do(None, lambda z=zone: inventory.delete_private_dns_zone(actor, z), f"Delete the private DNS zone '{zone.name}'")
    for vnet in VirtualNetwork.objects.filter(resource_group=group):
        _do(None, lambda v=vnet: inventory.delete_virtual_network(actor, v), f"Delete the virtual network '{vnet.name}'")


def _delete_private_endpoints(actor, groups) -> None:
    """Every private endpoint of the sandbox, before any group's networks: an endpoint may sit in a subnet of a
    VNet in another resource group. Each gives its IPs back and takes its A records along; the vault's
    connection (if the vault still exists) becomes Disconnected."""
    for endpoint in PrivateEndpoint.objects.filter(resource_group__in=groups).select_related("subnet"):
        _do(None, lambda e=endpoint: inventory.delete_private_endpoint(actor, e),
            f"Delete the private endpoint '{endpoint.name}'")


def _delete_elastic_san(actor, san: ElasticSan) -> None:
    for volume_group in san.volume_groups.all():
        for volume in volume_group.volumes.all():
            _do(None, lambda v=volume: inventory.delete_volume(actor, v), f"Delete the volume '{volume.name}'")
        _do(None, lambda g=volume_group: inventory.delete_volume_group(actor, g),
            f"Delete the volume group '{volume_group.name}'")
    _do(None, lambda: inventory.delete_elastic_san(actor, san), f"Delete the Elastic SAN '{san.name}'")


def _delete_postgres(actor, server: PostgresServer, sandbox: Sandbox) -> None:
    """Drop the server's databases, then (the sandbox's own login) the login with whatever it still owns,
    and only then the registration: until they are dropped, they stay listed under it."""
    for database in server.databases.filter(created_by_strongroom=True):
        _do(None, lambda d=database: inventory.delete_database(actor, d),
            f"Delete the PostgreSQL database '{database.name}'")
    if sandbox.pg_login and server.admin_user == sandbox.pg_login:
        _drop_login(sandbox.pg_login)
    _do(None, lambda: inventory.delete_postgres_server(actor, server), f"Delete the PostgreSQL server '{server.name}'")


def _drop_login(login: str) -> None:
    try:
        drop_pg_login(login)
    except Exception as exc:  # noqa: BLE001 - the cluster is down or refuses: kept, listed, tried again
        raise Kept(f"The lab's PostgreSQL cluster could not drop the login '{login}' and its databases "
                   f"({type(exc).__name__}: {exc}); they stay listed under the sandbox's server until a "
                   "later sweep drops them.") from None


def world_of(sandbox: Sandbox) -> SandboxWorld:
    return SandboxWorld(sandbox)
