"""Cross Region Restore (reference §3.7) on real PostgreSQL data: a geo-redundant vault's point copied to the
secondary region (under STRONGROOM_SECONDARY_ROOT, not the data root), restored from there with the primary
store gone — and never opened — byte for byte into a container in the secondary region; the rules (setting,
datasource, archive, target region, not replicated yet), the network guard's secondary endpoints, the
Instance Region filters of the Backup instances and Jobs lists, and the replication lag."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

from django.core.exceptions import ValidationError
from django.urls import reverse

from portal.inventory import services as inv
from protection import regions
from protection.jobs import runner as jobs
from protection.models import Job, JobStatus, RecoveryPoint
from protection.restores import cross_region as crr
from protection.restores import readiness, services, targets, validation
from security import clock
from tests.protection._backups_fixtures import run_job
from tests.protection._restore_fixtures import (  # noqa: F401
    ADLS, PG, backup, filled, inventory, make_policy, new_account, pg_database, protect, tree_of,
    vault,
)
from vaults import services as vault_services
from vaults import storage

pytestmark = pytest.mark.django_db


def _replicate(point) -> RecoveryPoint:
    job = Job.objects.get(operation="Replication", parameters__recoveryPointId=str(point.pk))
    done = run_job(job)
    assert done.status == JobStatus.COMPLETED, done.error_message
    point.refresh_from_db()
    return point


@pytest.fixture
def crr_point(lab, vault, make_policy, inventory, pg_database):
    """A PostgreSQL point of a geo-redundant vault, copied to the secondary region; Cross Region Restore on."""
    source = pg_database("sr_crr")
    inv.refresh_postgres_server(lab.trainer, inventory.server)
    instance = protect(lab, vault, make_policy(PG), inventory.server)
    point = _replicate(backup(lab, instance))
    vault_services.update_cross_region_restore(lab.trainer, vault, state="Enabled")
    point.instance.vault.refresh_from_db()
    return source, point


def _secondary_container(lab, vault, name="pgcrr"):
    account = new_account(lab, "sacrr", region=vault.secondary_region)
    return inv.create_container(lab.trainer, account, name=name)


def test_restore_to_the_secondary_region_reads_only_the_secondary_copy(lab, vault, crr_point, tmp_path, monkeypatch):
    source, point = crr_point
    replica = storage.secondary_store_path(vault)
    assert storage.secondary_root() in replica.parents  # the secondary root, not a folder of the data root
    from django.conf import settings
    assert settings.STRONGROOM_DATA_ROOT not in replica.parents
    container = _secondary_container(lab, vault)
    target = targets.PgFilesTarget(container.resource_id, "crr/", "")
    expected = {}
    with storage.open_store(vault) as store:
        for name, part in validation.file_names(point, target):
            out = tmp_path / "expected.bin"
            with open(out, "wb") as f:
                store.restore_stream(part.snapshot_id, f)
            expected[name] = out.read_bytes()
    # The primary region is gone: its store folder removed, and opening it is an error.
    shutil.rmtree(storage.store_path(vault))
    opened = []
    monkeypatch.setattr(storage, "open_store", lambda v: opened.append(v) or pytest.fail("the primary store was opened"))

    services.assign_restore_roles(lab.trainer, point, target, readiness.SCOPE_RESOURCE)
    services.validate_restore(lab.trainer, point, target, cross_region=True)
    job = services.start_restore(lab.trainer, point, target, cross_region=True)
    assert job.parameters[regions.JOB_FLAG] is True and job.parameters["targetRegion"] == vault.secondary_region.pk
    job = jobs.run(job.pk)
    assert job.status == JobStatus.COMPLETED, (job.error_code, job.error_message)
    assert tree_of(container.path) == expected and f"crr/{source}.dump" in expected
    assert opened == []
    # The same restore in the primary region fails: its store is gone.
    other = _secondary_container(lab, vault, "pgprimary")
    primary_target = targets.PgFilesTarget(other.resource_id, "", "")
    monkeypatch.undo()
    services.assign_restore_roles(lab.trainer, point, primary_target, readiness.SCOPE_RESOURCE)
    failed = jobs.run(services.start_restore(lab.trainer, point, primary_target).pk)
    assert failed.status == JobStatus.FAILED


def test_the_rules_of_a_restore_to_the_secondary_region(lab, vault, crr_point, make_policy, filled):
    source, point = crr_point
    container = _secondary_container(lab, vault)
    target = targets.PgFilesTarget(container.resource_id, "", "")

    def refused(code, p=point, t=target):
        with pytest.raises(ValidationError) as info:
            services.validate_restore(lab.trainer, p, t, cross_region=True)
        assert code in validation.codes_of(info.value), info.value.messages
        return " ".join(info.value.messages)

    # A container in the primary region; a restore as a database.
    primary_account = new_account(lab, "saprim")
    primary_container = inv.create_container(lab.trainer, primary_account, name="pgcrr")
    refused(crr.TARGET_REGION, t=targets.PgFilesTarget(primary_container.resource_id, "", ""))
    refused(crr.TARGET_KIND, t=targets.PgDatabaseTarget(source, point.instance.datasource_resource_id, "x_crr"))
    # Not replicated yet, then archived.
    RecoveryPoint.objects.filter(pk=point.pk).update(secondary_copied_at=None)
    point.refresh_from_db()
    refused(crr.NOT_REPLICATED)
    RecoveryPoint.objects.filter(pk=point.pk).update(datastore=RecoveryPoint.Datastore.ARCHIVE,
                                                     secondary_copied_at=clock.now())
    point.refresh_from_db()
    assert crr.ARCHIVE_TEXT in refused(crr.FROM_ARCHIVE)
    RecoveryPoint.objects.filter(pk=point.pk).update(datastore=RecoveryPoint.Datastore.VAULT)
    point.refresh_from_db()
    # ADLS: only PostgreSQL servers.
    adls = protect(lab, vault, make_policy(ADLS), filled.account)
    adls_point = _replicate(backup(lab, adls))
    refused(crr.NOT_SUPPORTED, p=adls_point, t=targets.AdlsTarget(new_account(lab, region=vault.secondary_region).resource_id, True))
    # The setting off: refused, and the instance is no longer a secondary-region instance.
    vault_services.update_cross_region_restore(lab.trainer, vault, state="Disabled")
    point.instance.vault.refresh_from_db()
    assert "Cross Region Restore is disabled" in refused(crr.NOT_ENABLED)
    from protection.instances.services import instances_for
    assert not regions.secondary_instances(instances_for(lab.trainer)).exists()


def test_a_vault_denying_public_access_needs_a_secondary_endpoint(lab, vault, crr_point):
    from security.guards import GuardDenied
    from tests.vaults._network_fixtures import make_vnet
    from vaults.models import PublicNetworkAccess
    from vaults.networking import guard, names
    from vaults.networking import services as net

    source, point = crr_point
    subnet = make_vnet(lab, region=vault.secondary_region)
    container = _secondary_container(lab, vault)
    type(container.account).objects.filter(pk=container.account.pk).update(network_subnet=subnet)
    target = targets.PgFilesTarget(container.resource_id, "", "")
    services.assign_restore_roles(lab.trainer, point, target, readiness.SCOPE_RESOURCE)
    net.set_public_network_access(lab.trainer, vault, PublicNetworkAccess.DISABLED)
    with pytest.raises(GuardDenied) as info:
        services.start_restore(lab.trainer, point, target, cross_region=True)
    decision = info.value.decision
    assert decision.guard == guard.NETWORK_GUARD and decision.code == guard.NOT_APPROVED
    assert "secondary region" in decision.reason and names.SECONDARY in decision.remedy
    net.create_private_endpoint(lab.trainer, name="pe-secondary", resource_group=lab.lab_group, vault=vault,
                                subnet=subnet, integrate_dns=True, tags={}, group_id=names.SECONDARY)
    job = jobs.run(services.start_restore(lab.trainer, point, target, cross_region=True).pk)
    assert job.status == JobStatus.COMPLETED, (job.error_code, job.error_message)


def test_instance_region_filters_and_the_replication_lag(lab, vault, crr_point, signed_in_client):
    source, point = crr_point
    instance = point.instance
    lag = point.secondary_copied_at - point.recovery_point_time
    assert regions.lag_text(instance) == f"last copy {regions._span(lag)} behind"
    RecoveryPoint.objects.filter(pk=point.pk).update(recovery_point_time=point.secondary_copied_at - dt.timedelta(hours=2))
    assert regions.lag_text(instance) == "last copy 2 h behind"
    client = signed_in_client(lab.trainer)
    for url in (reverse("protection:instance_list"), reverse("protection:vault_instances", args=[vault.pk])):
        page = client.get(url, {"region": "Secondary"}).content.decode()
        assert instance.name in page and "Restore to secondary region" in page and "last copy 2 h behind" in page
    # Jobs: a restore to the secondary region is listed under Secondary Region only.
    container = _secondary_container(lab, vault)
    target = targets.PgFilesTarget(container.resource_id, "", "")
    services.assign_restore_roles(lab.trainer, point, target, readiness.SCOPE_RESOURCE)
    job = services.start_restore(lab.trainer, point, target, cross_region=True)
    secondary = client.get(reverse("protection:job_list"), {"region": "Secondary"}).content.decode()
    primary = client.get(reverse("protection:job_list"), {"region": "Primary"}).content.decode()
    assert str(job.pk) in secondary and str(job.pk) not in primary
    # A point not copied yet: "Not replicated yet" (and no secondary-region instance without a copy).
    RecoveryPoint.objects.filter(instance=instance).update(secondary_copied_at=None)
    assert regions.lag_text(instance) == "Not replicated yet"
    assert instance.name not in client.get(reverse("protection:instance_list"), {"region": "Secondary"}).content.decode()


def test_an_operational_tier_instance_says_it_is_not_replicated(lab, vault):
    """A disk or Elastic SAN instance of a geo-redundant vault showed '—' as its replication lag, unexplained."""
    from protection import datasource_types
    from protection.models import BackupInstance

    assert vault.is_geo_redundant and vault.region.paired_region_id
    for kind in (datasource_types.AZURE_DISK, datasource_types.ELASTIC_SAN):
        assert regions.lag_text(BackupInstance(vault=vault, datasource_type=kind)) == (
            "Not replicated: operational-tier snapshots stay in the primary region")


def test_the_instance_page_offers_restore_to_secondary_region_or_says_why(lab, vault, crr_point, make_policy, filled,
                                                                          client):
    """The instance page's command bar (an htmx fragment): Restore to secondary region opens the wizard in the
    secondary region for this instance; disabled with the reason when the restore would be refused (the
    datasource, the vault's setting, no copy there yet, no right to restore)."""
    _source, point = crr_point
    instance = point.instance
    url = reverse("protection:instance_secondary_restore", args=[instance.pk])

    def command(principal=lab.trainer):
        client.force_login(principal.user)
        response = client.get(url)
        assert response.status_code == 200
        return response.content.decode()

    wizard = f'{reverse("protection:restore_wizard")}?region=Secondary&amp;instance={instance.pk}'
    assert f'href="{wizard}"' in command() and 'aria-disabled' not in command()
    assert client.get(reverse("protection:instance_detail", args=[instance.pk])).content.decode().count(url) == 1
    # The wizard that link opens is the secondary region's, with this instance chosen.
    assert "Restore to secondary region" in client.get(wizard.replace("&amp;", "&")).content.decode()

    reader = command(lab.personas["reader"].principal)
    assert 'aria-disabled="true"' in reader and "restore/action" in reader and "href=" not in reader
    RecoveryPoint.objects.filter(instance=instance).update(secondary_copied_at=None)
    assert f"No recovery point of &#x27;{instance.name}&#x27; has a copy in {vault.secondary_region.display_name}" in command()
    vault_services.update_cross_region_restore(lab.trainer, vault, state="Disabled")
    assert "Cross Region Restore is disabled on the Backup vault" in command()
    adls = protect(lab, vault, make_policy(ADLS), filled.account)
    assert "available only for PostgreSQL servers" in client.get(
        reverse("protection:instance_secondary_restore", args=[adls.pk])).content.decode()
    # Nothing at all where it could never apply: not PostgreSQL, in a vault that keeps no secondary copy.
    type(vault).objects.filter(pk=vault.pk).update(storage_redundancy="LocallyRedundant")
    assert client.get(reverse("protection:instance_secondary_restore", args=[adls.pk])).content.decode().strip() == ""
    assert "only a geo-redundant vault keeps a copy" in command()
