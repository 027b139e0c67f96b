"""Virtual network pages: VNets (address spaces, subnets, connected devices, their DNS resolver), subnets,
and each datasource's Networking setting (public network, or a subnet)."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse

from portal.inventory import dns, forms, services, subnet_guard
from portal.inventory.addresses import usable_count
from portal.inventory.models import DnsRecord, PrivateEndpoint, StorageAccount, Subnet, VirtualNetwork
from portal.inventory.views.generic import Kind, add_child_view, create_view, delete_view, list_view, submit
from portal import resources
from portal.shortcuts import can, visible
from security import operations as ops

VNET = Kind(
    VirtualNetwork, "vnet", ops.VNET_READ, "portal:vnet_detail",
    delete=ops.VNET_DELETE, related=("resource_group__subscription", "region"),
    abilities=(("can_write", ops.VNET_WRITE),),
    write=ops.VNET_WRITE, label="virtual network", plural="virtual networks",
    list_url="portal:vnet_list", create_url="portal:vnet_create",
)
SUBNET = Kind(
    Subnet, "subnet", ops.SUBNET_READ, "portal:subnet_detail",
    delete=ops.SUBNET_DELETE,
    related=("virtual_network__resource_group__subscription", "virtual_network__region"),
    parents=(("vnet", "virtual_network"),),
)

vnet_list = list_view(VNET, template="portal/inventory/vnet_list.html")
vnet_create = create_view(
    VNET,
    form_class=forms.VirtualNetworkForm,
    template="portal/inventory/vnet_create.html",
    create=services.create_virtual_network,
    created=lambda request, vnet: messages.success(request, f"Virtual network '{vnet.name}' created."),
)


def _device_rows(usage: dict, subnet: Subnet) -> list[dict]:
    """A subnet's connected devices: private endpoints (with their IPs), then datasources, each linked to its
    page when its kind has one."""
    rows = []
    for obj in [*usage["private_endpoints"], *usage["datasources"]]:
        rtype = resources.type_of(obj.resource_id)
        label = rtype.label if rtype else "Private endpoint" if hasattr(obj, "private_ips") else "Resource"
        rows.append({"kind": label, "name": obj.name, "subnet": subnet, "ips": getattr(obj, "private_ips", []),
                     "url": rtype.url_for(obj) if rtype else ""})
    return rows


def _subnet_rows(vnet: VirtualNetwork) -> tuple[list[dict], list[dict]]:
    subnets, devices = [], []
    for subnet in vnet.subnets.all():
        usage = services.subnet_usage(subnet)
        rows = _device_rows(usage, subnet)
        devices += rows
        subnets.append({"subnet": subnet, "free": services.free_addresses(subnet), "devices": len(rows),
                        "usable": usable_count(ipaddress.ip_network(subnet.address_prefix))})
    return subnets, devices


def example_name(vnet: VirtualNetwork, principal=None) -> str:
    """A name worth asking this VNet's resolver: a record of a linked zone the person may read, else a storage
    account's blob name."""
    records = DnsRecord.objects.filter(zone__links__virtual_network=vnet).select_related("zone").order_by("id")[:50]
    record = next((r for r in records if principal is None or can(principal, ops.DNS_ZONE_READ, r.zone.resource_id)),
                  None)
    if record is not None:
        return record.fqdn
    account = StorageAccount.objects.filter(network_subnet__virtual_network=vnet).order_by("name").first()
    return f"{account.name if account else 'contoso'}.{dns.BLOB_SUFFIX}"


def resolver_context(vnet: VirtualNetwork, principal=None) -> dict:
    address, port = dns.resolver_address(vnet), settings.STRONGROOM_DNS_PORT
    name = example_name(vnet, principal)
    return {"resolver_address": address, "resolver_port": port, "dig_name": name,
            "dig_line": f"dig @{address} -p {port} {name}"}


@login_required
def vnet_detail(request, pk, subnet_form=None):
    vnet = VNET.get(request, pk)
    subnets, devices = _subnet_rows(vnet)
    # Links of zones the person may read (a zone in another group is not theirs to see).
    links = [link for link in vnet.dns_links.select_related("zone")
             if can(request.principal, ops.DNS_ZONE_READ, link.zone.resource_id)]
    context = VNET.context(request, vnet, subnets=subnets, devices=devices, dns_links=links,
                           can_add_subnet=can(request.principal, ops.SUBNET_WRITE, vnet.resource_id),
                           subnet_form=subnet_form or forms.SubnetForm(),
                           show_subnet_form=subnet_form is not None or "new" in request.GET,
                           **resolver_context(vnet, request.principal))
    return render(request, "portal/inventory/vnet_detail.html", context, status=400 if subnet_form else 200)


subnet_add = add_child_view(
    VNET,
    form_class=forms.SubnetForm,
    create=services.add_subnet,
    message="Subnet '{child.name}' ({child.address_prefix}) added.",
    done_url=lambda vnet, subnet: reverse("portal:vnet_detail", args=[vnet.pk]),
    blade=vnet_detail,
    form_name="subnet_form",
    ask_url=lambda pk: reverse("portal:vnet_detail", args=[pk]) + "?new=1",
)


vnet_delete = delete_view(
    VNET,
    noun="virtual network",
    delete=services.delete_virtual_network,
    warning=lambda vnet: "Its subnets are deleted with it, and the private DNS zones linked to it lose their link. "
                         "A virtual network whose subnets hold private endpoints or datasources cannot be deleted.",
)


@login_required
def subnet_detail(request, pk):
    subnet = SUBNET.get(request, pk)
    devices = _device_rows(services.subnet_usage(subnet), subnet)
    context = SUBNET.context(request, subnet, devices=devices, free=services.free_addresses(subnet),
                             usable=usable_count(ipaddress.ip_network(subnet.address_prefix)),
                             **resolver_context(subnet.virtual_network, request.principal))
    return render(request, "portal/inventory/subnet_detail.html", context)


def _subnet_warning(subnet) -> str:
    users = subnet_guard.users_of(subnet)
    if users:
        return (f"This subnet is in use by {', '.join(users)}: it cannot be deleted until they are removed or moved "
                "to another network.")
    return "The subnet's address range is freed."


subnet_delete = delete_view(
    SUBNET,
    noun="subnet",
    delete=services.delete_subnet,
    warning=_subnet_warning,
    done_url=lambda subnet: reverse("portal:vnet_detail", args=[subnet.virtual_network_id]),
)


# --- a datasource's network --------------------------------------------------------------------------------------


def subnet_choices(request) -> dict:
    """The create forms' network choices: every subnet the principal can see (the service checks the region
    and the right to join)."""
    subnets = visible(request.principal, Subnet.objects.select_related("virtual_network__region"), ops.SUBNET_READ)
    return {"subnets": subnets.order_by("virtual_network__name", "name")}


def datasource_network_view(kind: Kind, base_template: str):
    """The Networking blade of a datasource kind (``base_template``: its pages' base): the current network and
    the change form."""

    @login_required
    def view(request, pk):
        obj = kind.get(request, pk)
        subnets = visible(request.principal, Subnet.objects.filter(virtual_network__region=obj.region)
                          .select_related("virtual_network"), ops.SUBNET_READ)
        subnets = sorted(subnets, key=lambda s: (s.virtual_network.name.lower(), s.name.lower()))
        initial = {"network": str(obj.network_subnet_id or "")}
        form = forms.DatasourceNetworkForm(request.POST or None, subnets=subnets, initial=initial)

        def changed(result):
            where = f"subnet '{result.network_subnet}'" if result.network_subnet else "the public network"
            messages.success(request, f"'{result.name}' now reaches Backup vaults from {where}.")
            return redirect(kind.detail_url, pk=obj.pk)

        def page(form):
            context = kind.context(request, obj, "networking", form=form, kind=kind, base_template=base_template,
                                   can_change=can(request.principal, services.DATASOURCE_WRITE[type(obj)], obj.resource_id))
            return render(request, "portal/inventory/datasource_network.html", context,
                          status=400 if form.is_bound else 200)

        return submit(form, create=lambda data: services.set_datasource_network(request.principal, obj, data["network"]),
                      created=changed, invalid=page)

    return view


# --- private endpoints -------------------------------------------------------------------------------------------

ENDPOINT = Kind(
    PrivateEndpoint, "endpoint", ops.PRIVATE_ENDPOINT_READ, "portal:private_endpoint_detail",
    delete=ops.PRIVATE_ENDPOINT_DELETE,
    related=("resource_group__subscription", "region", "subnet__virtual_network"),
    parents=(("subnet", "subnet"), ("vnet", "subnet.virtual_network")),
    write=ops.PRIVATE_ENDPOINT_WRITE, label="private endpoint", plural="private endpoints",
    list_url="portal:private_endpoint_list",
)

private_endpoint_list = list_view(ENDPOINT, template="portal/inventory/private_endpoint_list.html")


def connection_state(endpoint: PrivateEndpoint) -> str:
    """The state the endpoint's side shows: its target's connection's, or Disconnected once the target removed it
    (or was deleted)."""
    connection = endpoint.vault_connections.first()
    return connection.state if connection else "Disconnected"


def target_of(request, endpoint: PrivateEndpoint) -> dict:
    """The endpoint's target: its name and type, and its page when the principal may read it."""
    resource_id = endpoint.target_resource_id
    rtype = resources.type_of(resource_id)
    readable = rtype is not None and can(request.principal, rtype.read_action, resource_id)
    return {"target_name": resource_id.rstrip("/").rsplit("/", 1)[-1],
            "target_type": resources.label_of(resource_id),
            "target_url": resources.url_of(resource_id) if readable else ""}


@login_required
def private_endpoint_detail(request, pk):
    endpoint = ENDPOINT.get(request, pk)
    context = ENDPOINT.context(request, endpoint, state=connection_state(endpoint), **target_of(request, endpoint))
    return render(request, "portal/inventory/private_endpoint_detail.html", context)


private_endpoint_delete = delete_view(
    ENDPOINT,
    noun="private endpoint",
    delete=services.delete_private_endpoint,
    warning=lambda endpoint: f"Its {len(endpoint.private_ips)} private IPs go back to subnet "
                             f"'{endpoint.subnet.name}' and the A records it wrote in private DNS zones are deleted. "
                             "Its target keeps the connection, Disconnected: nothing reaches the target through this "
                             "endpoint any more.",
)
