"""Network settings. Which HTTP peers may go through a proxy: never loopback (HTTP(S)_PROXY is for egress, and a
proxy that sees a request to 127.0.0.1 sees its admin token), as Prometheus and curl's NO_PROXY conventions expect.
And the one check of a configured host and port, for the daemon and the proxy."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from monitor.errors import ConfigError


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


def host_setting(value: object, key: str) -> str:
    """A configured interface to listen on: an IP address, localhost, or a host name; ConfigError naming `key`."""
    if not isinstance(value, str) or not value:
        raise ConfigError(key, "must be a host name or IP address")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if value != "localhost" and not all(part.isalnum() or "-" in part for part in value.split(".")):
            raise ConfigError(key, f"{value!r} is not a host name or IP address") from None
    return value


def port_setting(value: object, key: str) -> int:
    """A configured port, 0-65535 (0 picks a free one), from a number or a string (environment variables)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(key, f"{value!r} is not a port number")
    try:
        port = int(value)
    except ValueError:
        raise ConfigError(key, f"{value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(key, "must be between 0 and 65535 (0 picks a free port)")
    return port
