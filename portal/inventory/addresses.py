"""Address arithmetic for virtual networks: CIDR checks and the private IPs a subnet hands out.

Azure keeps five addresses of every subnet: the network address, .1 (the default gateway), .2 and .3 (Azure
DNS), and the broadcast address. The smallest subnet Azure allows is a /29 (three usable addresses).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

RESERVED_PER_SUBNET = 5
SMALLEST_PREFIX = 29


class AddressError(ValueError):
    """What was wrong with an address range, said so a person can fix it."""


def parse_prefix(text: str, *, what: str = "Address range") -> ipaddress.IPv4Network:
    """A CIDR such as ``10.20.0.0/16``; host bits set (``10.20.1.5/24``) are refused, naming the network."""
    text = (text or "").strip()
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise AddressError(f"{what} '{text}' is not a CIDR range such as 10.20.0.0/16.") from None
    if network.version != 4:
        raise AddressError(f"{what} '{text}' is IPv6; Strongroom's virtual networks are IPv4.")
    if "/" not in text:
        raise AddressError(f"{what} '{text}' has no prefix length: write it as {network.network_address}/24, say.")
    if network.network_address != ipaddress.ip_interface(text).ip:
        raise AddressError(f"{what} '{text}' has host bits set: did you mean {network}?")
    return network


def usable_count(subnet: ipaddress.IPv4Network) -> int:
    """How many addresses a subnet can hand out: all but Azure's five reserved ones (counted, never listed: a /8
    holds 16 million)."""
    return max(0, subnet.num_addresses - RESERVED_PER_SUBNET)


def is_usable(subnet: ipaddress.IPv4Network, address: ipaddress.IPv4Address) -> bool:
    first = int(subnet.network_address) + 4
    return address in subnet and first <= int(address) < int(subnet.broadcast_address)


def free_count(prefix: str, in_use: Iterable[str]) -> int:
    """The usable addresses of ``prefix`` not in ``in_use``."""
    network = ipaddress.ip_network(prefix)
    taken = {a for a in (ipaddress.ip_address(x) for x in in_use) if is_usable(network, a)}
    return usable_count(network) - len(taken)


def allocate(prefix: str, in_use: Iterable[str], count: int) -> list[str]:
    """``count`` free addresses of the subnet ``prefix``, lowest first, never one of ``in_use`` nor a reserved
    one; AddressError (saying how many are free) when the subnet has too few."""
    network = parse_prefix(prefix, what="Subnet")
    taken = {ipaddress.ip_address(a) for a in in_use}
    free = usable_count(network) - len({a for a in taken if is_usable(network, a)})
    if free < count:
        raise AddressError(f"Subnet {network} has {free} free address{'es' if free != 1 else ''}, and "
                           f"{count} are needed. Choose a larger subnet (a /25 is recommended for private "
                           "endpoints) or remove endpoints from this one.")
    found: list[str] = []
    candidate = int(network.network_address) + 4
    while len(found) < count:  # at most count + len(taken) steps
        address = ipaddress.IPv4Address(candidate)
        if address not in taken:
            found.append(str(address))
        candidate += 1
    return found
