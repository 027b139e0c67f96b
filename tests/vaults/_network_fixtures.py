"""Networks for the vault networking tests, made straight with the inventory's models (their pages and services
are another feature's): a VNet with a subnet, and the people of the approval story."""

from __future__ import annotations

import itertools
import secrets

from django.db.models import Max

from security import roles
from security import services as security_services
from security.models import RoleDefinition

_counter = itertools.count(1)


def make_vnet(lab, *, name=None, prefix="10.20.0.0/16", subnet_prefix="10.20.1.0/24", region=None, group=None):
    """A VNet in the lab resource group with one subnet ``snet-workload``; returns the subnet."""
    from portal.inventory.models import Subnet, VirtualNetwork

    number = (VirtualNetwork.objects.aggregate(m=Max("resolver_number"))["m"] or 0) + 1
    vnet = VirtualNetwork.objects.create(
        name=name or f"vnet-{secrets.token_hex(3)}", resource_group=group or lab.lab_group, region=region or lab.region,
        address_prefixes=[prefix], resolver_number=number)
    return Subnet.objects.create(virtual_network=vnet, name="snet-workload", address_prefix=subnet_prefix)


def grant(lab, principal, role_name, scope):
    return security_services.assign_role(lab.trainer, assignee=principal, role=RoleDefinition.objects.get(name=role_name),
                                         scope=scope)


def network_requester(lab, principal_with, subnet):
    """A Backup Contributor on the lab group who may also join the subnet and write endpoints (Network
    Contributor on the VNet's resource group), but not approve connections: their endpoints are Pending."""
    person = principal_with(roles.BACKUP_CONTRIBUTOR)
    grant(lab, person, roles.NETWORK_CONTRIBUTOR, subnet.virtual_network.resource_group.resource_id)
    return person
