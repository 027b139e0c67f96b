"""A vault's networking, every change a guarded, logged service (reference §4, decision 10).

* `set_public_network_access` — the Networking blade's Public access tab: *Allow from all networks* / *Deny*.
* `create_private_endpoint` — the network's side (`portal.inventory.models.PrivateEndpoint`, ten private IPs from
  the subnet) and the vault's side (`vaults.models.PrivateEndpointConnection`): Approved at once for a creator
  who holds the vault's approval action (Owner, Contributor), otherwise Pending. It needs the right to join
  the subnet (``subnets/join/action`` on the VNet) and to write endpoints in the endpoint's resource group;
  the private endpoint rules (first endpoint, secondary, at most 12) are a guard (`guard.endpoint_rules_guard`),
  so the wizard's preview says them before the click.
* `approve_connection`, `reject_connection`, `remove_connection` — the vault owner's decisions, each with a
  description; Removed deletes the vault's connection (the endpoint then shows Disconnected on its side).
* `delete_private_endpoint` — the network's side goes (the inventory's service, `portal.inventory.services.network`);
  the vault's connection stays, Disconnected, and the vault's approvers are told.

With *Integrate with private DNS zone* = Yes an Approved connection writes the endpoint's A records into the
three private DNS zones (created in the endpoint's resource group when missing, and linked to the subnet's
VNet); rejecting, removing, disconnecting or deleting the endpoint deletes them again. Every transition is
notified to the other side (the creator, or the people who may approve) in the portal's notifications.
"""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from portal.inventory import addresses
from portal.inventory.services import network as inventory_network
from portal.inventory.models import (
    DnsRecord, PrivateDnsZone, PrivateEndpoint, Subnet, VirtualNetworkLink,
)
from security import clock, scopes
from security import operations as ops
from security.audit import guarded, record_denial
from security.guards import GuardDenied, evaluate
from vaults.models import BackupVault, PrivateEndpointConnection, PublicNetworkAccess
from vaults.models import PrivateEndpointConnectionState as State
from vaults.networking import names
from vaults.networking.guard import endpoint_change, endpoint_rules_refusal
from vaults.services.rows import locked, refresh

NAME_MAX = 64
DESCRIPTION_MAX = 140


# =================================================================================================
# Public access
# =================================================================================================


def public_access_change(vault, value: str) -> dict:
    return {"setting": "publicNetworkAccess", "from": vault.public_network_access, "to": value}


def set_public_network_access(principal, vault, value: str) -> BackupVault:
    """Public access: ``Enabled`` (Allow from all networks) or ``Disabled`` (Deny)."""
    change = public_access_change(vault, value)
    with guarded(principal, ops.VAULT_PUBLIC_ACCESS_WRITE, vault, change=change,
                 details={"publicNetworkAccess": value, "previous": vault.public_network_access}):
        if value not in PublicNetworkAccess.values:
            raise ValidationError({"public_network_access": "Choose Allow from all networks or Deny."})
        row = locked(vault)
        row.public_network_access = value
        row.save(update_fields=["public_network_access", "updated_at"])
    refresh(vault, row)
    return vault


# =================================================================================================
# Notifications: the other side of each transition
# =================================================================================================


def approvers(vault) -> list:
    """The people who may approve the vault's private endpoint connections (its approval action)."""
    from security.models import Principal, RoleAssignment
    from security.rbac import authorize

    scope_list = scopes.ancestors(vault.resource_id)
    ids = (RoleAssignment.objects.active_at(clock.now()).filter(scope__in=scope_list)
           .values_list("principal_id", flat=True))
    people = Principal.objects.filter(pk__in=ids, kind=Principal.Kind.USER, enabled=True).order_by("display_name")
    return [p for p in people if authorize(p, ops.PE_CONNECTION_APPROVAL, vault.resource_id).allowed]


def _notify(people, *, title: str, message: str, resource_id: str, link: str, status: str, skip=None) -> None:
    """One notification each (after the commit: a rolled-back transition tells nobody)."""
    from portal import services as portal_services

    recipients = {p.pk: p for p in people if p is not None and getattr(p, "pk", None) != getattr(skip, "pk", None)}

    def deliver():
        for person in recipients.values():
            operation = portal_services.start_operation(person, title, resource_id=resource_id, link=link)
            portal_services.finish_operation(operation, succeeded=True, message=message, status=status)

    transaction.on_commit(deliver)


def _link(vault) -> str:
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse("vaults:vault_networking", args=[vault.pk]) + "?tab=private"
    except NoReverseMatch:
        return ""


# =================================================================================================
# DNS records of an endpoint
# =================================================================================================


def _ensure_zone(endpoint, zone_name: str) -> PrivateDnsZone:
    zone = PrivateDnsZone.objects.filter(resource_group=endpoint.resource_group, name__iexact=zone_name).first()
    if zone is None:
        zone = PrivateDnsZone.objects.create(name=zone_name, resource_group=endpoint.resource_group,
                                             region=endpoint.region)
    vnet = endpoint.subnet.virtual_network
    if not VirtualNetworkLink.objects.filter(zone=zone, virtual_network=vnet).exists():
        # "<vnet>-link", unless a link of that name exists already (a same-named VNet of another resource group,
        # or one made by hand): then the VNet's number makes it unique.
        name = f"{vnet.name}-link"[:80]
        if zone.links.filter(name__iexact=name).exists():
            name = f"{vnet.name[:60]}-link-{vnet.resolver_number}"
        VirtualNetworkLink.objects.create(zone=zone, virtual_network=vnet, name=name)
    return zone


def write_dns_records(endpoint, vault, group_id: str) -> list[str]:
    """The endpoint's A records in its zones (made and linked to its VNet when missing): one per name."""
    ips = {c["fqdn"].lower(): c["ip"] for c in endpoint.ip_configurations}
    written = []
    zones: dict[str, PrivateDnsZone] = {}
    for name in names.endpoint_names(vault, group_id):
        zone = zones.get(name.zone) or zones.setdefault(name.zone, _ensure_zone(endpoint, name.zone))
        ip = ips[name.private_fqdn.lower()]
        record = DnsRecord.objects.filter(zone=zone, name__iexact=name.record).first()
        if record is None:
            record = DnsRecord(zone=zone, name=name.record)
        record.ip, record.private_endpoint = ip, endpoint
        record.save()
        written.append(f"{name.private_fqdn} A {ip}")
    return written


def delete_dns_records(endpoint) -> int:
    if endpoint is None:
        return 0
    deleted, _ = DnsRecord.objects.filter(private_endpoint=endpoint).delete()
    return deleted


# =================================================================================================
# Create
# =================================================================================================


def _validate_endpoint_input(name: str, group_id: str, request_message: str) -> None:
    errors = {}
    if not name:
        errors["name"] = "Enter a name for the private endpoint."
    elif len(name) > NAME_MAX or not all(c.isalnum() or c in "-_." for c in name) or not name[0].isalnum():
        errors["name"] = (f"The name must be 1–{NAME_MAX} characters of letters, digits, '-', '_' or '.', starting "
                          "with a letter or digit.")
    if group_id not in names.SUB_RESOURCES:
        errors["group_id"] = f"Choose the target sub-resource {names.PRIMARY} or {names.SECONDARY}."
    if len(request_message or "") > DESCRIPTION_MAX:
        errors["request_message"] = f"The request message is at most {DESCRIPTION_MAX} characters."
    if errors:
        raise ValidationError(errors)


def _require(principal, operation, target, details) -> None:
    decision = evaluate(principal, operation, target)
    if not decision.allowed:
        record_denial(principal, decision, details)
        raise GuardDenied(decision)


def _allocate(subnet_pk: int) -> tuple[Subnet, list[str]]:
    """IPs for a new endpoint, the subnet's row locked so two creations never share an address."""
    subnet = Subnet.objects.select_for_update().select_related("virtual_network").get(pk=subnet_pk)
    in_use = [ip for configs in PrivateEndpoint.objects.filter(subnet=subnet).values_list("ip_configurations", flat=True)
              for ip in (c["ip"] for c in configs or [])]
    try:
        return subnet, addresses.allocate(subnet.address_prefix, in_use, names.IPS_PER_ENDPOINT)
    except addresses.AddressError as exc:
        raise ValidationError({"subnet": str(exc)}) from None


def create_private_endpoint(principal, *, name: str, resource_group, vault, group_id: str = names.PRIMARY,
                            subnet, integrate_dns: bool = True, tags: dict | None = None,
                            request_message: str = "") -> PrivateEndpointConnection:
    """Create a private endpoint to ``vault`` in ``subnet`` and the vault's connection (see the module)."""
    name = (name or "").strip()
    group_id = group_id or names.PRIMARY
    target = f"{resource_group.resource_id}/providers/{PrivateEndpoint.RESOURCE_TYPE}/{name or '-'}"
    details = {"name": name, "vault": vault.name, "groupId": group_id, "subnet": str(subnet),
               "integrateWithPrivateDns": bool(integrate_dns)}
    _require(principal, ops.SUBNET_JOIN, subnet.resource_id, details)
    with guarded(principal, ops.PRIVATE_ENDPOINT_WRITE, target, change=endpoint_change(vault, group_id),
                 details=details) as op:
        _validate_endpoint_input(name, group_id, request_message)
        region = names.endpoint_region(vault, group_id)
        if subnet.virtual_network.region_id != region.pk:
            raise ValidationError({"subnet": f"The endpoint lives in {region.display_name}, the "
                                             f"{'paired region of the vault' if group_id == names.SECONDARY else 'vault'}"
                                             f"'s region: choose a virtual network there ('{subnet.virtual_network.name}' "
                                             f"is in {subnet.virtual_network.region.display_name})."})
        if PrivateEndpoint.objects.filter(resource_group=resource_group, name__iexact=name).exists():
            raise ValidationError({"name": f"A private endpoint named '{name}' already exists in the resource group "
                                           f"'{resource_group.name}': choose another name."})
        # The 12 and the first endpoint, one creation at a time: judged again under the vault's lock, since the guard
        # judged them before this transaction, and a creation beside this one may have committed since.
        locked_vault = (BackupVault.objects.select_for_update(of=("self",)).select_related("region")
                        .filter(pk=vault.pk).first())
        refusal = endpoint_rules_refusal(locked_vault, group_id) if locked_vault is not None else None
        if refusal is not None:
            raise ValidationError(f"{refusal.reason} {refusal.remedy}")
        subnet, ips = _allocate(subnet.pk)
        configs = [{"fqdn": n.private_fqdn, "ip": ip} for n, ip in zip(names.endpoint_names(vault, group_id), ips)]
        try:
            with transaction.atomic():
                endpoint = PrivateEndpoint.objects.create(
                    name=name, resource_group=resource_group, region=region, subnet=subnet,
                    target_resource_id=vault.resource_id, target_sub_resource=group_id, ip_configurations=configs,
                    integrate_with_private_dns=bool(integrate_dns), request_message=request_message or "",
                    tags=tags or {})
        except IntegrityError:
            raise ValidationError({"name": f"A private endpoint named '{name}' already exists in the resource group "
                                           f"'{resource_group.name}': choose another name."}) from None
        approved = evaluate(principal, ops.PE_CONNECTION_APPROVAL, vault).allowed
        connection = PrivateEndpointConnection.objects.create(
            vault=vault, name=f"{name}.{uuid.uuid4()}", private_endpoint=endpoint,
            private_endpoint_resource_id=endpoint.resource_id, group_id=group_id,
            state=State.APPROVED if approved else State.PENDING,
            description="Auto-approved" if approved else (request_message or ""),
            requested_by=principal if getattr(principal, "pk", None) else None,
            decided_by=principal if approved else None, decided_at=clock.now() if approved else None)
        op.result_scope = endpoint.resource_id
        op.details.update({"privateIps": ips, "connection": connection.name, "connectionState": connection.state,
                           "requestedBy": getattr(principal, "display_name", "")})
        if approved and integrate_dns:
            op.details["dnsRecords"] = write_dns_records(endpoint, vault, group_id)
        if not approved:
            _notify(approvers(vault), title=f"Private endpoint '{name}' to '{vault.name}' waiting for your approval",
                    message=f"{principal.display_name} created the private endpoint '{name}' in "
                            f"'{subnet}' ({group_id}): “{request_message}”. Approve or reject it in the vault's "
                            "Networking > Private access.",
                    resource_id=vault.resource_id, link=_link(vault), status="Pending", skip=principal)
    return connection


# =================================================================================================
# Approve, reject, remove; delete the endpoint
# =================================================================================================


def _connection_row(connection) -> PrivateEndpointConnection:
    return (PrivateEndpointConnection.objects.select_for_update(of=("self",))
            .select_related("vault__region", "private_endpoint__subnet__virtual_network", "requested_by")
            .get(pk=connection.pk))


def _decision_details(connection, description: str, principal) -> dict:
    return {"connection": connection.name, "vault": connection.vault.name, "description": description,
            "privateEndpoint": connection.private_endpoint_resource_id,
            "requestedBy": connection.requested_by.display_name if connection.requested_by_id else "",
            "decidedBy": getattr(principal, "display_name", "")}


def _check_description(description: str) -> str:
    description = (description or "").strip()
    if len(description) > DESCRIPTION_MAX:
        raise ValidationError({"description": f"The description is at most {DESCRIPTION_MAX} characters."})
    return description


def _decide(principal, connection, *, state: str, description: str, operation: str, verb: str):
    description = _check_description(description)
    vault = connection.vault
    details = _decision_details(connection, description, principal) | {"state": state}
    with guarded(principal, operation, connection, change={"setting": "privateEndpointConnection", "to": state},
                 details=details) as op:
        row = _connection_row(connection)
        if row.state == state:
            raise ValidationError(f"The connection '{row.name}' is already {state}.")
        if state == State.APPROVED and row.private_endpoint_id is None:
            raise ValidationError(f"The connection '{row.name}' is Disconnected: its private endpoint was deleted, so "
                                  "there is nothing to approve. Remove it, and create a new endpoint.")
        op.details["previousState"] = row.state
        row.state, row.description = state, description
        row.decided_by = principal if getattr(principal, "pk", None) else None
        row.decided_at = clock.now()
        row.save(update_fields=["state", "description", "decided_by", "decided_at", "updated_at"])
        endpoint = row.private_endpoint
        if state == State.APPROVED and endpoint is not None and endpoint.integrate_with_private_dns:
            op.details["dnsRecords"] = write_dns_records(endpoint, vault, row.group_id)
        elif state != State.APPROVED:
            op.details["dnsRecordsDeleted"] = delete_dns_records(endpoint)
        _notify([row.requested_by], title=f"Private endpoint connection to '{vault.name}' {verb}",
                message=f"{principal.display_name} {verb} the connection of '{endpoint.name if endpoint else row.name}'"
                        f"{': “' + description + '”' if description else ''}.",
                resource_id=vault.resource_id, link=_link(vault), status=state, skip=principal)
    connection.state, connection.description = row.state, row.description
    return row


def approve_connection(principal, connection, *, description: str = "") -> PrivateEndpointConnection:
    return _decide(principal, connection, state=State.APPROVED, description=description,
                   operation=ops.PE_CONNECTION_APPROVAL, verb="approved")


def reject_connection(principal, connection, *, description: str = "") -> PrivateEndpointConnection:
    return _decide(principal, connection, state=State.REJECTED, description=description,
                   operation=ops.PE_CONNECTION_APPROVAL, verb="rejected")


def remove_connection(principal, connection, *, description: str = "") -> None:
    """Removed: the vault's connection is deleted; the endpoint stays, Disconnected on its side."""
    description = _check_description(description)
    vault = connection.vault
    details = _decision_details(connection, description, principal) | {"state": "Removed"}
    with guarded(principal, ops.PE_CONNECTION_DELETE, connection, details=details) as op:
        row = _connection_row(connection)
        op.details["previousState"] = row.state
        endpoint = row.private_endpoint
        op.details["dnsRecordsDeleted"] = delete_dns_records(endpoint)
        row.delete()
        _notify([row.requested_by], title=f"Private endpoint connection to '{vault.name}' removed",
                message=f"{principal.display_name} removed the connection of "
                        f"'{endpoint.name if endpoint else row.name}': the endpoint is Disconnected"
                        f"{': “' + description + '”' if description else ''}.",
                resource_id=vault.resource_id, link=_link(vault), status="Rejected", skip=principal)


def delete_private_endpoint(principal, endpoint) -> None:
    """Delete the endpoint resource through the inventory's service (`portal.inventory.services.network`: its IPs
    and DNS records go; `disconnect_on_endpoint_delete` leaves the vault's connection Disconnected), then tell
    the vaults' approvers."""
    connections = list(PrivateEndpointConnection.objects.select_related("vault").filter(private_endpoint=endpoint)
                       .exclude(state=State.DISCONNECTED))
    name = endpoint.name
    inventory_network.delete_private_endpoint(principal, endpoint)
    for connection in connections:
        _notify(approvers(connection.vault), title=f"Private endpoint connection to '{connection.vault.name}' "
                                                    "disconnected",
                message=f"{principal.display_name} deleted the private endpoint '{name}': its connection "
                        f"'{connection.name}' is Disconnected.",
                resource_id=connection.vault.resource_id, link=_link(connection.vault), status="Failed",
                skip=principal)


# =================================================================================================
# Reads
# =================================================================================================


def connections_of(vault):
    return (PrivateEndpointConnection.objects.filter(vault=vault)
            .select_related("private_endpoint__subnet__virtual_network", "requested_by", "decided_by")
            .order_by("created_at", "name"))


def endpoint_state(endpoint) -> str:
    """The connection state the endpoint's side shows: its vault connection's, or Disconnected when removed."""
    connection = PrivateEndpointConnection.objects.filter(private_endpoint=endpoint).first()
    return connection.state if connection else State.DISCONNECTED


def disconnect_on_endpoint_delete(sender, instance, **kwargs) -> None:
    """``pre_delete`` of a private endpoint, however it is deleted (the inventory's service,
    `portal.inventory.services.network.delete_private_endpoint`, called by its Delete page, by the sandbox
    take-down and by `delete_private_endpoint` above; `portal` cannot import this floor): its vault connections
    become Disconnected and the A records it wrote go, in the deleting transaction — as Azure does when an
    endpoint resource is removed."""
    DnsRecord.objects.filter(private_endpoint=instance).delete()
    PrivateEndpointConnection.objects.filter(private_endpoint=instance).exclude(state=State.DISCONNECTED).update(
        state=State.DISCONNECTED)
