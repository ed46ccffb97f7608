"""`nbmon demo`: a scripted day through the simulator, an instrumented load generator and the daemon (cli.py)."""
