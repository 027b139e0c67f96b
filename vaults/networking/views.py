"""The vault's Networking blade: Public access and Private access tabs, and the connection decisions.

Thin: the vault comes from `vaults.pages.vault_or_404` (unreadable = 404), every write is a service of
`vaults.networking.services`; an RBAC refusal reaches the explained 403 page (GuardDeniedMiddleware).
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse

from portal import resources
from portal.inventory import dns
from portal.shortcuts import can, parse_id, submit
from security import operations as ops
from security.guards import GuardDenied, evaluate
from vaults.models import PublicNetworkAccess
from vaults.models import PrivateEndpointConnectionState as State
from vaults.networking import forms, guard, names, services
from vaults.pages import vault_or_404, vault_page_context

TABS = (("public", "Public access"), ("private", "Private access"))
ACTIONS = {
    "approve": ("Approve", ops.PE_CONNECTION_APPROVAL, services.approve_connection, "approved"),
    "reject": ("Reject", ops.PE_CONNECTION_APPROVAL, services.reject_connection, "rejected"),
    "remove": ("Remove", ops.PE_CONNECTION_DELETE, services.remove_connection, "removed"),
}


def _networking_url(vault, tab: str) -> str:
    return reverse("vaults:vault_networking", args=[vault.pk]) + f"?tab={tab}"


def dns_configuration(vault, connection) -> dict | None:
    """What the endpoint answers for: FQDN → IP and zone, the hosts-file and DNS-server lines for custom DNS,
    and what the vault's data name resolves to in the endpoint's VNet now."""
    endpoint = connection.private_endpoint
    if endpoint is None:
        return None
    ips = {c["fqdn"].lower(): c["ip"] for c in endpoint.ip_configurations}
    rows = [{"fqdn": n.public_fqdn, "private_fqdn": n.private_fqdn, "zone": n.zone, "record": n.record,
             "ip": ips.get(n.private_fqdn.lower(), "")} for n in names.endpoint_names(vault, connection.group_id)]
    vnet = endpoint.subnet.virtual_network
    data_name = names.data_fqdn(vault, connection.group_id)
    answer = dns.resolve(vnet, data_name)
    return {
        "rows": rows,
        "hosts_lines": [f"{r['ip']} {r['fqdn']}" for r in rows],
        "zone_lines": [f"{r['record']} 10 IN A {r['ip']}    ; zone {r['zone']}" for r in rows],
        "integrated": endpoint.integrate_with_private_dns,
        "data_name": data_name,
        "answer": answer,
        "answers_endpoint": bool(set(answer.addresses) & set(endpoint.private_ips)),
        "vnet": vnet,
    }


def _rows(request, vault) -> list[dict]:
    principal = request.principal
    may_decide = can(principal, ops.PE_CONNECTION_APPROVAL, vault.resource_id)
    may_remove = can(principal, ops.PE_CONNECTION_DELETE, vault.resource_id)
    rows = []
    for connection in services.connections_of(vault):
        endpoint = connection.private_endpoint
        rows.append({
            "connection": connection,
            "endpoint": endpoint,
            "subnet": endpoint.subnet if endpoint else None,
            # Links once the inventory registers these resource types (empty until then: plain text).
            "endpoint_url": resources.url_of(endpoint.resource_id) if endpoint else "",
            "vnet_url": resources.url_of(endpoint.subnet.virtual_network.resource_id) if endpoint else "",
            "dns": dns_configuration(vault, connection),
            "can_approve": may_decide and connection.state != State.APPROVED and endpoint is not None,
            "can_reject": may_decide and connection.state != State.REJECTED and endpoint is not None,
            "can_remove": may_remove,
        })
    return rows


@login_required
def vault_networking(request, pk):
    """GET: the blade (``?tab=public|private``). POST: Apply the Public access choice."""
    vault = vault_or_404(request, pk)
    principal = request.principal
    tab = request.GET.get("tab") if request.GET.get("tab") in dict(TABS) else "public"
    form = forms.PublicAccessForm(request.POST if request.method == "POST" else None,
                                  initial={"public_network_access": vault.public_network_access})
    status = 200
    if request.method == "POST":
        tab = "public"
        saved = submit(
            request, form,
            lambda: services.set_public_network_access(principal, vault, form.cleaned_data["public_network_access"]),
            lambda v: f"Public network access: {v.get_public_network_access_display()}.",
            _networking_url(vault, "public"))
        if saved:
            return saved
        status = 400
    context = vault_page_context(
        request, vault, "networking", tabs=TABS, tab=tab, form=form,
        can_apply=can(principal, ops.VAULT_PUBLIC_ACCESS_WRITE, vault.resource_id),
        deny_preview=evaluate(principal, ops.VAULT_PUBLIC_ACCESS_WRITE, vault,
                              services.public_access_change(vault, PublicNetworkAccess.DISABLED)),
        denied=vault.public_network_access == PublicNetworkAccess.DISABLED,
        rows=_rows(request, vault) if tab == "private" else [],
        create_url=reverse("vaults:private_endpoint_create", args=[vault.pk]),
        max_endpoints=guard.MAX_ENDPOINTS,
        first_endpoint_refusal=guard.endpoint_rules_refusal(vault, names.PRIMARY) if tab == "private" else None,
    )
    return render(request, "vaults/vault_networking.html", context, status=status)


@login_required
def connection_action(request, pk, connection_pk, action):
    """Approve, Reject or Remove a connection: GET asks for the description, POST decides."""
    vault = vault_or_404(request, pk)
    if action not in ACTIONS or (connection_id := parse_id(str(connection_pk))) is None:
        raise Http404("No such action.")
    connection = next((c for c in services.connections_of(vault) if c.pk == connection_id), None)
    if connection is None:
        raise Http404("No such private endpoint connection.")
    label, operation, service, verb = ACTIONS[action]
    decision = evaluate(request.principal, operation, connection)
    if not decision.allowed and decision.guard == "RBAC":
        raise GuardDenied(decision)
    form = forms.DecisionForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        saved = submit(request, form,
                       lambda: service(request.principal, connection, description=form.cleaned_data["description"]),
                       lambda _: f"The connection of '{connection.private_endpoint.name if connection.private_endpoint else connection.name}' was {verb}.",
                       _networking_url(vault, "private"))
        if saved:
            return saved
        status = 400
    context = vault_page_context(request, vault, "networking", connection=connection, action=action, label=label,
                                 form=form, back_url=_networking_url(vault, "private"))
    return render(request, "vaults/networking_decision.html", context, status=status)
