"""Reset and take-down of a sandbox, and the bad input around them (issue 16, "Sandboxes" and "Bad input").

A reset gives the trainee a fresh sandbox seeded the same way and retires the old one at once; taking it
down deletes what it holds through the services as the provisioner, and where a guard refuses (locked
immutability) the sandbox is kept, with the refusal's words, for the lab's owner. Starting or resetting
never leaves a half-made sandbox: not with PostgreSQL down, not when seeding fails half-way.
"""

from __future__ import annotations

import datetime as dt
import socket

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from labs import sandboxes, services, tasks, teardown
from labs.models import LabRun, Sandbox
from labs.sandboxes import SandboxWorld
from portal import services as portal_services
from portal.inventory import blobs, postgres
from portal.models import ResourceGroup, Subscription
from protection import datasource_types
from protection.jobs import runner as jobs
from protection.models import Job, JobOperation, ProtectionState, RecoveryPoint
from security import services as security_services
from security.models import RoleAssignment
from tests.labs._trainee_backups import backup_now, probe_lab, protect  # noqa: F401  (fixture)
from vaults import services as vault_services
from vaults.models import BackupVault

pytestmark = pytest.mark.django_db


def on_cluster(login: str, database: str) -> tuple[bool, bool]:
    """(the login exists, the database exists) on the lab cluster, asked as its superuser."""
    with postgres.connect(sandboxes.cluster_admin()) as conn:
        role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [login]).fetchone()
        db = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
    return bool(role), bool(db)


def names_in(account) -> dict:
    return {c.name: sorted(b.name for b in blobs.iter_blobs(c)) for c in account.containers.all()}


def paths_of(code: str, settings) -> list:
    root = settings.STRONGROOM_DATA_ROOT
    return [p for p in root.rglob("*") if code in str(p)] if root.exists() else []


@pytest.fixture
def codes(monkeypatch):
    """The codes of the sandboxes provisioning made up (so a test knows the names of a rolled-back one)."""
    made, original = [], sandboxes._new_code

    def recording():
        made.append(original())
        return made[-1]

    monkeypatch.setattr(sandboxes, "_new_code", recording)
    return made


def test_reset_gives_a_fresh_sandbox_and_the_old_one_is_hidden_then_taken_down(lab, trainee, probe_lab, start,
                                                                              settings):
    run = start(probe_lab.slug)
    old = SandboxWorld(run.sandbox)
    names = old.names
    folders = [old.source_account.data_path, old.target_account.data_path, old.elastic_san.data_path]
    blob_names = names_in(old.source_account)
    # The trainee made a network of their own and put their account in it: the take-down removes it too.
    from portal.inventory import services as inventory
    from portal.inventory.models import PrivateDnsZone, VirtualNetwork

    vnet = inventory.create_virtual_network(trainee, resource_group=old.backup_group, name=f"vnet-{names.code}",
                                            region=old.source_account.region, address_prefixes="10.20.0.0/16",
                                            subnet_name="snet-a", subnet_prefix="10.20.1.0/24")
    inventory.set_datasource_network(trainee, old.source_account, vnet.subnets.get())
    zone = inventory.create_private_dns_zone(trainee, resource_group=old.backup_group, name=f"zone-{names.code}.internal")
    inventory.add_vnet_link(trainee, zone, name="link-a", virtual_network=vnet)
    from portal.inventory.disks import services as disks  # and a managed disk

    disk = disks.create_disk(trainee, resource_group=old.backup_group, name="disk-a", region=old.source_account.region,
                             size_gib=1)

    new_run = services.reset_lab(trainee, run, run_jobs_inline=True)

    new = SandboxWorld(new_run.sandbox)
    assert new.names.code != names.code and new_run.active and not LabRun.objects.get(pk=run.pk).active
    assert names_in(new.source_account) == blob_names and len(blob_names) == 3
    assert new.volume.last_checksum and new.pg_database is not None and new.target_account is not None
    # Hidden from the trainee at once: no role left in it, only the new subscription in their picker.
    retired = Sandbox.objects.get(pk=run.sandbox.pk)
    assert retired.status == Sandbox.Status.RETIRED and retired.retired_at is not None
    assert not RoleAssignment.objects.filter(principal=trainee, scope__istartswith=retired.subscription_id).exists()
    assert [s.display_name for s in portal_services.subscriptions_for(trainee)] == [new.names.subscription]
    assert on_cluster(names.pg_login, names.pg_database) == (True, True)

    gone = teardown.take_down(retired)

    assert (gone.status, gone.kept_because) == (Sandbox.Status.DELETED, "")
    assert on_cluster(names.pg_login, names.pg_database) == (False, False)
    assert not any(p.exists() for p in folders) and paths_of(names.code, settings) == []
    assert not ResourceGroup.objects.filter(subscription__resource_id=retired.subscription_id).exists()
    assert not VirtualNetwork.objects.filter(pk=vnet.pk).exists() and not PrivateDnsZone.objects.filter(pk=zone.pk).exists()
    assert not disk.image_path.exists()
    world = SandboxWorld(gone)
    assert (world.source_account, world.target_account, world.pg_server, world.security_admin is not None) == (
        None, None, None, True)
    # The new sandbox is untouched, and taking the old one down again changes nothing.
    assert on_cluster(new.names.pg_login, new.names.pg_database) == (True, True)
    assert teardown.take_down(gone).status == Sandbox.Status.DELETED


def test_locked_immutable_data_keeps_the_old_sandbox_retired_with_the_reason(lab, trainee, instructor, probe_lab,
                                                                             start, client):
    run = start(probe_lab.slug)
    world = SandboxWorld(run.sandbox)
    vault, instance = protect(trainee, world, world.source_account, datasource_types.ADLS)
    assert backup_now(trainee, instance).recovery_point is not None
    vault_services.update_immutability(trainee, vault, state="Unlocked")
    vault_services.update_immutability(trainee, vault, state="Locked", confirm_name=vault.name)

    new_run = services.reset_lab(trainee, run, run_jobs_inline=True)
    kept = teardown.take_down(run.sandbox)

    assert kept.status == Sandbox.Status.RETIRED
    assert f"Delete backup data of '{instance.name}' in the Backup vault '{vault.name}'" in kept.kept_because
    assert "immutable (immutability enabled and locked)" in kept.kept_because
    # Nothing went around the guard: the data, the vault, the seeded resources and the database stay; only
    # its schedule stopped (Stop backup, Retain as per policy), so the kept sandbox does not grow.
    instance.refresh_from_db()
    assert instance.protection_state == ProtectionState.BACKUPS_SUSPENDED
    assert RecoveryPoint.objects.filter(instance=instance).exists()
    assert BackupVault.objects.filter(pk=vault.pk).exists() and world.source_account is not None
    assert world.pg_database is not None and on_cluster(world.names.pg_login, world.names.pg_database) == (True, True)
    assert new_run.sandbox.status == Sandbox.Status.ACTIVE
    # The lab's owner sees it listed, with why; a later sweep is refused the same way.
    assert list(services.retired_sandboxes()) == [kept]
    client.force_login(instructor.user)
    page = client.get(reverse("labs:lab_list")).content.decode()
    assert kept.code in page and "immutability enabled and locked" in page
    assert teardown.take_down(kept).status == Sandbox.Status.RETIRED


def test_take_down_waits_for_the_deletion_jobs_and_may_be_called_again_meanwhile(lab, trainee, probe_lab, start):
    run = start(probe_lab.slug)
    world = SandboxWorld(run.sandbox)
    vault, instance = protect(trainee, world, world.source_account, datasource_types.ADLS)
    backup_now(trainee, instance)
    services.reset_lab(trainee, run, run_jobs_inline=True)

    first = teardown.take_down(run.sandbox)

    vault.refresh_from_db()
    assert vault.soft_delete_state == "Off"  # lowered through the service first: the data is deleted for good
    assert first.status == Sandbox.Status.RETIRED and "waiting for its job to end" in first.kept_because
    [job] = Job.objects.filter(vault=vault, operation=JobOperation.UNCONFIGURE)
    assert teardown.take_down(first).status == Sandbox.Status.RETIRED  # while the job has not run
    assert Job.objects.filter(vault=vault, operation=JobOperation.UNCONFIGURE).count() == 1
    jobs.run(job.pk)
    assert teardown.take_down(first).status == Sandbox.Status.DELETED
    assert not BackupVault.objects.filter(pk=vault.pk).exists()


def test_always_on_soft_deleted_data_keeps_the_sandbox_until_its_purge(lab, trainee, probe_lab, start):
    run = start(probe_lab.slug)
    world = SandboxWorld(run.sandbox)
    vault, instance = protect(trainee, world, world.source_account, datasource_types.ADLS,
                              soft_delete_state="AlwaysOn", acknowledge_irreversible=True)
    backup_now(trainee, instance)
    services.reset_lab(trainee, run, run_jobs_inline=True)
    teardown.take_down(run.sandbox)  # Delete backup data: soft deleted, as always-on soft delete wants
    [unconfigure] = Job.objects.filter(vault=vault, operation=JobOperation.UNCONFIGURE)
    jobs.run(unconfigure.pk)

    kept = teardown.take_down(run.sandbox)

    instance.refresh_from_db()
    assert kept.status == Sandbox.Status.RETIRED and instance.protection_state == ProtectionState.SOFT_DELETED
    assert (f"'{instance.name}' in the Backup vault '{vault.name}' is soft deleted and kept until its purge at "
            f"{instance.scheduled_purge_at:%Y-%m-%d %H:%M} UTC (soft-delete retention).") in kept.kept_because
    assert "Soft delete is always-on for this vault" in kept.kept_because
    days = instance.vault.soft_delete_retention_days
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=days + 1))
    purging = teardown.take_down(kept)  # the purge is due: started now, run by a worker
    assert purging.status == Sandbox.Status.RETIRED and "is being purged" in purging.kept_because
    [purge] = Job.objects.filter(instance=instance, operation=JobOperation.PURGE)
    jobs.run(purge.pk)
    tasks.take_down_retired()  # the hourly sweep: every retired sandbox
    assert Sandbox.objects.get(pk=purging.pk).status == Sandbox.Status.DELETED
    assert not BackupVault.objects.filter(pk=vault.pk).exists()


def test_reset_while_a_job_runs_is_refused_and_leaves_the_sandbox_as_it_was(lab, trainee, probe_lab, start):
    run = start(probe_lab.slug)
    world = SandboxWorld(run.sandbox)
    protect(trainee, world, world.source_account, datasource_types.ADLS, run=False)  # its job is queued
    roles_before = RoleAssignment.objects.filter(principal=trainee).count()

    with pytest.raises(ValidationError) as refused:
        services.reset_lab(trainee, run, run_jobs_inline=True)

    message = " ".join(refused.value.messages)
    assert "A job is still running in this sandbox" in message
    assert "Wait for it to end, or cancel it from Backup jobs, then reset." in message
    run.refresh_from_db()
    assert run.active and run.sandbox.status == Sandbox.Status.ACTIVE and Sandbox.objects.count() == 1
    assert RoleAssignment.objects.filter(principal=trainee).count() == roles_before


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_nothing_left(codes, settings, subscriptions_before):
    assert not Sandbox.objects.exists() and not LabRun.objects.exists()
    assert Subscription.objects.count() == subscriptions_before
    for code in codes:
        names = sandboxes.SandboxNames(code)
        assert paths_of(code, settings) == []
        assert on_cluster(names.pg_login, names.pg_database) == (False, False)


def test_starting_with_postgresql_down_says_what_to_do_and_leaves_nothing(lab, probe_lab, start, settings, codes):
    settings.STRONGROOM_LAB_POSTGRES_PORT = _closed_port()
    before = Subscription.objects.count()

    with pytest.raises(ValidationError) as refused:
        start(probe_lab.slug)

    message = " ".join(refused.value.messages)
    assert "The lab's PostgreSQL cluster does not answer" in message and "Start PostgreSQL" in message
    assert "Nothing was created." in message
    assert codes == []  # refused before any name was made up
    assert_nothing_left(codes, settings, before)


@pytest.mark.parametrize("seed", ["_seed_elastic_san", "_seed_postgres"])
def test_a_failure_half_way_through_seeding_leaves_nothing(lab, probe_lab, start, settings, codes, monkeypatch, seed):
    original = getattr(sandboxes, seed)

    def seed_then_fail(*args, **kwargs):
        original(*args, **kwargs)  # made its part (folders, the login and database), then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sandboxes, seed, seed_then_fail)
    before = Subscription.objects.count()

    with pytest.raises(ValidationError) as refused:
        start(probe_lab.slug)

    message = " ".join(refused.value.messages)
    assert "could not be seeded (OSError: [Errno 28] No space left on device), and nothing of it was kept" in message
    assert "Start the lab (or reset it) again" in message
    assert len(codes) == 1
    assert_nothing_left(codes, settings, before)
