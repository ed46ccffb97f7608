"""nbmon's tests, laid out like the package: tests/<part>/ for monitor/<part>/ (tests/core/ for the top-level modules,
tests/cli/ for `monitor.cli`), plus tests/deploy, tests/docs, tests/rules (alerts/ and the Prometheus tools) and
tests/dashboards for what lives beside the package.

Every directory is a package (it has an __init__.py), so test modules import as `tests.<part>.<module>` and shared
code comes from `tests.support` (a loopback HTTP server for fakes, `wait_for`, the Prometheus tools, constants);
test file names stay unique all the same. Test doubles that users may import ship in `monitor.testing`.
"""
