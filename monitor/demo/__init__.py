"""`nbmon demo`: a scripted day through the simulator, an instrumented load generator and the daemon."""

from monitor.demo.cli import add_arguments, run

__all__ = ["add_arguments", "run"]
