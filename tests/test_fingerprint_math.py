"""Fingerprint arithmetic and query rendering (no server: the SQL is only rendered)."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.fingerprint import MOD, Fingerprint, combine, fingerprint_query

HEX32 = set("0123456789abcdef")


def test_combine_layout():
    fp = combine(3, 1, 2, "books")
    assert fp == Fingerprint("books", 3, "0000000000000001" + "0000000000000002")
    assert str(fp) == "3 rows, checksum 00000000000000010000000000000002"


def test_combine_reduces_modulo_2_64():
    assert MOD == 2 ** 64
    assert combine(1, MOD + 5, 3 * MOD, "t").checksum == "0000000000000005" + "0" * 16
    # Sums of signed bigints can be negative: they wrap like two's complement.
    assert combine(1, -1, -MOD - 2, "t").checksum == "ffffffffffffffff" + "fffffffffffffffe"


def test_combine_accepts_numeric_from_the_server():
    # psycopg returns numeric sums as Decimal; large ones must not lose precision.
    high = Decimal(2 ** 70 + 12345)
    fp = combine(Decimal(10), high, Decimal(0), "books")
    assert fp.rows == 10 and isinstance(fp.rows, int)
    assert fp.checksum == f"{12345:016x}" + "0" * 16


@settings(database=None, max_examples=300)
@given(rows=st.integers(0, 10 ** 9), high=st.integers(-(2 ** 80), 2 ** 80), low=st.integers(-(2 ** 80), 2 ** 80))
def test_combine_properties(rows, high, low):
    fp = combine(rows, high, low, "books")
    assert len(fp.checksum) == 32 and set(fp.checksum) <= HEX32
    assert int(fp.checksum[:16], 16) == high % MOD
    assert int(fp.checksum[16:], 16) == low % MOD
    assert fp == combine(rows, high, low, "books")
    assert fp == combine(rows, high + MOD, low - MOD, "books")
    assert fp != combine(rows, high + 1, low, "books")
    assert fp != combine(rows, high, low + 1, "books")


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
