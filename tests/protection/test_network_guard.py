"""Every data movement against a vault that denies public network access: each datasource's backup (Backup now
and the job authorized again when it runs), restore (start and job), browsing and downloading a recovery point —
refused without an approved private endpoint in the datasource's VNet, let through with one; verify,
validation and management are not data movements. Backup readiness shows the network before the click."""

from __future__ import annotations

import pytest

from portal.inventory import services as inv
from protection import readiness
from protection.backups import services as backups
from protection.models import JobStatus
from protection.restores import browse, services as restores, targets
from security import operations as ops
from security.guards import GuardDenied, evaluate
from tests.protection._restore_fixtures import (  # noqa: F401
    ADLS, ESAN, PG, backup, backup_now_and_run, filled, inventory, latest_point, make_policy,
    new_account, pg_database, protect, restore_and_run, vault,
)
from tests.protection._backups_fixtures import run_job
from tests.vaults._network_fixtures import make_vnet
from vaults.models import PublicNetworkAccess
from vaults.networking import guard
from vaults.networking import services as net

pytestmark = pytest.mark.django_db

OK = (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_WARNINGS)


def _in_subnet(subnet, *rows):
    for row in rows:
        type(row).objects.filter(pk=row.pk).update(network_subnet=subnet)


def _refused(code, fn, *args, **kwargs):
    with pytest.raises(GuardDenied) as exc:
        fn(*args, **kwargs)
    assert exc.value.decision.code == code, exc.value.decision.reason
    return exc.value.decision


@pytest.fixture
def world(lab, vault, make_policy, filled, pg_database):
    """A VNet with an approved endpoint to the vault (made first, as the rules want), the three datasources in
    its subnet, each protected and backed up once while public access was still allowed."""
    subnet = make_vnet(lab)
    connection = net.create_private_endpoint(lab.trainer, name="pe-bv-protect", resource_group=lab.lab_group,
                                             vault=vault, subnet=subnet, integrate_dns=True, tags={})
    san = filled.volumes[0].volume_group.elastic_san
    _in_subnet(subnet, filled.account, san, filled.server)
    source_db = pg_database("sr_net")
    inv.refresh_postgres_server(lab.trainer, filled.server)
    instances = {
        ADLS: protect(lab, vault, make_policy(ADLS), filled.account),
        ESAN: protect(lab, vault, make_policy(ESAN), filled.volumes[0]),
        PG: protect(lab, vault, make_policy(PG), filled.server),
    }
    points = {kind: backup(lab, instance) for kind, instance in instances.items()}
    return {"subnet": subnet, "connection": connection, "instances": instances, "points": points,
            "inventory": filled, "source_db": source_db}


def _targets(lab, world, subnet, suffix):
    account = new_account(lab)
    _in_subnet(subnet, account)
    account.refresh_from_db()
    volume = world["inventory"].volumes[0]
    return {
        ADLS: targets.AdlsTarget(account.resource_id, True, ()),
        ESAN: targets.VolumeTarget(volume.volume_group.resource_id, f"vol-net-{suffix}"),
        PG: targets.PgDatabaseTarget(world["source_db"], world["inventory"].server.resource_id,
                                     f"{world['source_db']}_r{suffix}"),
    }


def test_every_data_movement_needs_an_approved_endpoint_in_the_datasource_vnet(lab, vault, world, pg_login):
    trainer = lab.trainer
    subnet, connection, instances, points = world["subnet"], world["connection"], world["instances"], world["points"]
    # A backup queued while the network still allowed it is authorized again when it runs.
    queued = backups.backup_now(trainer, instances[ADLS], retention_rule="Default")

    net.set_public_network_access(trainer, vault, PublicNetworkAccess.DISABLED)
    net.reject_connection(trainer, connection, description="Not yet")
    code = guard.NOT_APPROVED

    job = run_job(queued)
    assert job.status == JobStatus.FAILED and job.error_code == code, job.error_message
    assert "vnet-" in job.error_message and vault.name in job.error_message
    refused_targets = _targets(lab, world, subnet, "a")
    for kind, instance in instances.items():
        _refused(code, backups.backup_now, trainer, instance, retention_rule="Default")
        ready = readiness.check(trainer, vault, readiness.Datasource(
            instance.datasource_type, instance.datasource_resource_id, instance.datasource_name))
        assert not ready.ok and code in ready.message, kind
        restores.assign_restore_roles(trainer, points[kind], refused_targets[kind], readiness.SCOPE_RESOURCE)
        _refused(code, restores.start_restore, trainer, points[kind], refused_targets[kind])
        # Management stays allowed: validation, policies, the vault's properties.
        assert evaluate(trainer, ops.VALIDATE_RESTORE, instance).allowed
        assert evaluate(trainer, ops.POLICY_WRITE, instance.policy).allowed
    _refused(code, browse.list_folder, trainer, points[ADLS], "documents")
    _refused(code, browse.open_blob, trainer, points[ADLS], "documents", "résumé café.txt")
    _refused(code, browse.table_of_contents, trainer, points[PG], world["source_db"])

    # Approved: every movement goes through (the endpoint's A records answer in the VNet).
    net.approve_connection(trainer, connection, description="Approved for backups")
    allowed_targets = _targets(lab, world, subnet, "b")
    for kind, instance in instances.items():
        job = backup_now_and_run(trainer, instance)
        assert job.status in OK, (kind, job.error_code, job.error_message)
        job = restore_and_run(trainer, latest_point(instance), allowed_targets[kind], lab=lab)
        assert job.status in OK, (kind, job.error_code, job.error_message)
    assert browse.list_folder(trainer, points[ADLS], "documents").entries
    handle = browse.open_blob(trainer, points[ADLS], "documents", "résumé café.txt")
    try:
        assert handle.read().startswith(b"Unicode")
    finally:
        handle.close()
    assert browse.table_of_contents(trainer, points[PG], world["source_db"]).entries

    # A restore into a datasource on the public network is refused; Allow lets it through again.
    public = new_account(lab)
    public_target = targets.AdlsTarget(public.resource_id, True, ())
    restores.assign_restore_roles(trainer, points[ADLS], public_target, readiness.SCOPE_RESOURCE)
    _refused(guard.PUBLIC_ACCESS_DENIED, restores.start_restore, trainer, points[ADLS], public_target)
    net.set_public_network_access(trainer, vault, PublicNetworkAccess.ENABLED)
    job = restore_and_run(trainer, points[ADLS], public_target, lab=lab)
    assert job.status in OK, (job.error_code, job.error_message)

    # Removed: the next backup fails again.
    net.set_public_network_access(trainer, vault, PublicNetworkAccess.DISABLED)
    net.remove_connection(trainer, connection, description="Done")
    _refused(code, backups.backup_now, trainer, instances[PG], retention_rule="Default")


def test_a_queued_restore_is_refused_when_it_runs(lab, vault, world, pg_login):
    trainer = lab.trainer
    target = _targets(lab, world, world["subnet"], "q")[ADLS]
    restores.assign_restore_roles(trainer, world["points"][ADLS], target, readiness.SCOPE_RESOURCE)
    job = restores.start_restore(trainer, world["points"][ADLS], target)
    net.set_public_network_access(trainer, vault, PublicNetworkAccess.DISABLED)
    net.delete_private_endpoint(trainer, world["connection"].private_endpoint)
    job = run_job(job)
    assert job.status == JobStatus.FAILED and job.error_code == guard.NOT_APPROVED
    assert "Disconnected" in job.error_message


def test_configure_protection_marks_the_attempt_even_when_it_fails(lab, vault, make_policy, filled):
    from protection.instances import services as instance_services

    assert not vault.protection_attempted
    policy = make_policy(ADLS)
    with pytest.raises(Exception):
        instance_services.configure_protection(lab.trainer, vault=vault, policy=policy, selections=[
            instance_services.DatasourceSelection("/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/"
                                                  "storageAccounts/missing", "bi-missing", all_containers=True)])
    vault.refresh_from_db()
    assert vault.protection_attempted
    subnet = make_vnet(lab)
    _refused(guard.FIRST_ENDPOINT_CODE, net.create_private_endpoint, lab.trainer, name="pe-late",
             resource_group=lab.lab_group, vault=vault, subnet=subnet, integrate_dns=True, tags={})


@pytest.mark.date_sensitive
def test_a_scheduled_backup_the_network_refuses_fails_with_its_code(lab, vault, make_policy, filled):
    import datetime as dt

    from protection.models import Job
    from security import services as security_services
    from security.models import Alert

    instance = protect(lab, vault, make_policy(ADLS), filled.account)  # on the public network
    net.set_public_network_access(lab.trainer, vault, PublicNetworkAccess.DISABLED)
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=2))
    report = backups.dispatch_due_backups()
    [job] = Job.objects.filter(instance=instance, operation="Backup", is_user_triggered=False)
    assert report.enqueued == [job.pk] and report.refused == 0
    job = run_job(job)
    assert job.status == JobStatus.FAILED and job.error_code == guard.PUBLIC_ACCESS_DENIED
    assert "public network" in job.error_message
    assert Alert.objects.filter(name=backups.BACKUP_FAILURE_ALERT, affected_resource_id__iexact=instance.resource_id).exists()


def test_the_restore_wizard_says_the_network_refusal_on_review(lab, vault, make_policy, filled, signed_in_client):
    from django.urls import reverse

    from protection.models import Job
    from tests.protection._restore_fixtures import backup as back_up

    instance = protect(lab, vault, make_policy(ADLS), filled.account)
    point = back_up(lab, instance)
    target = new_account(lab)
    restores.assign_restore_roles(lab.trainer, point, targets.AdlsTarget(target.resource_id, True, ()),
                                  readiness.SCOPE_RESOURCE)
    net.set_public_network_access(lab.trainer, vault, PublicNetworkAccess.DISABLED)
    client = signed_in_client(lab.trainer)
    client.get(f"{reverse('protection:restore_wizard')}?instance={instance.pk}&point={point.pk}")

    def post(step, data=None):
        return client.post(reverse("protection:restore_wizard"), {"restore-current_step": step, **(data or {})})

    page = post("parameters", {"parameters-restore_option": "all",
                               "parameters-target_subscription": str(lab.lab_subscription.pk),
                               "parameters-target_storage_account": target.resource_id})
    assert "Validation passed" in page.content.decode()
    page = post("review")
    html = page.content.decode()
    assert page.status_code == 200 and guard.PUBLIC_ACCESS_DENIED in html and target.name in html
    assert not Job.objects.filter(operation="Restore").exists()
