"""PIM's ``roleAssignmentScheduleRequests`` on a Resource Guard: how a service principal asks for access.

In Azure a principal activates an eligible role through ARM itself (Microsoft.Authorization, api-version
2020-10-01): ``PUT {scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{guid}`` with
``requestType: SelfActivate``, then ``GET`` shows its ``status``, and ``POST .../cancel`` withdraws it. Here
the scope is a Resource Guard and the role Backup MUA Operator: the PUT is the portal's "Request access"
(`security.mua.request_access`, the same service, so the request waits in the guard's approvers' Approvals
page like a person's), the cancel is "Cancel" in My access requests. An approver decides it in the portal;
nothing here approves.

Strongroom's request states in PIM's words (its ``status`` enum, 2020-10-01):

================================  =====================================================================
Strongroom (`AccessRequest`)      ``status``
================================  =====================================================================
Pending, within 24 hours          ``PendingApproval``
Pending past 24 hours, or         ``TimedOut`` (nobody decided it: PIM's approval timed out)
Expired without a decision
Approved, grant in force          ``Provisioned`` (the time-bound assignment exists)
Approved, grant ended; Expired    ``Expired``: not in PIM's enum (which keeps "Provisioned" and moves the
after a grant                     end to the schedule); said plainly, so a script never takes an ended
                                  grant for a live one
Rejected                          ``Denied``
Cancelled                         ``Canceled``
================================  =====================================================================
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Optional

from django.core.exceptions import ValidationError
from django.http import HttpResponse, JsonResponse
from ninja import Router, Schema
from pydantic import Field

from portal.api import envelope, lookups
from portal.api.errors import ArmError, renamed_fields
from security import clock, mua
from security.models import AccessRequest, Principal, ResourceGuard, RoleDefinition
from security.operations import AUTHORIZATION, RESOURCE_GUARD_TYPE, REQUEST_READ
from security.roles import BACKUP_MUA_OPERATOR

router = Router(tags=["RoleAssignmentScheduleRequests"])

GUARD = ("/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.DataProtection"
         "/resourceGuards/{resourceGuardsName}")
REQUEST_TYPE = f"{AUTHORIZATION}/roleAssignmentScheduleRequests"
REQUEST = GUARD + "/providers/" + REQUEST_TYPE + "/{roleAssignmentScheduleRequestName}"
ROLE_DEFINITIONS = f"/providers/{AUTHORIZATION}/roleDefinitions/"
SELF_ACTIVATE = "SelfActivate"
AFTER_DURATION = "AfterDuration"
# Scheduling an activation for later is PIM's; a Strongroom grant starts when it is approved. A client's
# clock a little ahead of ours is no schedule.
START_TOLERANCE = dt.timedelta(minutes=5)

FIELDS = {
    "justification": "properties.justification",
    "hours": "properties.scheduleInfo.expiration.duration",
}
PRINCIPAL_TYPES = {
    Principal.Kind.USER: "User",
    Principal.Kind.SERVICE_PRINCIPAL: "ServicePrincipal",
    Principal.Kind.MANAGED_IDENTITY: "ServicePrincipal",  # Entra ID lists a managed identity as one
}


class ExpirationIn(Schema):
    type: Optional[str] = Field(None, max_length=40)
    duration: Optional[str] = Field(None, max_length=40)
    endDateTime: Optional[str] = Field(None, max_length=60)


class ScheduleInfoIn(Schema):
    startDateTime: Optional[dt.datetime] = None
    expiration: Optional[ExpirationIn] = None


class RequestPropertiesIn(Schema):
    principalId: str = Field(..., max_length=100)
    roleDefinitionId: str = Field(..., max_length=400)
    requestType: str = Field(..., max_length=40)
    justification: Optional[str] = Field(None, max_length=2000)
    scheduleInfo: Optional[ScheduleInfoIn] = None


class RequestIn(Schema):
    properties: RequestPropertiesIn


# --- reading what the path and the body name -------------------------------------------------------------


def _guard(request, subscription_id: str, group_name: str, guard_name: str) -> ResourceGuard:
    """The Resource Guard the path's scope names; reading its requests (and asking for access, which
    needs Reader on it) is authorized there before its existence is told (403 before 404)."""
    sub = lookups.subscription(subscription_id)
    scope = f"{lookups.rg_scope(str(sub.subscription_id), group_name)}/providers/{RESOURCE_GUARD_TYPE}/{guard_name}"
    lookups.require(request.auth, REQUEST_READ, scope)
    guard = mua.guard_by_id(scope)
    if guard is None:
        raise ArmError(404, "ResourceNotFound",
                       f"The Resource '{RESOURCE_GUARD_TYPE}/{guard_name}' under resource group '{group_name}' was not found.")
    return guard


def _request_id(name: str) -> uuid.UUID:
    try:
        return uuid.UUID(name)
    except ValueError:
        raise ArmError(400, "InvalidParameter", f"The role assignment schedule request name '{name[:100]}' is not "
                       "valid: it must be a GUID, new for each request.",
                       target="roleAssignmentScheduleRequestName") from None


def _access_request(guard: ResourceGuard, name: str) -> AccessRequest:
    found = (AccessRequest.objects.select_related("guard", "requester", "role", "decided_by", "role_assignment")
             .filter(pk=_request_id(name), guard=guard).first())
    if found is None:
        raise ArmError(404, "RoleAssignmentScheduleRequestNotFound",
                       f"The role assignment schedule request '{name}' was not found at the scope '{guard.resource_id}'.")
    return found


def role_definition_id(role: RoleDefinition) -> str:
    """``/providers/Microsoft.Authorization/roleDefinitions/{guid}`` (Azure's built-in roles keep their ids)."""
    return f"{ROLE_DEFINITIONS}{role.pk}"


def _check_role(role_definition: str) -> None:
    """Only Backup MUA Operator is activated on a Resource Guard; its id may carry a subscription prefix."""
    operator = RoleDefinition.objects.get(name=BACKUP_MUA_OPERATOR)
    head, _, tail = role_definition.rstrip("/").rpartition("/")
    if (head + "/").lower().endswith(ROLE_DEFINITIONS.lower()) and tail.lower() == str(operator.pk):
        return
    raise ArmError(400, "InvalidParameter", f"The role '{role_definition[:200]}' cannot be activated on a Resource "
                   f"Guard: ask for {BACKUP_MUA_OPERATOR} ('{role_definition_id(operator)}'), the role that passes "
                   "the guard's protected operations.", target="properties.roleDefinitionId")


def _check_principal(principal, principal_id: str) -> None:
    if principal_id.strip().lower() != str(principal.pk):
        raise ArmError(400, "InvalidParameter", "A SelfActivate request activates the role for its caller: "
                       f"properties.principalId must be '{principal.pk}', the principal of the access token.",
                       target="properties.principalId")


_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$", re.IGNORECASE)


def iso_duration(duration: dt.timedelta) -> str:
    """"PT4H", "PT15M" (the shape PIM's ``scheduleInfo.expiration.duration`` takes)."""
    minutes = int(duration.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes or not hours else "")


def parse_duration(text: str) -> dt.timedelta | None:
    match = _DURATION.match((text or "").strip())
    if not match or not any(match.groups()) or (text.upper().endswith("T")):
        return None
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _duration_choice(schedule: ScheduleInfoIn | None, now) -> str:
    """The request's duration as the service's choice ("4", "5m"), from ``scheduleInfo``."""
    target = FIELDS["hours"]
    choices = mua.access_durations()
    allowed = ", ".join(iso_duration(d) for _, d in choices)
    expiration = schedule.expiration if schedule else None
    if schedule and schedule.startDateTime:
        start = schedule.startDateTime if schedule.startDateTime.tzinfo else schedule.startDateTime.replace(tzinfo=dt.timezone.utc)
        if start > now + START_TOLERANCE:
            raise ArmError(400, "InvalidParameter", "A Resource Guard grant starts when an approver approves it: "
                           "leave properties.scheduleInfo.startDateTime out (or now).",
                           target="properties.scheduleInfo.startDateTime")
    wanted = f"properties.scheduleInfo.expiration as type '{AFTER_DURATION}' with a duration of {allowed}"
    if expiration is None:
        raise ArmError(400, "InvalidParameter", f"A Resource Guard grant lasts a fixed time: give {wanted}.",
                       target="properties.scheduleInfo.expiration")
    if (expiration.type or AFTER_DURATION) != AFTER_DURATION:
        raise ArmError(400, "InvalidParameter", f"The expiration type '{expiration.type}' is not supported: a Resource "
                       f"Guard grant lasts a fixed time. Give {wanted}.", target="properties.scheduleInfo.expiration.type")
    if not expiration.duration:
        raise ArmError(400, "InvalidParameter", f"Give {wanted}.", target=target)
    duration = parse_duration(expiration.duration)
    for value, choice in choices:
        if duration == choice:
            return value
    raise ArmError(400, "InvalidParameter", f"The duration '{expiration.duration[:40]}' is not one a Resource Guard "
                   f"grants: choose {allowed}.", target=target)


# --- what a request looks like in PIM's words --------------------------------------------------------------


def status_of(access: AccessRequest, now) -> str:
    """``status`` for an access request (see the module's table)."""
    state = access.state
    if state == AccessRequest.State.PENDING:
        return "TimedOut" if access.created_at + mua.PENDING_REQUEST_LIFETIME <= now else "PendingApproval"
    if state == AccessRequest.State.APPROVED:
        return "Provisioned" if access.expires_at and access.expires_at > now else "Expired"
    if state == AccessRequest.State.EXPIRED:
        return "Expired" if access.role_assignment_id or access.decided_at else "TimedOut"
    return {AccessRequest.State.REJECTED: "Denied", AccessRequest.State.CANCELLED: "Canceled"}[state]


def _principal_json(principal: Principal) -> dict:
    body = {"id": str(principal.pk), "displayName": principal.display_name,
            "type": PRINCIPAL_TYPES.get(principal.kind, "ServicePrincipal")}
    if principal.user_id and principal.user.email:
        body["email"] = principal.user.email
    return body


def _schedule(access: AccessRequest) -> dict:
    start = access.role_assignment.starts_at if access.role_assignment_id else access.created_at
    expiration = {"type": AFTER_DURATION, "duration": iso_duration(access.duration)}
    if access.expires_at:
        expiration["endDateTime"] = envelope.timestamp(access.expires_at)
    return {"startDateTime": envelope.timestamp(start), "expiration": expiration}


def request_json(access: AccessRequest, now=None) -> dict:
    now = now or clock.now()
    guard, role = access.guard, access.role
    properties = {
        "scope": guard.resource_id,
        "roleDefinitionId": role_definition_id(role),
        "principalId": str(access.requester_id),
        "principalType": PRINCIPAL_TYPES.get(access.requester.kind, "ServicePrincipal"),
        "requestType": SELF_ACTIVATE,
        "status": status_of(access, now),
        "scheduleInfo": _schedule(access),
        "justification": access.justification,
        "requestorId": str(access.requester_id),
        "createdOn": envelope.timestamp(access.created_at),
        "expandedProperties": {
            "scope": {"id": guard.resource_id, "displayName": guard.name, "type": RESOURCE_GUARD_TYPE},
            "roleDefinition": {"id": role_definition_id(role), "displayName": role.name,
                               "type": "BuiltInRole" if role.built_in else "CustomRole"},
            "principal": _principal_json(access.requester),
        },
    }
    if not access.auto_approved and guard.approvers.exists():
        properties["approvalId"] = f"/providers/{AUTHORIZATION}/roleAssignmentApprovals/{access.pk}"
    if access.role_assignment_id:
        properties["targetRoleAssignmentScheduleId"] = (
            f"{guard.resource_id}/providers/{AUTHORIZATION}/roleAssignmentSchedules/{access.role_assignment_id}")
    return {
        "id": f"{guard.resource_id}/providers/{REQUEST_TYPE}/{access.pk}",
        "name": str(access.pk),
        "type": REQUEST_TYPE,
        "properties": properties,
    }


# --- the routes -------------------------------------------------------------------------------------------


@router.put(REQUEST, url_name="role_assignment_schedule_request_put")
def put_request(request, subscriptionId: str, resourceGroupName: str, resourceGuardsName: str,
                roleAssignmentScheduleRequestName: str, payload: RequestIn):
    """Request access (SelfActivate Backup MUA Operator on the guard): 201, PendingApproval until an approver
    decides in the portal (Provisioned at once on a guard without approvers)."""
    name = _request_id(roleAssignmentScheduleRequestName)
    guard = _guard(request, subscriptionId, resourceGroupName, resourceGuardsName)
    properties = payload.properties
    if properties.requestType != SELF_ACTIVATE:
        raise ArmError(400, "InvalidParameter", f"The request type '{properties.requestType[:40]}' is not supported on "
                       f"a Resource Guard: a principal asks for its own time-bound access with '{SELF_ACTIVATE}'; "
                       "approvers decide in the portal's Approvals page.", target="properties.requestType")
    if "\x00" in (properties.justification or ""):
        raise ArmError(400, "InvalidParameter", "The justification cannot contain null characters.",
                       target=FIELDS["justification"])
    _check_principal(request.auth, properties.principalId)
    _check_role(properties.roleDefinitionId)
    hours = _duration_choice(properties.scheduleInfo, clock.now())
    with renamed_fields(FIELDS):
        try:
            access = mua.request_access(request.auth, guard, justification=properties.justification or "",
                                        hours=hours, request_id=name)
        except ValidationError as exc:
            if getattr(exc, "code", "") == "RoleAssignmentRequestExists":
                raise ArmError(409, exc.code, " ".join(exc.messages), target="roleAssignmentScheduleRequestName") from None
            raise
    return JsonResponse(request_json(_access_request(guard, str(access.pk))), status=201)


@router.get(REQUEST, url_name="role_assignment_schedule_request_get")
def get_request(request, subscriptionId: str, resourceGroupName: str, resourceGuardsName: str,
                roleAssignmentScheduleRequestName: str):
    guard = _guard(request, subscriptionId, resourceGroupName, resourceGuardsName)
    return request_json(_access_request(guard, roleAssignmentScheduleRequestName))


@router.post(REQUEST + "/cancel", url_name="role_assignment_schedule_request_cancel")
def cancel_request(request, subscriptionId: str, resourceGroupName: str, resourceGuardsName: str,
                   roleAssignmentScheduleRequestName: str):
    """Withdraw a pending request (the requester only): 200 with no body, as PIM answers."""
    guard = _guard(request, subscriptionId, resourceGroupName, resourceGuardsName)
    mua.cancel_request(request.auth, _access_request(guard, roleAssignmentScheduleRequestName))
    return HttpResponse(status=200)
