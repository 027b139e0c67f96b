"""Lab 4 in pairs: each trainee of a pair is the other's security admin (issue 17).

GIVEN a class of two (A, B) doing "mua-resource-guard" THEN the guard that protects A's vault is B's, in B's
rg-security (B created it and approves on it), and the reverse. WHEN A links it, is refused Delete backup
data, requests access, B rejects with a comment, A asks again, B approves, A deletes with the grant and the
grant ends THEN each check fails before its step and passes after it; the rejection's comment reaches A; A
cannot approve their own request (the MUA service refuses), nor role-play it (refused, and not offered on the
lab page, which names B instead). AND the same on B's side in A's guard, where an approval by anyone but A
(another approver A added) does not count.
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


def _fails(run, step, *words):
    result = step_check(run, step)
    assert not result.passed, (step, result.message)
    for word in words:
        assert word in result.message, (step, word, result.message)
    return result.message


def _passes(run, step, *words):
    result = step_check(run, step)
    assert result.passed, (step, result.message)
    for word in words:
        assert word in result.message, (step, word, result.message)


@pytest.fixture
def pair(lab, instructor):
    """The class's two runs of the lab, A's and B's, with their lab contexts."""
    from labs import classes, services

    created = classes.create_class(instructor, name="MUA in pairs", labs=[SLUG], trainees=2, run_jobs_inline=True)
    assert [c.partner for c in created.credentials] == [2, 1]
    runs = [services.active_run(seat.trainee, SLUG) for seat in created.lab_class.seats.order_by("number")]
    return [(run, services.context_for(run)) for run in runs]


def _parts(ctx):
    from labs.catalogue import mua as lab4

    return lab4._need(ctx)


def _decide(who, run, ctx, *, approve: bool, comment: str):
    from security import mua

    _vault, _item, guard = _parts(ctx)
    pending = mua.pending_request(run.trainee, guard)
    decide = mua.approve_request if approve else mua.reject_request
    return decide(who, pending, comment=comment)


def _guards_are_the_partners(pair):
    from labs.catalogue import protected_vault as pv

    (run_a, ctx_a), (run_b, ctx_b) = pair
    a, b = run_a.trainee, run_b.trainee
    assert ctx_a.partner == b and ctx_b.partner == a
    guard_a, guard_b = _parts(ctx_a)[2], _parts(ctx_b)[2]
    # A's vault is guarded from B's rg-security: B made it and approves; B's from A's.
    assert guard_a.resource_group_id.lower() == ctx_b.world.security_group.resource_id.lower()
    assert guard_a.created_by == b and list(guard_a.approvers.all()) == [b]
    assert guard_b.resource_group_id.lower() == ctx_a.world.security_group.resource_id.lower()
    assert guard_b.created_by == a and list(guard_b.approvers.all()) == [a]
    assert pv.guard_of(ctx_a) == guard_b  # A's own security group holds only the guard A owns for B
    for run in (run_a, run_b):
        for step in STEPS:
            _fails(run, step)
    return guard_a, guard_b


def _a_links_is_refused_and_requests(pair, guard_a, guard_b):
    from security import mua

    (run_a, ctx_a), (_run_b, ctx_b) = pair
    a = run_a.trainee
    # Near miss: A links the guard in A's own group (A's, for B's vault): A can pass it alone.
    vault_a = _parts(ctx_a)[0]
    mua.link_resource_guard(a, vault_a, guard_id=guard_b.resource_id, region=vault_a.region_id)
    _fails(run_a, "link", guard_b.name, guard_a.name, ctx_b.world.names.security_group, "your partner's")
    mua.unlink_resource_guard(a, vault_a)  # allowed: A holds Owner on that guard
    solve(run_a, "link")
    _passes(run_a, "link", guard_a.name)
    solve(run_a, "refused")
    _passes(run_a, "refused", guard_a.name)
    solve(run_a, "request")
    _passes(run_a, "request", guard_a.name)


def _a_cannot_decide_alone(pair, client, guard_a):
    """The request waits for B: A can neither approve it nor role-play it; the page names B, offers no role-play."""
    from django.urls import reverse

    from labs import roleplay
    from security import mua
    from security.guards import GuardDenied

    (run_a, _ctx_a), (run_b, _ctx_b) = pair
    a, b = run_a.trainee, run_b.trainee
    pending = mua.pending_request(a, guard_a)
    message = _fails(run_a, "approved", "Pending approval", b.display_name, b.sign_in_name, "Approvals")
    assert "role-play" not in message
    with pytest.raises(GuardDenied) as refused:
        mua.approve_request(a, pending, comment="self-service")
    assert refused.value.decision.code == "SelfApprovalNotAllowed"
    with pytest.raises(ValidationError, match="paired with"):
        roleplay.decide_as_security_admin(a, pending, approve=True)
    assert roleplay.pending_requests(run_a) == []
    check(run_a)  # the page shows the stored outcome
    client.force_login(a.user)
    page = client.get(reverse("labs:lab_page", args=[SLUG])).content.decode()
    assert "Approve as the security admin" not in page and "Role-play the security admin" not in page
    assert b.display_name in page and b.sign_in_name in page and "Approvals" in page
    assert client.post(reverse("labs:role_play", args=[SLUG]),
                       {"request_id": str(pending.pk), "decision": "approve", "comment": "me"}).status_code == 302
    pending.refresh_from_db()
    assert pending.state == "Pending"


def _b_side_until_another_approves(pair, instructor, guard_b):
    """B, in A's guard: B cannot approve their own request; another approver's approval does not count."""
    from security import mua
    from security.guards import GuardDenied

    (run_a, _ctx_a), (run_b, ctx_b) = pair
    a, b = run_a.trainee, run_b.trainee
    solve(run_b, "link")
    _passes(run_b, "link", guard_b.name)
    solve(run_b, "refused")
    solve(run_b, "request")
    _passes(run_b, "request")
    with pytest.raises(GuardDenied) as refused:
        mua.approve_request(b, mua.pending_request(b, guard_b), comment="self-service")
    assert refused.value.decision.code == "SelfApprovalNotAllowed"
    _fails(run_b, "approved", "Pending approval", a.display_name)
    mua.set_approvers(a, guard_b, [a, instructor])
    _decide(instructor, run_b, ctx_b, approve=True, comment="I can, but I am not the partner.")
    _fails(run_b, "approved", "not by your partner", a.display_name)
    _fails(run_b, "delete", "approved first")


def test_the_partner_owns_the_guard_and_decides_in_person_both_ways(pair, client, instructor,
                                                                   django_capture_on_commit_callbacks):
    from labs import services

    (run_a, ctx_a), (run_b, ctx_b) = pair
    a, b = run_a.trainee, run_b.trainee
    guard_a, guard_b = _guards_are_the_partners(pair)
    _a_links_is_refused_and_requests(pair, guard_a, guard_b)
    _a_cannot_decide_alone(pair, client, guard_a)

    # B rejects with a comment: A's check runs (B's decision is A's progress) and says it; A asks again and B
    # approves; A deletes with the grant.
    with django_capture_on_commit_callbacks() as callbacks:
        _decide(b, run_a, ctx_a, approve=False, comment="Which change ticket is this for?")
    assert (services.CHECK_TASK, str(run_a.pk)) in [getattr(cb, "args", None) for cb in callbacks]
    _fails(run_a, "approved", "rejected", "Which change ticket is this for?", b.display_name)
    solve(run_a, "request")
    _fails(run_a, "approved", "Pending approval")
    _decide(b, run_a, ctx_a, approve=True, comment="CHG-42: go ahead.")
    _passes(run_a, "approved", b.display_name)
    _fails(run_a, "delete", "while your access lasts")
    solve(run_a, "delete")
    _passes(run_a, "delete", b.display_name)
    _fails(run_a, "expired", "lasts until")

    _b_side_until_another_approves(pair, instructor, guard_b)

    later = timezone.now() + dt.timedelta(minutes=6)  # A's and the instructor's grants end
    with time_machine.travel(later, tick=True):
        _fails(run_a, "expired", "now be refused again")
        solve(run_a, "expired")
        _passes(run_a, "expired", "refused")
        assert all(passed for passed, _ in check(run_a).values())
        solve(run_b, "request")
        _decide(a, run_b, ctx_b, approve=True, comment="Approved by your partner.")
        _passes(run_b, "approved", a.display_name)
        solve(run_b, "delete")
        _passes(run_b, "delete", a.display_name)
        _fails(run_b, "expired", "lasts until")
    with time_machine.travel(later + dt.timedelta(minutes=6), tick=True):
        solve(run_b, "expired")
        assert all(passed for passed, _ in check(run_b).values())
    for run in (run_a, run_b):
        run.refresh_from_db()
        assert run.completed_at is not None


def test_a_paired_solve_of_the_approval_is_the_partners_decision(pair):
    """A Lab Instructor's Solve this step, in a pair, approves as the partner, through the approval service."""
    from security import mua

    (run_a, ctx_a), (run_b, _ctx_b) = pair
    for step in ("link", "refused", "request"):
        solve(run_a, step)
    solve(run_a, "approved")
    _passes(run_a, "approved", run_b.trainee.display_name)
    grant = mua.active_grant(run_a.trainee, _parts(ctx_a)[2])
    assert grant.decided_by == run_b.trainee and grant.role_played_by is None
