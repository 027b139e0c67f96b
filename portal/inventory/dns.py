"""Name resolution inside a virtual network: the one function the DNS responder serves and the network
guard calls, so what `dig` shows a trainee is what the data path gets.

`resolve(vnet, name)` answers as Azure's resolver does for a VM in ``vnet`` (None: a client on the public
internet):

1. A name under a service with a Private Link zone (``<x>.<geo>.backup.windowsazure.com``,
   ``<x>.blob.core.windows.net``, ``<x>.queue.core.windows.net``) is first a CNAME to its ``privatelink``
   name (``<x>.privatelink.<geo>.backup.windowsazure.com``).
2. The privatelink name (or any name) is looked up in the private DNS zones *linked to the VNet*: an A
   record there is the private answer.
3. Otherwise the public answer: an address from the documentation range 203.0.113.0/24, derived from the
   name (data only: nothing is ever sent there). Names under no Azure service suffix and in no linked zone
   do not exist (NXDOMAIN).

Each VNet's resolver listens on its own loopback address (`resolver_address`), so `dig @127.53.1.1 -p 5353
<name>` asks as a VM in that VNet would.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field

PUBLIC_ANSWER_NETWORK = ipaddress.ip_network("203.0.113.0/24")  # RFC 5737: documentation only
# Services whose public names have a Private Link zone: "<label>.<suffix>" ↔ "<label>.privatelink.<suffix>".
BACKUP_SUFFIX = "backup.windowsazure.com"
BLOB_SUFFIX = "blob.core.windows.net"
QUEUE_SUFFIX = "queue.core.windows.net"
PUBLIC_SUFFIXES = (BACKUP_SUFFIX, BLOB_SUFFIX, QUEUE_SUFFIX)

# Azure's short geo codes in Backup's DNS names (reference §4: "eus", "ne"); others use the region's name.
GEO_CODES = {
    "eastus": "eus", "westus": "wus", "eastus2": "eus2", "centralus": "cus", "northeurope": "ne",
    "westeurope": "we", "uksouth": "uks", "ukwest": "ukw", "southeastasia": "sea", "eastasia": "ea",
    "australiaeast": "ae", "australiasoutheast": "ase",
}


def geo_code(region) -> str:
    name = getattr(region, "name", region)
    return GEO_CODES.get(name, name)


def backup_zone_name(region) -> str:
    """``privatelink.eus.backup.windowsazure.com``: the Backup private DNS zone of a region."""
    return f"privatelink.{geo_code(region)}.{BACKUP_SUFFIX}"


BLOB_ZONE_NAME = f"privatelink.{BLOB_SUFFIX}"
QUEUE_ZONE_NAME = f"privatelink.{QUEUE_SUFFIX}"


def resolver_address(vnet) -> str:
    """The loopback address a VNet's resolver answers on: 127.53.1.1 for VNet number 1, … 127.53.254.1, then
    127.54.1.1 and on (Linux routes the whole of 127.0.0.0/8 to the loopback; nothing to configure)."""
    number = getattr(vnet, "resolver_number", vnet)
    if not isinstance(number, int) or number < 1:
        raise ValueError("A VNet's resolver number starts at 1.")
    block, index = divmod(number - 1, 254)
    if 53 + block > 126:
        raise ValueError("No loopback address is left for another VNet's resolver.")
    return f"127.{53 + block}.{index + 1}.1"


def vnet_number_for_address(address: str) -> int | None:
    """The inverse of `resolver_address` (None: not a resolver address)."""
    try:
        parts = [int(p) for p in address.split(".")]
    except ValueError:
        return None
    if len(parts) != 4 or parts[0] != 127 or parts[3] != 1 or not 53 <= parts[1] <= 126 or not 1 <= parts[2] <= 254:
        return None
    return (parts[1] - 53) * 254 + parts[2]


def normalize(name: str) -> str:
    return name.strip().rstrip(".").lower()


def privatelink_name(name: str) -> str | None:
    """``<x>.privatelink.<suffix>`` for a public service name ``<x>.<suffix>``; None for any other name."""
    name = normalize(name)
    first, _, rest = name.partition(".")
    if not rest or rest.startswith("privatelink."):
        return None
    if any(rest == suffix or rest.endswith("." + suffix) for suffix in PUBLIC_SUFFIXES):
        return f"{first}.privatelink.{rest}"
    return None


def is_azure_name(name: str) -> bool:
    name = normalize(name)
    return any(name == s or name.endswith("." + s) for s in PUBLIC_SUFFIXES)


def public_address(name: str) -> str:
    """The public answer for ``name``: a stable address in 203.0.113.0/24 (1–254), derived from the name."""
    digest = hashlib.blake2b(normalize(name).encode(), digest_size=2).digest()
    return str(PUBLIC_ANSWER_NETWORK.network_address + 1 + int.from_bytes(digest, "big") % 254)


@dataclass(frozen=True)
class Resolution:
    name: str  # the name asked, normalized
    cnames: tuple[str, ...] = ()  # the CNAME chain followed, in order
    addresses: tuple[str, ...] = ()  # A records of the last name (empty: NXDOMAIN)
    private: bool = False  # answered from a private DNS zone linked to the VNet
    zone: str = ""  # that zone's name
    records: tuple = field(default=(), compare=False)  # the DnsRecord rows that answered

    @property
    def exists(self) -> bool:
        return bool(self.addresses)


def linked_record(vnet, fqdn: str):
    """The A records for ``fqdn`` in the private zones linked to ``vnet`` (a list; empty: none)."""
    from portal.inventory.models import DnsRecord

    if vnet is None:
        return []
    fqdn = normalize(fqdn)
    candidates = []  # (zone name, relative name) for every split of the name
    labels = fqdn.split(".")
    for i in range(1, len(labels)):
        candidates.append((".".join(labels[i:]), ".".join(labels[:i])))
    if not candidates:
        return []
    zone_names = [zone for zone, _ in candidates]
    records = (DnsRecord.objects.filter(zone__links__virtual_network=vnet, zone__name__in=zone_names)
               .select_related("zone").order_by("id"))
    wanted = {(zone, relative) for zone, relative in candidates}
    return [r for r in records if (r.zone.name.lower(), r.name.lower()) in wanted]


def resolve(vnet, name: str) -> Resolution:
    """Resolve ``name`` as a client in ``vnet`` (None: the public internet) would; see the module docstring."""
    asked = normalize(name)
    cnames: list[str] = []
    current = asked
    target = privatelink_name(asked)
    if target is not None:
        cnames.append(target)
        current = target
    records = linked_record(vnet, current)
    if records:
        return Resolution(asked, tuple(cnames), tuple(r.ip for r in records), private=True,
                          zone=records[0].zone.name, records=tuple(records))
    if is_azure_name(current):
        return Resolution(asked, tuple(cnames), (public_address(current),))
    return Resolution(asked)
