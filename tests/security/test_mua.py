"""Resource Guard and multi-user authorization: services, the MUA guard, grants that end on time.

GIVEN the lab (a security admin who owns a Resource Guard and approves, a backup admin with Reader on
it and a vault of their own) WHEN the backup admin links the guard and tries protected operations,
requests access, and the security admin decides THEN the guard refuses or lets through exactly as
reference §3.3 and decision 3 say, and the activity log names both people at every step.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from security import clock, mua, roles
from security import services as security_services
from security.guards import GuardDenied, evaluate
from security.rbac import authorize
from security.models import AccessRequest, ActivityLogEntry, Alert, ResourceGuardProxy, RoleAssignment, RoleDefinition

pytestmark = pytest.mark.django_db


def _role(name):
    return RoleDefinition.objects.get(name=name)


@pytest.fixture
def guard(lab, security_admin, backup_admin):
    """The lab's guard: owned (Backup MUA Admin) and approved by the security admin; Reader for the backup admin."""
    guard = mua.create_resource_guard(
        security_admin,
        resource_group_id=lab.security_group.resource_id,
        name="rg-guard-test",
        region="eastus",
        description="Ask Sam Security in #security for just-in-time access.",
        approvers=[security_admin],
    )
    security_services.assign_role(security_admin, assignee=security_admin, role=_role(roles.BACKUP_MUA_ADMIN),
                                  scope=guard.resource_id)
    security_services.assign_role(security_admin, assignee=backup_admin, role=_role(roles.READER),
                                  scope=guard.resource_id)
    return guard


@pytest.fixture
def vault(lab, backup_admin):
    from vaults import services as vault_services

    return vault_services.create_vault(backup_admin, name="bv-mua-test", resource_group=lab.lab_group, region=lab.region)


def _link(backup_admin, vault, guard):
    return mua.link_resource_guard(backup_admin, vault, guard_id=guard.resource_id, region=vault.region_id)


def _entries(operation, **filters):
    return list(ActivityLogEntry.objects.filter(operation=operation, **filters).order_by("id"))


def test_it_refuses_a_protected_operation_only_once_the_vault_is_linked(backup_admin, vault, guard):
    """GIVEN an unlinked vault WHEN the backup admin would disable soft delete THEN allowed; WHEN the
    guard is linked THEN refused by MUA, naming the guard and the operation, with Request access."""
    from vaults import services as vault_services
    from vaults.models import SoftDeleteState

    change = {"critical_operation": mua.REDUCE_SOFT_DELETE}
    assert evaluate(backup_admin, vault_services.VAULT_WRITE, vault, change).allowed

    _link(backup_admin, vault, guard)
    decision = evaluate(backup_admin, vault_services.VAULT_WRITE, vault, change)
    assert not decision.allowed and decision.guard == "MUA"
    assert decision.code == "LinkedAuthorizationFailed"
    assert "'rg-guard-test'" in decision.reason and "'Disable soft delete'" in decision.reason
    assert decision.remedy.startswith("Request access")
    assert "Ask Sam Security" in decision.remedy
    assert decision.refusal.extra["resource_guard_id"] == guard.resource_id
    assert decision.refusal.extra["request_resource_id"] == f"{guard.resource_id}/disableSoftDeleteRequests/default"

    with pytest.raises(GuardDenied) as refused:
        vault_services.update_soft_delete(backup_admin, vault, state=SoftDeleteState.OFF)
    assert refused.value.decision.guard == "MUA"
    vault.refresh_from_db()
    assert vault.soft_delete_state == SoftDeleteState.ON
    denial = _entries(vault_services.VAULT_WRITE, status="Failed").pop()
    assert denial.details["guard"] == "MUA" and "rg-guard-test" in denial.message
    # A setting that lowers nothing (raising retention) is not a critical operation.
    vault_services.update_soft_delete(backup_admin, vault, state=SoftDeleteState.ON, retention_days=30)


@pytest.mark.date_sensitive
def test_the_whole_story_request_approve_use_expire(lab, trainer, backup_admin, security_admin, vault, guard):
    """GIVEN a linked vault WHEN the backup admin unlinks THEN refused; WHEN they request 1 hour and the
    security admin approves THEN the unlink succeeds; WHEN the lab clock passes the end THEN refused
    again (the grant counts as absent at once), and close_expired_grants marks and logs it."""
    _link(backup_admin, vault, guard)
    with pytest.raises(GuardDenied):
        mua.unlink_resource_guard(backup_admin, vault)
    assert mua.is_linked(vault.resource_id)

    request = mua.request_access(backup_admin, guard, justification="Remove MUA for the drill", hours=1,
                                 operation=mua.PROXY_DELETE, target_resource_id=vault.resource_id)
    assert request.state == AccessRequest.State.PENDING
    assert list(mua.approvals_for(security_admin)) == [request]
    with pytest.raises(GuardDenied):  # pending is not approved
        mua.unlink_resource_guard(backup_admin, vault)

    mua.approve_request(security_admin, request, comment="OK for the drill, one hour.")
    request.refresh_from_db()
    assert request.state == AccessRequest.State.APPROVED
    assignment = request.role_assignment
    assert assignment.role.name == roles.BACKUP_MUA_OPERATOR and assignment.scope == guard.resource_id
    assert assignment.ends_at - assignment.starts_at == dt.timedelta(hours=1)
    assert mua.remaining(request) is not None

    mua.unlink_resource_guard(backup_admin, vault)
    assert not mua.is_linked(vault.resource_id)
    assert Alert.objects.filter(name="MUA Disabled", affected_resource_id=vault.resource_id).exists()
    use = _entries(mua.PROXY_DELETE, status="Succeeded").pop()
    assert use.details["guards"]["MUA"]["requester"] == "Ben Admin"
    assert use.details["guards"]["MUA"]["approvedBy"] == "Sam Security"
    assert use.details["guards"]["MUA"]["accessRequestId"] == str(request.pk)

    _link(backup_admin, vault, guard)  # linking is not protected
    security_services.move_lab_clock(trainer, forward=dt.timedelta(hours=2))
    with pytest.raises(GuardDenied) as refused:
        mua.unlink_resource_guard(backup_admin, vault)
    assert refused.value.decision.guard == "MUA"
    assert mua.remaining(request) is None

    assert mua.close_expired_grants() == 1
    request.refresh_from_db()
    assignment.refresh_from_db()
    assert request.state == AccessRequest.State.EXPIRED and request.closed_at is not None
    assert assignment.closed_at is not None
    expiry = _entries(mua.EXPIRE_ACCESS).pop()
    assert expiry.details["requester"] == "Ben Admin" and expiry.details["approvedBy"] == "Sam Security"
    assert "Ben Admin" in expiry.message and "Sam Security" in expiry.message
    assert mua.close_expired_grants() == 0  # logged once


def test_every_step_names_both_people(backup_admin, security_admin, vault, guard):
    """GIVEN a request, a rejection, a second request and an approval THEN each entry names the
    requester, and each decision the approver too."""
    first = mua.request_access(backup_admin, guard, justification="first try", hours=2)
    mua.reject_request(security_admin, first, comment="Not during business hours.")
    second = mua.request_access(backup_admin, guard, justification="second try", hours=4)
    mua.approve_request(security_admin, second, comment="Fine.")

    requests = _entries(mua.REQUEST_ACCESS, status="Succeeded")
    assert [e.details["requester"] for e in requests] == ["Ben Admin", "Ben Admin"]
    assert requests[0].caller == "Ben Admin" and requests[0].scope == guard.resource_id
    rejection = _entries(mua.REJECT_REQUEST).pop()
    assert rejection.caller == "Sam Security"
    assert rejection.details["requester"] == "Ben Admin" and rejection.details["rejectedBy"] == "Sam Security"
    assert rejection.details["comment"] == "Not during business hours."
    approval = _entries(mua.APPROVE_REQUEST).pop()
    assert approval.details["requester"] == "Ben Admin" and approval.details["approvedBy"] == "Sam Security"
    assert approval.details["durationHours"] == 4
    first.refresh_from_db()
    assert first.state == AccessRequest.State.REJECTED and first.decided_by == security_admin


def test_nobody_approves_their_own_request(backup_admin, security_admin, vault, guard):
    """GIVEN the backup admin is also an approver WHEN they approve their own request THEN refused
    (logged); the security admin still can."""
    mua.set_approvers(security_admin, guard, [security_admin, backup_admin])
    request = mua.request_access(backup_admin, guard, justification="mine", hours=1)
    with pytest.raises(GuardDenied) as refused:
        mua.approve_request(backup_admin, request, comment="self-service")
    assert refused.value.decision.code == "SelfApprovalNotAllowed"
    assert "Nobody approves their own request" in refused.value.decision.reason
    request.refresh_from_db()
    assert request.state == AccessRequest.State.PENDING and request.role_assignment is None
    assert _entries(mua.APPROVE_REQUEST, status="Failed")[0].caller == "Ben Admin"
    assert request not in list(mua.approvals_for(backup_admin))  # not in their own queue
    mua.approve_request(security_admin, request, comment="ok")


@pytest.mark.parametrize("persona", ["trainer", "reader", "backup_operator"])
def test_only_approvers_decide(request, persona, backup_admin, security_admin, vault, guard):
    """GIVEN a pending request WHEN someone who is not an approver (even an Owner at the root) decides
    THEN refused with who the approvers are."""
    principal = request.getfixturevalue(persona)
    access = mua.request_access(backup_admin, guard, justification="please", hours=1)
    for decide in (mua.approve_request, mua.reject_request):
        with pytest.raises(GuardDenied) as refused:
            decide(principal, access, comment="I decide")
        assert refused.value.decision.code == "ApproverRequired"
        assert "Sam Security" in refused.value.decision.reason
    access.refresh_from_db()
    assert access.state == AccessRequest.State.PENDING


def test_without_approvers_a_request_is_approved_automatically(backup_admin, security_admin, vault, guard):
    """GIVEN a guard with no approvers WHEN the backup admin requests THEN approved at once, logged as
    an automatic approval, and the protected operation passes."""
    mua.set_approvers(security_admin, guard, [])
    _link(backup_admin, vault, guard)
    access = mua.request_access(backup_admin, guard, justification="auto", hours=2)
    assert access.state == AccessRequest.State.APPROVED and access.auto_approved
    assert access.role_assignment.ends_at == access.expires_at
    approval = _entries(mua.APPROVE_REQUEST).pop()
    assert approval.caller == "Strongroom system"
    assert approval.details["requester"] == "Ben Admin"
    assert approval.details["approvedBy"].startswith("Automatic approval")
    assert evaluate(backup_admin, mua.PROXY_DELETE, vault).allowed


def test_mandatory_operations_cannot_be_excluded(security_admin, lab, backup_admin, vault, guard):
    """GIVEN a guard WHEN its owner excludes a mandatory operation THEN refused; WHEN an optional one
    THEN the guard stops protecting it on linked vaults."""
    for mandatory in mua.MANDATORY_OPERATIONS:
        with pytest.raises(ValidationError) as invalid:
            mua.update_resource_guard(security_admin, guard, exclusions=[mandatory])
        assert "mandatory" in str(invalid.value)
        with pytest.raises(ValidationError):
            mua.create_resource_guard(security_admin, resource_group_id=lab.security_group.resource_id,
                                      name="rg-guard-two", region="eastus", exclusions=[mandatory])
    assert mua.guard_by_id(lab.security_group.resource_id + "/providers/Microsoft.DataProtection/resourceGuards/rg-guard-two") is None

    _link(backup_admin, vault, guard)
    instance = f"{vault.resource_id}/backupInstances/bi-1"
    assert evaluate(backup_admin, mua.DELETE_INSTANCE, instance).guard == "MUA"  # protected by default
    assert evaluate(backup_admin, mua.RESTORE, instance).allowed  # optional, off on a new guard
    mua.update_resource_guard(security_admin, guard, exclusions=[mua.DELETE_INSTANCE])
    assert evaluate(backup_admin, mua.DELETE_INSTANCE, instance).allowed
    assert evaluate(backup_admin, mua.PROXY_DELETE, vault).guard == "MUA"


def test_a_guard_with_linked_vaults_cannot_be_deleted(trainer, security_admin, backup_admin, vault, guard):
    """GIVEN a linked guard WHEN its owner deletes it THEN refused with the reference's message; WHEN
    the vault is unlinked THEN the delete goes through with the role assignments on the guard."""
    _link(backup_admin, vault, guard)
    with pytest.raises(ValidationError) as refused:
        mua.delete_resource_guard(security_admin, guard)
    assert mua.GUARD_HAS_VAULTS_MESSAGE in str(refused.value) and "bv-mua-test" in str(refused.value)
    mua.unlink_resource_guard(trainer, vault)  # Owner at the root passes the guard too (the lesson)
    mua.delete_resource_guard(security_admin, guard)
    assert not RoleAssignment.objects.filter(scope__iexact=guard.resource_id).exists()


def test_unlinking_is_itself_protected_and_logged(backup_admin, vault, guard):
    """GIVEN a linked vault WHEN the backup admin removes MUA protection THEN refused by MUA, the link
    stays, and the denial is in the activity log with the remedy."""
    _link(backup_admin, vault, guard)
    with pytest.raises(GuardDenied) as refused:
        mua.unlink_resource_guard(backup_admin, vault)
    decision = refused.value.decision
    assert decision.guard == "MUA" and "'Remove MUA protection'" in decision.reason
    assert ResourceGuardProxy.objects.filter(guard=guard).count() == 1
    entry = _entries(mua.PROXY_DELETE, status="Failed").pop()
    assert entry.details["remedy"].startswith("Request access")


def test_linking_needs_reader_on_the_guard_and_the_same_region(lab, trainer, security_admin, backup_admin, vault):
    """GIVEN guards the backup admin cannot read, or in another region WHEN linking THEN refused."""
    hidden = mua.create_resource_guard(security_admin, resource_group_id=lab.security_group.resource_id,
                                       name="rg-guard-hidden", region="eastus")
    with pytest.raises(GuardDenied) as refused:
        _link(backup_admin, vault, hidden)
    assert refused.value.decision.code == "LinkedAuthorizationFailed"
    assert "Reader on the guard" in refused.value.decision.reason

    far = mua.create_resource_guard(security_admin, resource_group_id=lab.security_group.resource_id,
                                    name="rg-guard-west", region="westus")
    security_services.assign_role(security_admin, assignee=backup_admin, role=_role(roles.READER),
                                  scope=far.resource_id)
    with pytest.raises(ValidationError) as invalid:
        _link(backup_admin, vault, far)
    assert "same region" in str(invalid.value)
    missing = far.resource_id + "-missing"
    with pytest.raises(GuardDenied):  # unreadable: whether it exists is not told
        mua.link_resource_guard(backup_admin, vault, guard_id=missing, region="eastus")
    with pytest.raises(ValidationError, match="No Resource Guard exists"):
        mua.link_resource_guard(trainer, vault, guard_id=missing, region="eastus")
    assert not mua.is_linked(vault.resource_id)


def test_the_vault_security_level_counts_mua(backup_admin, vault, guard):
    from vaults import services as vault_services

    assert not vault_services.security_level(vault).mua_protected
    _link(backup_admin, vault, guard)
    assert vault_services.security_level(vault).mua_protected


def test_deleting_a_vault_frees_its_guard(trainer, backup_admin, security_admin, vault, guard):
    from vaults import services as vault_services

    _link(backup_admin, vault, guard)
    vault_services.delete_vault(trainer, vault)
    mua.delete_resource_guard(security_admin, guard)


@pytest.mark.date_sensitive
def test_a_pending_request_expires_after_a_day_and_duplicates_are_refused(trainer, backup_admin, vault, guard):
    access = mua.request_access(backup_admin, guard, justification="one", hours=8)
    with pytest.raises(ValidationError, match="already have a pending request"):
        mua.request_access(backup_admin, guard, justification="two", hours=8)
    with pytest.raises(ValidationError) as invalid:
        mua.request_access(backup_admin, guard, justification="", hours=3)
    assert set(invalid.value.message_dict) == {"justification", "hours"}
    security_services.move_lab_clock(trainer, forward=dt.timedelta(hours=25))
    assert mua.close_expired_grants() == 1
    access.refresh_from_db()
    assert access.state == AccessRequest.State.EXPIRED and access.role_assignment is None
    assert _entries(mua.EXPIRE_ACCESS).pop().details["neverDecided"] is True


def test_requesting_needs_read_on_the_guard(outsider, guard):
    with pytest.raises(GuardDenied):
        mua.request_access(outsider, guard, justification="let me in", hours=1)
    assert not AccessRequest.objects.exists()


def test_only_the_requester_cancels(backup_admin, security_admin, guard):
    access = mua.request_access(backup_admin, guard, justification="oops", hours=1)
    with pytest.raises(GuardDenied):
        mua.cancel_request(security_admin, access)
    mua.cancel_request(backup_admin, access)
    assert access.state == AccessRequest.State.CANCELLED


# Who passes the guard's request resource (decision 3): a literal table.
REQUEST_RESOURCE_MATRIX = [
    (roles.BACKUP_MUA_OPERATOR, True),
    (roles.BACKUP_MUA_ADMIN, True),
    (roles.OWNER, True),
    (roles.CONTRIBUTOR, True),
    (roles.READER, False),
    (roles.BACKUP_CONTRIBUTOR, False),
    (roles.BACKUP_OPERATOR, False),
    (roles.USER_ACCESS_ADMINISTRATOR, False),
]


@pytest.mark.parametrize("role_name,passes", REQUEST_RESOURCE_MATRIX)
def test_who_passes_the_guard(role_name, passes, trainer, outsider, backup_admin, vault, guard):
    _link(backup_admin, vault, guard)
    security_services.assign_role(trainer, assignee=outsider, role=_role(role_name), scope=guard.resource_id)
    for critical in mua.CRITICAL_OPERATIONS:
        scope = mua.request_resource_id(guard, critical.request_type)
        assert authorize(outsider, mua.request_action(critical.request_type), scope).allowed is passes


def test_the_grant_is_absent_the_moment_it_ends(trainer, backup_admin, security_admin, guard):
    access = mua.request_access(backup_admin, guard, justification="tick", hours=1)
    mua.approve_request(security_admin, access, comment="ok")
    access.refresh_from_db()
    ends = access.expires_at
    assert RoleAssignment.objects.active_at(ends - dt.timedelta(seconds=1)).filter(pk=access.role_assignment_id).exists()
    assert not RoleAssignment.objects.active_at(ends).filter(pk=access.role_assignment_id).exists()
    assert clock.now() < ends


def test_beat_runs_close_expired_grants_every_minute(settings, trainer, backup_admin, security_admin, guard):
    """GIVEN the beat schedule WHEN its entry's task runs (as the worker would) THEN it closes ended grants."""
    from portal.celery import app
    from security.tasks import close_expired_grants

    entry = settings.CELERY_BEAT_SCHEDULE["close-expired-mua-grants"]
    assert entry["task"] == "security.tasks.close_expired_grants" and entry["schedule"] == 60.0
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks and close_expired_grants.name == entry["task"]
    access = mua.request_access(backup_admin, guard, justification="beat", hours=1)
    mua.approve_request(security_admin, access, comment="ok")
    security_services.move_lab_clock(trainer, forward=dt.timedelta(minutes=61))
    assert close_expired_grants.run() == 1
    access.refresh_from_db()
    assert access.state == AccessRequest.State.EXPIRED


# --- the lab clock moved back never brings a grant back (issue 13) --------------------------------


def _approved_grant(backup_admin, security_admin, guard, hours=1):
    request = mua.request_access(backup_admin, guard, justification="drill", hours=hours)
    mua.approve_request(security_admin, request, comment="OK.")
    request.refresh_from_db()
    return request


def _refused_unlink(backup_admin, vault):
    with pytest.raises(GuardDenied) as refused:
        mua.unlink_resource_guard(backup_admin, vault)
    assert refused.value.decision.guard == "MUA"


@pytest.mark.date_sensitive
@pytest.mark.parametrize("periodic_task_ran", [True, False], ids=["expired-by-beat", "expired-at-reset"])
def test_reset_to_real_time_never_revives_an_expired_grant(trainer, backup_admin, security_admin, vault, guard,
                                                           periodic_task_ran):
    """GIVEN an approved one-hour grant and the lab clock moved two hours on (the grant's end passes, and
    the periodic task marks it Expired — or has not run yet) WHEN the trainer resets the clock to real
    time (back inside the grant's hour) THEN the grant stays Expired, its role assignment closed, and the
    protected operation is refused without a new approval, as "My access requests" says."""
    _link(backup_admin, vault, guard)
    request = _approved_grant(backup_admin, security_admin, guard)
    security_services.move_lab_clock(trainer, forward=dt.timedelta(hours=2))
    if periodic_task_ran:
        assert mua.close_expired_grants() == 1
    security_services.move_lab_clock(trainer, reset=True)
    assert clock.now() < request.expires_at  # real time is back inside the granted hour

    request.refresh_from_db()
    request.role_assignment.refresh_from_db()
    assert request.state == AccessRequest.State.EXPIRED and request.closed_at is not None
    assert request.role_assignment.closed_at is not None
    assert mua.active_grant(backup_admin, guard) is None and mua.remaining(request) is None
    assert not RoleAssignment.objects.active_at(clock.now()).filter(pk=request.role_assignment_id).exists()
    _refused_unlink(backup_admin, vault)
    assert mua.close_expired_grants() == 0  # the expiry was logged once, at the lab time it happened
    assert len(_entries(mua.EXPIRE_ACCESS)) == 1
    # A new request is needed, and once approved it works as before.
    again = _approved_grant(backup_admin, security_admin, guard)
    assert mua.active_grant(backup_admin, guard) == again
    mua.unlink_resource_guard(backup_admin, vault)


@pytest.mark.date_sensitive
def test_a_time_bound_role_assignment_that_ended_stays_ended_after_a_reset(trainer, backup_admin, lab):
    """Any time-bound role assignment (not only an MUA grant): its end is recorded, so a reset of the
    lab clock to before it does not restore the access."""
    reader = RoleDefinition.objects.get(name=roles.READER)
    scope = lab.security_group.resource_id
    ends = clock.now() + dt.timedelta(hours=1)
    assignment = security_services.assign_role(trainer, assignee=backup_admin, role=reader, scope=scope, ends_at=ends)
    assert authorize(backup_admin, "Microsoft.Resources/subscriptions/resourceGroups/read", scope).allowed
    security_services.move_lab_clock(trainer, forward=dt.timedelta(hours=3))
    assert not authorize(backup_admin, "Microsoft.Resources/subscriptions/resourceGroups/read", scope).allowed
    security_services.move_lab_clock(trainer, reset=True)
    assignment.refresh_from_db()
    assert assignment.closed_at is not None and clock.now() < assignment.ends_at
    assert not authorize(backup_admin, "Microsoft.Resources/subscriptions/resourceGroups/read", scope).allowed


@pytest.mark.date_sensitive
def test_a_pending_request_that_went_stale_while_the_clock_was_ahead_stays_expired(trainer, backup_admin,
                                                                                    security_admin, guard):
    request = mua.request_access(backup_admin, guard, justification="left waiting", hours=2)
    security_services.move_lab_clock(trainer, forward=dt.timedelta(hours=25))
    security_services.move_lab_clock(trainer, reset=True)
    request.refresh_from_db()
    assert request.state == AccessRequest.State.EXPIRED
    assert list(mua.approvals_for(security_admin)) == []
    with pytest.raises(ValidationError):
        mua.approve_request(security_admin, request, comment="too late")


def test_grants_of_minutes_only_in_lab_mode(settings, backup_admin, guard):
    """GIVEN lab mode WHEN the backup admin asks for 5 minutes THEN the grant lasts 5 minutes and the form
    offers it; outside lab mode the same request is refused, naming the durations there are."""
    from portal.mua.forms import RequestAccessForm

    settings.STRONGROOM_LAB_MODE = False
    with pytest.raises(ValidationError) as invalid:
        mua.request_access(backup_admin, guard, justification="quick", hours="5m")
    assert "1 hour, 2 hours, 4 hours, 8 hours" in str(invalid.value)
    assert "5m" not in dict(RequestAccessForm().fields["hours"].choices)
    settings.STRONGROOM_LAB_MODE = True
    assert dict(RequestAccessForm().fields["hours"].choices)["5m"] == "5 minutes"
    request = mua.request_access(backup_admin, guard, justification="quick", hours="5m")
    assert request.duration == dt.timedelta(minutes=5) and mua.duration_label(request.duration) == "5 minutes"
