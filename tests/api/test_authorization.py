"""Microsoft.Authorization through the API: a script gives a vault's identity its backup roles with a PUT
of a role assignment, through the same service, conditions and guards as Access control (IAM)."""

import uuid

import pytest

from security import roles
from security.models import RoleAssignment, RoleDefinition

pytestmark = pytest.mark.django_db

AUTHZ = "2022-04-01"


def _path(scope: str, name=None) -> str:
    tail = f"/{name}" if name else ""
    return f"{scope}/providers/Microsoft.Authorization/roleAssignments{tail}"


def _body(role, principal, **extra):
    return {"properties": {"roleDefinitionId": f"/subscriptions/x/providers/Microsoft.Authorization/roleDefinitions/{role.id}",
                           "principalId": str(principal.id), **extra}}


def _role(name):
    return RoleDefinition.objects.get(name=name)


def test_put_get_list_and_delete_a_role_assignment(arm, lab, reader):
    scope = lab.lab_group.resource_id
    client = arm(lab.trainer)
    name = uuid.uuid4()
    role = _role(roles.BACKUP_READER)
    created = client.put(_path(scope, name), _body(role, reader, principalType="User"), api_version=AUTHZ)
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["name"] == str(name) and body["type"] == "Microsoft.Authorization/roleAssignments"
    assert body["properties"]["principalId"] == str(reader.id) and body["properties"]["scope"] == scope
    assert body["properties"]["roleDefinitionId"].endswith(str(role.id))
    assignment = RoleAssignment.objects.get(pk=name)
    assert assignment.principal == reader and assignment.role == role and assignment.created_by == lab.trainer
    # The same PUT again is idempotent; the same role for the same principal under another name conflicts.
    assert client.put(_path(scope, name), _body(role, reader), api_version=AUTHZ).status_code == 200
    again = client.put(_path(scope, uuid.uuid4()), _body(role, reader), api_version=AUTHZ)
    assert again.status_code == 409 and again.json()["error"]["code"] == "RoleAssignmentExists"
    assert client.get(_path(scope, name), api_version=AUTHZ).json()["properties"]["principalId"] == str(reader.id)
    listed = client.get(_path(scope) + f"?$filter=principalId eq '{reader.id}'", api_version=AUTHZ).json()["value"]
    assert str(name) in [a["name"] for a in listed]
    deleted = client.delete(_path(scope, name), api_version=AUTHZ)
    assert deleted.status_code == 200 and not RoleAssignment.objects.filter(pk=name).exists()
    assert client.delete(_path(scope, name), api_version=AUTHZ).status_code == 204
    assert client.get(_path(scope, name), api_version=AUTHZ).status_code == 404


def test_without_the_right_to_assign_it_is_refused_in_azures_words(arm, lab, backup_admin, reader):
    scope = lab.lab_group.resource_id
    response = arm(backup_admin).put(_path(scope, uuid.uuid4()), _body(_role(roles.OWNER), reader), api_version=AUTHZ)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "AuthorizationFailed" and "Microsoft.Authorization/roleAssignments/write" in error["message"]
    assert not RoleAssignment.objects.filter(principal=reader, role__name=roles.OWNER).exists()


@pytest.mark.parametrize("problem", ["name", "role", "principal", "type", "properties"])
def test_bad_input_is_a_400_naming_the_field(arm, lab, reader, problem):
    scope = lab.lab_group.resource_id
    role = _role(roles.BACKUP_READER)
    name, body = uuid.uuid4(), _body(role, reader)
    if problem == "name":
        name = "not-a-guid"
    elif problem == "role":
        body["properties"]["roleDefinitionId"] = f"/providers/Microsoft.Authorization/roleDefinitions/{uuid.uuid4()}"
    elif problem == "principal":
        body["properties"]["principalId"] = str(uuid.uuid4())
    elif problem == "type":
        body["properties"]["principalType"] = "ServicePrincipal"
    else:
        body = {"properties": "nope"}
    response = arm(lab.trainer).put(_path(scope, name), body, api_version=AUTHZ)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["message"]
    assert not RoleAssignment.objects.filter(principal=reader, role=role).exists()


def test_the_api_version_is_checked_per_provider(arm, lab):
    scope = lab.lab_group.resource_id
    response = arm(lab.trainer).get(_path(scope), api_version="2026-06-01")
    assert response.status_code == 400 and response.json()["error"]["code"] == "InvalidApiVersionParameter"
    assert "2022-04-01" in response.json()["error"]["message"]


def test_role_definitions_by_name(arm, lab, reader):
    scope = lab.lab_group.resource_id
    path = f"{scope}/providers/Microsoft.Authorization/roleDefinitions?$filter=roleName eq 'Storage Account Backup Contributor'"
    found = arm(reader).get(path, api_version=AUTHZ).json()["value"]
    assert [d["name"] for d in found] == ["e5e2a7ff-d759-4cd2-bb51-3152d37e2eb1"]
    assert found[0]["properties"]["type"] == "BuiltInRole"
    bad = arm(reader).get(f"{scope}/providers/Microsoft.Authorization/roleDefinitions?$filter=nonsense", api_version=AUTHZ)
    assert bad.status_code == 400 and bad.json()["error"]["target"] == "$filter"
