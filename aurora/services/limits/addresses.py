"""The client's address: the peer, or X-Forwarded-For when (and only when) the peer is a trusted proxy.

Trusting the header from anyone would let every client pick the address its limits are counted
under. With `trusted_proxies` empty (the default) the header is ignored. When the peer is trusted,
the header is read from the right (the hop nearest to us) and the first address that is not
itself a trusted proxy is the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """'10.0.0.1', '10.0.0.0/8', '::1' -> networks; ValueError on a bad entry."""
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())


def _trusted(address: str | None, networks: tuple[Network, ...]) -> bool:
    if not address or not networks:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(peer: str | None, forwarded_for: str | None, networks: tuple[Network, ...]) -> str:
    if not _trusted(peer, networks) or not forwarded_for:
        return peer or ""
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer or ""  # garbage in the header: count it under the proxy
    return hops[0] if hops else (peer or "")
