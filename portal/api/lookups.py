"""Finding what a path names, with ARM's rules: authorization is judged at the scope the path names
before its existence is (403 for a scope you may not read, whether or not it exists; 404 only for
those who may read it), and names compare without case."""

from __future__ import annotations

import uuid

from portal.api.errors import ArmError
from portal.models import ResourceGroup, Subscription
from security.rbac import authorize


def subscription(subscription_id: str) -> Subscription:
    try:
        key = uuid.UUID(subscription_id)
    except ValueError:
        raise ArmError(
            400, "InvalidSubscriptionId", f"The provided subscription identifier '{subscription_id}' is malformed or invalid."
        ) from None
    found = Subscription.objects.filter(subscription_id=key).first()
    if found is None:
        raise ArmError(404, "SubscriptionNotFound", f"The subscription '{subscription_id}' could not be found.")
    return found


def rg_scope(subscription_id: str, resource_group_name: str) -> str:
    return f"/subscriptions/{subscription_id}/resourceGroups/{resource_group_name}"


def require(principal, action: str, scope: str, *, data_action: bool = False) -> None:
    """403 AuthorizationFailed, in Azure's words, unless ``principal`` holds ``action`` at ``scope``."""
    result = authorize(principal, action, scope, data_action=data_action)
    if not result.allowed:
        raise ArmError(403, "AuthorizationFailed", result.message())


def resource_group(principal, subscription_id: str, resource_group_name: str, *, action: str | None = None,
                   sub: Subscription | None = None) -> ResourceGroup:
    """The resource group a path names. With ``action``, it is authorized at the group first. ``sub``: the
    path's subscription when the caller has found it already."""
    sub = sub or subscription(subscription_id)
    if action:
        require(principal, action, rg_scope(str(sub.subscription_id), resource_group_name))
    found = ResourceGroup.objects.filter(subscription=sub, name__iexact=resource_group_name).select_related("region", "subscription").first()
    if found is None:
        raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{resource_group_name}' could not be found.")
    return found


def child_scope(group: ResourceGroup, resource_type: str, *names: str) -> str:
    """``{group}/providers/{Namespace/type}/{name}[/{childType}/{name}...]`` for a path's resource."""
    namespace, _, types = resource_type.partition("/")
    parts = types.split("/")
    segments = [f"{kind}/{name}" for kind, name in zip(parts, names)]
    return f"{group.resource_id}/providers/{namespace}/" + "/".join(segments)
