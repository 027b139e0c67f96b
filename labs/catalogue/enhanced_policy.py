"""Lab "Enhanced policy and tiering": an Azure Disk policy with an Hourly schedule and a "first successful
backup taken daily" rule, protection of a managed disk with snapshots in another resource group, hourly
backups seen happening and tagged by the rules, a PostgreSQL policy whose Default rule tiers to archive
after 3 months, a point of it moved to Vault-archive once it is old enough, then rehydrated and restored.

Follows "Securing your Microsoft Azure Backups" (../shared/seeds/004_*.txt), its Enhanced Policy and
Intelligent Tiering sections, with the Backup-vault labels of reference §3.5, §3.6 and §5.3: the document's
Enhanced policy is a Recovery Services vault's (Azure VM); a Backup vault's Azure Disk policy is its analogue
(Hourly every 1, 2, 4, 6, 8 or 12 hours). `prepare` makes the lab's vault ``bv-tiering`` and a 1 GiB managed
disk ``disk-data`` (sparse, with sample data) in the sandbox's ``rg-lab`` group, as the trainee.

Time: scheduled backups come every 4 hours, a point may move to archive at 3 months old, and a High priority
rehydration takes an hour. A trainee cannot move time; a Lab Instructor can move the lab clock. The steps that need time say so, their checks say what is
still missing (the next slot, the point's age and the eligibility rule's reason), and their solves refuse
with that reason rather than pretend. They come last (hourly, archive, rehydrate), so that a trainee waiting
for a slot has done everything else; any jump of the clock past a slot brings one scheduled backup (the
dispatcher runs the latest slot after a jump), and Backup now gives the second point.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from labs.catalogue import CheckResult, Document, Lab, Step, first_free_name, register
from labs.catalogue.enhanced_policy_tiering import (
    _RUNNING, CLOCK_WORDS, DISK, DISK_LABEL, DISK_NAME, DISK_POLICY, DISK_SPEC, EVERY_HOURS, PG, PG_LABEL, PG_POLICY,
    RESTORE_CONTAINER, RESTORE_PREFIX, TIER_AFTER_MONTHS, VAULT_NAME, _at, _disk, _disk_instance, _missing_world,
    _points, _policies, _policy_check, _refuse_unless, _vault, check_archived, check_pg_backup, check_pg_policy, check_rehydrated,
    solve_archived, solve_pg_backup, solve_pg_policy, solve_rehydrated,
)
from portal.inventory.disks import services as disk_services
from portal.inventory.disks.models import ManagedDisk
from portal.lab import LAB_REGION
from portal.models import Region
from protection import datasource_types, readiness
from protection.backups import services as backup_services
from protection.instances import services as instance_services
from protection.models import BackupPolicy, Job, JobOperation, ProtectionState, RecoveryPoint
from protection.policies import services as policy_services
from security import scopes
from vaults import services as vault_services
from vaults.models import StorageRedundancy


# --- 1. the hourly disk policy ---------------------------------------------------------------------------


def _hourly_problem(policy: BackupPolicy) -> str:
    """'' when ``policy`` is Hourly every 4 hours with a Daily rule, else what differs."""
    parsed = policy.parsed
    if parsed.frequency != "Hourly":
        return f"its Backup frequency is {parsed.frequency}, not Hourly"
    if parsed.every_hours != EVERY_HOURS:
        return f"it backs up every {parsed.every_hours} hours (PT{parsed.every_hours}H), not every {EVERY_HOURS} hours"
    if not any(r.tag == "Daily" and "FirstOfDay" in r.criteria for r in parsed.retention_rules):
        return "it has no Daily retention rule (First successful backup taken daily)"
    return ""


def _good_disk_policy(ctx) -> BackupPolicy | None:
    return next((p for p in _policies(ctx, DISK) if not _hourly_problem(p)), None)


def check_disk_policy(ctx) -> CheckResult:
    if gone := _missing_world(ctx):
        return gone
    good, missing = _policy_check(
        ctx, DISK, DISK_LABEL, _hourly_problem, create="+ Create Policy > Create Backup Policy.",
        fix=f"Edit it (or create another): Backup frequency Hourly, Every {EVERY_HOURS} hours, and tick First "
            "successful backup taken daily.")
    if missing:
        return missing
    interval = good.parsed.backup_rule["trigger"]["schedule"]["repeatingTimeIntervals"][0]
    daily = good.parsed.rule("Daily")
    return CheckResult.ok(f"The policy {good.name} backs up every {EVERY_HOURS} hours ({interval}) and keeps the first "
                          f"successful backup of each day {daily.duration.label()}.")


def solve_disk_policy(ctx) -> None:
    _refuse_unless(_missing_world(ctx))
    if _good_disk_policy(ctx) is None:
        taken = set(_policies(ctx, DISK).values_list("name", flat=True)) | set(
            BackupPolicy.objects.filter(vault=_vault(ctx)).values_list("name", flat=True))
        name = first_free_name(DISK_POLICY, taken.__contains__)
        policy_services.create_policy(ctx.trainee, vault=_vault(ctx), name=name, datasource_type=DISK, spec=DISK_SPEC)


# --- 2. protect the disk, snapshots in another resource group ----------------------------------------------


def _disk_datasource(ctx, snapshot_group_id: str) -> readiness.Datasource:
    disk = _disk(ctx)
    return readiness.Datasource(DISK, disk.resource_id, disk.name, snapshot_resource_group_id=snapshot_group_id)


def check_disk_protected(ctx) -> CheckResult:
    if gone := _missing_world(ctx, disk=True):
        return gone
    instance = _disk_instance(ctx)
    if instance is None:
        return CheckResult.missing(
            f"The vault {VAULT_NAME} has no backup instance of {DISK_NAME} yet: + Backup (Configure protection), Datasource "
            f"type {DISK_LABEL}, your hourly policy, then add {DISK_NAME} with the Snapshot resource group "
            f"{ctx.names.restore_group}.")
    if instance.protection_state == ProtectionState.CONFIGURING:
        return CheckResult.missing(f"The backup instance {instance.name} is still Configuring protection: wait for its "
                                   "Configure protection job (Backup jobs).")
    if instance.protection_state != ProtectionState.CONFIGURED:
        why = f" ({instance.error_code}: {instance.error_message})" if instance.error_code else ""
        return CheckResult.missing(f"The backup instance {instance.name} is {instance.get_protection_state_display()}"
                                   f"{why}, not Protection configured.")
    if problem := _hourly_problem(instance.policy):
        return CheckResult.missing(f"{instance.name} uses the policy {instance.policy.name}, but {problem}: change its "
                                   "policy to your hourly one (Change policy on the backup instance).")
    group = scopes.normalize(instance.snapshot_resource_group_id).rsplit("/", 1)[-1]
    missing = readiness.missing_needs(instance.vault.identity, _disk_datasource(ctx, instance.snapshot_resource_group_id))
    if missing:
        return CheckResult.missing(f"The vault's identity no longer holds {readiness.describe(missing)}: the next backup "
                                   "would fail. Assign missing roles again (Configure protection > Datasources).")
    return CheckResult.ok(f"{instance.name} protects {DISK_NAME} with {instance.policy.name}; its snapshots go to {group}, "
                          "apart from the disk.")


def solve_disk_protected(ctx) -> None:
    _refuse_unless(_missing_world(ctx, disk=True))
    if _disk_instance(ctx) is not None:
        return
    policy = _good_disk_policy(ctx)
    if policy is None:
        raise ValidationError(f"{VAULT_NAME} has no hourly {DISK_LABEL} policy with a Daily rule: solve step 1 first.")
    vault, disk = _vault(ctx), _disk(ctx)
    group = ctx.world.restore_group.resource_id
    instance_services.assign_missing_roles(ctx.trainee, vault=vault, datasources=[_disk_datasource(ctx, group)],
                                           level=readiness.SCOPE_RESOURCE)
    candidate = next(c for c in instance_services.candidates(ctx.trainee, vault, DISK) if c.resource_id == disk.resource_id)
    selection = instance_services.DatasourceSelection(candidate.resource_id, candidate.default_instance_name,
                                                      key=candidate.key, snapshot_resource_group_id=group)
    for instance in instance_services.configure_protection(ctx.trainee, vault=vault, policy=policy, selections=[selection]):
        for job in Job.objects.filter(instance=instance, operation=JobOperation.CONFIGURE_PROTECTION, status__in=_RUNNING):
            ctx.job_started(job)


# --- 5. hourly backups happen, tagged by the rules ---------------------------------------------------------


def _tag_problems(instance, points) -> list[str]:
    """Scheduled points whose retention tag is not the one the policy's rules give (first of the day: Daily)."""
    policy = instance.policy.parsed
    # As the backup job decides: against every earlier scheduled point, an expired one included.
    times = sorted(RecoveryPoint.objects.filter(instance=instance, is_user_triggered=False)
                   .values_list("recovery_point_time", flat=True))
    problems = []
    for point in (p for p in points if not p.is_user_triggered):
        expected = policy.tag_for(point.recovery_point_time, [t for t in times if t < point.recovery_point_time]).tag
        if point.retention_tag != expected:
            problems.append(f"the point of {_at(point.recovery_point_time)} is kept by {point.retention_tag}, not {expected}")
    return problems


def _needs_disk_instance(ctx) -> CheckResult | None:
    if gone := _missing_world(ctx, disk=True):
        return gone
    if _disk_instance(ctx) is None:
        return CheckResult.missing(f"The vault {VAULT_NAME} has no backup instance of {DISK_NAME}: do step 2 first.")
    return None


def check_hourly(ctx) -> CheckResult:
    if gone := _needs_disk_instance(ctx):
        return gone
    instance = _disk_instance(ctx)
    points = list(_points(instance))
    scheduled = [p for p in points if not p.is_user_triggered]
    running = Job.objects.filter(instance=instance, operation=JobOperation.BACKUP, status__in=_RUNNING).exists()
    wait = " A backup is running now: wait for it." if running else ""
    if not scheduled:
        nxt = f" The next is due at {_at(instance.next_backup_at)}." if instance.next_backup_at else ""
        return CheckResult.missing(
            f"{instance.name} has {len(points)} recovery point(s), none yet from the hourly schedule.{nxt} Wait for it "
            f"(or {CLOCK_WORDS}).{wait}")
    if len(points) < 2:
        return CheckResult.missing(
            f"{instance.name} has one recovery point, from the schedule ({scheduled[0].retention_tag}). Take a second: "
            f"wait {EVERY_HOURS} hours for the next slot, or select Backup now (Retention rule Default).{wait}")
    if problems := _tag_problems(instance, points):
        return CheckResult.missing("The retention tags are not what the policy's rules give: " + "; ".join(problems) + ".")
    tags = ", ".join(f"{_at(p.recovery_point_time)} {p.retention_tag}{' (Backup now)' if p.is_user_triggered else ''}"
                     for p in points[-4:])
    return CheckResult.ok(f"{instance.name} has {len(points)} recovery points ({len(scheduled)} from the schedule): {tags}. "
                          "The first scheduled backup of a day is kept by the Daily rule, the others by Default.")


def solve_hourly(ctx) -> None:
    _refuse_unless(_needs_disk_instance(ctx))
    instance = _disk_instance(ctx)
    points = list(_points(instance))
    if not any(not p.is_user_triggered for p in points):
        when = f" (the next at {_at(instance.next_backup_at)})" if instance.next_backup_at else ""
        raise ValidationError(f"No scheduled backup of {instance.name} has happened yet{when}: only time brings it. Wait, "
                              f"or {CLOCK_WORDS} past the slot.")
    if len(points) < 2:
        ctx.job_started(backup_services.backup_now(ctx.trainee, instance, retention_rule="Default"))


# --- the lab -----------------------------------------------------------------------------------------------


def prepare(ctx) -> None:
    """The lab's vault and a small managed disk with sample data, made by the trainee's own hand."""
    region = Region.objects.get(name=LAB_REGION)
    if _vault(ctx) is None:
        vault_services.create_vault(ctx.trainee, name=VAULT_NAME, region=region, resource_group=ctx.world.backup_group,
                                    storage_redundancy=StorageRedundancy.LOCALLY_REDUNDANT)
    if _disk(ctx) is None:
        disk = disk_services.create_disk(ctx.trainee, resource_group=ctx.world.backup_group, name=DISK_NAME,
                                         region=region, size_gib=1, sku=ManagedDisk.Sku.STANDARDSSD_LRS)
        disk_services.write_sample_data(ctx.trainee, disk)


def _unavailable() -> str:
    if DISK not in datasource_types.TYPES or PG not in datasource_types.TYPES:
        return "Azure Disk or PostgreSQL backup is not part of this installation."
    return ""


INSTRUCTIONS_DISK_POLICY = f"""The article's *Enhanced policy* backs a virtual machine up every 4 hours. A Backup vault's
**{DISK_LABEL}** policy is its analogue: **Hourly** every 1, 2, 4, 6, 8 or 12 hours, snapshots kept in the
operational tier next to the disk.

Your sandbox has a Backup vault **{VAULT_NAME}** and a 1 GiB managed disk **{DISK_NAME}** in `{{backup_group}}`,
made when the lab started. Go to **Protection policies** > **+ Create Policy** > **Create Backup Policy**:

- **Basics**: **Policy name** `{DISK_POLICY}`, **Datasource type** *{DISK_LABEL}*, **Vault** `{VAULT_NAME}`.
- **Backup policy** (the disk policy's schedule tab): **Backup frequency** *Hourly*, **Every** *{EVERY_HOURS} hours*,
  **Start time (UTC)** 08:00. Keep the **Default retention** at 7 Days, select **+ Add retention rule**, tick
  **First successful backup taken daily** and set its **Daily retention** to 30 Days. At most 450 snapshots are
  kept at any time across all rules.

Select **Review + create**, then **Create**. The policy's schedule is stored as `R/<start>/PT{EVERY_HOURS}H`."""

INSTRUCTIONS_DISK_PROTECT = f"""Open **{VAULT_NAME}** > **+ Backup** (or **Home** > **+ Configure protection**, Datasource
type *{DISK_LABEL}*). On **Backup policy** choose your hourly policy. On **Datasources** select **+ Add**, choose
`{DISK_NAME}`, and set the **Snapshot resource group** to `{{restore_group}}`: the snapshots may not live in the
disk's own resource group (a dedicated one for snapshots is recommended).

The **Backup readiness** says *{readiness.ROLE_ASSIGNMENT_NOT_DONE}*: the vault's identity needs **Disk Backup
Reader** on the disk and **Disk Snapshot Contributor** on the snapshot resource group. Select **Assign missing
roles** (Scope *Resource*), **Revalidate**, then **Review + configure** > **Configure Backup**."""

INSTRUCTIONS_HOURLY = f"""Back to the disk: the schedule backs `{DISK_NAME}` up every {EVERY_HOURS} hours from 08:00 UTC (the
next slot is on the backup instance's page). Each scheduled backup is tagged by the policy's rules: the **first successful backup
of a day** is kept by the **Daily** rule (30 days), the others by **Default** (7 days).

Wait for a scheduled backup ({CLOCK_WORDS}). When one has happened, take a second recovery point: the next
slot, or **Backup now** with the **Retention rule** *Default*. Open the backup instance's recovery points and
compare their **Retention tag**s."""

INSTRUCTIONS_PG_POLICY = f"""The article's *Intelligent Tiering* moves recovery points older than 3 months from
Vault-standard to the cheaper **Vault-archive** tier. In Strongroom's Backup vault only **{PG_LABEL}** points can
move (Data Lake Storage has no archive tier; disk and Elastic SAN points are snapshots that never reach the vault).

Create a policy in `{VAULT_NAME}`: **Policy name** `{PG_POLICY}`, **Datasource type** *{PG_LABEL}*; on
**Schedule + retention** keep Weekly on Sunday and the **Default retention** 3 Months. In the **Tiering** section
tick **Tier to archive**, choose **After (months)** with **Months in Vault-standard** {TIER_AFTER_MONTHS}, and
**Retention in all (archive included)** 1 Years (at least 6 months past the move). Create it: the Default rule now has `targetDataStoreCopySettings` with a `CustomCopyOption` of
`P{TIER_AFTER_MONTHS}M` to `ArchiveStore`."""

INSTRUCTIONS_PG_BACKUP = f"""Protect your PostgreSQL server `{{pg_server}}` in `{VAULT_NAME}` with `{PG_POLICY}`: **+ Backup**,
Datasource type *{PG_LABEL}*, **Assign missing roles** (the vault's identity needs **PostgreSQL Flexible Server
Long Term Retention Backup Role** on the server and **Reader** on its resource group), **Configure Backup**.
Then open the backup instance and select **Backup now** (Retention rule *Default*).

Open the new recovery point: it is in Vault-standard, and **Move to archive** tells you why it may not move yet.
Its expiry counts the archive retention (1 year from the backup), not the 3 months in Vault-standard."""

INSTRUCTIONS_ARCHIVED = """Once the recovery point is 3 months old (with at least 6 months of retention left), select
**Move to archive** on it; the policy's tiering rule would also move it by itself. A **Tiering** job copies it to
Vault-archive, checks it and removes the Vault-standard copy.

A trainee cannot make a point 3 months old: a Lab Instructor can move the lab clock. Until then this step's
check tells you exactly why the point is not eligible and from when it will be."""

INSTRUCTIONS_REHYDRATE = f"""An archived point cannot be restored directly: it is **rehydrated** first, a temporary copy in
Vault-standard kept for the **Rehydration duration**, while the point stays in archive.

First create the container `{RESTORE_CONTAINER}` in the storage account `{{target_account}}` (in
`{{restore_group}}`). Then open the backup instance, select **Restore** and the archived recovery point. **Restore
type** *Restore as files into a storage container*, **Target storage container** `{RESTORE_CONTAINER}`, **File
prefix** `{RESTORE_PREFIX}`. Under **Rehydration** choose **Rehydration priority** *High* (about an hour; Standard
takes up to 15 hours) and **Rehydration duration (days)** 10; **Assign missing roles** if Validate asks, then
**Restore**.

A **Rehydrate** job copies the point back; once its priority's delay has passed the **Restore** job starts by
itself and writes the dumps. The Rehydrate job's page links to it."""

STEPS = (
    Step("disk-policy", "Create an hourly Azure Disk policy", INSTRUCTIONS_DISK_POLICY, check_disk_policy,
         solve_disk_policy,
         hints=(f"Hourly is offered for {DISK_LABEL} only; Every appears once Hourly is chosen.",
                "The Daily rule is the checkbox First successful backup taken daily.")),
    Step("disk-protect", "Protect the disk, snapshots in their own resource group", INSTRUCTIONS_DISK_PROTECT,
         check_disk_protected, solve_disk_protected,
         hints=("Choosing {backup_group} as Snapshot resource group is refused: it is the disk's own.",
                "Assign missing roles needs Role Based Access Control Administrator on both groups: you hold it.")),
    Step("pg-policy", "A PostgreSQL policy that tiers to archive", INSTRUCTIONS_PG_POLICY, check_pg_policy,
         solve_pg_policy,
         hints=("The Tiering section appears only for PostgreSQL policies.",
                "After (months) is below 3? Points can move at 3 months old at the earliest.")),
    Step("pg-backup", "Back the server up and read its tiering", INSTRUCTIONS_PG_BACKUP, check_pg_backup,
         solve_pg_backup,
         hints=("Configure Backup is refused until the readiness says Success: Assign missing roles first.",)),
    Step("hourly", "See hourly backups happen", INSTRUCTIONS_HOURLY, check_hourly, solve_hourly,
         needs_time=(f"This step needs time to pass: a scheduled backup comes every {EVERY_HOURS} hours. Wait, or ask "
                     "your Lab Instructor to move the lab clock past the next slot."),
         hints=("The backup instance's page shows the next scheduled backup.",
                "A Backup now point is kept by the rule you choose; a scheduled one by the policy's rules.")),
    Step("archive", "Move the point to archive", INSTRUCTIONS_ARCHIVED, check_archived, solve_archived,
         needs_time=("This step needs the recovery point to be 3 months old: ask your Lab Instructor to move the lab "
                     "clock about 92 days ahead."),
         hints=("Move to archive is on the recovery point's row, or it says why the point is not eligible.",)),
    Step("rehydrate", "Rehydrate, then restore", INSTRUCTIONS_REHYDRATE, check_rehydrated, solve_rehydrated,
         needs_time=("Rehydration with High priority takes an hour on the lab clock before the restore starts: wait, or "
                     "ask your Lab Instructor to move the lab clock an hour ahead."),
         hints=("An archived point's Restore asks for Rehydration priority and Rehydration duration (10 to 30 days).",
                f"Create the container {RESTORE_CONTAINER} in {{target_account}} first, or choose another.")),
)

LAB = register(Lab(
    slug="enhanced-policy-tiering",
    title="Enhanced policy and tiering",
    summary="Back a managed disk up every 4 hours with a daily rule, watch the schedule tag its snapshots, give a "
            "PostgreSQL policy a Tier to archive rule whose points move to Vault-archive at 3 months old, and restore "
            "one after rehydration.",
    learn=(
        "An Azure Disk policy: Hourly every 4 hours, a First successful backup taken daily rule, 450 snapshots at most",
        "A snapshot resource group apart from the disk, and the roles the vault's identity needs",
        "How scheduled backups are tagged: the first of the day Daily, the others Default",
        "Tier to archive (targetDataStoreCopySettings) and why a point is not yet eligible for Move to archive",
        "Restoring an archived point: rehydration priority and duration, then the restore",
    ),
    minutes=40,
    document=Document("Securing your Microsoft Azure Backups", "004_c5682cf263c5ebe6.txt"),
    order=80,
    protects=("pg_server",),
    steps=STEPS,
    unavailable=_unavailable,
    prepare=prepare,
))
