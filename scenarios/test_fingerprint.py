"""The fingerprint a restore is held against sees every change, on the server itself.

A restore passes on an equal fingerprint, so these are the changes a broken backup could make that
it must not miss: one value, two rows trading a value (which a plain sum of per-column hashes
would not see), a row more or less; and it must not depend on where rows physically sit.
"""

from psycopg import sql

from harness.drill.fingerprint import fingerprint

PROBE = "fingerprint_probe"


def probe_table(conn) -> None:
    conn.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE books INCLUDING ALL)").format(sql.Identifier(PROBE)))
    # Ids given: the copied default would draw them from books' own sequence.
    conn.execute(sql.SQL("INSERT INTO {} (id, category_id, title, author, isbn, year) VALUES "
                         "(1, 1, 'Dune', 'Herbert', '9780441013593', 1965), "
                         "(2, 2, 'Emma', 'Austen', '9780141439587', 1815), "
                         "(3, 3, 'Ubik', 'Dick', '9780547572291', 1969)").format(sql.Identifier(PROBE)))


def change(conn, statement: str) -> None:
    conn.execute(sql.SQL(statement).format(t=sql.Identifier(PROBE)))


def test_fingerprint_sees_every_change_and_ignores_row_placement(source):
    with source.connect() as conn:
        probe_table(conn)
        original = fingerprint(conn, PROBE)
        assert original.rows == 3

        change(conn, "UPDATE {t} SET year = year + 1 WHERE id = 2")
        assert fingerprint(conn, PROBE) != original, "one changed value"
        change(conn, "UPDATE {t} SET year = year - 1 WHERE id = 2")
        assert fingerprint(conn, PROBE) == original, "the same contents again"

        change(conn, "UPDATE {t} AS a SET title = b.title FROM {t} AS b "
                     "WHERE (a.id, b.id) IN ((1, 2), (2, 1))")
        swapped = fingerprint(conn, PROBE)
        assert swapped.rows == 3 and swapped != original, "two rows trading a title"
        change(conn, "UPDATE {t} AS a SET title = b.title FROM {t} AS b "
                     "WHERE (a.id, b.id) IN ((1, 2), (2, 1))")
        assert fingerprint(conn, PROBE) == original

        change(conn, "UPDATE {t} SET isbn = isbn")  # every row moves to a new place in the heap
        assert fingerprint(conn, PROBE) == original, "row placement is not content"

        change(conn, "DELETE FROM {t} WHERE id = 3")
        fewer = fingerprint(conn, PROBE)
        assert fewer.rows == 2 and fewer.checksum != original.checksum
