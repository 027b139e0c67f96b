"""The vault overview tiles and the jobs pages: counts by datasource type × operation × status (each
a link to the filtered list), instances by type × protection status, query budgets that hold as rows
grow, the job page's progress fragment (286 once the job has ended), and who sees what."""

from __future__ import annotations

import datetime as dt

import pytest

from protection import selectors
from protection.models import BackupInstance, Job, JobCategory, JobOperation, JobStatus, ProtectionState
from security import clock
from tests.protection._backups_fixtures import (  # noqa: F401  (fixtures)
    ADLS, ESAN, PG, backup_now_and_run, filled, inventory, make_policy, principal_with, protect, vault,
)

pytestmark = pytest.mark.django_db


def make_jobs(vault, instance, spec, *, hours_ago=1):
    """``spec``: [(operation, status, count)] of jobs of ``instance`` started ``hours_ago``."""
    start = clock.now() - dt.timedelta(hours=hours_ago)
    Job.objects.bulk_create([
        Job(vault=vault, instance=instance, instance_name=instance.name, datasource_type=instance.datasource_type,
            datasource_name=instance.datasource_name, operation=op, category=JobCategory.BACKUP, status=status,
            start_time=start, end_time=None if status == JobStatus.IN_PROGRESS else start)
        for op, status, count in spec for _ in range(count)
    ])


@pytest.fixture
def instances(lab, vault, make_policy, filled):
    adls = protect(lab, vault, make_policy(ADLS, "t-adls"), filled.account, name="bi-tile-adls")
    esan = protect(lab, vault, make_policy(ESAN, "t-esan"), filled.volumes[0], name="bi-tile-esan")
    pg = protect(lab, vault, make_policy(PG, "t-pg"), filled.server, name="bi-tile-pg")
    return adls, esan, pg


def test_the_jobs_tile_counts_the_last_24_hours(lab, vault, instances):
    """GIVEN jobs of three types, some older than 24 hours WHEN the tile is computed THEN it counts only
    the recent ones, by datasource type × operation × status (Cancelling counts as In progress)."""
    adls, esan, pg = instances
    make_jobs(vault, adls, [(JobOperation.BACKUP, JobStatus.COMPLETED, 3), (JobOperation.BACKUP, JobStatus.FAILED, 1),
                            (JobOperation.BACKUP, JobStatus.CANCELLING, 1)])
    # One backup per instance at a time: one running, one that failed earlier.
    make_jobs(vault, esan, [(JobOperation.BACKUP, JobStatus.IN_PROGRESS, 1), (JobOperation.BACKUP, JobStatus.FAILED, 1)])
    make_jobs(vault, pg, [(JobOperation.BACKUP, JobStatus.COMPLETED, 5)], hours_ago=30)  # too old
    tile = selectors.jobs_tile(vault)
    rows = {(r.key, r.operation): dict(r.counts) for r in tile["rows"]}
    assert rows[("adls", "Backup")] == {"InProgress": 1, "Completed": 3, "CompletedWithWarnings": 0, "Failed": 1, "Cancelled": 0}
    assert (rows[("esan", "Backup")]["InProgress"], rows[("esan", "Backup")]["Failed"]) == (1, 1)
    assert ("pgflex", "Backup") not in rows
    # ConfigureProtection jobs of the three instances (made by protect) count too, as Management.
    assert rows[("adls", "ConfigureProtection")]["Completed"] == 1
    assert tile["total"] == 5 + 2 + 3


def test_the_instances_tile_counts_by_type_and_protection_status(lab, vault, instances):
    adls, esan, pg = instances
    BackupInstance.objects.filter(pk=pg.pk).update(protection_state=ProtectionState.STOPPED)
    tile = selectors.instances_tile(vault)
    rows = {r["short"]: dict(r["counts"]) for r in tile["rows"]}
    assert rows["adls"]["ProtectionConfigured"] == 1 and rows["esan"]["ProtectionConfigured"] == 1
    assert rows["pgflex"]["ProtectionStopped"] == 1 and rows["pgflex"]["ProtectionConfigured"] == 0
    assert tile["total"] == 3


def test_tiles_render_links_to_the_filtered_lists(lab, vault, instances, client):
    adls, _, _ = instances
    make_jobs(vault, adls, [(JobOperation.BACKUP, JobStatus.FAILED, 2)])
    client.force_login(lab.personas["reader"].principal.user)
    html = client.get(f"/backup/vaults/{vault.pk}/tiles/jobs/").content.decode()
    link = f"/backup/jobs/?vault={vault.pk}&amp;type=adls&amp;operation=Backup&amp;status=Failed&amp;range=24h"
    assert f'href="{link}"' in html and 'hx-trigger="every 5s"' in html
    listed = client.get(link.replace("&amp;", "&")).content.decode()
    assert listed.count('data-status="Failed"') == 2
    html = client.get(f"/backup/vaults/{vault.pk}/tiles/instances/").content.decode()
    assert f"/backup/instances/?vault={vault.pk}&amp;type=esan&amp;status=ProtectionConfigured" in html


def test_the_overview_tiles_and_lists_stay_within_their_query_budgets(lab, vault, instances, client, steady_clock,
                                                                   django_assert_max_num_queries):
    """GIVEN many jobs WHEN the tiles, the jobs list and the vault's jobs blade render THEN each stays
    within a fixed number of queries (the tiles are one aggregate each)."""
    adls, esan, pg = instances
    for instance in instances:
        make_jobs(vault, instance, [(JobOperation.BACKUP, JobStatus.COMPLETED, 40), (JobOperation.BACKUP, JobStatus.FAILED, 10)])
    client.force_login(lab.personas["backup-admin"].principal.user)
    client.get("/backup/jobs/")  # warm caches (the clock offset, sessions)
    with django_assert_max_num_queries(12):
        assert client.get(f"/backup/vaults/{vault.pk}/tiles/jobs/").status_code == 200
    with django_assert_max_num_queries(12):
        assert client.get(f"/backup/vaults/{vault.pk}/tiles/instances/").status_code == 200
    # 14, plus the navigation asking whether Sign-in lockouts and App registrations may be shown (one each,
    # whatever the number of jobs)
    with django_assert_max_num_queries(16):
        response = client.get("/backup/jobs/?range=7d")
    assert response.status_code == 200 and response.content.decode().count("data-job=") == 50
    with django_assert_max_num_queries(20):
        assert client.get(f"/backup/vaults/{vault.pk}/jobs/").status_code == 200
    with django_assert_max_num_queries(25):
        assert client.get(f"/vaults/{vault.pk}/").status_code == 200


def test_the_progress_fragment_stops_polling_once_the_job_ends(lab, vault, instances, client):
    adls, _, _ = instances
    job = Job.objects.create(vault=vault, instance=adls, instance_name=adls.name, datasource_type=adls.datasource_type,
                             operation=JobOperation.BACKUP, category=JobCategory.BACKUP, start_time=clock.now(),
                             bytes_done=512 * 1024, bytes_total=2 * 1024 * 1024, items_done=3, current_item="documents: a.bin")
    client.force_login(lab.personas["backup-operator"].principal.user)
    running = client.get(f"/backup/jobs/{job.pk}/progress/")
    assert running.status_code == 200
    html = running.content.decode()
    assert 'hx-trigger="every 1s"' in html and "25 %" in html and "documents: a.bin" in html
    Job.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED, end_time=clock.now())
    ended = client.get(f"/backup/jobs/{job.pk}/progress/")
    assert ended.status_code == 286
    assert "every 1s" not in ended.content.decode() and "Completed" in ended.content.decode()
    page = client.get(f"/backup/jobs/{job.pk}/")
    assert page.status_code == 200 and b"job-progress" in page.content


# --- who sees what -----------------------------------------------------------------------------------

VIEW_MATRIX = [
    # persona,          jobs list shows the job, job page, tiles
    ("backup-admin",    True,                    200,      200),
    ("backup-operator", True,                    200,      200),
    ("reader",          True,                    200,      200),
    ("outsider",        False,                   404,      404),
]


@pytest.mark.parametrize("persona,listed,job_status,tile_status", VIEW_MATRIX)
def test_jobs_are_visible_only_to_those_who_may_read_them(lab, vault, instances, client, persona, listed, job_status,
                                                         tile_status):
    adls, _, _ = instances
    make_jobs(vault, adls, [(JobOperation.BACKUP, JobStatus.COMPLETED, 1)])
    job = Job.objects.filter(operation=JobOperation.BACKUP).first()
    client.force_login(lab.personas[persona].principal.user)
    assert (str(job.pk) in client.get("/backup/jobs/").content.decode()) is listed
    assert client.get(f"/backup/jobs/{job.pk}/").status_code == job_status
    assert client.get(f"/backup/jobs/{job.pk}/progress/").status_code == (286 if job_status == 200 else 404)  # ended
    assert client.get(f"/backup/vaults/{vault.pk}/tiles/jobs/").status_code == tile_status
    assert client.get(f"/backup/vaults/{vault.pk}/tiles/instances/").status_code == tile_status


def test_cancel_from_the_job_page(lab, vault, instances, client):
    """GIVEN a running backup WHEN the backup admin presses Cancel THEN it is Cancelling (the worker
    stops at its next progress write); the operator, without the cancel action, is refused."""
    adls, _, _ = instances
    job = Job.objects.create(vault=vault, instance=adls, instance_name=adls.name, datasource_type=adls.datasource_type,
                             operation=JobOperation.BACKUP, category=JobCategory.BACKUP, start_time=clock.now(),
                             claimed_at=clock.now())
    client.force_login(lab.personas["backup-operator"].principal.user)
    page = client.get(f"/backup/jobs/{job.pk}/").content.decode()
    assert 'id="cancel-job"' not in page and 'aria-disabled="true"' in page
    assert client.post(f"/backup/jobs/{job.pk}/cancel/").status_code == 403
    client.force_login(lab.personas["backup-admin"].principal.user)
    assert 'id="cancel-job"' in client.get(f"/backup/jobs/{job.pk}/").content.decode()
    response = client.post(f"/backup/jobs/{job.pk}/cancel/", follow=True)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLING and job.cancel_requested
    assert "Cancelling the job" in response.content.decode()
    assert client.post(f"/backup/jobs/{job.pk}/cancel/", follow=True).content.decode().count("already cancelling") == 1
