"""Lab 1, "Create a Backup vault": Basics and redundancy, soft delete, a policy with Weekly and Monthly
retention rules (and their priorities), and the refusal to delete a vault that still holds a policy.

Follows "Overview of Backup vaults" (../shared/seeds/002_*.txt) with the labels of reference §5.1–§5.3.
In Strongroom, as in the document, a policy alone keeps a vault from being deleted: the "Vault deletion
rules" guard (`vaults.guards`) refuses with Azure's exact message while any backup instance or backup
policy is in the vault, and the refusal is written to the activity log.
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError

from labs.catalogue import CheckResult, Document, Lab, Step, register
from portal.lab import LAB_REGION
from portal.models import Region
from protection import datasource_types
from protection.models import BackupPolicy
from protection.policies import services as policy_services
from protection.policies.services import PolicySpec, Retention
from protection.policy_rules import Policy, PolicyError
from security import operations as ops
from security.guards import GuardDenied
from security.models import ActivityLogEntry
from vaults import services as vault_services
from vaults.guards import DELETION_RULES_GUARD, VAULT_NOT_EMPTY_MESSAGE
from vaults.models import BackupVault, SoftDeleteState, StorageRedundancy

VAULT_NAME = "bv-training"
REDUNDANCY = StorageRedundancy.LOCALLY_REDUNDANT
SOFT_DELETE_DAYS = 30
POLICY_NAME = "adls-weekly-monthly"
POLICY_TYPE = datasource_types.ADLS
# The rules the lab asks for, as the wizard fills them in.
RULES = {"Default": Retention(30, "Days"), "Weekly": Retention(12, "Weeks"), "Monthly": Retention(12, "Months")}
POLICY_SPEC = PolicySpec("Daily", dt.time(2, 0), (), RULES["Default"],
                         {"Weekly": RULES["Weekly"], "Monthly": RULES["Monthly"]})


def _vault(ctx) -> BackupVault | None:
    group = ctx.world.backup_group
    if group is None:
        return None
    return BackupVault.objects.filter(resource_group=group, name__iexact=VAULT_NAME).first()


def _no_vault(ctx) -> CheckResult:
    return CheckResult.missing(
        f"There is no Backup vault named {VAULT_NAME} in the resource group {ctx.names.backup_group} yet: "
        "go to Backup vaults > + Create.")


# --- 1. the vault: Basics and redundancy -----------------------------------------------------------------


def check_vault(ctx) -> CheckResult:
    vault = _vault(ctx)
    if vault is None:
        elsewhere = BackupVault.objects.filter(name__iexact=VAULT_NAME,
                                               resource_group__subscription=ctx.world.subscription).first()
        if elsewhere is not None:
            return CheckResult.missing(
                f"The vault {VAULT_NAME} is in the resource group {elsewhere.resource_group.name}; the lab asks for it in "
                f"{ctx.names.backup_group}. Delete it and create it again there.")
        return _no_vault(ctx)
    if vault.storage_redundancy != REDUNDANCY:
        return CheckResult.missing(
            f"The vault {vault.name} has Backup storage redundancy {vault.get_storage_redundancy_display()}; the lab asks "
            f"for {REDUNDANCY.label}. Change it in the vault's Properties > Backup storage redundancy > Update "
            "(possible until the first item is protected).")
    return CheckResult.ok(f"The Backup vault {vault.name} exists in {ctx.names.backup_group}, "
                          f"{vault.region.display_name}, {vault.get_storage_redundancy_display()}.")


def solve_vault(ctx) -> None:
    vault = _vault(ctx)
    if vault is None:
        vault_services.create_vault(ctx.trainee, name=VAULT_NAME, region=Region.objects.get(name=LAB_REGION),
                                    resource_group=ctx.world.backup_group, storage_redundancy=REDUNDANCY)
    elif vault.storage_redundancy != REDUNDANCY:
        vault_services.update_storage_redundancy(ctx.trainee, vault, redundancy=REDUNDANCY)


# --- 2. soft delete --------------------------------------------------------------------------------------


def check_soft_delete(ctx) -> CheckResult:
    vault = _vault(ctx)
    if vault is None:
        return _no_vault(ctx)
    if vault.soft_delete_state == SoftDeleteState.OFF:
        return CheckResult.missing(
            f"Soft delete is Disabled for {vault.name}: enable it (Properties > Soft delete > Update) with a "
            f"Retention period of {SOFT_DELETE_DAYS} days.")
    if vault.soft_delete_retention_days != SOFT_DELETE_DAYS:
        return CheckResult.missing(
            f"Soft delete of {vault.name} keeps deleted items for {vault.soft_delete_retention_days} days; the lab asks "
            f"for a Retention period of {SOFT_DELETE_DAYS} days (Properties > Soft delete > Update).")
    return CheckResult.ok(f"Soft delete is {vault.get_soft_delete_state_display()} for {vault.name}: deleted backup "
                          f"data is kept for {SOFT_DELETE_DAYS} days before it is purged.")


def solve_soft_delete(ctx) -> None:
    vault = _vault(ctx)
    if vault is None:
        raise ValidationError(f"There is no vault {VAULT_NAME} yet: solve step 1 first.")
    state = SoftDeleteState.ALWAYS_ON if vault.soft_delete_state == SoftDeleteState.ALWAYS_ON else SoftDeleteState.ON
    vault_services.update_soft_delete(ctx.trainee, vault, state=state, retention_days=SOFT_DELETE_DAYS)


# --- 3. the policy and its retention priorities ----------------------------------------------------------


def _policy_problems(policy: BackupPolicy) -> list[str]:
    try:
        rules = {r.tag: r for r in Policy(policy.policy_rules).retention_rules}
    except (PolicyError, KeyError, TypeError):
        return ["its rules cannot be read"]
    problems = []
    for tag, wanted in RULES.items():
        rule = rules.get(tag)
        if rule is None:
            problems.append(f"it has no {tag} retention rule (tick {tag} rule on Schedule + retention)")
        elif abs(rule.duration.approx_days() - wanted.days) > 0.5:
            problems.append(f"its {tag} rule keeps backups for {rule.duration.label()}, not {wanted.label()}")
    return problems


def _priorities(policy: BackupPolicy) -> str:
    rules = Policy(policy.policy_rules).retention_rules  # sorted by priority, highest first
    return " > ".join(f"{r.tag} (priority {r.priority})" for r in rules)


def check_policy(ctx) -> CheckResult:
    vault = _vault(ctx)
    if vault is None:
        return _no_vault(ctx)
    policies = list(BackupPolicy.objects.filter(vault=vault).order_by("created_at"))
    if not policies:
        return CheckResult.missing(
            f"The vault {vault.name} has no backup policy yet: open it, Backup policies > + Add, and create "
            f"{POLICY_NAME} with Weekly and Monthly retention rules.")
    for policy in policies:
        if not _policy_problems(policy):
            return CheckResult.ok(
                f"The policy {policy.name} keeps Default {RULES['Default'].label()}, Weekly {RULES['Weekly'].label()} "
                f"and Monthly {RULES['Monthly'].label()}. Priorities: {_priorities(policy)}: the first backup of a "
                "month that is also the first of its week is kept by the Monthly rule.")
    policy = next((p for p in policies if p.name.lower() == POLICY_NAME), policies[0])
    return CheckResult.missing(f"The policy {policy.name} in {vault.name} is not what the step asks for: "
                               + "; ".join(_policy_problems(policy)) + ". Edit it, or create another.")


def solve_policy(ctx) -> None:
    vault = _vault(ctx)
    if vault is None:
        raise ValidationError(f"There is no vault {VAULT_NAME} yet: solve step 1 first.")
    policy = BackupPolicy.objects.filter(vault=vault, name__iexact=POLICY_NAME).first()
    if policy is None:
        policy_services.create_policy(ctx.trainee, vault=vault, name=POLICY_NAME, datasource_type=POLICY_TYPE,
                                      spec=POLICY_SPEC)
    else:
        policy_services.update_policy(ctx.trainee, policy, spec=POLICY_SPEC)


# --- 4. try to delete the vault --------------------------------------------------------------------------


def _refusals(ctx):
    return ctx.activity(operation__iexact=ops.VAULT_DELETE, principal_ref=ctx.trainee,
                        status=ActivityLogEntry.Status.FAILED)


def check_delete_refused(ctx) -> CheckResult:
    vault = _vault(ctx)
    vault_id = vault.resource_id.lower() if vault else f"/backupvaults/{VAULT_NAME}"
    mine = [e for e in _refusals(ctx) if e.scope.lower().endswith(vault_id)]
    by_rule = [e for e in mine if (e.details or {}).get("guard") == DELETION_RULES_GUARD]
    if by_rule:
        return CheckResult.ok(f"Your Delete of {VAULT_NAME} was refused at {by_rule[-1].timestamp:%H:%M} UTC by the "
                              f"{DELETION_RULES_GUARD}: \"{by_rule[-1].message}\" It is in the Activity log.")
    if mine:
        other = mine[-1]
        return CheckResult.missing(
            f"Your Delete of {VAULT_NAME} was refused by {(other.details or {}).get('guard') or 'another rule'} "
            f"(\"{other.message}\"), not by the {DELETION_RULES_GUARD}. Try Delete again while the policy is in the vault.")
    others = [e for e in _refusals(ctx) if (e.details or {}).get("guard") == DELETION_RULES_GUARD]
    elsewhere = (f" (the refusal for {others[-1].scope.rsplit('/', 1)[-1]} is another vault's)" if others else "")
    if vault is None:
        return CheckResult.missing(f"The vault {VAULT_NAME} is gone and no refused Delete of it is in the Activity "
                                   f"log{elsewhere}. Reset the sandbox to start again.")
    return CheckResult.missing(
        f"No refused Delete of {vault.name} by you is in the Activity log yet{elsewhere}: open {vault.name}, select "
        "Delete on its Overview, type its name and select Delete. It is refused with \"Cannot delete the Backup vault "
        "as there are existing backup instances or backup policies in the vault. …\"")


def solve_delete_refused(ctx) -> None:
    vault = _vault(ctx)
    if vault is None:
        raise ValidationError(f"There is no vault {VAULT_NAME}: solve step 1 first.")
    if vault_services.delete_preview(ctx.trainee, vault).allowed:
        # Nothing would refuse it: deleting now would lose the vault, not show the refusal.
        raise ValidationError(f"{vault.name} holds no backup policy, so Delete would succeed: solve step 3 first.")
    try:
        vault_services.delete_vault(ctx.trainee, vault)
    except GuardDenied:
        return  # the refusal is what this step is about (logged by the service)


LAB = register(Lab(
    slug="vault-basics",
    title="Create a Backup vault",
    summary="Create a Backup vault with the redundancy and soft delete you choose, add a backup policy with "
            "Weekly and Monthly retention rules, see which rule wins, and find out why a vault that still holds "
            "a policy cannot be deleted.",
    learn=(
        "The Basics of a Backup vault: resource group, region and Backup storage redundancy",
        "Soft delete and its Retention period",
        "Retention rules and their priorities: Yearly > Monthly > Weekly > Default",
        "Why a vault with backup policies or backup instances cannot be deleted, and where the refusal is logged",
    ),
    minutes=20,
    document=Document("Overview of Backup vaults", "002_dce0b79a199b003c.txt"),
    order=10,
    steps=(
        Step(
            "vault", "Create the Backup vault",
            f"""Go to **Backup vaults** and select **+ Create**.

On the **Basics** tab, under **Project details**, choose your sandbox's subscription (`{{subscription}}`)
and the **Resource group** `{{backup_group}}` (your code is shown under *Your sandbox*). Under **Instance details**:

- **Backup vault name**: `{VAULT_NAME}`
- **Region**: East US
- **Backup storage redundancy**: **{REDUNDANCY.label}**. The document recommends Geo-redundant when the vault is
  your primary backup store, and Locally-redundant otherwise, to save cost. Storage redundancy cannot be
  changed after protecting items to the vault.

Leave **Vault Properties** for the next step, or set it now; then select **Review + create** and **Create**.""",
            check_vault, solve_vault,
            hints=("The vault must be in {backup_group}, not in a new resource group.",
                   f"Already created it as Geo-redundant? Open it, Properties > Backup storage redundancy > Update > "
                   f"{REDUNDANCY.label}."),
        ),
        Step(
            "soft-delete", "Keep deleted backups for 30 days",
            f"""Soft delete keeps deleted backup data for a while, so a mistake (or an attacker) cannot destroy it at once.

When you create the vault, the **Vault Properties** tab has **Security settings**: keep **Soft delete**
**Enabled** and set **Retention period (days)** to **{SOFT_DELETE_DAYS}** (14 to 180; the first 14 days are
free). On a vault that already exists: open it, **Properties** > **Soft delete** > **Update**.

Do not choose *Enabled and always-on*: it can never be undone.""",
            check_soft_delete, solve_soft_delete,
            hints=("The default is Enabled with 14 days: only the Retention period needs to change.",
                   f"Open {VAULT_NAME} > Properties > Soft delete > Update, Retention period {SOFT_DELETE_DAYS}, Update."),
        ),
        Step(
            "policy", "Create a policy with Weekly and Monthly retention rules",
            f"""Open **{VAULT_NAME}** > **Backup policies** > **+ Add** (or **Protection policies** > **+ Create Policy**).

- **Basics**: **Policy name** `{POLICY_NAME}`, **Datasource type** *Azure Data Lake Storage*, **Vault** `{VAULT_NAME}`.
- **Schedule + retention**: **Backup frequency** *Daily* at 02:00 (UTC). Under **Retention rules** keep
  **Default** at **30 Days**, tick **Weekly rule** with **12 Weeks** and **Monthly rule** with **12 Months**.

Read the note above the rules: when a backup qualifies for several rules, the higher priority wins,
*Yearly > Monthly > Weekly > Default*. The first backup of a month that is also the first of its week is kept
12 months, not 12 weeks. Select **Review + create**, then **Create**, and open the policy: its
**Schedule and retention** lists the rules in that order.""",
            check_policy, solve_policy,
            hints=("The Weekly and Monthly rules are off until you tick them.",
                   "A policy that exists already can be changed: open it and select Edit."),
        ),
        Step(
            "delete-refused", "Try to delete the vault",
            f"""Open **{VAULT_NAME}** and select **Delete** on its **Overview**. The page already says why it will fail;
type the vault name and select **Delete** anyway, and read the refusal:

> Cannot delete the Backup vault as there are existing backup instances or backup policies in the vault.
> Delete all backup instances and backup policies that are present in the vault and then try deleting the vault.

A vault can be deleted only when it holds no backup instance (soft-deleted ones count too) and no backup
policy. Find your refused attempt in the **Activity log** (*Delete Backup Vault*, status *Failed*).""",
            check_delete_refused, solve_delete_refused,
            hints=("The check looks for your refused Delete Backup Vault entry in the Activity log.",
                   f"Refused by the {DELETION_RULES_GUARD}: \"{VAULT_NOT_EMPTY_MESSAGE[:60]}…\""),
        ),
    ),
))
