"""A service principal's access request, approved by a person in the portal's Approvals page (issue 20).

GIVEN a vault protected by the lab's Resource Guard and a service principal with Backup Contributor on
its resource group and Reader on the guard WHEN the service principal (over HTTP with its bearer token)
disables soft delete THEN refused with the MUA code; it asks through PIM's roleAssignmentScheduleRequests;
Sam Security, signed in, sees the request in Approvals naming the service principal and clicks Approve;
PIM says Provisioned and the retry goes through.
"""

from __future__ import annotations

import uuid

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser

OPERATOR_ROLE = "/providers/Microsoft.Authorization/roleDefinitions/f54b6d04-23c6-443e-b462-9c16ab7b4a52"


@pytest.fixture
def robot_world(seeded_lab):
    from portal.mua.lab import seed_mua
    from security import applications, mua, roles
    from security import services as security_services
    from security.models import RoleDefinition
    from vaults import services as vault_services

    lab = seeded_lab
    guard = seed_mua(lab)
    backup_admin = lab.personas["backup-admin"].principal
    vault = vault_services.create_vault(backup_admin, name=f"bv-robot-{uuid.uuid4().hex[:6]}",
                                        resource_group=lab.lab_group, region=lab.region)
    mua.link_resource_guard(backup_admin, vault, guard_id=guard.resource_id, region=vault.region_id)
    app = applications.create_application(lab.trainer, "nightly-cleanup-robot")
    _secret, value = applications.add_client_secret(lab.trainer, app, description="automation")
    security_services.assign_role(lab.trainer, assignee=app.principal,
                                  role=RoleDefinition.objects.get(name=roles.BACKUP_CONTRIBUTOR),
                                  scope=lab.lab_group.resource_id)
    security_services.assign_role(lab.personas["security-admin"].principal, assignee=app.principal,
                                  role=RoleDefinition.objects.get(name=roles.READER), scope=guard.resource_id)
    return lab, guard, vault, app, value


def _session(live_server, app, value) -> requests.Session:
    from portal.api import tokens

    answer = requests.post(f"{live_server.url}/{tokens.tenant_id()}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": str(app.client_id), "client_secret": value,
        "scope": "https://management.azure.com/.default"}, timeout=30)
    assert answer.status_code == 200, answer.text
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    return session


def _soft_delete_off(session, live_server, vault):
    return session.patch(f"{live_server.url}{vault.resource_id}", params={"api-version": "2026-06-01"}, timeout=30, json={
        "properties": {"securitySettings": {"softDeleteSettings": {"state": "Off", "retentionDurationInDays": 14}}}})


def test_a_service_principals_request_is_approved_in_the_portal(page, live_server, robot_world):
    from security.models import AccessRequest
    from vaults.models import BackupVault

    lab, guard, vault, app, value = robot_world
    robot = _session(live_server, app, value)
    refused = _soft_delete_off(robot, live_server, vault)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "LinkedAuthorizationFailed"

    name = str(uuid.uuid4())
    pim = f"{live_server.url}{guard.resource_id}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{name}"
    asked = robot.put(pim, params={"api-version": "2020-10-01"}, timeout=30, json={"properties": {
        "principalId": str(app.principal_id), "roleDefinitionId": OPERATOR_ROLE, "requestType": "SelfActivate",
        "justification": "Nightly clean-up: soft delete off on the scratch vault",
        "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": "PT1H"}}}})
    assert asked.status_code == 201, asked.text
    assert asked.json()["properties"]["status"] == "PendingApproval"

    sign_in(page, live_server, "security-admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Approvals").click()
    row = page.locator("#pending-approvals tbody tr", has_text="nightly-cleanup-robot")
    expect(row).to_contain_text("Service principal")
    expect(row).to_contain_text("Nightly clean-up: soft delete off on the scratch vault")
    row.get_by_label("Comment for nightly-cleanup-robot").fill("Approved for tonight's clean-up.")
    row.get_by_role("button", name="Approve").click()
    expect(page.locator(".message-success")).to_contain_text(
        f"Approved nightly-cleanup-robot's request on '{guard.name}'")

    access = AccessRequest.objects.get(pk=name)
    assert access.state == AccessRequest.State.APPROVED and access.decided_by == lab.personas["security-admin"].principal
    assert access.role_played_by is None  # a person signed in as themself decided it
    assert robot.get(pim, params={"api-version": "2020-10-01"}, timeout=30).json()["properties"]["status"] == "Provisioned"
    done = _soft_delete_off(robot, live_server, vault)
    assert done.status_code < 300, done.text
    assert BackupVault.objects.get(pk=vault.pk).soft_delete_state == "Off"
