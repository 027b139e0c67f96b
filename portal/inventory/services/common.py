"""What the inventory's services share: the id of a resource about to be created, the region check,
and the role assignments that go with a deleted resource."""

from __future__ import annotations

import os

from django.core.exceptions import ValidationError

from portal.inventory import fs
from portal.models import Region, ResourceGroup
from security.services import remove_assignments_of_deleted_scope


def new_resource_id(resource_group: ResourceGroup, resource_type: str, name: str) -> str:
    """The resource id a new resource will have: what its create is guarded at."""
    return f"{resource_group.resource_id}/providers/{resource_type}/{name}"


def check_region(region) -> Region:
    if not isinstance(region, Region):
        region = Region.objects.filter(pk=region).first()
        if region is None:
            raise ValidationError({"region": "Choose a region."})
    return region


def forget_assignments(op, resource_id: str, what: str) -> None:
    """A deleted resource takes the role assignments at and below it along (logged, same transaction)."""
    removed = remove_assignments_of_deleted_scope(op.principal, resource_id, cause=f"The {what} was deleted.")
    if removed:
        op.details["roleAssignmentsRemoved"] = removed


def make_data_dir(path) -> None:
    """Create a new resource's own (empty) folder under the data root."""
    os.close(fs.open_dir(path, create=True))
