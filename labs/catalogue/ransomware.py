"""Lab 5: the ransomware drill (seed 004: immutable vault, soft delete, Resource Guard; reference §3.1–3.3).

The sandbox starts with the vault bv-drill-<code> protecting the source account (vault tier, policy
adls-daily, one recovery point) and the Elastic SAN volume vol-data (operational tier, one snapshot), and the
security admin's Resource Guard guard-<code>. Someone holding the backup admin's credentials has already
deleted the volume's backup data: soft delete (Enabled) kept it. The trainee locks the vault down (immutability
enabled and locked, soft delete always-on, the guard linked), then plays the attacker with the same credentials:
every destructive path must be refused by a guard, each refusal found in the activity log. Then they undelete
what soft delete kept and prove it intact by restoring it to a new volume whose checksum equals the source's.

A sandbox that holds locked immutable data cannot be wiped on reset: it is retired (labs.teardown).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

from django.core.exceptions import ValidationError

from labs.catalogue import CheckResult, Document, Lab, Step, register
from labs.catalogue import protected_vault as pv
from portal.inventory import volumes as volume_files
from portal.inventory.models import Volume
from protection import datasource_types
from protection.deletion import services as deletion
from protection.instances import services as instance_services
from protection.models import BackupPolicy, Job, JobOperation, ProtectionState, RecoveryPoint
from protection.policies.services import PolicySpec, Retention
from protection.restores import readiness as restore_readiness
from protection.restores import services as restores
from protection.restores import targets
from security import mua
from security import operations as ops
from security.guards import GuardDenied, evaluate
from vaults import services as vault_services
from vaults.models import ImmutabilityState, SoftDeleteState

SLUG = "ransomware-drill"
POLICY, SHORT_POLICY, VOLUME_POLICY = "adls-daily", "adls-7d", "esan-daily"
RESTORED_VOLUME = "vol-restored"
_SOFT_DELETED = (ProtectionState.SOFT_DELETED, ProtectionState.SOFT_DELETING)


def vault_name(ctx) -> str:
    return f"bv-drill-{ctx.names.code}"


def prepare(ctx) -> None:
    ctx = pv.inline(ctx)
    vault = pv.create_vault(ctx, vault_name(ctx))
    daily = pv.create_policy(ctx, vault, POLICY, datasource_types.ADLS, PolicySpec(
        "Daily", dt.time(2, 0), (), Retention(30, "Days"), {"Weekly": Retention(12, "Weeks")}))
    pv.create_policy(ctx, vault, SHORT_POLICY, datasource_types.ADLS,
                     PolicySpec("Daily", dt.time(2, 0), (), Retention(7, "Days"), {}))
    pv.back_up(ctx, pv.protect_account(ctx, vault, daily))
    volume_policy = pv.create_policy(ctx, vault, VOLUME_POLICY, datasource_types.ELASTIC_SAN)
    volume_item = pv.protect_volume(ctx, vault, volume_policy)
    pv.back_up(ctx, volume_item)
    # The attacker's first strike, before the lab: the volume's backup data is deleted (soft delete keeps it).
    pv.run_job(ctx, deletion.delete_backup_data(ctx.trainee, volume_item, confirm_name=volume_item.name,
                                                reason="Others", comments="cleanup"))
    pv.create_guard(ctx)


def _vault(ctx):
    return pv.vault_named(ctx, vault_name(ctx))


def _need(ctx):
    """(vault, account item, volume item, guard) for a solve, or the ValidationError saying what is gone."""
    vault, guard = _vault(ctx), pv.guard_of(ctx)
    account, volume = ctx.world.source_account, ctx.world.volume
    account_item = pv.item_of(vault, account.resource_id if account else None)
    volume_item = pv.item_of(vault, volume.resource_id if volume else None)
    if None in (vault, guard, account_item, volume_item):
        raise ValidationError(f"Part of the drill is gone from sandbox {ctx.names.code} (the vault {vault_name(ctx)}, "
                              "its two backup instances or the Resource Guard). Reset the sandbox.")
    return vault, account_item, volume_item, guard


# --- 1-3. lock the vault down -------------------------------------------------------------------------------


def check_immutability(ctx) -> CheckResult:
    vault = _vault(ctx)
    if vault is None:
        return pv.gone(f"The Backup vault {vault_name(ctx)}")
    if vault.immutability_state == ImmutabilityState.LOCKED:
        return CheckResult.ok(f"{vault.name}: Immutable vault is Enabled and locked.")
    if vault.immutability_state == ImmutabilityState.UNLOCKED:
        return CheckResult.missing(
            f"Immutability of {vault.name} is Enabled but not locked: anyone with the backup admin's rights could "
            "turn it off again. In Properties > Immutable vault > Settings tick Lock immutability (irreversible), "
            "type the vault name and select Apply.")
    return CheckResult.missing(
        f"Immutability of {vault.name} is Disabled: in Properties > Immutable vault > Settings tick Enable vault "
        "immutability and select Apply, then lock it.")


def solve_immutability(ctx) -> None:
    vault = _need(ctx)[0]
    if vault.immutability_state == ImmutabilityState.DISABLED:
        vault_services.update_immutability(ctx.trainee, vault, state=ImmutabilityState.UNLOCKED)
    if vault.immutability_state == ImmutabilityState.UNLOCKED:
        vault_services.update_immutability(ctx.trainee, vault, state=ImmutabilityState.LOCKED, confirm_name=vault.name)


def check_soft_delete(ctx) -> CheckResult:
    vault = _vault(ctx)
    if vault is None:
        return pv.gone(f"The Backup vault {vault_name(ctx)}")
    if vault.soft_delete_state == SoftDeleteState.ALWAYS_ON:
        return CheckResult.ok(f"{vault.name}: soft delete is Enabled and always-on "
                              f"({vault.soft_delete_retention_days} days).")
    state = SoftDeleteState(vault.soft_delete_state).label
    return CheckResult.missing(
        f"Soft delete of {vault.name} is {state}, not always-on: an attacker could still turn it off. In Properties > "
        "Soft delete select Update, choose Enabled and always-on, tick “I understand this is irreversible” and "
        "select Update.")


def solve_soft_delete(ctx) -> None:
    vault = _need(ctx)[0]
    vault_services.update_soft_delete(ctx.trainee, vault, state=SoftDeleteState.ALWAYS_ON,
                                      retention_days=vault.soft_delete_retention_days, acknowledge_irreversible=True)


def check_guard(ctx) -> CheckResult:
    return pv.check_link(ctx, vault_name(ctx))


def solve_guard(ctx) -> None:
    pv.solve_link(ctx, vault_name(ctx))


# --- 4. the attack: every destructive path, each refused ---------------------------------------------------


@dataclass(frozen=True)
class Path:
    label: str
    how: str
    operations: tuple[str, ...]
    guards: tuple[str, ...]
    detail: str = ""  # a key the entry's details must hold (which vault setting)

    def refused(self, entry) -> bool:
        return (entry.operation in self.operations and entry.details.get("guard") in self.guards
                and (not self.detail or self.detail in entry.details))

    def tried(self, entry) -> bool:
        return entry.operation in self.operations and (not self.detail or self.detail in entry.details)


# The guards' names in the activity log, as the refusal page calls them.
GUARD_LABELS = {"MUA": "the Resource Guard (multi-user authorization)", "Immutability": "the immutable vault",
                "Soft delete": "soft delete", "Vault deletion rules": "the vault deletion rules"}

PATHS = (
    Path("Delete backup data", "Backup instances > {item} > Delete", (ops.INSTANCE_DELETE,),
         ("MUA", "Immutability")),
    Path("Disable soft delete", "Properties > Soft delete > Update (Disabled, or a shorter Retention period)",
         (ops.VAULT_WRITE,), ("MUA", "Soft delete"), "softDelete"),
    Path("Disable immutability", "Properties > Immutable vault", (ops.VAULT_WRITE,), ("MUA", "Immutability"),
         "immutability"),
    Path("Remove MUA protection", "Properties > Multi-user authorization > Update, clear Protect with Resource Guard",
         (ops.PROXY_DELETE,), ("MUA",)),
    Path("Shorten retention", "Backup instances > {item} > Change policy to adls-7d (or edit adls-daily)",
         (ops.INSTANCE_WRITE, ops.POLICY_WRITE), ("MUA", "Immutability")),
    Path("Delete the vault", "Overview > Delete", (ops.VAULT_DELETE,), ("Vault deletion rules",)),
)


def check_attack(ctx) -> CheckResult:
    vault = _vault(ctx)
    if vault is None:
        return pv.gone(f"The Backup vault {vault_name(ctx)}")
    failed = pv.in_vault(ctx, vault, status=pv.FAILED)
    refused, missing, other = [], [], []
    for path in PATHS:
        entry = next((e for e in failed if path.refused(e)), None)
        if entry is not None:
            guard = entry.details["guard"]
            refused.append(f"{path.label} (refused by {GUARD_LABELS.get(guard, guard)})")
            continue
        missing.append(f"{path.label}: {path.how.format(item=ctx.names.source_account)}")
        tried = [e for e in failed if path.tried(e)]
        if tried:
            other.append(f"{path.label} failed for another reason ({tried[-1].message[:120]})")
    if not missing:
        return CheckResult.ok("Every destructive path was refused: " + "; ".join(refused) + ".")
    said = ("Refused so far: " + "; ".join(refused) + ". ") if refused else ""
    said += "Still to try, with the backup admin's credentials: " + "; ".join(missing) + "."
    if other:
        said += " Only a guard's refusal counts: " + "; ".join(other) + "."
    return CheckResult.missing(said)


def _attempts(ctx) -> list[tuple[str, Callable, Callable]]:
    """(label, preview, act) of each destructive path, as the trainee."""
    vault, item, _volume_item, _guard = _need(ctx)
    me = ctx.trainee
    short = BackupPolicy.objects.get(vault=vault, name=SHORT_POLICY)
    delete_change = deletion.delete_change(item, vault)
    soft = vault_services.soft_delete_change(vault, state=SoftDeleteState.OFF)
    immutable = vault_services.immutability_change(vault, state=ImmutabilityState.DISABLED)
    policy_change = instance_services.change_policy_change(item, short)
    return [
        ("Delete backup data", lambda: evaluate(me, ops.INSTANCE_DELETE, item, delete_change),
         lambda: deletion.delete_backup_data(me, item, confirm_name=item.name, reason="Others", comments="cleanup")),
        ("Disable soft delete", lambda: evaluate(me, ops.VAULT_WRITE, vault, soft),
         lambda: vault_services.update_soft_delete(me, vault, state=SoftDeleteState.OFF)),
        ("Disable immutability", lambda: evaluate(me, ops.VAULT_WRITE, vault, immutable),
         lambda: vault_services.update_immutability(me, vault, state=ImmutabilityState.DISABLED)),
        ("Remove MUA protection", lambda: evaluate(me, ops.PROXY_DELETE, vault),
         lambda: mua.unlink_resource_guard(me, vault)),
        ("Shorten retention", lambda: evaluate(me, ops.INSTANCE_WRITE, item, policy_change),
         lambda: instance_services.change_policy(me, item, short)),
        ("Delete the vault", lambda: vault_services.delete_preview(me, vault),
         lambda: vault_services.delete_vault(me, vault)),
    ]


def solve_attack(ctx) -> None:
    """Try each path; one a guard would let through is not tried (the solve destroys nothing)."""
    through = []
    for label, preview, act in _attempts(ctx):
        if preview().allowed:
            through.append(label)
            continue
        try:
            act()
        except GuardDenied:
            pass
    if through:
        raise ValidationError("Nothing would refuse " + ", ".join(through) + ": lock the vault down first.")


# --- 5-6. undelete and restore ------------------------------------------------------------------------------


def _volume_item(ctx):
    volume = ctx.world.volume
    return pv.item_of(_vault(ctx), volume.resource_id if volume else None)


def check_undelete(ctx) -> CheckResult:
    item = _volume_item(ctx)
    if item is None:
        return pv.gone(f"The backup instance {ctx.names.volume} of {vault_name(ctx)}")
    if item.protection_state in _SOFT_DELETED:
        return CheckResult.missing(
            f"{item.name} is still {item.get_protection_state_display().lower()}: in Backup instances filter "
            f"Protection status to Soft deleted, select {item.name} and Undelete it.")
    undone = [e for e in ctx.activity(principal_ref=ctx.trainee, operation=ops.UNDELETE, status=pv.SUCCEEDED)
              if e.scope.lower() == item.resource_id.lower()]
    if not undone:
        return CheckResult.missing(f"{item.name} is {item.get_protection_state_display()}, but it was not undeleted "
                                   "in this lab: reset the sandbox to start the drill again.")
    return CheckResult.ok(f"{item.name} is back ({item.get_protection_state_display()}) with its recovery points.")


def solve_undelete(ctx) -> None:
    item = _need(ctx)[2]
    deletion.undelete(ctx.trainee, item)


def _restored_volume(job) -> Volume | None:
    summary = (job.extended_info or {}).get("restore") or {}
    return Volume.objects.filter(resource_id=summary.get("targetResourceId") or "-").first()


def _equals_recorded(restored: Volume, expected: str) -> bool:
    """The restored volume equals the image recorded at backup. A point taken before content checksums
    recorded the whole image's SHA-256: that kind is read from the restored volume to compare with it."""
    if not expected:
        return False
    if volume_files.is_whole_image_checksum(expected) != volume_files.is_whole_image_checksum(restored.last_checksum):
        return not restored.checksum_stale and volume_files.image_checksum(restored.image_path, like=expected) == expected
    return restored.last_checksum == expected


def check_restore(ctx) -> CheckResult:
    item, source = _volume_item(ctx), ctx.world.volume
    if item is None or source is None:
        return pv.gone(f"The volume {ctx.names.volume} or its backup instance")
    jobs = Job.objects.filter(vault=item.vault, operation=JobOperation.RESTORE, start_time__gte=ctx.started_at)
    done = [j for j in jobs.filter(instance=item, status__in=pv.DONE)]
    for job in done:
        restored = _restored_volume(job)
        if restored is None or not restored.last_checksum:
            continue
        if restored.last_checksum == source.last_checksum:
            return CheckResult.ok(f"{restored.name} was restored from {item.name}: its checksum equals {source.name}'s "
                                  f"({source.last_checksum[:26]}…). The data is intact.")
        if _equals_recorded(restored, job.extended_info["restore"].get("expectedChecksum") or ""):
            return CheckResult.ok(f"{restored.name} was restored from {item.name}: its checksum equals the one recorded "
                                  f"when {source.name} was backed up ({source.name} has changed since). The data is "
                                  "intact.")
    if done:
        return CheckResult.missing(f"The restored volume of {item.name} is gone, or its checksum differs from "
                                   f"{source.name}'s: restore it again into a new volume.")
    running = jobs.filter(instance=item).exclude(status__in=pv.DONE).first()
    if running is not None:
        return CheckResult.missing(f"The restore of {item.name} is {running.get_status_display()}"
                                   f"{': ' + running.error_message if running.error_message else ''}.")
    other = jobs.exclude(instance=item).first()
    if other is not None:
        return CheckResult.missing(f"You restored {other.instance_name}, not the item soft delete kept: restore "
                                   f"{item.name} into a new volume and compare its checksum with {source.name}'s.")
    return CheckResult.missing(
        f"No restore of {item.name} yet: select Restore on it, keep its recovery point, in Restore parameters choose "
        f"the volume group {ctx.names.volume_group} and a new Volume name, Validate (Assign missing roles if asked), "
        "then Review + restore > Restore.")


def solve_restore(ctx) -> None:
    item = _need(ctx)[2]
    point = RecoveryPoint.objects.filter(instance=item).order_by("-recovery_point_time").first()
    target = targets.VolumeTarget(ctx.world.volume.volume_group.resource_id, RESTORED_VOLUME)
    ready = restores.restore_readiness(ctx.trainee, point, target)
    if ready is not None and not ready.ok:
        restores.assign_restore_roles(ctx.trainee, point, target, restore_readiness.SCOPE_RESOURCE)
    ctx.job_started(restores.start_restore(ctx.trainee, point, target))


INSTRUCTIONS_IMMUTABILITY = """\
Your vault `bv-drill-{code}` (in `{backup_group}`) protects the storage account `{source_account}` (vault tier)
and the Elastic SAN volume `vol-data` (operational tier). Someone holding your backup admin credentials
has already deleted the volume's backup data: soft delete kept it. Lock the vault down first.

1. Open **Backup vaults** > `bv-drill-{code}` > **Properties**; under **Immutable vault** select **Settings**.
2. Tick **Enable vault immutability** and select **Apply**.
3. Open **Settings** again, tick **Lock immutability (irreversible)**, type the vault name and select **Apply**.

Locked means nobody, you included, can turn it off: recovery points stay until they expire.
"""

INSTRUCTIONS_SOFT_DELETE = """\
In **Properties**, under **Soft delete** select **Update**, choose **Enabled and always-on**, tick
**I understand this is irreversible** and select **Update**. Always-on soft delete can never be turned off.
"""

INSTRUCTIONS_GUARD = """\
In **Properties**, under **Multi-user authorization** select **Update**, tick **Protect with Resource Guard**,
choose **Select Resource Guard** and pick `guard-{code}` (the security admin's, in `{security_group}`),
then **Save**. The **Security level** card now reads **Excellent**.
"""

INSTRUCTIONS_ATTACK = """\
Now you are the attacker holding the backup admin's credentials. Try every way to destroy the backups,
and read each refusal (the activity log keeps them all):

1. **Delete backup data** of `{source_account}` (Backup instances > `{source_account}` > **Delete**).
2. **Disable soft delete** (Properties > Soft delete > **Update**: turn it off, or shorten the
   **Retention period (days)**).
3. **Disable immutability** (Properties > **Immutable vault**).
4. **Remove MUA protection** (Properties > Multi-user authorization > **Update**, clear **Protect with
   Resource Guard**, **Save**).
5. **Shorten retention**: **Change policy** of `{source_account}` to `adls-7d` (or edit `adls-daily` to keep less).
6. **Delete** the vault (Overview > **Delete**).

The check lists the paths still to try. Only a guard's refusal counts (a mistyped name does not).
"""

INSTRUCTIONS_UNDELETE = """\
In **Backup instances**, filter **Protection status** to *Soft deleted*, select `vol-data` and **Undelete**
it. It comes back as *Protection stopped* with all its recovery points.
"""

INSTRUCTIONS_RESTORE = """\
Prove the data intact: select **Restore** on `vol-data`, keep its recovery point, and in **Restore
parameters** choose the volume group `vg-lab` and a new **Volume name** (for example `vol-restored`).
**Validate** (select **Assign missing roles** if asked), then **Review + restore** > **Restore**. When the
job is *Completed*, the restored volume's checksum must equal `vol-data`'s.
"""

LAB = register(Lab(
    slug=SLUG,
    title="Ransomware drill",
    summary=("Enable and lock immutability, make soft delete always-on and link the Resource Guard; then, as an "
             "attacker holding the backup admin's credentials, try every destructive path and collect each "
             "refusal; undelete what soft delete kept and prove the data intact by a restore."),
    learn=("Immutable vault: Enabled versus Enabled and locked, and what it refuses",
           "Always-on soft delete, and undeleting a deleted backup item",
           "Why a Resource Guard owned by someone else stops a stolen backup admin account",
           "That a restore whose checksum equals the source proves the data intact"),
    minutes=30,
    document=Document("Securing your Microsoft Azure Backups (immutable vault, soft delete, Resource Guard)",
                      "004_c5682cf263c5ebe6.txt"),
    prepare=prepare,
    order=50,
    protects=("source_account", "volume"),
    steps=(
        Step("immutability", "Enable and lock immutability", INSTRUCTIONS_IMMUTABILITY, check_immutability,
             solve_immutability, hints=("Enable first (Apply), then lock (a second Apply, with the vault name).",)),
        Step("soft-delete", "Make soft delete always-on", INSTRUCTIONS_SOFT_DELETE, check_soft_delete,
             solve_soft_delete, hints=("Enabled is not enough: choose Enabled and always-on.",)),
        Step("guard", "Link the Resource Guard", INSTRUCTIONS_GUARD, check_guard, solve_guard,
             hints=("Pick guard-{code} from {security_group}, not a guard of your own.",)),
        Step("attack", "Try every destructive path", INSTRUCTIONS_ATTACK, check_attack, solve_attack,
             hints=("The check names the paths you have not tried yet.",
                    "Type names exactly: a form error is not a guard's refusal.")),
        Step("undelete", "Undelete what soft delete kept", INSTRUCTIONS_UNDELETE, check_undelete, solve_undelete,
             hints=("Backup instances > Protection status: Soft deleted > vol-data > Undelete.",)),
        Step("restore", "Prove the data intact by a restore", INSTRUCTIONS_RESTORE, check_restore, solve_restore,
             hints=("Restore into vg-lab under a new name: a restore never overwrites a volume.",
                    "Compare the checksums on the two volumes' pages.")),
    ),
))
