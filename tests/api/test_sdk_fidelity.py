"""SDK fidelity: every operation group of azure-mgmt-dataprotection 2.2.0 that Strongroom serves, driven
with Microsoft's own client against the live server. Each call returns the SDK's model (each poller reaches
its terminal state with the result type the SDK declares), and a 400, 403, 404 or 409 from each group
parses into azure-core's exception (ResourceNotFoundError for 404, ResourceExistsError for 409, as the
SDK's error map says) carrying ARM's error code.

Two scenarios, lean on purpose (CI runs them on two cores): the vault-level resources (vaults, policies,
Resource Guards and their proxies), and an instance's life (validate, protect, back up, restore, stop,
suspend, resume, delete, undelete) with its recovery points and jobs. The other tests of tests/api/ check
each route's words; these check that the SDK reads them."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.mgmt.dataprotection import models as m

from protection.jobs import runner as jobs
from protection.models import Job, JobOperation
from protection.restores import readiness as restore_readiness
from protection.restores import services as restore_services
from security import clock
from security import services as security_services
from tests.api.test_backup_restore import _restore_body
from tests.api.test_instances import grant_roles, sdk_instance
from tests.api.test_policies import sdk_policy
from tests.protection._restore_fixtures import (  # noqa: F401  (fixtures)
    ADLS, adls_target, inventory, latest_point, make_policy, new_account, vault,
)
from vaults import services as vault_services

pytestmark = pytest.mark.django_db(transaction=True)

BV = "Microsoft.DataProtection/backupVaults"
PROXY = "DppResourceGuardProxy"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def refused(call, status: int, code: str):
    """``call()`` fails with ARM's ``status`` and ``code``, as the exception class azure-core maps it to."""
    kind = {404: ResourceNotFoundError, 409: ResourceExistsError}.get(status, HttpResponseError)
    with pytest.raises(HttpResponseError) as raised:
        call()
    error = raised.value
    assert type(error) is kind, (type(error), error)
    assert error.status_code == status and error.error.code == code, (error.status_code, error.error.code, error.message)
    return error


def done(poller, timeout: float = 30):
    """The long-running operation's result, once its poller reached Succeeded."""
    result = poller.result(timeout=timeout)
    assert poller.done() and poller.status() == "Succeeded", poller.status()
    return result


def failed(poller, code: str):
    """The long-running operation ends Failed: its poller raises azure-core's error with the operation's code."""
    with pytest.raises(HttpResponseError) as raised:
        poller.result(timeout=30)
    assert poller.status() == "Failed" and raised.value.error.code == code, (poller.status(), raised.value.message)
    return raised.value


def _run(instance_name: str, operation: str) -> Job:
    job = Job.objects.filter(instance_name=instance_name, operation=operation).order_by("-start_time").first()
    return jobs.run(job.pk)


# =================================================================================================
# Vaults, policies, Resource Guards and their proxies
# =================================================================================================


def test_vault_level_operation_groups_read_and_refuse_in_the_sdks_terms(lab, sdk_client, settings):
    settings.STRONGROOM_API_PAGE_SIZE = 1  # every list the SDK follows here crosses pages when it has 2+ items
    owner, outsider = lab.trainer, lab.personas["outsider"].principal
    group = lab.lab_group.name
    client = sdk_client(owner, lab.lab_group.subscription.subscription_id)
    stranger = sdk_client(outsider, lab.lab_group.subscription.subscription_id)

    # --- backup_vaults
    name = _name("bv-fid")
    body = m.BackupVaultResource(location="eastus", tags={"made-by": "sdk"}, identity=m.DppIdentityDetails(type="SystemAssigned"),
                                 properties=m.BackupVault(storage_settings=[m.StorageSetting(
                                     datastore_type="VaultStore", type="LocallyRedundant")]))
    created = done(client.backup_vaults.begin_create_or_update(group, name, body))
    assert isinstance(created, m.BackupVaultResource) and created.properties.provisioning_state == "Succeeded"
    got = client.backup_vaults.get(group, name)
    assert isinstance(got, m.BackupVaultResource) and got.id == created.id
    patched = done(client.backup_vaults.begin_update(group, name, m.PatchResourceRequestInput(tags={"patched": "yes"})))
    assert isinstance(patched, m.BackupVaultResource) and patched.tags == {"patched": "yes"}
    other = done(client.backup_vaults.begin_create_or_update(group, _name("bv-fid"), body))
    for listed in (client.backup_vaults.get_in_resource_group(group), client.backup_vaults.get_in_subscription()):
        assert {name, other.name} <= {v.name for v in listed}
    taken = client.backup_vaults.check_name_availability(group, "eastus", m.CheckNameAvailabilityRequest(name=name, type=BV))
    assert isinstance(taken, m.CheckNameAvailabilityResult) and taken.name_available is False
    refused(lambda: client.backup_vaults.begin_create_or_update(group, _name("bv-fid"), m.BackupVaultResource(
        location="atlantis", properties=body.properties)), 400, "LocationNotAvailableForResourceType")
    refused(lambda: stranger.backup_vaults.get(group, name), 403, "AuthorizationFailed")
    refused(lambda: client.backup_vaults.get(group, name + "-none"), 404, "ResourceNotFound")

    # --- backup_policies (a policy in the vault: the vault's delete is a 409 meanwhile)
    policy = client.backup_policies.create_or_update(group, name, "pol-fid", sdk_policy(ADLS))
    assert isinstance(policy, m.BaseBackupPolicyResource) and isinstance(policy.properties, m.BackupPolicy)
    assert client.backup_policies.get(group, name, "pol-fid").as_dict() == policy.as_dict()
    assert [p.name for p in client.backup_policies.list(group, name)] == ["pol-fid"]
    refused(lambda: client.backup_policies.create_or_update(group, name, "pol-bad", sdk_policy(ADLS, default="P0D")),
            400, "InvalidParameter")
    refused(lambda: stranger.backup_policies.get(group, name, "pol-fid"), 403, "AuthorizationFailed")
    refused(lambda: client.backup_policies.get(group, name, "pol-none"), 404, "ResourceNotFound")
    refused(lambda: done(client.backup_vaults.begin_delete(group, name)), 409, "UserErrorVaultNotEmpty")
    assert client.backup_policies.delete(group, name, "pol-fid") is None

    # --- resource_guards (in the security subscription)
    security = lab.security_group.name
    guards = sdk_client(owner, lab.security_subscription.subscription_id)
    guards_stranger = sdk_client(outsider, lab.security_subscription.subscription_id)
    guard_name = _name("rg-guard-fid")
    guard = guards.resource_guards.put(security, guard_name, m.ResourceGuardResource(
        location="eastus", properties=m.ResourceGuard(vault_critical_operation_exclusion_list=[])))
    assert isinstance(guard, m.ResourceGuardResource) and guard.properties.provisioning_state == "Succeeded"
    assert guards.resource_guards.get(security, guard_name).as_dict() == guard.as_dict()
    refused(lambda: guards.resource_guards.put(security, _name("rg-guard-fid"), m.ResourceGuardResource(
        location="atlantis")), 400, "LocationNotAvailableForResourceType")
    refused(lambda: guards_stranger.resource_guards.get(security, guard_name), 403, "AuthorizationFailed")
    refused(lambda: guards.resource_guards.get(security, guard_name + "-none"), 404, "ResourceNotFound")

    # --- dpp_resource_guard_proxy (the guard is linked: its delete is a 409 meanwhile)
    link = m.ResourceGuardProxyBaseResource(properties=m.ResourceGuardProxyBase(resource_guard_resource_id=guard.id))
    proxy = client.dpp_resource_guard_proxy.create_or_update(group, name, PROXY, link)
    assert isinstance(proxy, m.ResourceGuardProxyBaseResource) and proxy.properties.resource_guard_resource_id == guard.id
    assert client.dpp_resource_guard_proxy.get(group, name, PROXY).as_dict() == proxy.as_dict()
    assert [p.name for p in client.dpp_resource_guard_proxy.list(group, name)] == [PROXY]
    assert client.backup_vaults.get(group, name).properties.is_vault_protected_by_resource_guard is True
    refused(lambda: client.dpp_resource_guard_proxy.create_or_update(group, name, "OtherProxy", link), 400, "InvalidParameter")
    refused(lambda: stranger.dpp_resource_guard_proxy.get(group, name, PROXY), 403, "AuthorizationFailed")
    refused(lambda: client.dpp_resource_guard_proxy.get(group, name, "OtherProxy"), 404, "ResourceNotFound")
    refused(lambda: guards.resource_guards.delete(security, guard_name), 409, "Conflict")
    unlocked = client.dpp_resource_guard_proxy.unlock_delete(group, name, PROXY, m.UnlockDeleteRequest(
        resource_guard_operation_requests=[], resource_to_be_deleted=proxy.id))
    assert isinstance(unlocked, m.UnlockDeleteResponse)  # the Owner passes the guard with a standing role: no expiry
    assert client.dpp_resource_guard_proxy.delete(group, name, PROXY) is None
    assert list(client.dpp_resource_guard_proxy.list(group, name)) == []

    # Everything gone, through the SDK.
    assert guards.resource_guards.delete(security, guard_name) is None
    refused(lambda: guards.resource_guards.get(security, guard_name), 404, "ResourceNotFound")
    assert done(client.backup_vaults.begin_delete(group, name)) is None
    refused(lambda: client.backup_vaults.get(group, name), 404, "ResourceNotFound")


# =================================================================================================
# An instance's life, its recovery points and its jobs
# =================================================================================================


@dataclass
class Scene:
    """One instance's scenario: the SDK as the Owner (``client``), as an outsider (``stranger``) and as a
    Reader (``looker``), in ``group`` / ``vault``, for the instance ``name``."""

    lab: object
    client: object
    stranger: object
    looker: object
    group: str
    vault: object
    name: str = "bi-fid"

    @property
    def at(self) -> tuple:
        return self.group, self.vault.name, self.name

    def state(self) -> str:
        return self.client.backup_instances.get(*self.at).properties.current_protection_state


def test_instance_operation_groups_poll_to_their_results_and_refuse_in_the_sdks_terms(lab, vault, inventory, make_policy,
                                                                                      sdk_client, settings):
    settings.STRONGROOM_API_PAGE_SIZE = 2
    subscription = lab.lab_group.subscription.subscription_id
    scene = Scene(lab, *(sdk_client(p, subscription) for p in (
        lab.trainer, lab.personas["outsider"].principal, lab.personas["reader"].principal)), lab.lab_group.name, vault)
    policy = make_policy(ADLS)
    _protect(scene, inventory, policy)
    backup_job, point = _back_up(scene, policy)
    restore_job = _restore(scene, point)
    _jobs(scene, backup_job, restore_job)
    _stop_suspend_resume(scene)
    _delete_and_undelete(scene)


def _protect(scene, inventory, policy):
    """validateForBackup (Failed on the missing role, then Succeeded), configure protection, get, list."""
    client, group, vault, name = scene.client, scene.group, scene.vault, scene.name
    wanted = sdk_instance(scene.lab, inventory, ADLS, policy, name)
    check = m.ValidateForBackupRequest(backup_instance=wanted.properties)
    failed(client.backup_instances.begin_validate_for_backup(group, vault.name, check), "UserErrorMissingRequiredPermissions")
    grant_roles(scene.lab, vault, inventory, ADLS)
    assert isinstance(done(client.backup_instances.begin_validate_for_backup(group, vault.name, check)),
                      m.OperationJobExtendedInfo)
    poller = client.backup_instances.begin_create_or_update(*scene.at, wanted)
    _run(name, JobOperation.CONFIGURE_PROTECTION)
    instance = done(poller)
    assert isinstance(instance, m.BackupInstanceResource)
    assert instance.properties.current_protection_state == "ProtectionConfigured"
    assert client.backup_instances.get(*scene.at).as_dict() == instance.as_dict()
    assert [i.name for i in client.backup_instances.list(group, vault.name)] == [name]
    refused(lambda: scene.looker.backup_instances.begin_create_or_update(group, vault.name, "bi-fid-2", wanted), 403,
            "AuthorizationFailed")
    refused(lambda: client.backup_instances.get(group, vault.name, "bi-none"), 404, "ResourceNotFound")
    refused(lambda: client.backup_policies.delete(group, vault.name, policy.name), 409, "BackupPolicyInUse")


def _back_up(scene, policy):
    """An ad hoc backup followed to its job, and its recovery point through recovery_points."""
    client, at = scene.client, scene.at
    trigger = m.TriggerBackupRequest(backup_rule_options=m.AdHocBackupRuleOptions(
        rule_name=policy.parsed.backup_rule_name, trigger_option=m.AdhocBackupTriggerOption(retention_tag_override="Default")))
    poller = client.backup_instances.begin_adhoc_backup(*at, trigger)
    backup_job = _run(scene.name, JobOperation.BACKUP)
    backed_up = done(poller)
    assert isinstance(backed_up, m.OperationJobExtendedInfo) and backed_up.job_id == str(backup_job.pk)
    refused(lambda: client.backup_instances.begin_adhoc_backup(*at, m.TriggerBackupRequest(
        backup_rule_options=m.AdHocBackupRuleOptions(rule_name="NoSuchRule", trigger_option=m.AdhocBackupTriggerOption()))),
        400, "UserErrorInvalidBackupRule")
    refused(lambda: scene.looker.backup_instances.begin_adhoc_backup(*at, trigger), 403, "AuthorizationFailed")
    point = latest_point(backup_job.instance)
    points = list(client.recovery_points.list(*at))
    assert [p.name for p in points] == [str(point.pk)] and isinstance(points[0], m.AzureBackupRecoveryPointResource)
    got = client.recovery_points.get(*at, str(point.pk))
    assert isinstance(got.properties, m.AzureBackupDiscreteRecoveryPoint) and got.as_dict() == points[0].as_dict()
    refused(lambda: next(client.recovery_points.list(*at, filter="startDate eq 'soon'")), 400, "InvalidFilter")
    refused(lambda: scene.stranger.recovery_points.get(*at, str(point.pk)), 403, "AuthorizationFailed")
    refused(lambda: client.recovery_points.get(*at, str(uuid.uuid4())), 404, "ResourceNotFound")
    return backup_job, point


def _restore(scene, point):
    client, at = scene.client, scene.at
    target = new_account(scene.lab)
    restore = m.AzureBackupRecoveryPointBasedRestoreRequest(_restore_body(point, target, "documents"))
    restore_services.assign_restore_roles(scene.lab.trainer, point, adls_target(target), restore_readiness.SCOPE_RESOURCE)
    validated = done(client.backup_instances.begin_validate_for_restore(
        *at, m.ValidateRestoreRequestObject(restore_request_object=restore)))
    assert isinstance(validated, m.OperationJobExtendedInfo)
    poller = client.backup_instances.begin_trigger_restore(*at, restore)
    restore_job = _run(scene.name, JobOperation.RESTORE)
    restored = done(poller)
    assert isinstance(restored, m.OperationJobExtendedInfo) and restored.job_id == str(restore_job.pk)
    refused(lambda: client.backup_instances.begin_trigger_restore(*at, m.AzureBackupRecoveryPointBasedRestoreRequest(
        {**restore.as_dict(), "recoveryPointId": "not-a-point"})), 400, "UserErrorRecoveryPointNotFound")
    return restore_job


def _jobs(scene, backup_job, restore_job):
    """backupJobs in pages of two (STRONGROOM_API_PAGE_SIZE), the SDK following nextLink."""
    client, group, vault = scene.client, scene.group, scene.vault
    pages = [list(page) for page in client.jobs.list(group, vault.name).by_page()]
    assert len(pages) >= 2 and all(len(page) <= 2 for page in pages)
    listed = [job for page in pages for job in page]
    assert {j.name for j in listed} >= {str(backup_job.pk), str(restore_job.pk)}
    assert all(isinstance(j, m.AzureBackupJobResource) for j in listed)
    one = client.jobs.get(group, vault.name, str(restore_job.pk))
    assert one.properties.operation == "Restore" and one.properties.status == "Completed"
    refused(lambda: next(client.jobs.list(group, vault.name, params={"$skiptoken": "bm90LWpzb24"})), 400,
            "InvalidSkipToken")
    refused(lambda: scene.stranger.jobs.get(group, vault.name, str(restore_job.pk)), 403, "AuthorizationFailed")
    refused(lambda: client.jobs.get(group, vault.name, str(uuid.uuid4())), 404, "ResourceNotFound")


def _stop_suspend_resume(scene):
    """Pollers with no result: each reaches Succeeded and returns None."""
    instances, at = scene.client.backup_instances, scene.at
    stop = m.StopProtectionRequest(resource_guard_operation_requests=[])
    assert done(instances.begin_stop_protection(*at, stop)) is None
    assert scene.state() == "ProtectionStopped"
    refused(lambda: done(instances.begin_resume_backups(*at)), 400, "UserErrorInvalidOperationForCurrentState")
    assert done(instances.begin_resume_protection(*at)) is None
    assert scene.state() == "ProtectionConfigured"
    suspend = m.SuspendBackupRequest(resource_guard_operation_requests=[])
    assert done(instances.begin_suspend_backups(*at, suspend)) is None
    assert scene.state() == "BackupSchedulesSuspended"
    assert done(instances.begin_resume_backups(*at)) is None
    assert scene.state() == "ProtectionConfigured"
    refused(lambda: scene.looker.backup_instances.begin_stop_protection(*at, stop), 403, "AuthorizationFailed")


def _delete_and_undelete(scene):
    """Refused while the vault is immutable (the immutability guard's 409), soft deleted, read as a deleted
    instance, undeleted; deleted again and left past its purge time: the soft delete guard's 409."""
    client, group, vault, name, trainer = scene.client, scene.group, scene.vault, scene.name, scene.lab.trainer
    vault_services.update_immutability(trainer, vault, state="Unlocked")
    refused(lambda: client.backup_instances.begin_delete(*scene.at), 409, "UserErrorImmutableVaultOperationNotAllowed")
    vault_services.update_immutability(trainer, vault, state="Disabled")
    poller = client.backup_instances.begin_delete(*scene.at)
    _run(name, JobOperation.UNCONFIGURE)
    assert done(poller) is None
    refused(lambda: client.backup_instances.get(*scene.at), 404, "ResourceNotFound")
    deleted = list(client.deleted_backup_instances.list(group, vault.name))
    assert [d.name for d in deleted] == [name] and isinstance(deleted[0], m.DeletedBackupInstanceResource)
    assert client.deleted_backup_instances.get(*scene.at).as_dict() == deleted[0].as_dict()
    assert deleted[0].properties.current_protection_state == "SoftDeleted"
    assert done(client.deleted_backup_instances.begin_undelete(*scene.at)) is None
    assert scene.state() == "ProtectionStopped"
    refused(lambda: client.deleted_backup_instances.get(*scene.at), 404, "ResourceNotFound")
    refused(lambda: next(scene.stranger.deleted_backup_instances.list(group, vault.name)), 403, "AuthorizationFailed")
    poller = client.backup_instances.begin_delete(*scene.at)
    _run(name, JobOperation.UNCONFIGURE)
    done(poller)
    security_services.move_lab_clock(trainer, forward=dt.timedelta(days=20))
    clock.forget_cached_offset()
    refused(lambda: client.deleted_backup_instances.begin_undelete(*scene.at), 409, "UserErrorSoftDeletePurgeStarted")
