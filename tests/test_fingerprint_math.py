"""Fingerprint arithmetic and query rendering (no server: the SQL is only rendered)."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.drill.fingerprint import MOD, Fingerprint, combine, fingerprint_of_hashes, fingerprint_query

HEX16 = set("0123456789abcdef")


def test_combine_layout():
    fp = combine(3, 1, "books")
    assert fp == Fingerprint("books", 3, "0000000000000001")
    assert str(fp) == "3 rows, checksum 0000000000000001"


def test_combine_reduces_modulo_2_64():
    assert MOD == 2 ** 64
    assert combine(1, MOD + 5, "t").checksum == "0000000000000005"
    # Sums of signed bigints can be negative: they wrap like two's complement.
    assert combine(1, -1, "t").checksum == "ffffffffffffffff"
    assert combine(1, -MOD - 2, "t").checksum == "fffffffffffffffe"


def test_combine_accepts_numeric_from_the_server():
    # psycopg returns numeric sums as Decimal; large ones must not lose precision.
    fp = combine(Decimal(10), Decimal(2 ** 70 + 12345), "books")
    assert fp.rows == 10 and isinstance(fp.rows, int)
    assert fp.checksum == f"{12345:016x}"


@settings(database=None, max_examples=300)
@given(rows=st.integers(0, 10 ** 9), total=st.integers(-(2 ** 80), 2 ** 80))
def test_combine_properties(rows, total):
    fp = combine(rows, total, "books")
    assert len(fp.checksum) == 16 and set(fp.checksum) <= HEX16
    assert int(fp.checksum, 16) == total % MOD
    assert fp == combine(rows, total + MOD, "books")
    assert fp != combine(rows, total + 1, "books")
    assert fp != combine(rows + 1, total, "books")


@settings(database=None, max_examples=200)
@given(st.lists(st.integers(-(2 ** 63), 2 ** 63 - 1), max_size=30), st.randoms())
def test_fingerprint_of_hashes_ignores_row_order(hashes, rng):
    shuffled = list(hashes)
    rng.shuffle(shuffled)
    assert fingerprint_of_hashes(shuffled) == fingerprint_of_hashes(hashes)


def render(query) -> str:
    try:
        return query.as_string(None)
    except Exception as exc:  # older psycopg needs a connection to render
        pytest.skip(f"psycopg cannot render SQL without a connection: {exc}")


def test_fingerprint_query_quotes_table():
    text = render(fingerprint_query("books"))
    assert 'FROM "books" AS t' in text
    assert "{table}" not in text


def test_fingerprint_query_schema_qualified():
    assert 'FROM "public"."books" AS t' in render(fingerprint_query("public.books"))


def test_fingerprint_query_escapes_quotes_in_identifier():
    assert 'FROM "we""ird" AS t' in render(fingerprint_query('we"ird'))


def test_fingerprint_query_hashes_each_row_once_without_text():
    text = render(fingerprint_query("books"))
    assert text.count("hash_record_extended(t, 0)") == 1
    assert "::text" not in text and "md5" not in text
