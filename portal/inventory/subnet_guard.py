"""The "subnet in use" guard: a subnet holding private endpoints or datasources cannot be deleted, nor the
virtual network it belongs to (Azure's ``InUseSubnetCannotBeDeleted``). Registered with `security.guards`
by `PortalConfig.ready` (through `portal.inventory.register_guards`), so the refusal is logged, explained
and can be previewed like any other."""

from __future__ import annotations

from security.guards import Refusal, target_scope
from security.operations import SUBNET_DELETE, VNET_DELETE

SUBNET_IN_USE_GUARD = "Subnet in use"
SUBNET_IN_USE_ORDER = 60
SUBNET_IN_USE_CODE = "InUseSubnetCannotBeDeleted"


def _subnets(operation, target):
    from portal.inventory.models import Subnet, VirtualNetwork

    scope = target_scope(target)
    if operation == SUBNET_DELETE:
        subnet = target if isinstance(target, Subnet) else Subnet.objects.filter(resource_id__iexact=scope).first()
        return [subnet] if subnet else []
    vnet = target if isinstance(target, VirtualNetwork) else VirtualNetwork.objects.filter(resource_id__iexact=scope).first()
    return list(vnet.subnets.all()) if vnet else []


def users_of(subnet) -> list[str]:
    """What holds the subnet, as a person reads it: "private endpoint 'pe-x'", "storage account 'sa'"."""
    from portal.inventory.models import ElasticSan, PostgresServer, StorageAccount

    names = [f"private endpoint '{pe.name}'" for pe in subnet.private_endpoints.all()]
    for model, label in ((StorageAccount, "storage account"), (ElasticSan, "Elastic SAN"),
                         (PostgresServer, "PostgreSQL server")):
        names += [f"{label} '{name}'" for name in model.objects.filter(network_subnet=subnet).values_list("name", flat=True)]
    return names


def subnet_in_use_guard(principal, operation, target, change):
    if operation not in (SUBNET_DELETE, VNET_DELETE):
        return None
    for subnet in _subnets(operation, target):
        users = users_of(subnet)
        if users:
            return Refusal(
                guard=SUBNET_IN_USE_GUARD,
                code=SUBNET_IN_USE_CODE,
                reason=f"Subnet '{subnet.name}' ({subnet.address_prefix}) of virtual network "
                       f"'{subnet.virtual_network.name}' is in use by {', '.join(users)} and cannot be deleted.",
                remedy="Delete the private endpoints in the subnet and move each datasource to another subnet or to "
                       "the public network (its Networking setting), then delete again.",
                extra={"in_use_by": users},
            )
    return None


def register() -> None:
    from security.guards import register_guard

    register_guard(SUBNET_IN_USE_GUARD, subnet_in_use_guard, order=SUBNET_IN_USE_ORDER)
