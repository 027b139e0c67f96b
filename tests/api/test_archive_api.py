"""The archive tier through the ARM API, driven by Microsoft's SDK: a PostgreSQL policy whose Default rule tiers to
ArchiveStore (``targetDataStoreCopySettings`` + an ArchiveStore lifecycle), created and read back; an archived
point's ``recoveryPointDataStoresDetails``; ``AzureBackupRestoreWithRehydrationRequest`` through the restore route
(the operation follows the Rehydrate job; the Restore job follows once the point is restorable)."""

from __future__ import annotations

import datetime as dt

import pytest

from protection.jobs import runner as jobs
from protection.models import BackupPolicy, Job, JobOperation
from protection.policies import services as svc
from protection.restores import readiness, rehydration, services as restore_services, targets
from protection.tiering import services as tiering
from security import services as security_services
from tests.api.test_policies import sdk_policy
from tests.protection._restore_fixtures import (  # noqa: F401  (fixtures)
    PG, backup, inventory, make_policy, new_account, pg_database, protect, tree_of, vault,
)

pytestmark = pytest.mark.django_db


def tiered_policy(copy_after):
    from azure.mgmt.dataprotection import models as m

    policy = sdk_policy(PG, frequency="Weekly", starts=("2026-01-05T03:00:00+00:00",), default="P1Y")
    default = next(r for r in policy.properties.policy_rules if getattr(r, "name", "") == "Default")
    archive = lambda: m.DataStoreInfoBase(data_store_type="ArchiveStore", object_type="DataStoreInfoBase")  # noqa: E731
    default.lifecycles[0].target_data_store_copy_settings = [m.TargetCopySetting(copy_after=copy_after, data_store=archive())]
    default.lifecycles.append(m.SourceLifeCycle(delete_after=m.AbsoluteDeleteOption(duration="P2Y"),
                                                source_data_store=archive(), target_data_store_copy_settings=[]))
    return policy


def test_the_sdk_creates_and_reads_back_a_tiering_policy(lab, vault, sdk_client, arm):
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.dataprotection import models as m

    client = sdk_client(lab.trainer, lab.lab_group.subscription.subscription_id)
    rg = lab.lab_group.name
    created = client.backup_policies.create_or_update(rg, vault.name, "pg-tiered",
                                                      tiered_policy(m.CustomCopyOption(duration="P3M")))
    policy = BackupPolicy.objects.get(vault=vault, name="pg-tiered")
    assert svc.spec_of(policy).tiering == svc.Tiering(3, svc.Retention(2, "Years"))
    fetched = client.backup_policies.get(rg, vault.name, "pg-tiered")
    assert fetched.as_dict() == created.as_dict()
    default = next(r for r in fetched.properties.policy_rules if getattr(r, "name", "") == "Default")
    copy = default.lifecycles[0].target_data_store_copy_settings[0]
    assert isinstance(copy.copy_after, m.CustomCopyOption) and copy.copy_after.duration == "P3M"
    assert copy.data_store.data_store_type == "ArchiveStore"
    assert default.lifecycles[1].source_data_store.data_store_type == "ArchiveStore"
    assert default.lifecycles[1].delete_after.duration == "P2Y"
    on_expiry = client.backup_policies.create_or_update(rg, vault.name, "pg-on-expiry", tiered_policy(m.CopyOnExpiryOption()))
    assert isinstance(next(r for r in on_expiry.properties.policy_rules if getattr(r, "name", "") == "Default")
                      .lifecycles[0].target_data_store_copy_settings[0].copy_after, m.CopyOnExpiryOption)
    with pytest.raises(HttpResponseError) as refused:  # a move before 3 months: said, naming the field
        client.backup_policies.create_or_update(rg, vault.name, "pg-early", tiered_policy(m.CustomCopyOption(duration="P1M")))
    assert "at least 3 months old" in refused.value.error.message


@pytest.mark.django_db(transaction=True)
def test_a_rehydrating_restore_through_the_sdk(lab, vault, make_policy, inventory, pg_database, sdk_client):
    from azure.mgmt.dataprotection import models as m
    from portal.inventory import services as inv

    source = pg_database("sr_apiarch")
    inv.refresh_postgres_server(lab.trainer, inventory.server)
    instance = protect(lab, vault, make_policy(PG, default=svc.Retention(1, "Years")), inventory.server)
    point = backup(lab, instance)
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=100))
    jobs.run(tiering.move_to_archive(lab.trainer, point).pk)
    group = vault.resource_group
    client = sdk_client(lab.trainer, group.subscription.subscription_id)
    [listed] = client.recovery_points.list(group.name, vault.name, instance.name)
    assert listed.properties.recovery_point_data_stores_details[0].type == "ArchiveStore"

    account = new_account(lab)
    container = inv.create_container(lab.trainer, account, name="pgdumps")
    restore_services.assign_restore_roles(lab.trainer, point, targets.PgFilesTarget(container.resource_id, "", ""),
                                          readiness.SCOPE_RESOURCE)
    body = m.AzureBackupRestoreWithRehydrationRequest(
        recovery_point_id=str(point.pk), source_data_store_type="ArchiveStore", rehydration_priority="Standard",
        rehydration_retention_duration="P12D",
        restore_target_info=m.RestoreFilesTargetInfo(
            recovery_option="FailIfExists", restore_location=vault.region_id,
            target_details=m.TargetDetails(file_prefix="sdk/", restore_target_location_type="AzureBlobs",
                                           url=f"https://{account.name}.blob.core.windows.net/pgdumps",
                                           target_resource_arm_id=container.resource_id)))
    poller = client.backup_instances.begin_trigger_restore(group.name, vault.name, instance.name, body)
    rehydrate = Job.objects.get(instance=instance, operation=JobOperation.REHYDRATE)
    assert rehydrate.parameters["rehydrationPriority"] == "Standard"
    jobs.run(rehydrate.pk)
    assert poller.result(timeout=60).job_id == str(rehydrate.pk)
    [listed] = client.recovery_points.list(group.name, vault.name, instance.name)
    assert listed.properties.recovery_point_data_stores_details[0].rehydration_status == "CREATE_IN_PROGRESS"
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(hours=14))
    assert rehydration.settle()["restoresStarted"] == 0  # Standard: 15 hours
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(hours=1, minutes=1))
    assert rehydration.settle()["restoresStarted"] == 1
    restore = Job.objects.get(instance=instance, operation=JobOperation.RESTORE)
    jobs.run(restore.pk)
    restore.refresh_from_db()
    assert restore.status == "Completed", restore.error_message
    assert {"sdk/globals.sql", f"sdk/{source}.dump"} <= set(tree_of(container.path))


@pytest.mark.parametrize("after", ["P0M", "P2M"])
def test_a_move_before_three_months_is_a_400_at_copy_after(lab, vault, arm, after):
    """P0M was stored as CopyOnExpiryOption (a falsy month count read as 'on expiry'); P2M named the archive
    lifecycle's deleteAfter instead of the field that was wrong."""
    from azure.mgmt.dataprotection import models as m
    from tests.api.test_policies import path

    body = tiered_policy(m.CustomCopyOption(duration="P3M")).as_dict()
    default = next(r for r in body["properties"]["policyRules"] if r["name"] == "Default")
    default["lifecycles"][0]["targetDataStoreCopySettings"][0]["copyAfter"]["duration"] = after
    response = arm(lab.trainer).put(path(vault, "pg-early"), body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["target"].endswith("lifecycles[0].targetDataStoreCopySettings[0].copyAfter.duration"), error
    assert "at least 3 months old" in error["message"] and after in error["message"]
    assert not BackupPolicy.objects.filter(vault=vault, name="pg-early").exists()
