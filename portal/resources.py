"""A registry of resource types, so that generic pages (IAM, search, breadcrumbs, the activity log)
can find the object, its page and its label from a resource id alone.

Each app registers its own models when it loads; `portal` never imports the upper apps.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Model
from django.urls import NoReverseMatch, reverse

from security import operations as ops


@dataclass(frozen=True)
class ResourceType:
    type_name: str  # "Microsoft.DataProtection/backupVaults"
    label: str  # "Backup vault"
    model: type[Model]
    url_name: str  # reversed with the object's pk
    read_action: str
    icon: str = "resource"
    # Attribute path to the owning resource group (None for subscriptions and RGs themselves).
    in_resource_group: bool = True

    def url_for(self, obj) -> str:
        try:
            return reverse(self.url_name, args=[obj.pk])
        except NoReverseMatch:
            return ""


_types: dict[str, ResourceType] = {}


def register(resource_type: ResourceType) -> None:
    _types[resource_type.type_name.lower()] = resource_type


def all_types() -> list[ResourceType]:
    return list(_types.values())


def type_of(resource_id: str) -> ResourceType | None:
    parts = resource_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    if "providers" in lowered:
        at = len(lowered) - 1 - lowered[::-1].index("providers")
        namespace = parts[at + 1]
        types = parts[at + 2 :: 2]
        return _types.get("/".join([namespace, *types]).lower())
    if len(parts) == 2:
        return _types.get(ops.SUBSCRIPTION_TYPE.lower())
    if len(parts) == 4:
        return _types.get(ops.RESOURCE_GROUP_TYPE.lower())
    return None


def resolve(resource_id: str):
    """The object with this resource id, or None."""
    rtype = type_of(resource_id)
    if rtype is None:
        return None
    return rtype.model.objects.filter(resource_id__iexact=resource_id.rstrip("/")).first()


def url_of(resource_id: str) -> str:
    rtype = type_of(resource_id)
    obj = resolve(resource_id)
    return rtype.url_for(obj) if rtype and obj else ""


def label_of(resource_id: str) -> str:
    rtype = type_of(resource_id)
    return rtype.label if rtype else "Resource"


def register_portal_types() -> None:
    """Subscriptions and resource groups (`PortalConfig.ready`; other apps register theirs likewise)."""
    from portal.models import ResourceGroup, Subscription

    register(ResourceType(ops.SUBSCRIPTION_TYPE, "Subscription", Subscription, "portal:subscription_detail",
                          ops.SUBSCRIPTION_READ, icon="subscription", in_resource_group=False))
    register(ResourceType(ops.RESOURCE_GROUP_TYPE, "Resource group", ResourceGroup, "portal:resource_group_detail",
                          ops.RESOURCE_GROUP_READ, icon="resource-group", in_resource_group=False))
