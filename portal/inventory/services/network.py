"""Virtual networks and their subnets, and each datasource's network (the public network, or a subnet).

A VNet has one or more address spaces (CIDR) and subnets inside them: each subnet's range lies in one of
the VNet's address spaces, overlaps no other subnet of the VNet and is at least a /29 (Azure keeps five
addresses of every subnet, `portal.inventory.addresses`). Every VNet gets the next resolver number, which
gives its DNS resolver a loopback address of its own (`portal.inventory.dns.resolver_address`).

A subnet that holds private endpoints or datasources cannot be deleted, nor its VNet: that refusal is a
guard (`portal.inventory.subnet_guard`), so it is logged and can be previewed like any other.

A private endpoint is deleted here too (`delete_private_endpoint`): its IPs go back to the subnet. Its target's
side is not the inventory's: the vaults' ``pre_delete`` receiver turns the vault's connection Disconnected and
deletes the A records the endpoint wrote, in the same transaction.
"""

from __future__ import annotations

import ipaddress
import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max

from portal.inventory.addresses import SMALLEST_PREFIX, AddressError, free_count, parse_prefix
from portal.inventory.models import (
    DnsRecord, ElasticSan, PostgresServer, PrivateEndpoint, StorageAccount, Subnet, VirtualNetwork,
)
from portal.inventory.services.common import check_region, forget_assignments, new_resource_id
from portal.models import Region, ResourceGroup
from security.audit import guarded, record_denial
from security.guards import GuardDenied, evaluate
from security.operations import (
    ELASTIC_SAN_WRITE,
    POSTGRES_WRITE,
    PRIVATE_ENDPOINT_DELETE,
    STORAGE_ACCOUNT_WRITE,
    SUBNET_DELETE,
    SUBNET_JOIN,
    SUBNET_WRITE,
    VNET_DELETE,
    VNET_WRITE,
)

# Azure: a VNet's name has 2 to 64 characters, a subnet's 1 to 80: letters, numbers, underscores, periods and
# hyphens; it starts with a letter or a number and ends with a letter, a number or an underscore.
_VNET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}[A-Za-z0-9_]\Z")
_SUBNET_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,78}[A-Za-z0-9_])?\Z")
_NAME_RULE = "letters, numbers, underscores, periods and hyphens; start with a letter or a number and end with a " \
             "letter, a number or an underscore"

# The datasources that have a network setting, and the write action that changes it.
DATASOURCE_WRITE = {StorageAccount: STORAGE_ACCOUNT_WRITE, ElasticSan: ELASTIC_SAN_WRITE,
                    PostgresServer: POSTGRES_WRITE}
DATASOURCE_MODELS = tuple(DATASOURCE_WRITE)


# --- checks ----------------------------------------------------------------------------------------------------


def validate_vnet_name(name: str) -> None:
    if not _VNET_NAME.match(name or ""):
        raise ValidationError({"name": f"The virtual network name '{name}' is not valid: 2 to 64 characters, {_NAME_RULE}."})


def validate_subnet_name(name: str, field: str = "name") -> None:
    if not _SUBNET_NAME.match(name or ""):
        raise ValidationError({field: f"The subnet name '{name}' is not valid: 1 to 80 characters, {_NAME_RULE}."})


def parse_address_space(value, field: str = "address_prefixes") -> list[ipaddress.IPv4Network]:
    """The VNet's address spaces: a list, or text with one CIDR per line or comma; none may overlap another."""
    items = value if isinstance(value, (list, tuple)) else re.split(r"[\s,;]+", value or "")
    items = [str(i).strip() for i in items if str(i).strip()]
    if not items:
        raise ValidationError({field: "Enter at least one address space, such as 10.0.0.0/16."})
    networks = []
    for item in items:
        try:
            network = parse_prefix(item, what="Address space")
        except AddressError as exc:
            raise ValidationError({field: str(exc)}) from None
        for other in networks:
            if network.overlaps(other):
                raise ValidationError({field: f"Address space {network} overlaps {other}: each address space of a "
                                              "virtual network must be separate."})
        networks.append(network)
    return networks


def check_subnet_prefix(spaces, others, prefix: str, field: str = "address_prefix") -> ipaddress.IPv4Network:
    """The subnet's range, checked against the VNet's address spaces (``spaces``) and its other subnets
    (``others``: (name, prefix) pairs)."""
    try:
        network = parse_prefix(prefix, what="Subnet address range")
    except AddressError as exc:
        raise ValidationError({field: str(exc)}) from None
    if network.prefixlen > SMALLEST_PREFIX:
        raise ValidationError({field: f"Subnet address range {network} is too small: the smallest subnet is a "
                                      f"/{SMALLEST_PREFIX} (Azure keeps 5 addresses of every subnet). Write "
                                      f"{network.supernet(new_prefix=SMALLEST_PREFIX)}, say."})
    spaces = [ipaddress.ip_network(s) for s in spaces]
    if not any(network.subnet_of(space) for space in spaces):
        listed = ", ".join(str(s) for s in spaces)
        raise ValidationError({field: f"Subnet address range {network} is not inside the virtual network's address "
                                      f"space ({listed}). Choose a range inside it, or add an address space."})
    for other_name, other_prefix in others:
        if network.overlaps(ipaddress.ip_network(other_prefix)):
            raise ValidationError({field: f"Subnet address range {network} overlaps subnet '{other_name}' "
                                          f"({other_prefix}). Choose a range no other subnet uses."})
    return network


def subnet_usage(subnet: Subnet) -> dict:
    """What a subnet holds: its private endpoints and datasources (the "connected devices")."""
    datasources = []
    for model in DATASOURCE_MODELS:
        datasources += list(model.objects.filter(network_subnet=subnet).select_related("resource_group"))
    return {"private_endpoints": list(subnet.private_endpoints.all()), "datasources": datasources}


def free_addresses(subnet: Subnet) -> int:
    """Addresses a subnet can still hand out: all but Azure's five reserved ones and the endpoints' IPs."""
    taken = {ip for pe in subnet.private_endpoints.all() for ip in pe.private_ips}
    return free_count(subnet.address_prefix, taken)


# --- virtual networks ------------------------------------------------------------------------------------------


def _next_resolver_number() -> int:
    highest = VirtualNetwork.objects.aggregate(n=Max("resolver_number"))["n"] or 0
    return highest + 1


def create_virtual_network(
    principal,
    *,
    resource_group: ResourceGroup,
    name: str,
    region,
    address_prefixes,
    subnet_name: str = "",
    subnet_prefix: str = "",
    tags: dict | None = None,
) -> VirtualNetwork:
    """Create a VNet with its address spaces and, when named, a first subnet (one PUT in Azure, one write)."""
    name = (name or "").strip()
    subnet_name, subnet_prefix = (subnet_name or "").strip(), (subnet_prefix or "").strip()
    target = new_resource_id(resource_group, VirtualNetwork.RESOURCE_TYPE, name or "-")
    details = {"addressPrefixes": address_prefixes if isinstance(address_prefixes, list) else str(address_prefixes)}
    with guarded(principal, VNET_WRITE, target, details=details) as op:
        validate_vnet_name(name)
        region = check_region(region)
        spaces = [str(n) for n in parse_address_space(address_prefixes)]
        if subnet_name:  # no name: no first subnet (its range field is ignored)
            validate_subnet_name(subnet_name, "subnet_name")
            check_subnet_prefix(spaces, [], subnet_prefix, "subnet_prefix")
        if VirtualNetwork.objects.filter(resource_group=resource_group, name__iexact=name).exists():
            raise ValidationError({"name": f"A virtual network named '{name}' already exists in {resource_group.name}."})
        vnet = _insert_vnet(name=name, resource_group=resource_group, region=region, address_prefixes=spaces,
                            tags=tags or {})
        if subnet_name:
            Subnet.objects.create(virtual_network=vnet, name=subnet_name, address_prefix=str(parse_prefix(subnet_prefix)))
            op.details["subnets"] = [{"name": subnet_name, "addressPrefix": subnet_prefix}]
        op.details["resolverNumber"] = vnet.resolver_number
        op.result_scope = vnet.resource_id
    return vnet


def _insert_vnet(**fields) -> VirtualNetwork:
    """Insert with the next resolver number; a VNet created at the same moment takes it, so try the next."""
    for _attempt in range(5):
        try:
            with transaction.atomic():
                return VirtualNetwork.objects.create(resolver_number=_next_resolver_number(), **fields)
        except IntegrityError:
            if VirtualNetwork.objects.filter(resource_group=fields["resource_group"], name__iexact=fields["name"]).exists():
                raise ValidationError({"name": f"A virtual network named '{fields['name']}' already exists."}) from None
    raise ValidationError("Another virtual network was being created at the same moment. Try again.")


def delete_virtual_network(principal, vnet: VirtualNetwork) -> None:
    """Delete the VNet, its subnets and its private DNS zones' links to it (refused while a subnet is in use)."""
    with guarded(principal, VNET_DELETE, vnet) as op:
        op.details["subnets"] = [s.name for s in vnet.subnets.all()]
        op.details["dnsLinksRemoved"] = [f"{link.zone.name}/{link.name}" for link in vnet.dns_links.select_related("zone")]
        forget_assignments(op, vnet.resource_id, "virtual network")
        vnet.delete()


# --- subnets ---------------------------------------------------------------------------------------------------


def add_subnet(principal, vnet: VirtualNetwork, *, name: str, address_prefix: str) -> Subnet:
    name, address_prefix = (name or "").strip(), (address_prefix or "").strip()
    target = f"{vnet.resource_id}/subnets/{name or '-'}"
    with guarded(principal, SUBNET_WRITE, target, details={"addressPrefix": address_prefix}) as op:
        validate_subnet_name(name)
        vnet = VirtualNetwork.objects.select_for_update().get(pk=vnet.pk)  # one subnet change at a time
        if vnet.subnets.filter(name__iexact=name).exists():
            raise ValidationError({"name": f"A subnet named '{name}' already exists in {vnet.name}."})
        others = list(vnet.subnets.values_list("name", "address_prefix"))
        network = check_subnet_prefix(vnet.address_prefixes, others, address_prefix)
        subnet = Subnet.objects.create(virtual_network=vnet, name=name, address_prefix=str(network))
        op.result_scope = subnet.resource_id
    return subnet


def delete_subnet(principal, subnet: Subnet) -> None:
    """Delete the subnet (refused by the subnet guard while it holds private endpoints or datasources)."""
    with guarded(principal, SUBNET_DELETE, subnet, details={"addressPrefix": subnet.address_prefix}) as op:
        forget_assignments(op, subnet.resource_id, "subnet")
        subnet.delete()


# --- private endpoints -----------------------------------------------------------------------------------------


def delete_private_endpoint(principal, endpoint: PrivateEndpoint) -> list[str]:
    """Delete the endpoint: its private IPs go back to its subnet, its A records go, and its target's connection
    becomes Disconnected (the target's own ``pre_delete`` receiver). Returns the names of the connections
    that were not Disconnected before (the target's side may tell their owners)."""
    details = {"name": endpoint.name, "subnet": endpoint.subnet.resource_id, "target": endpoint.target_resource_id,
               "subResource": endpoint.target_sub_resource, "privateIPs": endpoint.private_ips}
    with guarded(principal, PRIVATE_ENDPOINT_DELETE, endpoint, details=details) as op:
        row = PrivateEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        op.details["dnsRecordsDeleted"] = DnsRecord.objects.filter(private_endpoint=row).count()
        connected = [c.name for c in row.vault_connections.exclude(state="Disconnected")]
        op.details["connectionsDisconnected"] = connected
        forget_assignments(op, row.resource_id, "private endpoint")
        row.delete()
    return connected


# --- a datasource's network ------------------------------------------------------------------------------------


def network_change(subnet: Subnet | None) -> dict:
    """The ``change`` a datasource's network write carries (what previews pass too)."""
    return {"network_subnet": subnet.resource_id if subnet else ""}


def set_datasource_network(principal, datasource, subnet: Subnet | None):
    """Put a storage account, Elastic SAN or PostgreSQL server on the public network (None) or in ``subnet``.

    As in Azure, this needs the datasource's write action and, for a subnet, the right to join it
    (``Microsoft.Network/virtualNetworks/subnets/join/action``, in Network Contributor)."""
    write = DATASOURCE_WRITE.get(type(datasource))
    if write is None:
        raise ValidationError(f"A {type(datasource).__name__} has no network setting.")
    if subnet is not None:
        check_subnet_join(principal, subnet, datasource.resource_id)
    before = datasource.network_subnet
    details = {"networkBefore": before.resource_id if before else "Public network",
               "networkAfter": subnet.resource_id if subnet else "Public network"}
    with guarded(principal, write, datasource, change=network_change(subnet), details=details):
        if subnet is not None:
            check_same_region(subnet, datasource.region, datasource.name, "network")
        type(datasource).objects.filter(pk=datasource.pk).update(network_subnet=subnet)
        datasource.network_subnet = subnet
    return datasource


def check_subnet_join(principal, subnet: Subnet, resource_id: str) -> None:
    """Refuse (logged, GuardDenied) unless ``principal`` may join ``subnet``: asked before the datasource's own
    write, outside its transaction, so that the refusal stays in the activity log."""
    decision = evaluate(principal, SUBNET_JOIN, subnet)
    if not decision.allowed:
        record_denial(principal, decision, {"datasource": resource_id})
        raise GuardDenied(decision)


def join_subnet_first(principal, subnet: Subnet | None, resource_id: str, details: dict) -> None:
    """A new datasource ``resource_id`` in ``subnet`` (None: the public network, nothing to join): the
    right to join it first (`check_subnet_join`), and the subnet in the operation's ``details``."""
    if subnet is not None:
        check_subnet_join(principal, subnet, resource_id)
        details["networkSubnet"] = subnet.resource_id


def datasource_region(region, subnet: Subnet | None, name: str) -> Region:
    """A new datasource's region (`check_region`), which its subnet's virtual network must be in."""
    region = check_region(region)
    if subnet is not None:
        check_same_region(subnet, region, name)
    return region


def check_same_region(subnet: Subnet, region, name: str, field: str = "network_subnet") -> None:
    """A datasource joins a virtual network of its own region."""
    vnet = subnet.virtual_network
    if vnet.region_id != getattr(region, "pk", region):
        where = getattr(region, "display_name", region)
        raise ValidationError({field: f"Virtual network '{vnet.name}' is in {vnet.region.display_name}, and "
                                      f"'{name}' in {where}: choose a virtual network in the same region."})
