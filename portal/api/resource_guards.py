"""``resourceGuards``: PUT (create or update), GET, PATCH (tags), DELETE, and the lists, through
`security.mua`'s Resource Guard services (the guard pages' services).

They live with the plumbing because `security`, the ground floor, imports no API code. What ARM has no
field for stays with the pages: a guard made here has no approvers, so its access requests are approved
automatically (``allowAutoApprovals: true``, the pages' warning) until its owner names approvers in the
portal.
"""

from __future__ import annotations

from typing import Optional

from django.core.exceptions import ValidationError
from django.http import HttpResponse, JsonResponse
from ninja import Router, Schema
from pydantic import Field

from portal.api import envelope, lookups
from portal.api.errors import ArmError, renamed_fields
from portal.models import Region, ResourceGroup
from security import mua
from security.models import ResourceGuard
from security.operations import GUARD_DELETE, GUARD_READ, GUARD_WRITE, RESOURCE_GUARD_TYPE
from security.rbac import authorize

router = Router(tags=["ResourceGuards"])

RG = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.DataProtection"
GUARDS = RG + "/resourceGuards"
GUARD = GUARDS + "/{resourceGuardsName}"
GUARDS_IN_SUBSCRIPTION = "/subscriptions/{subscriptionId}/providers/Microsoft.DataProtection/resourceGuards"

FIELDS = {
    "name": "resourceGuardsName",
    "region": "location",
    "description": "properties.description",
    "vault_critical_operation_exclusions": "properties.vaultCriticalOperationExclusionList",
}

Tags = dict[str, str]


class GuardPropertiesIn(Schema):
    vaultCriticalOperationExclusionList: Optional[list[str]] = Field(None, max_length=20)
    description: Optional[str] = Field(None, max_length=1000)


class GuardIn(Schema):
    location: str = Field(..., min_length=1, max_length=60)
    tags: Optional[Tags] = None
    properties: Optional[GuardPropertiesIn] = None


class GuardPatchIn(Schema):
    tags: Optional[Tags] = None


def guard_json(guard: ResourceGuard) -> dict:
    properties = {
        "provisioningState": "Succeeded",
        "allowAutoApprovals": len(guard.approvers.all()) == 0,
        "resourceGuardOperations": [
            {"vaultCriticalOperation": c.action, "requestResourceType": f"{RESOURCE_GUARD_TYPE}/{c.request_type}"}
            for c in mua.CRITICAL_OPERATIONS
        ],
        "vaultCriticalOperationExclusionList": list(guard.vault_critical_operation_exclusions or []),
        "description": guard.description,
    }
    return {
        "id": guard.resource_id,
        "name": guard.name,
        "type": RESOURCE_GUARD_TYPE,
        "location": guard.region,
        "tags": dict(guard.tags or {}),
        "systemData": envelope.system_data(guard.created_at, guard.updated_at),
        "properties": properties,
    }


def _scope(sub, group_name: str, name: str) -> str:
    return f"{lookups.rg_scope(str(sub.subscription_id), group_name)}/providers/{RESOURCE_GUARD_TYPE}/{name}"


def _not_found(name: str, group_name: str) -> ArmError:
    return ArmError(404, "ResourceNotFound",
                    f"The Resource '{RESOURCE_GUARD_TYPE}/{name}' under resource group '{group_name}' was not found.")


def _existing(request, subscription_id: str, group_name: str, name: str, action: str, *, authorize_first: bool):
    """The guard a path names. Reads are authorized first (403 before 404); writes are left to the
    service's guard, and a missing guard is 404 only for a caller who may do ``action`` there."""
    sub = lookups.subscription(subscription_id)
    scope = _scope(sub, group_name, name)
    if authorize_first:
        lookups.require(request.auth, action, scope)
    guard = mua.guard_by_id(scope)
    if guard is None:
        lookups.require(request.auth, action, scope)
        raise _not_found(name, group_name)
    return guard


def _region(location: str) -> str:
    key = (location or "").replace(" ", "").lower()
    if not Region.objects.filter(pk=key).exists():
        raise ArmError(400, "LocationNotAvailableForResourceType",
                       f"The provided location '{location}' is not available for resource type '{RESOURCE_GUARD_TYPE}'.",
                       target="location")
    return key


def _create(request, sub, group_name: str, name: str, payload: GuardIn) -> ResourceGuard:
    group = ResourceGroup.objects.filter(subscription=sub, name__iexact=group_name).first()
    if group is None:
        lookups.require(request.auth, GUARD_WRITE, _scope(sub, group_name, name))
        raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{group_name}' could not be found.")
    properties = payload.properties or GuardPropertiesIn()
    with renamed_fields(FIELDS):
        return mua.create_resource_guard(
            request.auth,
            resource_group_id=group.resource_id,
            name=name,
            region=_region(payload.location),
            description=properties.description or "",
            exclusions=properties.vaultCriticalOperationExclusionList,  # None: the new guard's defaults
            tags=dict(payload.tags or {}),
        )


@router.put(GUARD, url_name="resource_guard_put")
def put_guard(request, subscriptionId: str, resourceGroupName: str, resourceGuardsName: str, payload: GuardIn):
    sub = lookups.subscription(subscriptionId)
    guard = mua.guard_by_id(_scope(sub, resourceGroupName, resourceGuardsName))
    if guard is None:
        guard = _create(request, sub, resourceGroupName, resourceGuardsName, payload)
        return JsonResponse(guard_json(guard), status=201)
    if payload.location.replace(" ", "").lower() != guard.region.lower():
        raise ArmError(400, "InvalidResourceLocation",
                       f"The resource '{guard.name}' already exists in location '{guard.region}' in resource group "
                       f"'{guard.resource_group_name}'. A resource with the same name cannot be created in location "
                       f"'{payload.location}'. Please select a new resource name.", target="location")
    properties = payload.properties or GuardPropertiesIn()
    with renamed_fields(FIELDS):
        guard = mua.update_resource_guard(request.auth, guard, description=properties.description,
                                          exclusions=properties.vaultCriticalOperationExclusionList,
                                          tags=dict(payload.tags or {}))
    return guard_json(guard)


@router.get(GUARD, url_name="resource_guard_get")
def get_guard(request, subscriptionId: str, resourceGroupName: str, resourceGuardsName: str):
    return guard_json(_existing(request, subscriptionId, resourceGroupName, resourceGuardsName, GUARD_READ,
                                authorize_first=True))


@router.patch(GUARD, url_name="resource_guard_patch")
def patch_guard(request, subscriptionId: str, resourceGroupName: str, resourceGuardsName: str, payload: GuardPatchIn):
    guard = _existing(request, subscriptionId, resourceGroupName, resourceGuardsName, GUARD_WRITE,
                      authorize_first=False)
    tags = dict(payload.tags) if payload.tags is not None else None
    return guard_json(mua.update_resource_guard(request.auth, guard, tags=tags))


@router.delete(GUARD, url_name="resource_guard_delete")
def delete_guard(request, subscriptionId: str, resourceGroupName: str, resourceGuardsName: str):
    guard = _existing(request, subscriptionId, resourceGroupName, resourceGuardsName, GUARD_DELETE,
                      authorize_first=False)
    try:
        mua.delete_resource_guard(request.auth, guard)
    except ValidationError as exc:  # vaults are still linked: a conflict with the guard's state
        raise ArmError(409, "Conflict", " ".join(exc.messages)) from None
    return HttpResponse(status=200)


def _listing(request, scope: str, rows):
    if not authorize(request.auth, GUARD_READ, scope).allowed and not rows.exists():
        lookups.require(request.auth, GUARD_READ, scope)
    return envelope.page(request, rows, guard_json)


@router.get(GUARDS, url_name="resource_guards_in_resource_group")
def list_in_resource_group(request, subscriptionId: str, resourceGroupName: str):
    sub = lookups.subscription(subscriptionId)
    scope = lookups.rg_scope(str(sub.subscription_id), resourceGroupName)
    if not ResourceGroup.objects.filter(subscription=sub, name__iexact=resourceGroupName).exists():
        lookups.require(request.auth, GUARD_READ, scope)
        raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{resourceGroupName}' could not be found.")
    rows = mua.guards_visible_to(request.auth).filter(resource_id__istartswith=f"{scope}/providers/")
    return _listing(request, scope, rows)


@router.get(GUARDS_IN_SUBSCRIPTION, url_name="resource_guards_in_subscription")
def list_in_subscription(request, subscriptionId: str):
    sub = lookups.subscription(subscriptionId)
    rows = mua.guards_visible_to(request.auth).filter(resource_id__istartswith=f"{sub.resource_id}/")
    return _listing(request, sub.resource_id, rows)
