"""The pass-through proxy: apps in any language point their Gemini base URL at it and are watched (and, opt-in,
steered and retried) as the shim watches a Python app. Needs the `proxy` extra (aiohttp)."""

from typing import TYPE_CHECKING

from monitor import _lazy

__all__ = ["Forwarder", "ProxyConfig", "ProxyServer", "build_forwarder", "proxy_config_from_mapping"]

_EXPORTS = {
    "Forwarder": "monitor.proxy.forward",
    "ProxyConfig": "monitor.proxy.config",
    "ProxyServer": "monitor.proxy.server",
    "build_forwarder": "monitor.proxy.server",
    "proxy_config_from_mapping": "monitor.proxy.config",
}
__getattr__, __dir__ = _lazy.exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from monitor.proxy.config import ProxyConfig, proxy_config_from_mapping
    from monitor.proxy.forward import Forwarder
    from monitor.proxy.server import ProxyServer, build_forwarder
