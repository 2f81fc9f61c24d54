"""The row writer's earlier spelling, `python -m harness.write_data`: now pgbv-write-data
(harness.drill.write_data); this keeps the old command working."""

from harness.drill.write_data import main

if __name__ == "__main__":
    raise SystemExit(main())
