"""Which HTTP peers may go through a proxy: never loopback (HTTP(S)_PROXY is for egress, and a proxy that sees a
request to 127.0.0.1 sees its admin token), as Prometheus and curl's NO_PROXY conventions expect."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback(url: str) -> bool:
    """True for http(s)://localhost, 127.0.0.0/8 and [::1] URLs."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def trust_env_for(url: str) -> bool:
    """httpx's trust_env for a client that talks to `url`: the environment's proxies, except for loopback."""
    return not is_loopback(url)
