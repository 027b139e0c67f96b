"""A service principal passes a Resource Guard only as a person does (issue 20): PIM's
``roleAssignmentScheduleRequests`` on the guard (Microsoft.Authorization, api-version 2020-10-01) ask for
a time-bound Backup MUA Operator grant through the portal's own "Request access" service; an approver
decides in the portal's Approvals page; the grant lets the protected operation through until it ends.

GIVEN a service principal (an app registration with a client secret, Backup Contributor on the lab's
resource group, Reader on a Resource Guard the security admin made with the SDK) WHEN it disables soft
delete on its MUA-protected vault with Microsoft's SDK THEN refused with the MUA code and the pages'
words; it asks through PIM, the security admin approves in the portal, the retry goes through, and after
the grant's end it is refused again.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.mgmt.dataprotection import models as sdk
from django.test import Client
from django.urls import reverse

from portal.api import AUTHORIZATION_API_VERSIONS, tokens
from portal.mua.lab import seed_mua
from security import applications, mua, roles
from security import services as security_services
from security.guards import evaluate
from security.models import AccessRequest, ActivityLogEntry, RoleDefinition
from security.operations import VAULT_WRITE

pytestmark = pytest.mark.django_db

PIM = "2020-10-01"
OPERATOR_ROLE = "/providers/Microsoft.Authorization/roleDefinitions/f54b6d04-23c6-443e-b462-9c16ab7b4a52"
REQUESTS = "providers/Microsoft.Authorization/roleAssignmentScheduleRequests"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _request_path(guard, name) -> str:
    return f"{guard.resource_id}/{REQUESTS}/{name}"


def _body(principal, *, duration="PT1H", justification="Nightly clean-up needs soft delete off", **properties) -> dict:
    return {"properties": {
        "principalId": str(principal.pk), "roleDefinitionId": OPERATOR_ROLE, "requestType": "SelfActivate",
        "justification": justification,
        "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": duration}}, **properties}}


def _service_principal(lab, *, on_group=None):
    """An app registration's service principal with a client secret (the services of security.applications,
    as the portal's App registrations pages call them) and Backup Contributor on ``on_group``."""
    app = applications.create_application(lab.trainer, _name("app-mua"))
    secret, value = applications.add_client_secret(lab.trainer, app, description="automation")
    if on_group is not None:
        security_services.assign_role(lab.trainer, assignee=app.principal,
                                      role=RoleDefinition.objects.get(name=roles.BACKUP_CONTRIBUTOR),
                                      scope=on_group.resource_id)
    return app, secret, value


def _reader_on(guard, principal, by):
    security_services.assign_role(by, assignee=principal, role=RoleDefinition.objects.get(name=roles.READER),
                                  scope=guard.resource_id)


def _token(app, value) -> str:
    """The service principal's token from the token endpoint (client credentials), as azure-identity gets it."""
    response = Client().post(f"/{tokens.tenant_id()}/oauth2/v2.0/token", {
        "grant_type": "client_credentials", "client_id": str(app.client_id), "client_secret": value,
        "scope": "https://management.azure.com/.default"})
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


class SpArm:
    """The ARM test client speaking as a service principal with its real token."""

    def __init__(self, arm, app, value):
        self.client = arm(app.principal)
        self.client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {_token(app, value)}"

    def __getattr__(self, name):
        return getattr(self.client, name)


@pytest.fixture
def guard(lab):
    """The lab's guard: approved by the security admin."""
    return seed_mua(lab)


@pytest.fixture
def sp(lab, guard, arm):
    app, secret, value = _service_principal(lab, on_group=lab.lab_group)
    _reader_on(guard, app.principal, lab.personas["security-admin"].principal)
    return app.principal, SpArm(arm, app, value)


def _approve_in_the_portal(approver, access, comment="Approved for the nightly job."):
    """The approver's Approvals page, as their browser posts it."""
    page = Client()
    page.force_login(approver.user)
    listed = page.get(reverse("mua:approvals"))
    assert listed.status_code == 200
    row = listed.content.decode().split(f'id="request-{access.pk}"', 1)[1].split("</tr>", 1)[0]
    assert access.requester.display_name in row and "Service principal" in row
    answer = page.post(reverse("mua:approvals"), {"request_id": str(access.pk), "decision": "approve", "comment": comment})
    assert answer.status_code == 302, answer.content[:500]


# --- the route ---------------------------------------------------------------------------------------------


def test_put_asks_through_the_portals_service_and_get_follows_it_to_provisioned(lab, guard, sp, security_admin):
    principal, client = sp
    name = str(uuid.uuid4())
    created = client.put(_request_path(guard, name), _body(principal), api_version=PIM)
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["id"] == _request_path(guard, name) and body["name"] == name
    assert body["type"] == "Microsoft.Authorization/roleAssignmentScheduleRequests"
    props = body["properties"]
    assert props["status"] == "PendingApproval"
    assert props["principalId"] == props["requestorId"] == str(principal.pk)
    assert props["principalType"] == "ServicePrincipal" and props["requestType"] == "SelfActivate"
    assert props["roleDefinitionId"] == OPERATOR_ROLE and props["scope"] == guard.resource_id
    assert props["scheduleInfo"]["expiration"] == {"type": "AfterDuration", "duration": "PT1H"}
    assert props["expandedProperties"]["principal"]["displayName"] == principal.display_name
    assert props["expandedProperties"]["roleDefinition"]["displayName"] == roles.BACKUP_MUA_OPERATOR
    assert client.get(_request_path(guard, name), api_version=PIM).json() == body

    access = AccessRequest.objects.get(pk=name)  # the portal's request, named as the client named it
    assert access.requester == principal and access.guard == guard and access.duration == dt.timedelta(hours=1)
    assert list(mua.approvals_for(security_admin)) == [access]
    logged = ActivityLogEntry.objects.filter(operation=mua.REQUEST_ACCESS).latest("id")
    assert logged.principal_id == principal.pk and logged.details["requester"] == principal.display_name

    _approve_in_the_portal(security_admin, access)
    granted = client.get(_request_path(guard, name), api_version=PIM).json()["properties"]
    access.refresh_from_db()
    assert granted["status"] == "Provisioned"
    assert granted["scheduleInfo"]["expiration"]["endDateTime"].startswith(access.expires_at.strftime("%Y-%m-%dT%H:%M"))
    assert granted["targetRoleAssignmentScheduleId"].endswith(str(access.role_assignment_id))
    assert mua.active_grant(principal, guard) == access


def test_asking_again_while_pending_or_granted_or_under_the_same_name_is_refused(guard, sp, security_admin):
    principal, client = sp
    name = str(uuid.uuid4())
    assert client.put(_request_path(guard, name), _body(principal), api_version=PIM).status_code == 201
    again = client.put(_request_path(guard, str(uuid.uuid4())), _body(principal), api_version=PIM)
    assert again.status_code == 400 and again.json()["error"]["code"] == "PendingRoleAssignmentRequest"
    same = client.put(_request_path(guard, name), _body(principal), api_version=PIM)
    assert same.status_code == 400  # still pending: the pending rule speaks first
    mua.approve_request(security_admin, AccessRequest.objects.get(pk=name), comment="ok")
    granted = client.put(_request_path(guard, str(uuid.uuid4())), _body(principal), api_version=PIM)
    assert granted.status_code == 400 and granted.json()["error"]["code"] == "RoleAssignmentExists"


def test_the_same_name_twice_is_a_conflict(lab, guard, sp, security_admin):
    principal, client = sp
    name = str(uuid.uuid4())
    client.put(_request_path(guard, name), _body(principal), api_version=PIM)
    assert client.post(_request_path(guard, name) + "/cancel", api_version=PIM).status_code == 200
    conflict = client.put(_request_path(guard, name), _body(principal), api_version=PIM)
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "RoleAssignmentRequestExists"


def test_cancel_withdraws_a_pending_request_and_only_the_requester_may(guard, sp, arm, backup_admin):
    principal, client = sp
    name = str(uuid.uuid4())
    client.put(_request_path(guard, name), _body(principal), api_version=PIM)
    other = arm(backup_admin).post(_request_path(guard, name) + "/cancel", api_version=PIM)
    assert other.status_code == 403 and other.json()["error"]["code"] == "AuthorizationFailed"
    done = client.post(_request_path(guard, name) + "/cancel", api_version=PIM)
    assert done.status_code == 200 and done.content == b""
    assert client.get(_request_path(guard, name), api_version=PIM).json()["properties"]["status"] == "Canceled"
    assert AccessRequest.objects.get(pk=name).state == AccessRequest.State.CANCELLED
    twice = client.post(_request_path(guard, name) + "/cancel", api_version=PIM)
    assert twice.status_code == 400 and "cancelled" in twice.json()["error"]["message"]


def test_denied_and_timed_out_in_pims_words(lab, guard, sp, security_admin):
    principal, client = sp
    name = str(uuid.uuid4())
    client.put(_request_path(guard, name), _body(principal), api_version=PIM)
    mua.reject_request(security_admin, AccessRequest.objects.get(pk=name), comment="Not tonight.")
    assert client.get(_request_path(guard, name), api_version=PIM).json()["properties"]["status"] == "Denied"
    late = str(uuid.uuid4())
    client.put(_request_path(guard, late), _body(principal), api_version=PIM)
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(hours=25))
    assert client.get(_request_path(guard, late), api_version=PIM).json()["properties"]["status"] == "TimedOut"
    mua.close_expired_grants()
    assert client.get(_request_path(guard, late), api_version=PIM).json()["properties"]["status"] == "TimedOut"


@pytest.mark.parametrize("change, target", [
    (lambda b: b["properties"].update(requestType="AdminAssign"), "properties.requestType"),
    (lambda b: b["properties"].update(principalId=str(uuid.uuid4())), "properties.principalId"),
    (lambda b: b["properties"].update(roleDefinitionId="/providers/Microsoft.Authorization/roleDefinitions/"
                                      "b24988ac-6180-42a0-ab88-20f7382dd24c"), "properties.roleDefinitionId"),
    (lambda b: b["properties"]["scheduleInfo"]["expiration"].update(duration="PT3H"),
     "properties.scheduleInfo.expiration.duration"),
    (lambda b: b["properties"]["scheduleInfo"]["expiration"].update(duration="soon"),
     "properties.scheduleInfo.expiration.duration"),
    (lambda b: b["properties"]["scheduleInfo"]["expiration"].update(type="NoExpiration"),
     "properties.scheduleInfo.expiration.type"),
    (lambda b: b["properties"].pop("scheduleInfo"), "properties.scheduleInfo.expiration"),
    (lambda b: b["properties"]["scheduleInfo"].update(startDateTime="2999-01-01T00:00:00Z"),
     "properties.scheduleInfo.startDateTime"),
    (lambda b: b["properties"].update(justification=""), "properties.justification"),
    (lambda b: b["properties"].update(justification="x" * 600), "properties.justification"),
    (lambda b: b["properties"].update(justification="night\x00ly"), "properties.justification"),
    (lambda b: b["properties"].pop("principalId"), "properties.principalId"),
])
def test_bad_input_is_a_400_naming_the_field(guard, sp, change, target):
    principal, client = sp
    body = _body(principal)
    change(body)
    response = client.put(_request_path(guard, str(uuid.uuid4())), body, api_version=PIM)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["target"] == target
    assert not AccessRequest.objects.filter(requester=principal).exists()


def test_names_versions_403_and_404(lab, guard, sp, arm, outsider):
    principal, client = sp
    not_a_guid = client.put(_request_path(guard, "tonight"), _body(principal), api_version=PIM)
    assert not_a_guid.status_code == 400 and not_a_guid.json()["error"]["target"] == "roleAssignmentScheduleRequestName"
    for version, code in ((None, "MissingApiVersionParameter"), ("2026-06-01", "InvalidApiVersionParameter")):
        wrong = client.get(_request_path(guard, uuid.uuid4()), api_version=version)
        assert wrong.status_code == 400 and wrong.json()["error"]["code"] == code
        assert all(v in wrong.json()["error"]["message"] for v in AUTHORIZATION_API_VERSIONS)
    assert client.get(_request_path(guard, uuid.uuid4()), api_version="2022-04-01-preview").status_code == 404
    missing = client.get(_request_path(guard, uuid.uuid4()), api_version=PIM)
    assert missing.json()["error"]["code"] == "RoleAssignmentScheduleRequestNotFound"
    no_guard = client.get(_request_path(guard, uuid.uuid4()).replace(guard.name, "rg-guard-nope"), api_version=PIM)
    assert no_guard.status_code == 403  # the caller may not read a guard it has no role on: 403 before 404
    assert arm(lab.trainer).get(_request_path(guard, uuid.uuid4()).replace(guard.name, "rg-guard-nope"),
                                api_version=PIM).status_code == 404
    for response in (arm(outsider).put(_request_path(guard, uuid.uuid4()), _body(outsider), api_version=PIM),
                     arm(outsider).get(_request_path(guard, uuid.uuid4()), api_version=PIM)):
        assert response.status_code == 403 and response.json()["error"]["code"] == "AuthorizationFailed"
    app, _secret, value = _service_principal(lab, on_group=lab.lab_group)  # no role on the guard
    refused = SpArm(arm, app, value).put(_request_path(guard, uuid.uuid4()), _body(app.principal), api_version=PIM)
    assert refused.status_code == 403 and app.display_name in refused.json()["error"]["message"]


def test_the_openapi_document_names_the_authorization_versions(client):
    schema = client.get("/providers/Strongroom/openapi.json").json()
    path = next(p for p in schema["paths"] if p.endswith("/roleAssignmentScheduleRequests/{roleAssignmentScheduleRequestName}"))
    version = next(p for p in schema["paths"][path]["put"]["parameters"] if p["name"] == "api-version")
    assert version["schema"]["enum"] == list(AUTHORIZATION_API_VERSIONS)


# --- end to end, with Microsoft's SDK as the service principal ----------------------------------------------


def _soft_delete_off(client, group, vault_name, state="Off"):
    return client.backup_vaults.begin_update(group, vault_name, sdk.PatchResourceRequestInput(
        properties=sdk.PatchBackupVaultInput(security_settings=sdk.SecuritySettings(
            soft_delete_settings=sdk.SoftDeleteSettings(state=state, retention_duration_in_days=14))))).result()


def _pim(client, method, path, body=None):
    request = HttpRequest(method, path, params={"api-version": PIM}, json=body)
    return client.send_request(request)


@pytest.mark.django_db(transaction=True)
def test_the_sdk_as_a_service_principal_is_refused_asks_is_approved_in_the_portal_and_passes_until_the_end(
        lab, sdk_client):
    security_admin = lab.personas["security-admin"].principal
    group = lab.lab_group.name
    # The security admin makes the Resource Guard with the SDK and names themself approver (the portal's page).
    security = sdk_client(security_admin, lab.security_subscription.subscription_id)
    guard_name = _name("rg-guard-sp")
    security.resource_guards.put(lab.security_group.name, guard_name, sdk.ResourceGuardResource(
        location="eastus", properties=sdk.ResourceGuard()))
    guard = mua.guards_visible_to(security_admin).get(name=guard_name)
    mua.set_approvers(security_admin, guard, [security_admin])

    # The automation: an app registration, Backup Contributor on the lab group, Reader on the guard.
    app, _secret, value = _service_principal(lab, on_group=lab.lab_group)
    principal = app.principal
    _reader_on(guard, principal, security_admin)
    robot = sdk_client(principal, lab.lab_subscription.subscription_id, token=_token(app, value))
    vault_name = _name("bv-sp-mua")
    robot.backup_vaults.begin_create_or_update(group, vault_name, sdk.BackupVaultResource(
        location="eastus", properties=sdk.BackupVault(storage_settings=[sdk.StorageSetting(
            datastore_type="VaultStore", type="LocallyRedundant")]))).result()
    robot.dpp_resource_guard_proxy.create_or_update(group, vault_name, "DppResourceGuardProxy",
        sdk.ResourceGuardProxyBaseResource(properties=sdk.ResourceGuardProxyBase(resource_guard_resource_id=guard.resource_id)))
    vault_id = f"{lab.lab_group.resource_id}/providers/Microsoft.DataProtection/backupVaults/{vault_name}"
    assert mua.is_linked(vault_id)

    # 1. Refused with the MUA code and the words the pages show.
    with pytest.raises(HttpResponseError) as refused:
        _soft_delete_off(robot, group, vault_name)
    from vaults.models import BackupVault

    vault = BackupVault.objects.get(name=vault_name)
    page = evaluate(principal, VAULT_WRITE, vault, {"critical_operation": mua.REDUCE_SOFT_DELETE})
    assert refused.value.error.code == "LinkedAuthorizationFailed" == page.code
    assert refused.value.error.message == f"{page.reason} {page.remedy}"
    assert f"the client '{principal.display_name}'" in page.reason and page.remedy.startswith("Request access")

    # 2. It asks through PIM; the request waits in the approver's Approvals page.
    name = str(uuid.uuid4())
    asked = _pim(robot, "PUT", _request_path(guard, name), _body(principal, duration="PT2H"))
    assert asked.status_code == 201, asked.text()
    assert asked.json()["properties"]["status"] == "PendingApproval"
    access = AccessRequest.objects.get(pk=name)
    with pytest.raises(HttpResponseError):  # still refused while pending
        _soft_delete_off(robot, group, vault_name)

    # 3. The security admin approves in the portal.
    _approve_in_the_portal(security_admin, access)
    assert _pim(robot, "GET", _request_path(guard, name)).json()["properties"]["status"] == "Provisioned"

    # 4. The retry goes through; the activity log names the grant's approver.
    done = _soft_delete_off(robot, group, vault_name)
    assert done.properties.security_settings.soft_delete_settings.state == "Off"
    use = ActivityLogEntry.objects.filter(operation=VAULT_WRITE, status="Succeeded", principal_ref=principal).latest("id")
    assert use.details["guards"]["MUA"]["approvedBy"] == security_admin.display_name
    assert use.details["guards"]["MUA"]["requester"] == principal.display_name
    _soft_delete_off(robot, group, vault_name, state="On")  # turning it back on is no critical operation

    # 5. Past the grant's end (the lab clock two hours on): refused again, and PIM says Expired.
    security_services.move_lab_clock(lab.trainer, forward=dt.timedelta(hours=2, minutes=1))
    with pytest.raises(HttpResponseError) as again:
        _soft_delete_off(robot, group, vault_name)
    assert again.value.error.code == "LinkedAuthorizationFailed"
    assert _pim(robot, "GET", _request_path(guard, name)).json()["properties"]["status"] == "Expired"
    assert mua.close_expired_grants() == 1
    assert _pim(robot, "GET", _request_path(guard, name)).json()["properties"]["status"] == "Expired"
