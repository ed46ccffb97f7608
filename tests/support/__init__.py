"""What the tests share: a loopback HTTP server for fakes, waiting, the real Prometheus tools, common constants.

Shipped test doubles (`monitor.testing`) stay in the package: this is only for nbmon's own tests.
"""
