"""Test doubles shipped with the package (as structlog and httpx do), so tests never patch nbmon's code.

- `InternalErrorCollector`: fails a test whose telemetry swallowed an error; `FullDisk`: a disk that fills up,
  through the persistence seams of the state file, the flagd file and the outbox; `VirtualClock`: instant sleeps.
- `monitor.testing.notify`: fake Slack, PagerDuty and webhook receivers (real HTTP on loopback).
- `monitor.testing.quota`: a fake Cloud Monitoring MetricService (real gRPC) and its series builders.
"""

from typing import TYPE_CHECKING

from monitor import _lazy

__all__ = ["FullDisk", "InternalErrorCollector", "VirtualClock"]

_EXPORTS = {
    "FullDisk": "monitor.testing._core",
    "InternalErrorCollector": "monitor.testing._core",
    "VirtualClock": "monitor.clock",
}
__getattr__, __dir__ = _lazy.exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from monitor.clock import VirtualClock
    from monitor.testing._core import FullDisk, InternalErrorCollector
