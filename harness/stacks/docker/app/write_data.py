"""`python write_data.py N --batch-size B`: Faker book rows into books_db, in transactions of B rows.

Connects with DB_HOST, DB_PORT, DB_NAME, DB_USER and DB_PASSWORD (else libpq's PG* variables). The code
is the harness's writer, harness/drill/write_data.py, mounted read-only at /opt/writer/harness.
"""

import sys

from harness.drill.write_data import main

if __name__ == "__main__":
    sys.exit(main())
