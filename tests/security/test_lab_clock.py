"""The lab clock (issue 13): who may move it, and what moving it back never undoes.

GIVEN the seeded lab (the trainer is Owner and Lab Instructor at the root; the personas hold roles below
it) WHEN someone moves the lab clock THEN only a principal holding the data action
``Strongroom.Lab/clock/write`` at the root may (the page too); WHEN the trainer resets it to real time THEN everything due at the lab time being left is
recorded first (settlers), a locked setting stays locked, and rows stamped while the clock was ahead
never sort above rows written after the reset. Grants, purges and expiries have their own tests in
tests/security/test_mua.py, tests/protection/test_soft_delete.py and tests/protection/test_retention.py.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from security import clock
from security import services as security_services
from security.guards import GuardDenied
from security.models import ActivityLogEntry, LabClock

pytestmark = [pytest.mark.django_db, pytest.mark.date_sensitive]


# --- who moves the clock ------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["backup-admin", "backup-operator", "security-admin", "reader", "outsider"])
def test_no_persona_may_move_the_clock(lab, persona):
    principal = lab.personas[persona].principal
    assert not security_services.can_move_lab_clock(principal)
    with pytest.raises(GuardDenied) as refused:
        security_services.move_lab_clock(principal, forward=dt.timedelta(days=1))
    assert refused.value.decision.operation == security_services.LAB_CLOCK_WRITE
    with pytest.raises(GuardDenied):
        security_services.move_lab_clock(principal, reset=True)
    assert clock.is_real_time()
    denied = ActivityLogEntry.objects.filter(operation=security_services.LAB_CLOCK_WRITE, status="Failed")
    assert denied.filter(principal=principal).count() == 2


def test_the_trainer_holds_the_clock_permission_as_lab_instructor_at_the_root(lab):
    assert security_services.can_move_lab_clock(lab.trainer)
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(hours=5))
    entry = ActivityLogEntry.objects.filter(operation=security_services.LAB_CLOCK_WRITE).latest("id")
    assert entry.status == "Succeeded" and entry.details["forwardSeconds"] == 5 * 3600


def test_the_clock_page_is_only_for_those_who_may_move_it(client, lab, settings):
    """A user with the persona-switching right but no lab-clock right gets no page and no menu entry; the
    trainer (Lab Instructor) has both."""
    from security import operations as ops
    from security import scopes
    from security.models import RoleDefinition

    personas_only = RoleDefinition.objects.create(id=str(uuid.uuid4()), name="Lab persona player (test)",
                                                  description="Plays personas only.", data_actions=[ops.PERSONA_ASSUME])
    backup_admin = lab.personas["backup-admin"].principal
    security_services.assign_role(lab.trainer, assignee=backup_admin, role=personas_only, scope=scopes.ROOT)
    admin_user = backup_admin.user
    client.force_login(admin_user)
    assert 'id="persona-select"' in client.get(reverse("portal:home")).content.decode()  # the other right holds
    assert client.get(reverse("portal:lab_clock")).status_code == 404
    assert client.post(reverse("portal:lab_clock"), {"amount": 1, "unit": "days"}).status_code == 404
    assert "Lab clock</a>" not in client.get(reverse("portal:home")).content.decode()
    assert clock.is_real_time()

    client.force_login(lab.trainer.user)
    assert client.get(reverse("portal:lab_clock")).status_code == 200
    assert "Lab clock</a>" in client.get(reverse("portal:home")).content.decode()


def test_a_clock_left_ahead_in_lab_mode_counts_for_nothing_in_production(client, lab, settings):
    """A database that ran in lab mode with the clock moved ahead, then served in production: retention,
    purges, locks and grants follow real time (nobody there could move it back), and no page says lab time."""
    from django.utils import timezone

    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=400))
    assert clock.now() - timezone.now() > dt.timedelta(days=399)
    settings.STRONGROOM_LAB_MODE = False
    clock.forget_cached_offset()
    assert clock.is_real_time() and abs(clock.now() - timezone.now()) < dt.timedelta(minutes=1)
    client.force_login(lab.trainer.user)
    assert "Lab time" not in client.get(reverse("portal:home")).content.decode()


def test_the_clock_only_moves_forward_or_back_to_real_time(lab):
    with pytest.raises(ValidationError):
        security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(0))
    with pytest.raises(ValidationError):
        security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=-1))
    assert clock.is_real_time()


# --- moving it back settles first ---------------------------------------------------------------


def test_a_reset_runs_every_settler_at_the_lab_time_it_leaves(lab):
    seen = []
    clock.register_settler("test.recorder", lambda now: seen.append(now) or len(seen))
    try:
        security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=3))
        ahead = clock.now()
        security_services.move_lab_clock(lab.trainer, reset=True)
        security_services.move_lab_clock(lab.trainer, reset=True)  # already real time: nothing to settle
    finally:
        clock._settlers.pop("test.recorder")
    assert len(seen) == 1 and abs((seen[0] - ahead).total_seconds()) < 5
    assert clock.is_real_time() and LabClock.objects.get(pk=1).offset_seconds == 0
    entry = ActivityLogEntry.objects.filter(operation=security_services.LAB_CLOCK_WRITE, status="Succeeded").order_by("id")
    assert entry[1].details["settled"]["test.recorder"] == 1


def test_a_settler_that_fails_leaves_the_clock_where_it_was(lab):
    def broken(now):
        raise ValidationError("cannot record")

    clock.register_settler("test.broken", broken)
    try:
        security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=1))
        with pytest.raises(ValidationError):
            security_services.move_lab_clock(lab.trainer, reset=True)
    finally:
        clock._settlers.pop("test.broken")
    clock.forget_cached_offset()
    assert not clock.is_real_time()  # nothing half done: still ahead, and the reset can be retried
    security_services.move_lab_clock(lab.trainer, reset=True)
    assert clock.is_real_time()


def test_a_locked_immutability_stays_locked_after_a_reset(lab):
    from vaults import services as vault_services
    from vaults.models import ImmutabilityState

    vault = vault_services.create_vault(lab.trainer, name="bv-clock-lock", resource_group=lab.lab_group,
                                        region=lab.region)
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=30))
    vault_services.update_immutability(lab.trainer, vault, state=ImmutabilityState.UNLOCKED)
    vault_services.update_immutability(lab.trainer, vault, state=ImmutabilityState.LOCKED, confirm_name=vault.name)
    security_services.move_lab_clock(lab.trainer, reset=True)
    vault.refresh_from_db()
    assert vault.immutability_state == ImmutabilityState.LOCKED
    with pytest.raises((ValidationError, GuardDenied)):
        vault_services.update_immutability(lab.trainer, vault, state=ImmutabilityState.DISABLED)
    vault.refresh_from_db()
    assert vault.immutability_state == ImmutabilityState.LOCKED


# --- ordering: rows stamped ahead never sit above later real-time rows -----------------------------


def _job(vault, name):
    from protection.models import Job, JobCategory, JobOperation

    return Job.objects.create(vault=vault, operation=JobOperation.BACKUP, category=JobCategory.BACKUP,
                              instance_name=name, start_time=clock.now())


def test_jobs_run_while_the_clock_was_ahead_sit_below_jobs_run_after_the_reset(client, lab):
    """The walk-through's "Last 24 hours": a job stamped 3 days ahead, then Reset to real time, then a new
    job: the new one is on top (jobs list in real order), and both are in the last 24 hours."""
    from protection import selectors
    from protection.models import Job
    from vaults import services as vault_services

    vault = vault_services.create_vault(lab.trainer, name="bv-clock-order", resource_group=lab.lab_group,
                                        region=lab.region)
    before = _job(vault, "before-the-jump")
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=3))
    ahead = _job(vault, "while-ahead")
    assert ahead.start_time - before.start_time > dt.timedelta(days=2)
    assert list(Job.objects.filter(vault=vault)) == [ahead, before]  # forward only: same as by start time
    security_services.move_lab_clock(lab.trainer, reset=True)
    after = _job(vault, "after-the-reset")
    assert ahead.start_time > after.start_time  # its lab stamp is kept...
    filtered = selectors.filter_jobs(Job.objects.filter(vault=vault), selectors.JobFilters.from_query({}))
    assert [j.instance_name for j in selectors.job_page(filtered, 1).rows] == [
        "after-the-reset", "while-ahead", "before-the-jump"]  # ...but it sorts by when it really ran
    assert list(Job.objects.filter(vault=vault)) == [after, ahead, before]

    client.force_login(lab.trainer.user)
    page = client.get(reverse("protection:job_list")).content.decode()
    assert page.index("after-the-reset") < page.index("while-ahead") < page.index("before-the-jump")


def test_bulk_created_jobs_get_their_real_start_time_too(lab):
    from protection.models import Job, JobCategory, JobOperation
    from vaults import services as vault_services

    vault = vault_services.create_vault(lab.trainer, name="bv-clock-bulk", resource_group=lab.lab_group,
                                        region=lab.region)
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(hours=10))
    now = clock.now()
    [job] = Job.objects.bulk_create([Job(vault=vault, operation=JobOperation.BACKUP, category=JobCategory.BACKUP,
                                         start_time=now)])
    job.refresh_from_db()
    assert abs((now - job.real_start_time) - dt.timedelta(hours=10)) < dt.timedelta(seconds=5)


def test_the_activity_log_lists_entries_in_the_order_they_were_written(client, lab):
    from security.audit import record

    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(days=2))
    ahead = record(lab.trainer, "Strongroom.Lab/test/action", "/", status=ActivityLogEntry.Status.SUCCEEDED)
    security_services.move_lab_clock(lab.trainer, reset=True)
    after = record(lab.trainer, "Strongroom.Lab/test/action", "/", status=ActivityLogEntry.Status.SUCCEEDED)
    assert ahead.timestamp - after.timestamp > dt.timedelta(days=1)  # stamped at lab time, two days ahead
    client.force_login(lab.trainer.user)
    listed = list(client.get(reverse("portal:activity_log")).context["page"].object_list)
    assert listed.index(after) < listed.index(ahead)  # yet the later entry is listed first


# --- the clock and time-machine (the CI date matrix relies on this) ------------------------------


def test_time_machine_moves_the_base_of_the_lab_clock(lab):
    import time_machine
    from zoneinfo import ZoneInfo

    with time_machine.travel(dt.datetime(2028, 2, 29, 23, 30, tzinfo=dt.timezone.utc), tick=False):
        assert clock.now() == dt.datetime(2028, 2, 29, 23, 30, tzinfo=dt.timezone.utc)
        moved = security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(hours=1))
        assert moved == dt.datetime(2028, 3, 1, 0, 30, tzinfo=dt.timezone.utc)
        security_services.move_lab_clock(lab.trainer, reset=True)
    berlin = dt.datetime(2027, 3, 28, 0, 59, tzinfo=dt.timezone.utc).astimezone(ZoneInfo("Europe/Berlin"))
    with time_machine.travel(berlin, tick=False):
        assert clock.now() == dt.datetime(2027, 3, 28, 0, 59, tzinfo=dt.timezone.utc)  # aware UTC whatever TZ says
        assert clock.now().tzinfo == dt.timezone.utc


@pytest.mark.skipif(not __import__("os").environ.get("STRONGROOM_FROZEN_DATE"),
                    reason="only in the frozen-date runs (scripts/date_matrix.sh)")
def test_a_frozen_run_starts_at_its_moment(request, lab):
    """The autouse travel (tests/conftest.py) put this test, and the lab's rows, at its moment."""
    moment = request.node.callspec.params["frozen_moment"]
    assert abs((clock.now() - moment).total_seconds()) < 120
    assert abs((lab.trainer.user.date_joined - moment).total_seconds()) < 120
    assert clock.is_real_time()
