"""Lab 4, multi-user authorization with a Resource Guard, and the self-study role-play of the security admin.

GIVEN a fresh sandbox (vault bv-mua-<code> with a backed-up item, the security admin's guard-<code>) THEN every
check fails before its step, fails on a prepared near miss (a guard of one's own, a failure for another
reason, a request on the wrong guard, a self-approval and a rejection, a grant used for something else, a
grant not yet ended) and passes after its solve, to the end. The lab clock moves for the grant's end.
"""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone

from tests.labs.conftest import check, solve, step_check

SLUG = "mua-resource-guard"
STEPS = ["link", "refused", "request", "approved", "delete", "expired"]


def _parts(run):
    from labs import services
    from labs.catalogue import mua as lab4

    ctx = services.context_for(run)
    return (ctx, *lab4._need(ctx))


def _fails(run, step, *words):
    result = step_check(run, step)
    assert not result.passed, (step, result.message)
    for word in words:
        assert word in result.message, (step, word, result.message)
    return result.message


def test_every_check_fails_before_passes_after_and_fails_on_near_misses(lab, trainee, start):
    from protection.backups import services as backups
    from protection.deletion import services as deletion
    from security import mua
    from security.guards import GuardDenied
    from security.models import AccessRequest

    from labs import roleplay

    run = start(SLUG)
    ctx, vault, item, guard = _parts(run)
    assert guard.name == f"guard-{run.sandbox.code}" and list(guard.approvers.all()) == [ctx.world.security_admin]
    assert item.recovery_points.exists() and vault.name == f"bv-mua-{run.sandbox.code}"
    for step in STEPS:
        _fails(run, step)

    # 1. A guard of one's own (in rg-lab, where the trainee is Contributor) protects nothing.
    own = mua.create_resource_guard(trainee, resource_group_id=ctx.world.backup_group.resource_id, name="guard-mine",
                                    region=vault.region_id)
    mua.link_resource_guard(trainee, vault, guard_id=own.resource_id, region=vault.region_id)
    _fails(run, "link", "guard-mine", guard.name)
    mua.unlink_resource_guard(trainee, vault)  # the trainee passes their own guard: that is the point
    # 2. A delete that failed for another reason (a mistyped name) is not the guard's refusal.
    with pytest.raises(ValidationError):
        deletion.delete_backup_data(trainee, item, confirm_name="not-the-name", reason="Others")
    _fails(run, "refused", "not because of the Resource Guard")
    solve(run, "link")
    assert step_check(run, "link").passed
    solve(run, "refused")
    assert step_check(run, "refused").passed

    # 3. A request on the wrong guard (their own: approved automatically, and it protects nothing here).
    assert mua.request_access(trainee, own, justification="mine", hours="5m").auto_approved
    _fails(run, "request", "guard-mine")
    solve(run, "request")
    assert step_check(run, "request").passed

    # 4. Nobody approves their own request; a rejection is not an approval.
    pending = mua.pending_request(trainee, guard)
    with pytest.raises(GuardDenied) as refused:
        mua.approve_request(trainee, pending, comment="self-service")
    assert refused.value.decision.code == "SelfApprovalNotAllowed"
    _fails(run, "approved", "Pending approval")
    roleplay.decide_as_security_admin(trainee, pending, approve=False, comment="Not without a ticket.")
    _fails(run, "approved", "rejected", "Not without a ticket.")
    solve(run, "request")
    solve(run, "approved")
    assert step_check(run, "approved").passed

    # 5. The grant used for another protected operation (Stop backup, retain forever) is not the delete.
    _fails(run, "delete", "while your access lasts")
    backups.stop_backup(trainee, item, retain=backups.RETAIN_FOREVER, reason="Others")
    _fails(run, "delete", "Stop protection")
    solve(run, "delete")
    assert step_check(run, "delete").passed
    item.refresh_from_db()
    assert item.protection_state == "SoftDeleted"

    # 6. Not before the grant ends; then a refusal after its end.
    grant = AccessRequest.objects.get(guard=guard, requester=trainee, state="Approved")
    assert grant.duration == dt.timedelta(minutes=5)
    _fails(run, "expired", "lasts until")
    with pytest.raises(ValidationError, match="lasts until"):
        solve(run, "expired")
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=6), tick=True):  # the grant's five minutes pass
        _fails(run, "expired", "now be refused again")
        solve(run, "expired")
        assert step_check(run, "expired").passed
        results = check(run)
    assert all(passed for passed, _ in results.values()), results
    run.refresh_from_db()
    assert run.completed_at is not None


def test_role_play_approves_as_the_security_admin_marked_and_naming_the_trainee(lab, trainee, make_trainee, start,
                                                                                client):
    from django.urls import reverse

    from labs import roleplay
    from security import mua
    from security import operations as ops
    from security.guards import GuardDenied
    from security.models import AccessRequest, ActivityLogEntry

    run = start(SLUG)
    ctx, vault, item, guard = _parts(run)
    for step in ("link", "refused", "request"):
        solve(run, step)
    pending = mua.pending_request(trainee, guard)
    admin = ctx.world.security_admin

    # Another trainee cannot role-play on this sandbox's guard (nor decide as its security admin).
    other = make_trainee("other")
    with pytest.raises(ValidationError, match="not your sandbox's"):
        roleplay.decide_as_security_admin(other, pending, approve=True)
    # The trainee in their own name cannot approve their own request: only the role-played approver can.
    with pytest.raises(GuardDenied) as refused:
        mua.approve_request(trainee, pending, comment="self-service")
    assert refused.value.decision.code == "SelfApprovalNotAllowed"

    client.force_login(trainee.user)
    page = client.get(reverse("labs:lab_page", args=[SLUG]))
    assert b"Approve as the security admin" in page.content
    response = client.post(reverse("labs:role_play", args=[SLUG]),
                           {"request_id": str(pending.pk), "decision": "approve", "comment": "OK for the lab."})
    assert response.status_code == 302

    pending.refresh_from_db()
    assert pending.state == AccessRequest.State.APPROVED
    assert pending.decided_by == admin and pending.role_played_by == trainee
    approval = ActivityLogEntry.objects.filter(operation=ops.APPROVE_REQUEST, status="Succeeded").latest("id")
    assert approval.principal == admin
    assert approval.details["rolePlayed"] is True and approval.details["rolePlayedBy"] == trainee.display_name
    assert approval.details["playedBy"] == trainee.display_name and trainee.display_name in approval.caller
    assert "role-played" in approval.caller
    assert ActivityLogEntry.objects.filter(operation=ops.LAB_SECURITY_ROLE_PLAY, principal=trainee,
                                           status="Succeeded").exists()
    assert mua.approvers_label(pending) == f"{admin.display_name} (role-played by {trainee.display_name})"
    assert b"role-played" in client.get(reverse("mua:my_requests")).content
    result = step_check(run, "approved")
    assert result.passed and "role-played by" in result.message
    assert b"Approve as the security admin" not in client.get(reverse("labs:lab_page", args=[SLUG])).content
