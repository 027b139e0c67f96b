import datetime as dt

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from security import clock, services
from security.guards import GuardDenied
from security.models import Alert, RoleDefinition


def _role(name):
    return RoleDefinition.objects.get(name=name)


def test_assign_and_remove_through_iam(backup_admin, lab):
    """The backup admin's delegation allows a vault identity's roles, for managed identities."""
    identity = services.create_managed_identity(f"{lab.lab_group.resource_id}/providers/Microsoft.DataProtection/"
                                                "backupVaults/bv-iam", "bv-iam")
    assignment = services.assign_role(backup_admin, assignee=identity, role=_role("Reader"), scope=lab.lab_group.resource_id)
    assert services.check_access(backup_admin, identity, lab.lab_group.resource_id).entries[0].assignment == assignment
    services.remove_role_assignment(backup_admin, assignment)
    assert services.check_access(backup_admin, identity, lab.lab_group.resource_id).entries == []


def test_rbac_admin_cannot_assign_outside_their_scope(backup_admin, outsider, lab):
    with pytest.raises(GuardDenied):
        services.assign_role(backup_admin, assignee=outsider, role=_role("Reader"), scope=lab.lab_subscription.resource_id)


def test_duplicate_assignment_is_refused_with_a_clear_message(trainer, outsider, lab):
    services.assign_role(trainer, assignee=outsider, role=_role("Reader"), scope=lab.lab_group.resource_id)
    with pytest.raises(ValidationError, match="already holds Reader"):
        services.assign_role(trainer, assignee=outsider, role=_role("Reader"), scope=lab.lab_group.resource_id)


def test_time_bound_assignment_must_end_in_the_future(trainer, outsider, lab):
    with pytest.raises(ValidationError, match="end must be after"):
        services.assign_role(trainer, assignee=outsider, role=_role("Reader"), scope=lab.lab_group.resource_id,
                             ends_at=clock.now() - dt.timedelta(minutes=1))


def test_inherited_assignments_are_marked(trainer, lab):
    entries = services.assignments_at(lab.lab_group.resource_id)
    owner_at_root = [e for e in entries if e.assignment.principal == trainer and e.assignment.scope == "/"]
    assert owner_at_root and owner_at_root[0].inherited


def test_check_access_needs_read_on_role_assignments(outsider, trainer, lab):
    with pytest.raises(GuardDenied):
        services.check_access(outsider, trainer, lab.lab_group.resource_id)


def test_lab_clock_moves_forward_only_for_the_trainer(trainer, backup_admin, settings):
    before = clock.now()
    moved = services.move_lab_clock(trainer, forward=dt.timedelta(days=2))
    assert moved - before >= dt.timedelta(days=2) and not clock.is_real_time()
    with pytest.raises(ValidationError):
        services.move_lab_clock(trainer, forward=dt.timedelta(seconds=-5))
    with pytest.raises(GuardDenied):
        services.move_lab_clock(backup_admin, forward=dt.timedelta(days=1))
    services.move_lab_clock(trainer, reset=True)
    assert clock.is_real_time()


def test_lab_clock_is_refused_outside_lab_mode(trainer, settings):
    settings.STRONGROOM_LAB_MODE = False
    with pytest.raises(ValidationError, match="only in lab mode"):
        services.move_lab_clock(trainer, forward=dt.timedelta(days=1))


@pytest.mark.django_db(transaction=True)
def test_alerts_are_raised_emailed_and_change_state(lab, settings):
    settings.STRONGROOM_ALERT_EMAILS = ["soc@example.com"]
    alert = services.raise_alert(name="Delete Backup Data", category="Security", severity="Sev0",
                                 resource_id=lab.lab_group.resource_id, description="Backup data was deleted.")
    assert len(mail.outbox) == 1 and "Delete Backup Data" in mail.outbox[0].subject
    alert.refresh_from_db()
    assert alert.emailed and alert.state == Alert.State.NEW
    services.change_alert_state(lab.personas["backup-admin"].principal, alert, "Acknowledged")
    with pytest.raises(GuardDenied):
        services.change_alert_state(lab.personas["outsider"].principal, alert, "Closed")
    services.change_alert_state(lab.trainer, alert, "Closed")
    with pytest.raises(ValidationError):
        services.change_alert_state(lab.trainer, alert, "New")


def test_bootstrap_owner_happens_once(lab):
    from security.models import Principal

    other = Principal.objects.create(kind=Principal.Kind.USER, display_name="Late admin")
    assert services.bootstrap_root_owner(other) is None


def test_seed_is_idempotent(lab):
    from portal.lab import seed_tenancy
    from security.models import RoleAssignment

    count = RoleAssignment.objects.count()
    seed_tenancy()
    assert RoleAssignment.objects.count() == count
