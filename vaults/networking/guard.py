"""The vault's network rules, as guards `evaluate` asks (decision 10 of the reference; §4).

**The network guard** (`data_path_refusal`): while a vault denies public network access, data moves between
a datasource and the vault only through an Approved private endpoint in the datasource's virtual network,
and only when the vault's data name (`names.data_fqdn`) resolves, in that VNet, to one of that endpoint's
private IPs — the same resolution the VNet's DNS responder serves (`portal.inventory.dns.resolve`). A
datasource on the public network, a VNet with no endpoint or only a Pending, Rejected or Disconnected one,
or a name that resolves elsewhere is refused with a coded reason that names the datasource's network, the
vault and what would lift it. Management operations never reach this guard: the operations it judges and
the datasource they move data for are told by `protection` (which knows backup instances), through the
guard it registers with `register_network_guard`.

**The private endpoint rules** (`endpoint_rules_guard`, on ``privateEndpoints/write`` with a ``change`` naming
the vault): the first endpoint only for a vault that never had an item protected nor a protection attempted;
a secondary endpoint (``AzureBackup_Secondary``) only for a geo-redundant vault with a paired region, before
or after items are protected; at most 12 endpoints per vault.
"""

from __future__ import annotations

from typing import Callable, Iterable

from security.guards import Refusal, register_guard
from security.operations import PRIVATE_ENDPOINT_WRITE
from vaults.networking import names

NETWORK_GUARD = "Network access"
NETWORK_GUARD_ORDER = 40  # after RBAC (0), MUA (10), immutability (20); before the deletion rules (50)
ENDPOINT_RULES_GUARD = "Private endpoint rules"
ENDPOINT_RULES_ORDER = 45

PUBLIC_ACCESS_DENIED = "PublicNetworkAccessDenied"
NOT_APPROVED = "PrivateEndpointNotApproved"
DNS_FAILED = "PrivateDnsResolutionFailed"

FIRST_ENDPOINT_CODE = "UserErrorPrivateEndpointNotAllowedForVault"
TOO_MANY_CODE = "UserErrorPrivateEndpointLimitReached"
NO_SECONDARY_CODE = "UserErrorSecondaryPrivateEndpointNotSupported"
MAX_ENDPOINTS = 12


# =================================================================================================
# The data path
# =================================================================================================


def _network_label(datasource) -> str:
    subnet = getattr(datasource, "network_subnet", None)
    if subnet is None:
        return "the public network"
    return f"the virtual network '{subnet.virtual_network.name}' (subnet '{subnet.name}')"


def _allow_remedy(vault) -> str:
    return (f"or set the vault '{vault.name}' back to Allow from all networks (Networking > Public access), which "
            "lets data move from any network.")


def data_path_refusal(vault, datasource, *, what: str = "Data movement", group_id: str = names.PRIMARY) -> Refusal | None:
    """The network guard's decision for moving data between ``datasource`` (a storage account, Elastic SAN or
    PostgreSQL server; its ``network_subnet`` None = the public network) and ``vault``: None when allowed."""
    from portal.inventory import dns
    from vaults.models import PrivateEndpointConnectionState as State
    from vaults.models import PublicNetworkAccess

    if vault is None or datasource is None or vault.public_network_access != PublicNetworkAccess.DISABLED:
        return None
    ds_name = getattr(datasource, "name", str(datasource))
    subnet = getattr(datasource, "network_subnet", None)
    extra = {"vault": vault.name, "datasource": ds_name, "network": _network_label(datasource)}
    if subnet is None:
        return Refusal(
            guard=NETWORK_GUARD, code=PUBLIC_ACCESS_DENIED, extra=extra,
            reason=(f"{what} between '{ds_name}' and the Backup vault '{vault.name}' is refused: '{ds_name}' reaches "
                    f"the vault from the public network, and the vault denies public network access."),
            remedy=(f"Put '{ds_name}' in a virtual network (its Networking setting) that has an approved private "
                    f"endpoint (target sub-resource {group_id}) to '{vault.name}', " + _allow_remedy(vault)),
        )
    vnet = subnet.virtual_network
    connections = list(vault.private_endpoint_connections.filter(
        group_id=group_id, private_endpoint__subnet__virtual_network=vnet).select_related("private_endpoint"))
    approved = [c for c in connections if c.state == State.APPROVED and c.private_endpoint_id]
    network = _network_label(datasource)
    if not approved:
        if connections:
            states = ", ".join(f"'{c.private_endpoint.name}' is {c.state}" for c in connections)
            found = f"its private endpoints there carry no traffic ({states})"
            remedy = (f"Ask an Owner or Contributor of '{vault.name}' to approve the private endpoint in "
                      f"'{vnet.name}' (Networking > Private access > Approve), ")
        else:
            found = f"'{vnet.name}' has no private endpoint to the vault" + (
                f" for its secondary region ({group_id})" if group_id == names.SECONDARY else "")
            gone = vault.private_endpoint_connections.filter(private_endpoint__isnull=True).count()
            if gone:
                found += (f" (the vault has {gone} Disconnected connection{'s' if gone != 1 else ''} whose endpoint was "
                          "deleted)")
            remedy = (f"Create a private endpoint to '{vault.name}' (target sub-resource {group_id}) in a subnet of "
                      f"'{vnet.name}' and have it approved (Networking > Private access > + Private endpoint), ")
        return Refusal(
            guard=NETWORK_GUARD, code=NOT_APPROVED, extra=extra | {"virtualNetwork": vnet.name},
            reason=(f"{what} between '{ds_name}' and the Backup vault '{vault.name}' is refused: the vault denies "
                    f"public network access, '{ds_name}' reaches it from {network}, and {found}."),
            remedy=remedy + _allow_remedy(vault),
        )
    name = names.data_fqdn(vault, group_id)
    answer = dns.resolve(vnet, name)
    endpoint_ips = {ip for c in approved for ip in c.private_endpoint.private_ips}
    if set(answer.addresses) & endpoint_ips:
        return None
    endpoint = approved[0].private_endpoint
    got = ", ".join(answer.addresses) if answer.addresses else "nothing (NXDOMAIN)"
    where = "a private DNS zone linked to it" if answer.private else "the public answer"
    lines = records_to_add(vault, endpoint, group_id)
    return Refusal(
        guard=NETWORK_GUARD, code=DNS_FAILED, extra=extra | {"virtualNetwork": vnet.name, "name": name,
                                                            "answer": list(answer.addresses), "records": lines},
        reason=(f"{what} between '{ds_name}' and the Backup vault '{vault.name}' is refused: in {network} the "
                f"vault's name '{name}' resolves to {got} ({where}), not to the private endpoint "
                f"'{endpoint.name}' ({', '.join(endpoint.private_ips[:1])}…), and the vault denies public network access."),
        remedy=(f"Add the endpoint's A records to private DNS zones linked to '{vnet.name}' — "
                + "; ".join(lines[:3]) + (f"; and {len(lines) - 3} more (the endpoint's DNS configuration lists them)"
                                          if len(lines) > 3 else "")
                + " — or recreate the endpoint with Integrate with private DNS zone = Yes, " + _allow_remedy(vault)),
    )


def records_to_add(vault, endpoint, group_id: str = names.PRIMARY) -> list[str]:
    """The A records an endpoint needs, as "<record> A <ip> in zone <zone>" lines."""
    ips = {c["fqdn"].lower(): c["ip"] for c in endpoint.ip_configurations}
    return [f"{n.record} A {ips.get(n.private_fqdn.lower(), '?')} in zone {n.zone}"
            for n in names.endpoint_names(vault, group_id)]


# The adapter protection registers: (principal, operation, target, change) → [(vault, datasource, what)] — the
# data movements an operation makes (empty: not a data movement); a fourth item, when given, is the endpoints'
# sub-resource the movement goes through (``AzureBackup_Secondary`` for a restore to the secondary region).
DataMovements = Callable[[object, str, object, dict], Iterable[tuple]]


def register_network_guard(movements: DataMovements) -> None:
    """Register the network guard with `evaluate`, judging the data movements ``movements`` finds."""

    def network_guard(principal, operation, target, change) -> Refusal | None:
        for vault, datasource, what, *group in movements(principal, operation, target, change or {}):
            refusal = data_path_refusal(vault, datasource, what=what, group_id=group[0] if group else names.PRIMARY)
            if refusal is not None:
                return refusal
        return None

    register_guard(NETWORK_GUARD, network_guard, order=NETWORK_GUARD_ORDER)


# =================================================================================================
# Creating an endpoint
# =================================================================================================


def endpoint_change(vault, group_id: str) -> dict:
    """The ``change`` a private endpoint's creation is judged with (the wizard's preview asks the same)."""
    return {"setting": "privateEndpoint", "vault_id": vault.resource_id, "group_id": group_id}


def endpoint_rules_refusal(vault, group_id: str) -> Refusal | None:
    from vaults.models import PrivateEndpointConnection

    existing = PrivateEndpointConnection.objects.filter(vault=vault)
    if existing.count() >= MAX_ENDPOINTS:
        return Refusal(
            guard=ENDPOINT_RULES_GUARD, code=TOO_MANY_CODE,
            reason=f"The Backup vault '{vault.name}' already has {MAX_ENDPOINTS} private endpoint connections, the most "
                   "a vault can have.",
            remedy="Remove a connection you no longer need (Networking > Private access > Remove), then create this one.",
        )
    if group_id == names.SECONDARY:
        if not vault.is_geo_redundant or vault.region.paired_region_id is None:
            return Refusal(
                guard=ENDPOINT_RULES_GUARD, code=NO_SECONDARY_CODE,
                reason=(f"A secondary private endpoint ({names.SECONDARY}) reaches the copy of '{vault.name}' in its paired "
                        f"region, and this vault is {vault.get_storage_redundancy_display().lower()}: it has no copy there."),
                remedy=f"Choose the target sub-resource {names.PRIMARY}, or use a geo-redundant vault.",
            )
        return None
    if not existing.exists() and (vault.has_ever_protected_item or vault.protection_attempted):
        why = ("has had items protected" if vault.has_ever_protected_item
               else "has had protection configured (an attempt counts, even one that failed)")
        return Refusal(
            guard=ENDPOINT_RULES_GUARD, code=FIRST_ENDPOINT_CODE,
            reason=(f"The Backup vault '{vault.name}' {why}. A vault's first private endpoint can be created only "
                    "for a vault that never had an item protected and never had protection attempted."),
            remedy=("Create a new Backup vault, create its private endpoints before configuring protection, then "
                    f"protect the datasources there. (A secondary endpoint, {names.SECONDARY}, can be added to a "
                    "geo-redundant vault at any time.)"),
        )
    return None


def endpoint_rules_guard(principal, operation, target, change) -> Refusal | None:
    if operation.lower() != PRIVATE_ENDPOINT_WRITE.lower() or not change.get("vault_id"):
        return None
    from vaults.models import BackupVault

    vault = BackupVault.objects.select_related("region").filter(resource_id__iexact=change["vault_id"]).first()
    if vault is None:
        return None
    return endpoint_rules_refusal(vault, change.get("group_id") or names.PRIMARY)


def register_endpoint_rules() -> None:
    register_guard(ENDPOINT_RULES_GUARD, endpoint_rules_guard, order=ENDPOINT_RULES_ORDER)
