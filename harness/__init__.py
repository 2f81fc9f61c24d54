"""Backup verification harness for PostgreSQL + Barman.

The machinery lives here and knows nothing of pytest: a nightly script or a REPL can drive a drill
with the same objects the pytest plugin (conftest.py) hands to the scenarios.
"""

__version__ = "0.1.0"
