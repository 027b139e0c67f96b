"""The MUA guard treats a service principal as it treats a person (issue 20).

GIVEN a Resource Guard approved by the security admin, linked to the backup admin's vault, and a service
principal (an app registration's) with Backup Contributor on the vault's resource group and Reader on the
guard WHEN it disables soft delete THEN refused by MUA until it holds a grant someone else approved; it can
neither approve its own request nor be made an approver; its grant is its own (another service principal
gains nothing) and ends on time.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.core.exceptions import ValidationError

from security import applications, mua, roles
from security import services as security_services
from security.guards import GuardDenied, evaluate
from security.models import AccessRequest, ActivityLogEntry, RoleDefinition

pytestmark = pytest.mark.django_db


def _role(name):
    return RoleDefinition.objects.get(name=name)


def _service_principal(lab, guard):
    app = applications.create_application(lab.trainer, f"app-mua-{uuid.uuid4().hex[:6]}")
    security_services.assign_role(lab.trainer, assignee=app.principal, role=_role(roles.BACKUP_CONTRIBUTOR),
                                  scope=lab.lab_group.resource_id)
    security_services.assign_role(lab.personas["security-admin"].principal, assignee=app.principal,
                                  role=_role(roles.READER), scope=guard.resource_id)
    return app.principal


@pytest.fixture
def guard(lab):
    from portal.mua.lab import seed_mua

    return seed_mua(lab)


@pytest.fixture
def vault(lab, backup_admin, guard):
    from vaults import services as vault_services

    vault = vault_services.create_vault(backup_admin, name=f"bv-sp-{uuid.uuid4().hex[:6]}",
                                        resource_group=lab.lab_group, region=lab.region)
    mua.link_resource_guard(backup_admin, vault, guard_id=guard.resource_id, region=vault.region_id)
    return vault


def _soft_delete(principal, vault, state="Off"):
    from vaults import services as vault_services

    return vault_services.update_soft_delete(principal, vault, state=state, retention_days=14)


def _refused(principal, vault):
    with pytest.raises(GuardDenied) as refused:
        _soft_delete(principal, vault)
    assert refused.value.decision.guard == "MUA"
    assert refused.value.decision.code == "LinkedAuthorizationFailed"
    return refused.value.decision


def test_a_service_principal_is_refused_like_a_person_and_passes_with_a_grant_someone_else_approved(
        lab, guard, vault, security_admin):
    robot = _service_principal(lab, guard)
    decision = _refused(robot, vault)
    assert f"the client '{robot.display_name}' with object id '{robot.pk}'" in decision.reason
    assert decision.remedy.startswith("Request access")

    access = mua.request_access(robot, guard, justification="nightly clean-up", hours=1)
    assert access.state == AccessRequest.State.PENDING
    assert list(mua.approvals_for(security_admin)) == [access]
    _refused(robot, vault)  # a pending request lets nothing through

    mua.approve_request(security_admin, access, comment="For tonight.")
    access.refresh_from_db()
    assert access.role_assignment.principal == robot and access.role_assignment.scope == guard.resource_id
    _soft_delete(robot, vault)
    use = ActivityLogEntry.objects.filter(operation=mua.REDUCE_SOFT_DELETE.split("#")[0], status="Succeeded").latest("id")
    assert use.details["guards"]["MUA"]["requester"] == robot.display_name
    assert use.details["guards"]["MUA"]["approvedBy"] == security_admin.display_name


def test_a_service_principal_cannot_approve_its_own_request_nor_be_an_approver(lab, guard, security_admin):
    robot = _service_principal(lab, guard)
    access = mua.request_access(robot, guard, justification="nightly clean-up", hours=1)
    for decide in (mua.approve_request, mua.reject_request):
        with pytest.raises(GuardDenied) as own:
            decide(robot, access, comment="self-service")
        assert own.value.decision.code == "SelfApprovalNotAllowed"
    with pytest.raises(ValidationError) as not_a_person:
        mua.set_approvers(security_admin, guard, [security_admin, robot])
    assert "people" in str(not_a_person.value)
    other = _service_principal(lab, guard)
    with pytest.raises(GuardDenied) as not_approver:
        mua.approve_request(other, access, comment="a friend's approval")
    assert not_approver.value.decision.code == "ApproverRequired"
    access.refresh_from_db()
    assert access.state == AccessRequest.State.PENDING and mua.active_grant(robot, guard) is None


def test_the_grant_is_its_holders_only_and_ends_on_time(lab, guard, vault, security_admin):
    robot = _service_principal(lab, guard)
    other = _service_principal(lab, guard)
    access = mua.request_access(robot, guard, justification="nightly clean-up", hours=1)
    mua.approve_request(security_admin, access, comment="ok")
    _refused(other, vault)
    assert evaluate(robot, "Microsoft.DataProtection/backupVaults/write", vault,
                    {"critical_operation": mua.REDUCE_SOFT_DELETE}).allowed
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(hours=1, minutes=1))
    _refused(robot, vault)
    assert mua.close_expired_grants() == 1
    access.refresh_from_db()
    assert access.state == AccessRequest.State.EXPIRED and access.role_assignment.closed_at is not None
