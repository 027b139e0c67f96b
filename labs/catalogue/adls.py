"""Lab 3: back up a Data Lake Storage account excluding one container, then restore two containers and a
prefix into another account and prove the restored blobs equal the source.

Follows "About Azure Data Lake Storage backup" (seed 001). The sandbox's source account sbx<code>src
(rg-lab-<code>) holds documents, images and logs; the target sbx<code>dst (rg-restore-<code>) is empty.
The trainee creates a vault and an ADLS policy, gives the vault's identity Storage Account Backup
Contributor on the source, protects the account with logs excluded, runs Backup now, restores images
and the prefix reports/2024/ of documents into sbx<code>dst, verifies the recovery point, and the last
check compares every restored blob with the recovery point by SHA-256.

Every check reads real state (vaults, policies, backup instances, recovery points, jobs, role
assignments through `authorize`, the vault store and the target's blobs); every solve acts through the
services as the trainee.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from labs.catalogue import CheckResult, Document, Lab, Step, adls_restore, create_free_vault, first_free_name, register
from labs.catalogue.adls_restore import EXCLUDED, PROTECTED, WANTED_RESTORE, names_of, when
from protection import datasource_types, readiness
from protection.models import BackupInstance, BackupPolicy, Job, JobOperation, JobStatus, ProtectionState, RecoveryPoint
from protection.restores import layout
from security import clock, roles
from security.models import RoleAssignment
from vaults.models import BackupVault

ADLS = datasource_types.ADLS
ADLS_LABEL = datasource_types.get(ADLS).label  # "Azure Data Lake Storage"
VAULT_NAME = "bv-adls"
POLICY_NAME = "adls-daily"
SABC = roles.STORAGE_ACCOUNT_BACKUP_CONTRIBUTOR
_GONE = (ProtectionState.SOFT_DELETING, ProtectionState.SOFT_DELETED)


# --- what the checks look at -------------------------------------------------------------------------


def _vaults(ctx):
    """The Backup vaults in the sandbox's subscription, oldest first."""
    return (BackupVault.objects.filter(resource_group__subscription=ctx.world.subscription)
            .select_related("region", "identity", "resource_group").order_by("created_at", "name"))


def _fits(vault, account) -> bool:
    """A vault that can protect ``account``: in its region, with its system-assigned identity on."""
    return vault.region_id == account.region_id and vault.identity_id is not None and vault.identity.enabled


def _good_vaults(ctx) -> list:
    account = ctx.world.source_account
    return [v for v in _vaults(ctx) if _fits(v, account)]


def _adls_policies(vaults):
    return BackupPolicy.objects.filter(vault__in=vaults, datasource_type=ADLS).select_related("vault").order_by("name")


def _instance(ctx) -> BackupInstance | None:
    """The newest backup instance of the source account in the sandbox (soft-deleted ones left out)."""
    account = ctx.world.source_account
    return (BackupInstance.objects.filter(datasource_resource_id__iexact=account.resource_id,
                                          vault__resource_group__subscription=ctx.world.subscription)
            .exclude(protection_state__in=_GONE).select_related("vault", "policy").order_by("-created_at").first())


def _lab_vault(ctx):
    """The vault the lab works in: the one protecting the source, else a fitting one with an ADLS policy,
    else any fitting one (None when there is none)."""
    instance = _instance(ctx)
    if instance is not None:
        return instance.vault
    good = _good_vaults(ctx)
    with_policy = _adls_policies(good).first()
    return with_policy.vault if with_policy else (good[0] if good else None)


def _no_vault(ctx) -> CheckResult:
    account = ctx.world.source_account
    return CheckResult.missing(f"There is no Backup vault in {account.region.display_name} with its system-assigned "
                               f"managed identity on in {ctx.names.subscription}: do step 1 first.")


# --- 1. the vault ------------------------------------------------------------------------------------


def check_vault(ctx) -> CheckResult:
    account = ctx.world.source_account
    vaults = list(_vaults(ctx))
    good = [v for v in vaults if _fits(v, account)]
    if good:
        return CheckResult.ok(f"The Backup vault {good[0].name} is in {account.region.display_name}, beside "
                              f"{account.name}, with its system-assigned managed identity on.")
    if not vaults:
        return CheckResult.missing(
            f"There is no Backup vault in {ctx.names.subscription} yet: create one in the resource group "
            f"{ctx.names.backup_group}, region {account.region.display_name} (the region of {account.name}).")
    vault = vaults[-1]
    if vault.region_id != account.region_id:
        return CheckResult.missing(
            f"The Backup vault {vault.name} is in {vault.region.display_name}, but {account.name} is in "
            f"{account.region.display_name}: vaulted backup needs the vault in the storage account's region. "
            f"Create a vault in {account.region.display_name}.")
    return CheckResult.missing(
        f"The Backup vault {vault.name} has its system-assigned managed identity off, and the vault's identity "
        f"is what reads {account.name}. Turn it on in the vault's Identity blade.")


def solve_vault(ctx) -> None:
    create_free_vault(ctx, ctx.trainee, VAULT_NAME)


# --- 2. the policy -----------------------------------------------------------------------------------


def check_policy(ctx) -> CheckResult:
    good = _good_vaults(ctx)
    if not good:
        return _no_vault(ctx)
    policy = _adls_policies(good).first()
    if policy is not None:
        return CheckResult.ok(f"The backup policy {policy.name} in {policy.vault.name} is for {ADLS_LABEL}.")
    other = BackupPolicy.objects.filter(vault__in=good).select_related("vault").order_by("name").first()
    if other is not None:
        return CheckResult.missing(
            f"The vault {other.vault.name} has the policy {other.name} for {other.datasource.label}, but no policy "
            f"for {ADLS_LABEL}: a backup instance can only use a policy of its own datasource type. Create a "
            f"policy with Datasource type {ADLS_LABEL}.")
    return CheckResult.missing(f"The vault {good[0].name} has no backup policy yet: create one with Datasource type "
                               f"{ADLS_LABEL} (Protection policies > + Create Policy).")


def solve_policy(ctx) -> None:
    from protection.policies import services as policy_services

    vault = _lab_vault(ctx)
    taken = set(BackupPolicy.objects.filter(vault=vault).values_list("name", flat=True))
    name = first_free_name(POLICY_NAME, taken.__contains__)
    policy_services.create_policy(ctx.trainee, vault=vault, name=name, datasource_type=ADLS,
                                  spec=policy_services.default_spec(ADLS))


# --- 3. the vault identity's role --------------------------------------------------------------------


def _datasource(account) -> readiness.Datasource:
    return readiness.Datasource(ADLS, account.resource_id, account.name)


def _scope_words(scope: str) -> str:
    parts = scope.rstrip("/").split("/")
    if "storageAccounts" in parts:
        return f"the storage account {parts[-1]}"
    if len(parts) >= 2 and parts[-2].lower() == "resourcegroups":
        return f"the resource group {parts[-1]}"
    return scope


def check_roles(ctx) -> CheckResult:
    account = ctx.world.source_account
    good = _good_vaults(ctx)
    if not good:
        return _no_vault(ctx)
    for vault in good:
        if not readiness.missing_needs(vault.identity, _datasource(account)):
            return CheckResult.ok(f"The identity of {vault.name} holds {SABC} on {account.name}: backup readiness "
                                  "is Success.")
    vault = _lab_vault(ctx)
    message = (f"The vault's identity ({vault.name}) does not yet hold {SABC} on {account.name}, so backup "
               "readiness shows 'Role assignment not done'.")
    elsewhere = sorted({_scope_words(a.scope) for a in RoleAssignment.objects.active_at(clock.now())
                        .filter(principal=vault.identity, role__name=SABC)})
    if elsewhere:
        message += (f" It holds the role on {', '.join(elsewhere)}, which does not cover {account.name} "
                    f"(in {ctx.names.backup_group}): the role must be on the account, its resource group or above.")
    return CheckResult.missing(message + " Select the account in Configure protection, Assign missing roles "
                                         "(Scope: Resource), then Revalidate.")


def solve_roles(ctx) -> None:
    from protection.instances import services as instance_services

    instance_services.assign_missing_roles(ctx.trainee, vault=_lab_vault(ctx),
                                           datasources=[_datasource(ctx.world.source_account)],
                                           level=readiness.SCOPE_RESOURCE)


# --- 4. configure protection, logs excluded ----------------------------------------------------------


def check_protect(ctx) -> CheckResult:
    from protection.datasources.adls import container_names

    account = ctx.world.source_account
    instance = _instance(ctx)
    if instance is None:
        return CheckResult.missing(
            f"{account.name} is not protected yet: in Configure protection choose {ADLS_LABEL}, your vault and "
            f"policy, add {account.name} and exclude {EXCLUDED}, then Configure Backup.")
    state = instance.protection_state
    if state == ProtectionState.CONFIGURING:
        return CheckResult.missing(f"The backup instance {instance.name} is still Configuring protection: wait for "
                                   "its Configure protection job to complete (Backup jobs).")
    if state == ProtectionState.CONFIGURING_FAILED:
        return CheckResult.missing(f"Configuring protection of {instance.name} failed: {instance.error_code}: "
                                   f"{instance.error_message}")
    protected = container_names(instance, account)
    if state in (ProtectionState.BACKUPS_SUSPENDED, ProtectionState.STOPPED):
        return CheckResult.missing(f"The backup instance {instance.name} is {instance.get_protection_state_display()}: "
                                   "select Resume backup on it.")
    if state != ProtectionState.CONFIGURED:
        return CheckResult.missing(f"The backup instance {instance.name} is {instance.get_protection_state_display()}"
                                   f"{': ' + instance.error_message if instance.error_message else ''}; it must be "
                                   "Protection configured.")
    if set(protected) == set(PROTECTED):
        return CheckResult.ok(f"The backup instance {instance.name} in {instance.vault.name} protects "
                              f"{names_of(protected)} of {account.name}; {EXCLUDED} is excluded.")
    if EXCLUDED in protected:
        return CheckResult.missing(
            f"The backup instance {instance.name} protects {names_of(protected)}: {EXCLUDED} is not excluded. "
            "A backup instance's container list cannot be edited here: stop its backup with Delete Backup Data, "
            f"then protect {account.name} again in a new vault with {EXCLUDED} under Exclude these containers "
            "(or Reset sandbox).")
    lacking = [c for c in PROTECTED if c not in protected]
    return CheckResult.missing(f"The backup instance {instance.name} protects {names_of(protected) or 'no container'}: "
                               f"{names_of(lacking)} should be protected too (all containers except {EXCLUDED}).")


def solve_protect(ctx) -> None:
    from protection.instances import services as instance_services

    account = ctx.world.source_account
    vault = _lab_vault(ctx)
    policy = _adls_policies([vault]).first()
    selection = instance_services.DatasourceSelection(account.resource_id, account.name, all_containers=True,
                                                      excluded_containers=(EXCLUDED,))
    [instance] = instance_services.configure_protection(ctx.trainee, vault=vault, policy=policy, selections=[selection])
    ctx.job_started(Job.objects.get(instance=instance, operation=JobOperation.CONFIGURE_PROTECTION))


# --- 5. Backup now -----------------------------------------------------------------------------------


def _points(instance):
    return RecoveryPoint.objects.filter(instance=instance, state=RecoveryPoint.State.COMPLETED).order_by(
        "-recovery_point_time")


def _good_point(instance) -> RecoveryPoint | None:
    for point in _points(instance):
        if {p.item for p in layout.containers(point)} == set(PROTECTED):
            return point
    return None


def check_backup(ctx) -> CheckResult:
    instance = _instance(ctx)
    if instance is None:
        return CheckResult.missing(f"{ctx.names.source_account} is not protected: do step 4 first.")
    point = _good_point(instance)
    if point is not None:
        return CheckResult.ok(f"The recovery point of {when(point.recovery_point_time)} holds "
                              f"{names_of(PROTECTED)} ({point.item_count} items).")
    job = Job.objects.filter(instance=instance, operation=JobOperation.BACKUP).order_by("-start_time").first()
    if job is not None and job.status in (JobStatus.IN_PROGRESS, JobStatus.CANCELLING):
        return CheckResult.missing(f"The backup of {instance.name} started at {when(job.start_time)} is still "
                                   "running: check again when its job has completed (Backup jobs).")
    latest = _points(instance).first()
    if latest is not None:
        held = [p.item for p in layout.containers(latest)]
        return CheckResult.missing(
            f"The recovery point of {when(latest.recovery_point_time)} holds {names_of(held)}; it should hold "
            f"{names_of(PROTECTED)} only ({EXCLUDED} excluded). Exclude {EXCLUDED}, then Backup now again.")
    if job is not None and job.status == JobStatus.FAILED:
        return CheckResult.missing(f"The backup of {instance.name} at {when(job.start_time)} failed: "
                                   f"{job.error_code}: {job.error_message}")
    return CheckResult.missing(f"{instance.name} has no recovery point yet: select Backup now on it (Backup instances "
                               f"> {instance.name}), keep the Default retention rule, and wait for the job.")


def solve_backup(ctx) -> None:
    from protection.backups import services as backups

    ctx.job_started(backups.backup_now(ctx.trainee, _instance(ctx), retention_rule="Default"))


# --- 6. restore two containers and a prefix into the target ------------------------------------------


def check_restore(ctx) -> CheckResult:
    found, problem = adls_restore.restored(ctx)
    if problem:
        return CheckResult.missing(problem)
    point = found["documents"].point
    return CheckResult.ok(f"The containers {names_of(WANTED_RESTORE)} were restored into {ctx.names.target_account}: documents "
                          f"with the prefix {WANTED_RESTORE['documents'][0]}, images whole (recovery point of "
                          f"{when(point.recovery_point_time)}).")


def solve_restore(ctx) -> None:
    from protection.restores import services as restores
    from protection.restores import targets

    point = _good_point(_instance(ctx))
    target = targets.AdlsTarget(ctx.world.target_account.resource_id, False, tuple(
        targets.ContainerChoice(name, prefixes) for name, prefixes in WANTED_RESTORE.items()))
    restores.assign_restore_roles(ctx.trainee, point, target, readiness.SCOPE_RESOURCE)
    ctx.job_started(restores.start_restore(ctx.trainee, point, target))


# --- 7. verify the point, and prove the restore equal -------------------------------------------------


def check_equal(ctx) -> CheckResult:
    return adls_restore.check_equal(ctx)


def solve_equal(ctx) -> None:
    from protection.restores import services as restores

    found, problem = adls_restore.restored(ctx)
    if problem:
        raise ValidationError(f"Restore first: {problem}")
    for point in {r.point.pk: r.point for r in found.values()}.values():
        if point.health != RecoveryPoint.Health.HEALTHY:
            ctx.job_started(restores.start_verify(ctx.trainee, point))


# --- the lab -----------------------------------------------------------------------------------------

_VAULT = """
Your sandbox's source account **{source_account}** (see *Your sandbox*) is an Azure Data Lake Storage account
(hierarchical namespace) in **East US**. Vaulted backup keeps its backups in a **Backup vault** in the
same region.

1. Open **Backup vaults** and select **+ Create**.
2. On **Basics**: **Subscription** *{subscription}*, **Resource group** **{backup_group}**,
   **Backup vault name** `bv-adls`, **Region** **East US**.
3. On **Vault Properties** keep **System-assigned managed identity** on: the vault's identity is what
   reads the storage account.
4. Select **Review + create**, then **Create**.
"""

_POLICY = """
Schedule and retention live in a **backup policy** of the vault.

1. Open **Protection policies** and select **+ Create Policy**.
2. On **Basics**: **Policy name** `adls-daily`, **Datasource type** **Azure Data Lake Storage**,
   **Vault** `bv-adls`.
3. On **Schedule + retention** keep **Backup frequency** *Daily* and the **Default** retention, or add a
   **Weekly rule** or **Monthly rule** (a monthly rule wins over a weekly one for the same backup).
4. **Create**.
"""

_ROLES = """
To back up the account, the vault's managed identity needs **Storage Account Backup Contributor** on it
(or on a scope above it).

1. On **Home** select **+ Configure protection**: **Datasource type** *Azure Data Lake Storage*, then
   **Continue**; choose the **Vault** `bv-adls` and the **Backup policy** `adls-daily`.
2. On **Datasources**, select **{source_account}**. Its **Backup readiness** says *Role assignment not done*.
3. Select **Assign missing roles**, keep **Scope** *Resource* and select **Assign roles**.
4. Select **Revalidate**: the row shows *Success*. (A role on another account or on
   **{restore_group}** does not count: it does not cover {source_account}.)
"""

_PROTECT = """
Back up every container except **logs**.

1. Still on **Datasources** (or start **+ Configure protection** again), open **Choose containers** on the
   row of **{source_account}**.
2. Keep **All containers** and tick **logs** under **Exclude these containers**.
3. **Review + configure**, then **Configure Backup**. The new backup instance is *Configuring protection*,
   then *Protection configured* (**Backup instances**).
"""

_BACKUP = """
1. Open **Backup instances** and the instance of **{source_account}**.
2. Select **Backup now**, keep the retention rule **Default** and select **Backup now**.
3. Follow the job in **Backup jobs** until it is *Completed*. The recovery point holds **documents** and
   **images**: logs was excluded.
"""

_RESTORE = """
Restores of vaulted ADLS backups go to **another** storage account in the same region, never back into
the source. Bring back **images** whole and only **reports/2024/** of **documents**.

1. On the backup instance select **Restore**. On **Select recovery point** keep the latest one.
2. On **Restore parameters** choose **Browse and select containers to restore**, tick **documents** and
   **images**, and type `reports/2024/` in the **Prefixes** of documents (images has none).
3. **Target subscription** *{subscription}*, **Target storage account** **{target_account}**.
4. Select **Validate**. The vault's identity also needs **Storage Account Backup Contributor** on the
   target: select **Assign missing roles** (*Target resource*), then **Validate** again.
5. **Review + restore**, then **Restore**; wait for the Restore job to complete.
"""

_EQUAL = """
Prove the restore: the blobs in **{target_account}** must equal the source as it was at the recovery point.

1. Open the recovery point you restored from (backup instance > **Recovery points**) and select
   **Verify**: Strongroom re-reads and authenticates every chunk of it. Wait until it is *Healthy*.
2. Select **Check my work**: the check reads every restored blob and the same blobs from the recovery
   point and compares their SHA-256, byte for byte.
"""

LAB = register(Lab(
    slug="adls-backup",
    title="Back up a Data Lake Storage account and restore part of it",
    summary=("Back up a Data Lake Storage account excluding one container, then restore two containers and a "
             "prefix into another account and prove the restored blobs equal the source."),
    learn=(
        "Vaulted backup is configured per storage account; containers that need no backup can be excluded.",
        "The vault's managed identity needs Storage Account Backup Contributor on the account (Assign missing "
        "roles, at the right scope).",
        "A recovery point holds the protected containers; Backup now makes one on demand.",
        "Granular restore: chosen containers and a prefix, into a different account in the same region.",
        "Verify a recovery point and prove a restore equal to the source, byte for byte.",
    ),
    minutes=30,
    document=Document("About Azure Data Lake Storage backup", "001_d49106e70ab95382.txt"),
    order=30,
    protects=("source_account",),
    steps=(
        Step("vault", "Create a Backup vault", _VAULT, check_vault, solve_vault, hints=(
            "Backup vaults > + Create. The region must be East US, where {source_account} is.",
            "Keep System-assigned managed identity on (Vault Properties tab).")),
        Step("policy", "Create a backup policy for Azure Data Lake Storage", _POLICY, check_policy, solve_policy,
             hints=("Protection policies > + Create Policy; the Datasource type must be Azure Data Lake Storage.",)),
        Step("roles", "Give the vault's identity its role on the source account", _ROLES, check_roles, solve_roles,
             hints=("Configure protection > Datasources > select {source_account} > Assign missing roles.",
                    "The role must be on {source_account} or {backup_group}: a role on {target_account} or {restore_group} "
                    "does not cover the source.")),
        Step("protect", "Configure protection without logs", _PROTECT, check_protect, solve_protect, hints=(
            "On the row of {source_account} open Choose containers: All containers, and tick logs under Exclude.",
            "Protected by mistake with logs? Stop backup (Delete Backup Data), create a second vault and protect "
            "the account there, or Reset sandbox.")),
        Step("backup", "Back up now", _BACKUP, check_backup, solve_backup,
             hints=("Backup instances > the instance > Backup now > Default > Backup now.",)),
        Step("restore", "Restore two containers and a prefix into {target_account}", _RESTORE, check_restore,
             solve_restore, hints=(
                 "Restore > Browse and select containers to restore; documents with the prefix reports/2024/, images "
                 "with none; Target storage account {target_account}.",
                 "Validate fails until the vault's identity holds Storage Account Backup Contributor on {target_account}: "
                 "Assign missing roles, then Validate.",
                 "Restored the wrong thing? Delete that container in {target_account} (Storage accounts), then restore it "
                 "again.")),
        Step("equal", "Verify and prove the restore equal to the source", _EQUAL, check_equal, solve_equal, hints=(
            "Backup instances > the instance > Recovery points > the point > Verify.",
            "A blob changed in {target_account} after the restore no longer equals the source: delete the container "
            "there and restore it again.")),
    ),
))

