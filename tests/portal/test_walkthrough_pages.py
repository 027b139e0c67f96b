"""What a walk-through of the product documents found on the pages (issue 13), through the test client:
global search offers the service pages, access-request notifications say the request's state, the
Approvals link counts the requests waiting for you, a job's page updates End time and Duration when the
job ends, the vault list shows and filters immutability, and an empty list says "No items"."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse

from portal.models import Operation

pytestmark = pytest.mark.django_db


def _section(body: str, title: str) -> str:
    """The list that follows the search section heading ``title`` ('' when absent)."""
    match = re.search(rf'<h3 class="search-section"[^>]*>{title}</h3>\s*(<ul.*?</ul>|<p.*?</p>)', body, re.S)
    return match.group(1) if match else ""


# --- global search: Services above Resources ------------------------------------------------------


@pytest.mark.parametrize("typed,page", [
    ("Backup vaults", "vaults:vault_list"),  # the product document's first step
    ("backup vault", "vaults:vault_list"),
    ("Backup center", "portal:home"),
    ("Business Continuity Center", "portal:home"),
    ("Backup policies", "protection:policy_list"),
    ("Backup instances", "protection:instance_list"),
    ("Backup jobs", "protection:job_list"),
    ("Resource guards", "mua:guard_list"),
    ("Storage accounts", "portal:storage_account_list"),
])
def test_search_offers_the_service_pages(client, lab, backup_admin, typed, page):
    client.force_login(backup_admin.user)
    body = client.get(reverse("portal:search"), {"q": typed}, HTTP_HX_REQUEST="true").content.decode()
    services = _section(body, "Services")
    assert f'href="{reverse(page)}"' in services
    assert body.index(">Services</h3>") < body.index(">Resources</h3>")


def test_search_still_finds_resources_under_resources(client, lab, trainer):
    client.force_login(trainer.user)
    body = client.get(reverse("portal:search"), {"q": "rg-backup"}).content.decode()
    assert "rg-backup-lab" in _section(body, "Resources")
    assert _section(body, "Services") == ""  # no page is named like that


def test_the_lab_clock_page_is_offered_to_trainers_only(client, lab, trainer, backup_admin):
    client.force_login(backup_admin.user)
    assert reverse("portal:lab_clock") not in client.get(reverse("portal:search"), {"q": "lab clock"}).content.decode()
    client.force_login(trainer.user)
    body = client.get(reverse("portal:search"), {"q": "lab clock"}).content.decode()
    assert reverse("portal:lab_clock") in _section(body, "Services")


# --- access-request notifications and the Approvals badge -----------------------------------------


@pytest.fixture
def guard(lab):
    from portal.mua.lab import seed_mua

    return seed_mua(lab)


def _notifications(principal):
    return {o.title: o for o in Operation.objects.filter(principal=principal)}


def test_a_pending_request_is_notified_as_pending_never_succeeded(lab, guard, backup_admin, security_admin,
                                                                 django_capture_on_commit_callbacks):
    from security import mua

    with django_capture_on_commit_callbacks(execute=True):
        request = mua.request_access(backup_admin, guard, justification="delete a test instance", hours=1)
    mine = _notifications(backup_admin)[f"Access request on Resource Guard '{guard.name}' sent for approval"]
    theirs = _notifications(security_admin)[f"Access request on Resource Guard '{guard.name}' waiting for your approval"]
    for op in (mine, theirs):
        assert (op.status, op.get_status_display()) == ("Pending", "Pending approval")
    with django_capture_on_commit_callbacks(execute=True):
        mua.approve_request(security_admin, request, comment="ok for one hour")
    approved = _notifications(backup_admin)[f"Access to Resource Guard '{guard.name}' approved"]
    assert approved.status == "Approved"


def test_a_rejected_request_is_notified_as_rejected(lab, guard, backup_admin, security_admin,
                                                    django_capture_on_commit_callbacks):
    from security import mua

    with django_capture_on_commit_callbacks(execute=True):
        request = mua.request_access(backup_admin, guard, justification="why not", hours=1)
        mua.reject_request(security_admin, request, comment="not today")
    assert _notifications(backup_admin)[f"Access to Resource Guard '{guard.name}' rejected"].status == "Rejected"


def test_the_notifications_panel_shows_the_requests_state(client, lab, guard, backup_admin,
                                                          django_capture_on_commit_callbacks):
    from security import mua

    with django_capture_on_commit_callbacks(execute=True):
        mua.request_access(backup_admin, guard, justification="a drill", hours=1)
    client.force_login(backup_admin.user)
    panel = client.get(reverse("portal:notifications")).content.decode()
    assert '<span class="status status-warn">Pending approval</span>' in panel
    assert "Succeeded" not in panel


def test_the_approvals_link_counts_requests_waiting_for_this_principal(client, lab, guard, backup_admin,
                                                                       security_admin, trainer):
    from security import mua

    client.force_login(security_admin.user)
    assert 'id="approvals-badge"' not in client.get(reverse("portal:home")).content.decode()
    mua.request_access(backup_admin, guard, justification="first", hours=1)
    home = client.get(reverse("portal:home")).content.decode()
    assert re.search(r'id="approvals-badge"[^>]*>1<', home)
    # The requester is not an approver of their own request; the trainer is no approver of this guard.
    for other in (backup_admin, trainer):
        client.force_login(other.user)
        assert 'id="approvals-badge"' not in client.get(reverse("portal:home")).content.decode()


# --- the job page ends live ------------------------------------------------------------------------


@pytest.fixture
def running_job(lab):
    from protection.models import Job, JobCategory, JobOperation, JobStatus
    from security import clock
    from vaults import services as vault_services

    vault = vault_services.create_vault(lab.trainer, name="bv-jobpage", region=lab.region, resource_group=lab.lab_group)
    return Job.objects.create(vault=vault, instance_name="bi-live", datasource_type="", operation=JobOperation.BACKUP,
                              category=JobCategory.BACKUP, status=JobStatus.IN_PROGRESS, start_time=clock.now(),
                              initiated_by_name="test")


def test_the_job_page_progress_updates_end_time_and_duration_when_the_job_ends(client, lab, trainer, running_job):
    from protection.models import JobStatus

    client.force_login(trainer.user)
    page = client.get(reverse("protection:job_detail", args=[running_job.pk])).content.decode()
    assert f'{reverse("protection:job_progress", args=[running_job.pk])}?view=job' in page
    url = reverse("protection:job_progress", args=[running_job.pk])
    running = client.get(url, {"view": "job"}, HTTP_HX_REQUEST="true")
    assert running.status_code == 200 and "Running (see Progress)" in running.content.decode()
    end = running_job.start_time + dt.timedelta(seconds=75)
    type(running_job).objects.filter(pk=running_job.pk).update(status=JobStatus.COMPLETED, end_time=end)
    done = client.get(url, {"view": "job"}, HTTP_HX_REQUEST="true")
    body = done.content.decode()
    assert done.status_code == 286  # htmx stops polling
    assert re.search(r'<dd id="job-end-time" hx-swap-oob="true">' + end.strftime("%Y-%m-%d %H:%M:%S") + " UTC</dd>", body)
    assert '<dd id="job-duration" hx-swap-oob="true">0:01:15</dd>' in body
    assert 'hx-trigger="every 1s"' not in body
    # Elsewhere (the Backup now pane) the fragment carries no out-of-band parts without targets.
    assert "hx-swap-oob" not in client.get(url, HTTP_HX_REQUEST="true").content.decode()


# --- vault list: immutability; empty lists -----------------------------------------------------------


def test_the_vault_list_shows_and_filters_immutability(client, lab, trainer):
    from vaults import services as vault_services

    for name, state in (("bv-imm-off", "Disabled"), ("bv-imm-on", "Unlocked")):
        vault_services.create_vault(trainer, name=name, region=lab.region, resource_group=lab.lab_group,
                                    immutability_state=state)
    client.force_login(trainer.user)
    body = client.get(reverse("vaults:vault_list")).content.decode()
    assert ">Immutability<" in body and '<option value="Locked" >Enabled and locked</option>' in body
    assert '<td data-immutability="Unlocked"><span class="status status-info">Enabled</span></td>' in body
    assert '<td data-immutability="Disabled"><span class="muted">Disabled</span></td>' in body
    enabled = client.get(reverse("vaults:vault_list"), {"immutability": "Unlocked"}).content.decode()
    assert "bv-imm-on" in enabled and "bv-imm-off" not in enabled
    locked = client.get(reverse("vaults:vault_list"), {"immutability": "Locked"}).content.decode()
    assert "No items." in locked and "Showing 0 to 0" not in locked and "bv-imm-on" not in locked
    # An unknown state is no filter, not an error.
    assert "bv-imm-off" in client.get(reverse("vaults:vault_list"), {"immutability": "bogus"}).content.decode()


def test_empty_lists_say_no_items(client, lab, reader):
    client.force_login(reader.user)
    for name in ("protection:instance_list", "protection:policy_list"):
        body = client.get(reverse(name)).content.decode()
        assert "Showing 0 to 0" not in body
