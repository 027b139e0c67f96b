"""Lab: automate backups with the Azure SDK.

Issue 20's management API lets Microsoft's own ``azure-mgmt-dataprotection`` drive Strongroom unchanged. The
trainee registers an application (Lab Trainee holds Entra's ``applications/createAsOwner``: they own it, and see
no one else's), gives its service principal Backup Contributor on the sandbox's resource group, then runs a
Python script as that service principal: it creates a vault, a policy and the backup instance of the sandbox's
storage account, and runs an ad hoc backup, waiting on the SDK's poller.

The checks read real state: the trainee's app registrations and their secrets, the service principal's role
assignments, the activity log (which principal created the vault, configured the instance), jobs (who started
the backup) and recovery points. The solves act through the services: steps 1 and 2 as the trainee, steps 3 to 5
as the service principal, as the script would (the vault identity's missing roles are assigned as the trainee,
who may: the service principal's Backup Contributor cannot assign roles).
"""

from __future__ import annotations

from labs.catalogue import CheckResult, Document, Lab, Step, create_free_vault, first_free_name, register
from protection import datasource_types
from protection.models import BackupInstance, Job, JobOperation, JobStatus, ProtectionState, RecoveryPoint
from security import applications, clock, roles, scopes
from security import operations as ops
from security.models import ActivityLogEntry, AppRegistration, Principal, RoleAssignment
from security.rbac import is_allowed
from vaults.models import BackupVault

ADLS = datasource_types.ADLS
APP_NAME = "backup-automation"
VAULT_NAME = "bv-sdk"
POLICY_NAME = "adls-sdk"
INSTANCE_NAME = "bi-sdk"
RULE_NAME = "BackupDaily"
ROLE = roles.BACKUP_CONTRIBUTOR
# What the script does with the service principal's role, at the resource group.
SCRIPT_ACTIONS = (ops.VAULT_WRITE, ops.POLICY_WRITE, ops.INSTANCE_WRITE, ops.BACKUP_ACTION)
_GONE = (ProtectionState.SOFT_DELETING, ProtectionState.SOFT_DELETED)
_SUCCEEDED = ActivityLogEntry.Status.SUCCEEDED


# --- what the checks look at -------------------------------------------------------------------------------


def _candidates(ctx) -> list[AppRegistration]:
    """The trainee's own app registrations that belong to no other sandbox (their service principal holds no
    role outside this one), those with a role in this sandbox first, then the newest."""
    sub = ctx.world.subscription.resource_id
    found = []
    for app in (AppRegistration.objects.filter(created_by=ctx.trainee).select_related("principal")
                .prefetch_related("principal__assignments").order_by("-created_at")):
        inside = [a for a in app.principal.assignments.all() if scopes.covers(sub, a.scope)]
        if len(inside) == len(app.principal.assignments.all()):
            found.append((not inside, app))
    return [app for _, app in sorted(found, key=lambda pair: pair[0])]


def _app(ctx) -> AppRegistration | None:
    """The lab's app: the first candidate with a secret that signs in, else the first candidate."""
    apps = _candidates(ctx)
    return next((a for a in apps if _live_secret(a)), apps[0] if apps else None)


def _live_secret(app: AppRegistration):
    return next((s for s in applications.active_secrets(app) if applications.is_active(s)), None)


def _sp(ctx) -> Principal | None:
    app = _app(ctx)
    return app.principal if app else None


def _created_by(ctx, sp, operation: str) -> list[str]:
    """The resource ids ``sp`` created or changed with ``operation`` in the sandbox since the lab started."""
    entries = ctx.activity(operation__iexact=operation, principal_ref=sp, status=_SUCCEEDED)
    return [e.scope.lower() for e in entries]


def _vault(ctx, sp) -> BackupVault | None:
    """The newest vault of the sandbox whose creation the activity log attributes to ``sp``."""
    if sp is None:
        return None
    made = set(_created_by(ctx, sp, ops.VAULT_WRITE))
    vaults = BackupVault.objects.filter(resource_group__subscription=ctx.world.subscription).order_by("-created_at")
    return next((v for v in vaults.select_related("region", "resource_group") if v.resource_id.lower() in made), None)


def _instance(ctx, sp, vault) -> BackupInstance | None:
    """The source account's backup instance in ``vault`` that ``sp`` configured (activity log)."""
    if vault is None:
        return None
    made = set(_created_by(ctx, sp, ops.INSTANCE_WRITE))
    account = ctx.world.source_account
    found = (BackupInstance.objects.filter(vault=vault, datasource_resource_id__iexact=account.resource_id)
             .exclude(protection_state__in=_GONE).order_by("-created_at"))
    return next((i for i in found if i.resource_id.lower() in made), None)


def _need(step: int) -> CheckResult:
    return CheckResult.missing(f"Do step {step} first.")


# --- 1. an app registration and its secret ---------------------------------------------------------------


def check_app(ctx) -> CheckResult:
    app = _app(ctx)
    if app is None:
        return CheckResult.missing(
            "You have no app registration yet: open Security > App registrations > + New registration and register "
            f"{APP_NAME}-{ctx.names.code}.")
    secret = _live_secret(app)
    if secret is None:
        return CheckResult.missing(
            f"{app.display_name} has no client secret that signs in (none yet, or each is expired or deleted): open it, "
            "Certificates & secrets > + New client secret, and copy its Value at once (it is shown only once).")
    return CheckResult.ok(f"{app.display_name} (client id {app.client_id}) has the client secret {secret.hint}… "
                          f"until {secret.expires_at:%Y-%m-%d}.")


def solve_app(ctx) -> None:
    app = _app(ctx)
    if app is None:
        app = applications.create_application(ctx.trainee, f"{APP_NAME}-{ctx.names.code}")
    if _live_secret(app) is None:
        applications.add_client_secret(ctx.trainee, app, description="lab: automate with the SDK")


# --- 2. its role on the resource group -------------------------------------------------------------------


def check_role(ctx) -> CheckResult:
    sp, group = _sp(ctx), ctx.world.backup_group
    if sp is None:
        return _need(1)
    held = [a for a in RoleAssignment.objects.active_at(clock.now()).filter(principal=sp).select_related("role")
            if scopes.covers(group.resource_id, a.scope)]
    if not held:
        return CheckResult.missing(
            f"The service principal {sp.display_name} holds no role on {group.name}: open {group.name} > Access control "
            f"(IAM) > + Add role assignment, choose {ROLE} and, as member, {sp.display_name}.")
    lacking = [a for a in SCRIPT_ACTIONS if not is_allowed(sp, a, group.resource_id)]
    if lacking:
        return CheckResult.missing(
            f"{sp.display_name} holds {', '.join(a.role.name for a in held)} there, which does not allow "
            f"{', '.join(lacking)} on {group.name}: assign {ROLE} on the resource group itself.")
    return CheckResult.ok(f"{sp.display_name} holds {', '.join(sorted({a.role.name for a in held}))} on {group.name}: "
                          "it may create vaults, policies and backup instances there, and back them up.")


def solve_role(ctx) -> None:
    from security import services as security_services
    from security.models import RoleDefinition

    security_services.assign_role(ctx.trainee, assignee=_sp(ctx), role=RoleDefinition.objects.get(name=ROLE),
                                  scope=ctx.world.backup_group.resource_id, description="lab: automate with the SDK")


# --- 3. a vault, created by the script --------------------------------------------------------------------


def check_vault(ctx) -> CheckResult:
    sp = _sp(ctx)
    if sp is None:
        return _need(1)
    vault = _vault(ctx, sp)
    if vault is None:
        mine = ctx.activity(operation__iexact=ops.VAULT_WRITE, principal_ref=sp).exclude(status=_SUCCEEDED).last()
        tried = f" Its last try was refused: {mine.message}" if mine is not None and mine.message else ""
        return CheckResult.missing(
            f"The activity log shows no Backup vault created by {sp.display_name} in your sandbox yet: run the script "
            f"with AZURE_CLIENT_ID and AZURE_CLIENT_SECRET set to your app's (part 1 creates {VAULT_NAME}).{tried}")
    return CheckResult.ok(f"{sp.display_name} created the Backup vault {vault.name} in {vault.resource_group.name} "
                          "(Activity log: Create or Update Backup Vault, by the service principal).")


def solve_vault(ctx) -> None:
    create_free_vault(ctx, _sp(ctx), VAULT_NAME)


# --- 4. a policy and the storage account's backup instance ------------------------------------------------


def check_instance(ctx) -> CheckResult:
    sp = _sp(ctx)
    vault = _vault(ctx, sp)
    if vault is None:
        return _need(3)
    instance = _instance(ctx, sp, vault)
    account = ctx.names.source_account
    if instance is None:
        return CheckResult.missing(
            f"{account} is not protected in {vault.name} by {sp.display_name} yet: run part 2 of the script (it creates "
            f"the policy {POLICY_NAME} and the backup instance). If it stops with UserErrorMissingRequiredPermissions, "
            f"the vault's identity needs its role on {account}: see the hints.")
    if instance.protection_state == ProtectionState.CONFIGURING:
        return CheckResult.missing(f"{instance.name} is still being configured: wait for its Configure protection job.")
    if instance.protection_state != ProtectionState.CONFIGURED:
        return CheckResult.missing(f"{instance.name} is {instance.get_protection_state_display()}, not Protection "
                                   "configured: look at its Configure protection job (Backup jobs) for why.")
    return CheckResult.ok(f"{sp.display_name} protected {account} in {vault.name} as {instance.name} with the policy "
                          f"{instance.policy.name if instance.policy else '(none)'}.")


def solve_instance(ctx) -> None:
    from protection import readiness
    from protection.instances import services as instance_services
    from protection.models import BackupPolicy
    from protection.policies import services as policy_services

    sp = _sp(ctx)
    vault, account = _vault(ctx, sp), ctx.world.source_account
    policy = BackupPolicy.objects.filter(vault=vault, datasource_type=ADLS).order_by("name").first()
    if policy is None:
        policy = policy_services.create_policy(sp, vault=vault, name=POLICY_NAME, datasource_type=ADLS,
                                               spec=policy_services.default_spec(ADLS))
    datasource = readiness.Datasource(ADLS, account.resource_id, account.name)
    if readiness.missing_needs(vault.identity, datasource):  # the trainee may assign them; the script may not
        instance_services.assign_missing_roles(ctx.trainee, vault=vault, datasources=[datasource],
                                               level=readiness.SCOPE_RESOURCE)
    names = set(BackupInstance.objects.filter(vault=vault).values_list("name", flat=True))
    selection = instance_services.DatasourceSelection(account.resource_id, first_free_name(INSTANCE_NAME, names.__contains__),
                                                      all_containers=True)
    [instance] = instance_services.configure_protection(sp, vault=vault, policy=policy, selections=[selection])
    ctx.job_started(Job.objects.get(instance=instance, operation=JobOperation.CONFIGURE_PROTECTION))


# --- 5. an ad hoc backup, waited on --------------------------------------------------------------------


def check_backup(ctx) -> CheckResult:
    sp = _sp(ctx)
    instance = _instance(ctx, sp, _vault(ctx, sp))
    if instance is None:
        return _need(4)
    jobs = Job.objects.filter(instance=instance, operation=JobOperation.BACKUP, initiated_by=sp).order_by("-start_time")
    done = jobs.filter(status__in=(JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_WARNINGS)).first()
    point = (RecoveryPoint.objects.filter(instance=instance, state=RecoveryPoint.State.COMPLETED)
             .order_by("-recovery_point_time").first())
    if done is not None and point is not None:
        return CheckResult.ok(f"{sp.display_name}'s backup of {instance.name} completed (job {done.pk}), and "
                              f"{instance.name} has a recovery point of {point.recovery_point_time:%Y-%m-%d %H:%M} UTC.")
    last = jobs.first()
    if last is None:
        return CheckResult.missing(f"No backup of {instance.name} started by {sp.display_name} yet: run part 3 of the "
                                   "script (begin_adhoc_backup, then poller.result()).")
    if last.status in (JobStatus.IN_PROGRESS, JobStatus.CANCELLING):
        return CheckResult.missing(f"{sp.display_name}'s backup of {instance.name} is still running: the script's "
                                   "poller returns when the job ends.")
    if last.status == JobStatus.FAILED:
        return CheckResult.missing(f"{sp.display_name}'s backup of {instance.name} failed: {last.error_code}: "
                                   f"{last.error_message}")
    return CheckResult.missing(f"{instance.name} has no recovery point yet.")


def solve_backup(ctx) -> None:
    from protection.backups import services as backups

    sp = _sp(ctx)
    instance = _instance(ctx, sp, _vault(ctx, sp))
    ctx.job_started(backups.backup_now(sp, instance, retention_rule="Default"))


# --- the instructions ------------------------------------------------------------------------------------

KIND = datasource_types.get(ADLS)
# The script, with the sandbox's values put in by `fill_names` ({tenant_id}, {subscription_id}, ...). It runs
# with the part numbers as arguments; no braces other than those fields may appear in it.
SCRIPT = f"""    # automate.py: run "python automate.py 1", then 2, then 3 (or all: "python automate.py 1 2 3")
    import os
    import sys

    from azure.identity import ClientSecretCredential
    from azure.mgmt.dataprotection import DataProtectionMgmtClient
    from azure.mgmt.dataprotection import models as m

    BASE_URL = "{{api_base_url}}"
    CA = "var/tls/ca.pem"  # Strongroom's CA, in its folder; give the full path to run from elsewhere
    TENANT_ID = "{{tenant_id}}"
    SUBSCRIPTION_ID = "{{subscription_id}}"
    GROUP = "{{backup_group}}"
    LOCATION = "eastus"
    ACCOUNT = "{{source_account}}"
    ACCOUNT_ID = "{{source_account_id}}"
    VAULT, POLICY, INSTANCE = "{VAULT_NAME}", "{POLICY_NAME}", "{INSTANCE_NAME}"

    credential = ClientSecretCredential(
        TENANT_ID, os.environ["AZURE_CLIENT_ID"], os.environ["AZURE_CLIENT_SECRET"],
        authority=BASE_URL, disable_instance_discovery=True, connection_verify=CA)
    client = DataProtectionMgmtClient(credential, SUBSCRIPTION_ID, base_url=BASE_URL, connection_verify=CA)
    parts = sys.argv[1:] or ["1", "2", "3"]

    if "1" in parts:  # a Backup vault with a system-assigned identity
        vault = client.backup_vaults.begin_create_or_update(GROUP, VAULT, m.BackupVaultResource(
            location=LOCATION, identity=m.DppIdentityDetails(type="SystemAssigned"),
            properties=m.BackupVault(storage_settings=[m.StorageSetting(
                datastore_type="VaultStore", type="LocallyRedundant")]))).result()
        print("vault:", vault.id, vault.properties.provisioning_state)

    if "2" in parts:  # a daily policy for Azure Data Lake Storage, then the storage account's backup instance
        store = m.DataStoreInfoBase(data_store_type="{KIND.datastore}", object_type="DataStoreInfoBase")
        policy = client.backup_policies.create_or_update(GROUP, VAULT, POLICY, m.BaseBackupPolicyResource(
            properties=m.BackupPolicy(datasource_types=["{ADLS}"], policy_rules=[
                m.AzureBackupRule(
                    name="{RULE_NAME}", data_store=store,
                    backup_parameters=m.AzureBackupParams(backup_type="{KIND.backup_type}"),
                    trigger=m.ScheduleBasedTriggerContext(
                        schedule=m.BackupSchedule(repeating_time_intervals=["R/2026-01-05T02:00:00+00:00/P1D"],
                                                  time_zone="UTC"),
                        tagging_criteria=[m.TaggingCriteria(tag_info=m.RetentionTag(tag_name="Default"),
                                                            tagging_priority=99, is_default=True)])),
                m.AzureRetentionRule(name="Default", is_default=True, lifecycles=[m.SourceLifeCycle(
                    delete_after=m.AbsoluteDeleteOption(duration="P30D"), source_data_store=store,
                    target_data_store_copy_settings=[])]),
            ])))
        print("policy:", policy.id)
        instance = m.BackupInstance(
            object_type="BackupInstance", friendly_name=INSTANCE,
            data_source_info=m.Datasource(
                object_type="Datasource", datasource_type="{ADLS}", resource_id=ACCOUNT_ID,
                resource_name=ACCOUNT, resource_type="Microsoft.Storage/storageAccounts",
                resource_location=LOCATION, resource_uri=ACCOUNT_ID),
            policy_info=m.PolicyInfo(policy_id=policy.id, policy_parameters=m.PolicyParameters(
                backup_datasource_parameters_list=[m.AdlsBlobBackupDatasourceParameters(
                    containers_list=["documents", "images", "logs"])])))
        # Backup readiness: fails with UserErrorMissingRequiredPermissions while the vault's identity lacks a role.
        client.backup_instances.begin_validate_for_backup(
            GROUP, VAULT, m.ValidateForBackupRequest(backup_instance=instance)).result()
        created = client.backup_instances.begin_create_or_update(
            GROUP, VAULT, INSTANCE, m.BackupInstanceResource(properties=instance)).result()
        print("instance:", created.name, created.properties.current_protection_state)

    if "3" in parts:  # an ad hoc backup; the poller returns when its job ends
        poller = client.backup_instances.begin_adhoc_backup(GROUP, VAULT, INSTANCE, m.TriggerBackupRequest(
            backup_rule_options=m.AdHocBackupRuleOptions(
                rule_name="{RULE_NAME}",
                trigger_option=m.AdhocBackupTriggerOption(retention_tag_override="Default"))))
        job = poller.result()
        print("job:", job.job_id, client.jobs.get(GROUP, VAULT, job.job_id).properties.status)
        for point in client.recovery_points.list(GROUP, VAULT, INSTANCE):
            print("recovery point:", point.name, point.properties.recovery_point_time)
"""

_APP = f"""
A script signs in as an application, not as you. Register one of your own (as a Lab Trainee you may: you are its
owner, and no other trainee sees it):

1. **Security** > **App registrations** > **+ New registration**: name **{APP_NAME}-{{code}}**, **Register**.
2. On its page note the **Application (client) ID** and the **Directory (tenant) ID** (`{{tenant_id}}`).
3. **Certificates & secrets** > **+ New client secret**: a description, **Expires** 180 days, **Add**. Copy the
   **Value** now: it is shown only this once (Strongroom keeps only a hash of it).
"""

_ROLE = f"""
The application's service principal holds no role yet, so it may do nothing. Give it what a backup script needs,
and no more:

1. Open the resource group **{{backup_group}}** > **Access control (IAM)** > **+ Add role assignment**.
2. **Role**: **{ROLE}** (manages backups; cannot delete vaults nor give access to others).
3. **Member**: your app's service principal, **{APP_NAME}-{{code}}** (*Service principal*). **Review + assign**.
"""

_VAULT = f"""
Now the script. On the machine where Strongroom runs (`make run` serves the API over HTTPS at `{{api_base_url}}`,
with Strongroom's own CA in `var/tls/ca.pem`), with `azure-identity` and `azure-mgmt-dataprotection` installed,
save this as `automate.py` in Strongroom's folder. Your sandbox's values are filled in; the app's client id
and secret come from the environment, never from the file:

{SCRIPT}
Run part 1, as your service principal:

    export AZURE_CLIENT_ID=<your app's Application (client) ID>
    export AZURE_CLIENT_SECRET=<the secret's Value>
    python automate.py 1

The vault **{VAULT_NAME}** appears in **{{backup_group}}**; its **Activity log** entry names your service
principal as the caller.
"""

_INSTANCE = f"""
Run `python automate.py 2`: it creates the policy **{POLICY_NAME}** (daily at 02:00 UTC, kept 30 days), asks
**validateForBackup** whether the vault may back up **{{source_account}}**, then creates the backup instance
**{INSTANCE_NAME}** and waits until its Configure protection job has ended.

The first run may stop with `UserErrorMissingRequiredPermissions`: the vault's managed identity needs
*Storage Account Backup Contributor* on the account, and your script's role cannot assign roles. Assign it
yourself (see the hints), then run part 2 again.
"""

_BACKUP = """
Run `python automate.py 3`: it starts an ad hoc backup with the policy's Default retention and waits on the SDK's
poller until the backup job ends, then prints the job's status and the instance's recovery points. The job is
listed in **Backup jobs**, started by your service principal.
"""


def _unavailable() -> str:
    from django.urls import NoReverseMatch, reverse

    try:
        reverse("portal:app_list")
    except NoReverseMatch:
        return "App registrations are not in this installation."
    return ""


LAB = register(Lab(
    slug="sdk-automation",
    title="Automate backups with the Azure SDK",
    summary="Register an application, give its service principal Backup Contributor, and let a Python script with "
            "Microsoft's azure-mgmt-dataprotection create a vault, a policy and a backup instance and run a backup.",
    learn=(
        "App registrations, client secrets (shown once) and service principals: identity for scripts",
        "Least privilege for automation: Backup Contributor on one resource group",
        "ClientSecretCredential and DataProtectionMgmtClient pointed at Strongroom over HTTPS",
        "Long-running operations: the SDK's pollers wait for the vault, the instance and the backup job",
        "Backup readiness from a script: validateForBackup and the vault identity's missing roles",
    ),
    minutes=30,
    document=Document("About Azure Data Lake Storage backup", "001_d49106e70ab95382.txt"),
    order=70,
    protects=("source_account",),
    unavailable=_unavailable,
    steps=(
        Step("app", "Register an application with a client secret", _APP, check_app, solve_app, hints=(
            "Security > App registrations (in the left menu); + New registration needs only a name.",
            "The secret's Value is shown once. Lost it? Delete that secret and add another.",
        )),
        Step("role", f"Give its service principal {ROLE}", _ROLE, check_role, solve_role, hints=(
            "The role goes on the resource group {backup_group}, not on the subscription (you cannot assign there).",
            f"In the Member picker, service principals are listed with (Service principal) after their name: "
            f"{APP_NAME}-{{code}}.",
        )),
        Step("vault", "Create a vault with the SDK", _VAULT, check_vault, solve_vault, hints=(
            "AuthorizationFailed: the role of step 2 is missing, or you signed in with another app's id.",
            "AADSTS7000215 (invalid client secret): AZURE_CLIENT_SECRET must be the secret's Value, not its Secret ID.",
            "An SSL error: run from Strongroom's folder (var/tls/ca.pem), or give the CA file's full path.",
        )),
        Step("instance", "Create a policy and protect the storage account with the SDK", _INSTANCE, check_instance,
             solve_instance, hints=(
                 f"UserErrorMissingRequiredPermissions: open {VAULT_NAME} > Backup instances > + Backup, pick "
                 "{source_account} and select Assign missing roles (then cancel the wizard), or add Storage Account "
                 f"Backup Contributor on {{source_account}} for the managed identity {VAULT_NAME} in Access control (IAM).",
                 "Role assignments take effect at once here; run python automate.py 2 again.",
             )),
        Step("backup", "Run an ad hoc backup and wait for it", _BACKUP, check_backup, solve_backup, hints=(
            "poller.result() returns the job's id (OperationJobExtendedInfo); client.jobs.get reads the job.",
            f"The rule name must be the policy's backup rule ({RULE_NAME}) and the retention tag one of its rules.",
        )),
    ),
))
