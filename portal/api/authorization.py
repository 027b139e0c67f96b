"""``Microsoft.Authorization`` as Azure's automation calls it: role assignments (PUT, GET, DELETE, list at
a scope) and role definitions (list, with ``$filter=roleName eq '...'``), so a script can give a new
vault's identity the roles its backups need (``az role assignment create`` / azure-mgmt-authorization)
through the same service, conditions and guards as Access control (IAM)."""

from __future__ import annotations

import re
import uuid

from django.core.exceptions import ValidationError
from django.http import HttpResponse, JsonResponse
from ninja import Body, Router

from portal.api import lookups
from portal.api.envelope import timestamp
from portal.api.errors import ArmError
from security import operations as ops
from security import scopes
from security import services as security_services
from security.conditions import principal_type
from security.models import Principal, RoleAssignment, RoleDefinition

router = Router(tags=["Authorization"])

PROVIDER = "providers/Microsoft.Authorization"
ASSIGNMENTS = "/{path:scope}/" + PROVIDER + "/roleAssignments"
DEFINITIONS = "/{path:scope}/" + PROVIDER + "/roleDefinitions"
_ROLE_NAME_FILTER = re.compile(r"^\s*roleName\s+eq\s+'([^']*)'\s*$", re.I)
_PRINCIPAL_FILTER = re.compile(r"^\s*(?:assignedTo\('([0-9a-fA-F-]{36})'\)|principalId\s+eq\s+'([0-9a-fA-F-]{36})')\s*$")


def _scope(raw: str) -> str:
    scope = scopes.normalize("/" + raw)
    if not scope.lower().startswith("/subscriptions/") and scope != scopes.ROOT:
        raise ArmError(400, "InvalidScope", f"The scope '{scope}' is not valid: give a subscription, resource group or resource id.")
    return scope


def _guid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError):
        raise ArmError(400, "InvalidRoleAssignmentId" if field == "roleAssignmentName" else "InvalidParameter",
                       f"The {field} '{value}' is not valid: it must be a GUID.", target=field) from None


def definition_id(role: RoleDefinition, scope: str) -> str:
    sub = scope.split("/")[2] if scope.lower().startswith("/subscriptions/") else ""
    prefix = f"/subscriptions/{sub}" if sub else ""
    return f"{prefix}/providers/Microsoft.Authorization/roleDefinitions/{role.id}"


def assignment_body(assignment: RoleAssignment) -> dict:
    properties = {
        "roleDefinitionId": definition_id(assignment.role, assignment.scope),
        "principalId": str(assignment.principal_id),
        "principalType": principal_type(assignment.principal.kind),
        "scope": assignment.scope,
        "createdOn": timestamp(assignment.created_at),
        "updatedOn": timestamp(assignment.created_at),
    }
    if assignment.description:
        properties["description"] = assignment.description
    if assignment.created_by_id:
        properties["createdBy"] = str(assignment.created_by_id)
    if assignment.condition_version:
        properties["conditionVersion"] = assignment.condition_version
    return {
        "id": f"{assignment.scope}/providers/Microsoft.Authorization/roleAssignments/{assignment.id}",
        "name": str(assignment.id),
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": properties,
    }


def _assignment_at(scope: str, name: uuid.UUID) -> RoleAssignment:
    found = RoleAssignment.objects.select_related("role", "principal").filter(pk=name, scope__iexact=scope, closed_at__isnull=True).first()
    if found is None:
        raise ArmError(404, "RoleAssignmentNotFound", f"The role assignment '{name}' is not found at scope '{scope}'.")
    return found


@router.put(ASSIGNMENTS + "/{roleAssignmentName}", url_name="role_assignment")
def put_role_assignment(request, scope: str, roleAssignmentName: str, payload: dict = Body(...)):
    target = _scope(scope)
    name = _guid(roleAssignmentName, "roleAssignmentName")
    properties = payload.get("properties") if isinstance(payload, dict) else None
    if not isinstance(properties, dict):
        raise ArmError(400, "InvalidRequestContent", "The request content must have 'properties' with 'roleDefinitionId' and 'principalId'.", target="properties")
    role_guid = _guid(str(properties.get("roleDefinitionId") or "").rstrip("/").rsplit("/", 1)[-1], "properties.roleDefinitionId")
    role = RoleDefinition.objects.filter(pk=role_guid).first()
    if role is None:
        raise ArmError(400, "RoleDefinitionDoesNotExist", f"The specified role definition with ID '{role_guid}' does not exist.", target="properties.roleDefinitionId")
    assignee = Principal.objects.filter(pk=_guid(properties.get("principalId"), "properties.principalId")).first()
    if assignee is None:
        raise ArmError(400, "PrincipalNotFound", f"Principal {properties.get('principalId')} does not exist in the directory.", target="properties.principalId")
    stated = properties.get("principalType")
    if stated and str(stated).lower() != principal_type(assignee.kind).lower():
        raise ArmError(400, "PrincipalTypeNotSupported" if stated not in ("User", "Group", "ServicePrincipal", "ForeignGroup", "Device") else "UnmatchedPrincipalType",
                       f"The principal {assignee.id} is a {principal_type(assignee.kind)}, not a {stated}.", target="properties.principalType")
    existing = RoleAssignment.objects.filter(pk=name).select_related("role", "principal").first()
    if existing is not None and existing.principal_id == assignee.id and existing.role_id == role.id and existing.scope.lower() == target.lower():
        lookups.require(request.auth, ops.ROLE_ASSIGNMENT_WRITE, target)
        return JsonResponse(assignment_body(existing), status=200)  # ARM's PUT is idempotent
    try:
        assignment = security_services.assign_role(
            request.auth, assignee=assignee, role=role, scope=target,
            description=str(properties.get("description") or "")[:500], assignment_id=name,
        )
    except ValidationError as exc:
        if getattr(exc, "code", "") == "RoleAssignmentExists":
            raise ArmError(409, "RoleAssignmentExists", "The role assignment already exists.") from None
        raise
    assignment = RoleAssignment.objects.select_related("role", "principal").get(pk=assignment.pk)
    return JsonResponse(assignment_body(assignment), status=201)


@router.get(ASSIGNMENTS + "/{roleAssignmentName}", url_name="role_assignment_get")
def get_role_assignment(request, scope: str, roleAssignmentName: str):
    target = _scope(scope)
    lookups.require(request.auth, ops.ROLE_ASSIGNMENT_READ, target)
    return assignment_body(_assignment_at(target, _guid(roleAssignmentName, "roleAssignmentName")))


@router.delete(ASSIGNMENTS + "/{roleAssignmentName}", url_name="role_assignment_delete")
def delete_role_assignment(request, scope: str, roleAssignmentName: str):
    target = _scope(scope)
    name = _guid(roleAssignmentName, "roleAssignmentName")
    assignment = RoleAssignment.objects.select_related("role", "principal").filter(pk=name, scope__iexact=target, closed_at__isnull=True).first()
    if assignment is None:
        lookups.require(request.auth, ops.ROLE_ASSIGNMENT_DELETE, target)
        return HttpResponse(status=204)
    body = assignment_body(assignment)
    security_services.remove_role_assignment(request.auth, assignment)
    return JsonResponse(body, status=200)


@router.get(ASSIGNMENTS, url_name="role_assignments")
def list_role_assignments(request, scope: str):
    """The assignments at the scope and above it (what applies there), as ``atScope()`` lists them;
    ``$filter=principalId eq '{id}'`` or ``assignedTo('{id}')`` narrows them to one principal."""
    target = _scope(scope)
    lookups.require(request.auth, ops.ROLE_ASSIGNMENT_READ, target)
    rows = RoleAssignment.objects.filter(closed_at__isnull=True).select_related("role", "principal")
    wanted = request.GET.get("$filter", "").strip()
    if wanted and wanted != "atScope()":
        match = _PRINCIPAL_FILTER.match(wanted)
        if not match:
            raise ArmError(400, "UnsupportedQuery", "The $filter is not supported: use atScope(), assignedTo('{id}') or principalId eq '{id}'.", target="$filter")
        rows = rows.filter(principal_id=uuid.UUID(match.group(1) or match.group(2)))
    above = [s.lower() for s in scopes.ancestors(target)]
    value = [assignment_body(a) for a in rows.order_by("created_at", "id") if a.scope.lower() in above]
    return {"value": value}


@router.get(DEFINITIONS, url_name="role_definitions")
def list_role_definitions(request, scope: str):
    """Built-in and custom roles, ``$filter=roleName eq 'Storage Account Backup Contributor'`` as scripts
    ask for one by name."""
    target = _scope(scope)
    lookups.require(request.auth, ops.ROLE_DEFINITION_READ, target)
    rows = RoleDefinition.objects.order_by("name")
    wanted = request.GET.get("$filter", "").strip()
    if wanted:
        match = _ROLE_NAME_FILTER.match(wanted)
        if not match:
            raise ArmError(400, "UnsupportedQuery", "The $filter is not supported: use roleName eq '{name}'.", target="$filter")
        rows = rows.filter(name__iexact=match.group(1))
    return {"value": [_definition_body(role, target) for role in rows]}


def _definition_body(role: RoleDefinition, scope: str) -> dict:
    return {
        "id": definition_id(role, scope),
        "name": str(role.id),
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": role.name,
            "description": role.description,
            "type": "BuiltInRole" if role.built_in else "CustomRole",
            "permissions": [{"actions": list(role.actions), "notActions": list(role.not_actions),
                             "dataActions": list(role.data_actions), "notDataActions": list(role.not_data_actions)}],
            "assignableScopes": ["/"],
        },
    }
