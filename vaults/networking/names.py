"""The DNS names a vault answers on, and the records a private endpoint to it holds (reference §4).

A Backup endpoint gets ten private IPs (the enhanced experience): eight for the Backup service's names in
``privatelink.<geo>.backup.windowsazure.com`` (``<vault id>-ab-pod01-fab1``, ``-fc1``, ``-prot1``, ``-rec2``,
``-ecs1``, ``-id1``, ``-tel1``, ``-wbcm1``), one for the vault's blob storage (``<short id>prot101`` in
``privatelink.blob.core.windows.net``) and one for its queue (``<short id>ecs101`` in
``privatelink.queue.core.windows.net``). A secondary endpoint (``AzureBackup_Secondary``) holds the same
names in the paired region's Backup zone.

Data moves through ``prot1``: `data_fqdn` is the name the network guard resolves in the datasource's VNet.
"""

from __future__ import annotations

from dataclasses import dataclass

from portal.inventory import dns

PRIMARY = "AzureBackup"
SECONDARY = "AzureBackup_Secondary"
SUB_RESOURCES = (PRIMARY, SECONDARY)
BACKUP_SERVICES = ("fab1", "fc1", "prot1", "rec2", "ecs1", "id1", "tel1", "wbcm1")
DATA_SERVICE = "prot1"
IPS_PER_ENDPOINT = len(BACKUP_SERVICES) + 2


@dataclass(frozen=True)
class EndpointName:
    zone: str  # the private DNS zone that holds it
    record: str  # the A record's name, relative to the zone
    public_fqdn: str  # the name clients ask for (its CNAME leads to record.zone)

    @property
    def private_fqdn(self) -> str:
        return f"{self.record}.{self.zone}"


def _vault_key(vault) -> str:
    return str(vault.uuid)


def _short(vault) -> str:
    return vault.uuid.hex[:16]


def endpoint_region(vault, group_id: str):
    """Where an endpoint of ``group_id`` lives: the vault's region, or its paired region for a secondary."""
    return vault.region.paired_region if group_id == SECONDARY else vault.region


def endpoint_names(vault, group_id: str = PRIMARY) -> list[EndpointName]:
    """The names an endpoint of ``group_id`` to ``vault`` answers for, one private IP each, in order."""
    region = endpoint_region(vault, group_id)
    if region is None:
        raise ValueError(f"{vault.name}'s region has no paired region for a secondary endpoint.")
    geo = dns.geo_code(region)
    backup_zone = dns.backup_zone_name(region)
    names = [EndpointName(backup_zone, f"{_vault_key(vault)}-ab-pod01-{svc}",
                          f"{_vault_key(vault)}-ab-pod01-{svc}.{geo}.{dns.BACKUP_SUFFIX}") for svc in BACKUP_SERVICES]
    names.append(EndpointName(dns.BLOB_ZONE_NAME, f"{_short(vault)}prot101", f"{_short(vault)}prot101.{dns.BLOB_SUFFIX}"))
    names.append(EndpointName(dns.QUEUE_ZONE_NAME, f"{_short(vault)}ecs101", f"{_short(vault)}ecs101.{dns.QUEUE_SUFFIX}"))
    return names


def data_fqdn(vault, group_id: str = PRIMARY) -> str:
    """The public name data moves to (``<vault id>-ab-pod01-prot1.<geo>.backup.windowsazure.com``)."""
    return next(n.public_fqdn for n in endpoint_names(vault, group_id) if n.record.endswith(f"-{DATA_SERVICE}"))
