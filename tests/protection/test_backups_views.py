"""The backup actions over HTTP, as the instance page uses them: Backup now (htmx pane → job with live
progress), Stop backup, Resume backup, recovery points in a time range, the instance's job history;
outsiders get 404, readers the explained 403 on writes."""

from __future__ import annotations

import datetime as dt

import pytest

from protection.models import Job, ProtectionState, RecoveryPoint
from protection.backups import services as backups
from security import clock
from tests.protection._backups_fixtures import (  # noqa: F401  (fixtures)
    ADLS, backup_now_and_run, filled, inventory, make_policy, principal_with, protect, vault,
)

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def adls(lab, vault, make_policy, filled):
    return protect(lab, vault, make_policy(ADLS, "v-adls"), filled.account, name="bi-views")


def as_(client, lab, persona):
    client.force_login(lab.personas[persona].principal.user)
    return client


def test_the_instance_page_loads_the_backup_commands_and_lists(lab, adls, client):
    html = as_(client, lab, "backup-admin").get(f"/backup/instances/{adls.pk}/").content.decode()
    assert f'hx-get="/backup/instances/{adls.pk}/actions/"' in html
    assert f'hx-get="/backup/instances/{adls.pk}/recovery-points/"' in html
    assert f'hx-get="/backup/instances/{adls.pk}/jobs/"' in html and 'id="backup-pane"' in html
    actions = client.get(f"/backup/instances/{adls.pk}/actions/", **HX).content.decode()
    assert 'id="backup-now" hx-get=' in actions and 'id="stop-backup" hx-get=' in actions
    assert "resume-backup" not in actions


def test_backup_now_over_htmx_starts_a_job_and_shows_its_progress(lab, adls, client):
    c = as_(client, lab, "backup-operator")
    pane = c.get(f"/backup/instances/{adls.pk}/backup-now/", **HX).content.decode()
    assert 'name="retention_rule"' in pane and 'value="Default"' in pane and "checked" in pane
    response = c.post(f"/backup/instances/{adls.pk}/backup-now/", {"retention_rule": "Default"}, **HX)
    assert response.status_code == 200 and "jobs-changed" in response["HX-Trigger"]
    job = Job.objects.get(instance=adls, operation="Backup")
    html = response.content.decode()
    assert "Backup started" in html and f'hx-get="/backup/jobs/{job.pk}/progress/"' in html
    assert job.initiated_by == lab.personas["backup-operator"].principal
    history = c.get(f"/backup/instances/{adls.pk}/jobs/", **HX).content.decode()
    assert f'data-job="{job.pk}"' in history and 'hx-trigger="every 2s, jobs-changed from:body"' in history
    assert f"/backup/jobs/?instance={adls.pk}&amp;range=30d" in history


def test_backup_now_errors_show_in_the_pane(lab, adls, client):
    c = as_(client, lab, "backup-admin")
    backups.backup_now(lab.trainer, adls, retention_rule="Default")
    response = c.post(f"/backup/instances/{adls.pk}/backup-now/", {"retention_rule": "Default"}, **HX)
    assert response.status_code == 200 and "already in progress" in response.content.decode()
    response = c.post(f"/backup/instances/{adls.pk}/backup-now/", {"retention_rule": "Nope"}, **HX)
    assert "Select a valid choice" in response.content.decode()


def test_stop_and_resume_over_http(lab, adls, client):
    c = as_(client, lab, "backup-admin")
    pane = c.get(f"/backup/instances/{adls.pk}/stop-backup/", **HX).content.decode()
    assert "Retain forever" in pane and "Retain as per policy" in pane and "Delete Backup Data" in pane
    response = c.post(f"/backup/instances/{adls.pk}/stop-backup/", {"retain": "RetainForever", "reason": "Others",
                                                                     "comments": "end of the lab"}, **HX)
    assert response.status_code == 204 and response["HX-Redirect"] == f"/backup/instances/{adls.pk}/"
    adls.refresh_from_db()
    assert adls.protection_state == ProtectionState.STOPPED
    actions = c.get(f"/backup/instances/{adls.pk}/actions/", **HX).content.decode()
    assert 'id="resume-backup"' in actions and 'span aria-disabled="true" id="backup-now"' in actions
    assert c.post(f"/backup/instances/{adls.pk}/resume-backup/").status_code == 302
    adls.refresh_from_db()
    assert adls.protection_state == ProtectionState.CONFIGURED


def test_recovery_points_are_listed_for_a_time_range(lab, adls, client):
    point = backup_now_and_run(lab.trainer, adls).recovery_point
    old = RecoveryPoint.objects.create(instance=adls, recovery_point_time=clock.now() - dt.timedelta(days=60),
                                       datastore="VaultStore", policy_name="v-adls", rule_name="BackupDaily",
                                       retention_tag="Default", manifest_id="x", expiry_time=None)
    c = as_(client, lab, "reader")
    html = c.get(f"/backup/instances/{adls.pk}/recovery-points/", **HX).content.decode()
    assert f'data-recovery-point="{point.pk}"' in html and str(old.pk) not in html
    start = (clock.now() - dt.timedelta(days=90)).date().isoformat()
    html = c.get(f"/backup/instances/{adls.pk}/recovery-points/?start={start}", **HX).content.decode()
    assert str(old.pk) in html and "Never (retained forever)" in html
    assert "Secondary copy pending" in html  # geo-redundant vault, the Replication job has not run


# --- who may do what, over HTTP -----------------------------------------------------------------------

MATRIX = [
    # persona,          read partials, Backup now pane, Stop pane, POST backup now, POST stop
    ("backup-admin",    200,           200,             200,       200,             204),
    ("backup-operator", 200,           200,             403,       200,             403),
    ("reader",          200,           403,             403,       403,             403),
    ("outsider",        404,           404,             404,       404,             404),
]


@pytest.mark.parametrize("persona,read,now_pane,stop_pane,post_now,post_stop", MATRIX)
def test_backup_actions_authorization(lab, adls, client, persona, read, now_pane, stop_pane, post_now, post_stop):
    c = as_(client, lab, persona)
    base = f"/backup/instances/{adls.pk}"
    for part in ("actions", "recovery-points", "jobs"):
        assert c.get(f"{base}/{part}/", **HX).status_code == read, part
    assert c.get(f"{base}/backup-now/", **HX).status_code == now_pane
    assert c.get(f"{base}/stop-backup/", **HX).status_code == stop_pane
    assert c.post(f"{base}/backup-now/", {"retention_rule": "Default"}, **HX).status_code == post_now
    assert c.post(f"{base}/stop-backup/", {"retain": "RetainAsPerPolicy"}, **HX).status_code == post_stop
    if post_now == 403:
        assert not Job.objects.filter(instance=adls, operation="Backup").exists()
