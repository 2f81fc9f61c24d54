"""The pytest plugin of the harness (entry point ``pytest11: pgbv``): options, fixtures, evidence.

Thin on purpose: everything that touches PostgreSQL or Barman lives in the pytest-free core, so a
nightly script or bench/ can drive the same drills without pytest.
"""

pytest_plugins = [
    "harness.plugin.options",
    "harness.plugin.versions",
    "harness.plugin.fixtures",
    "harness.plugin.scheduling",
    "harness.plugin.parallel",      # before reporting, which imports it
    "harness.plugin.reporting",
    "harness.plugin.existing",
    "harness.plugin.sharding",
]
