"""Login roles whose password the server never receives in clear.

PostgreSQL writes a failing statement to its log whole (and a `log_statement` setting any
statement), so CREATE ROLE carries the SCRAM verifier libpq computes here, never the password.
"""

from __future__ import annotations

import psycopg
from psycopg import sql


def create_login_role(conn: psycopg.Connection, role: str, password: str, attributes: str = "") -> None:
    """``CREATE ROLE role LOGIN attributes PASSWORD '<SCRAM verifier>'`` on ``conn``."""
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN {} PASSWORD {}").format(
        sql.Identifier(role), sql.SQL(attributes), sql.Literal(verifier)))
