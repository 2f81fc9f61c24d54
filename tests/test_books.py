"""Seeded book rows: reproducibility, ISBN-13 check digits and COPY text escaping."""

import pytest

from harness.drill.books import COLUMNS, BookFactory, _copy_escape


def isbn13_valid(isbn: str) -> bool:
    if len(isbn) != 13 or not isbn.isdigit():
        return False
    return sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(isbn)) % 10 == 0


def unescape_copy(field: str) -> str:
    """PostgreSQL's COPY text-format decoding of the escapes _copy_escape produces."""
    out, i = [], 0
    table = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}
    while i < len(field):
        ch = field[i]
        if ch == "\\":
            out.append(table[field[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def test_same_seed_same_rows():
    assert BookFactory(42).copy_text(200) == BookFactory(42).copy_text(200)


def test_same_seed_same_isbns_and_rows():
    a, b = BookFactory(7), BookFactory(7)
    assert [a.row() for _ in range(50)] == [b.row() for _ in range(50)]


def test_other_seed_other_rows():
    assert BookFactory(42).copy_text(50) != BookFactory(43).copy_text(50)
    assert BookFactory(42).titles != BookFactory(43).titles


def test_isbn_reference_check():
    # Sanity check of the validator itself on a known ISBN-13.
    assert isbn13_valid("9780306406157")
    assert not isbn13_valid("9780306406158")


def test_isbn13_has_valid_check_digit():
    factory = BookFactory(1)
    isbns = [factory.isbn13() for _ in range(2000)]
    assert all(isbn.startswith("978") for isbn in isbns)
    bad = [isbn for isbn in isbns if not isbn13_valid(isbn)]
    assert bad == []
    assert len({isbn[-1] for isbn in isbns}) == 10  # every check digit, incl. 0, occurs


def test_row_shape_and_ranges():
    factory = BookFactory(3)
    for _ in range(200):
        category, title, author, isbn, year = factory.row()
        assert 1 <= category <= 20
        assert 1 <= len(title) <= 255 and 1 <= len(author) <= 255
        assert isbn13_valid(isbn)
        assert 1900 <= year <= 2026


def test_copy_text_has_one_line_per_row_with_all_columns():
    text = BookFactory(5).copy_text(100)
    assert text.endswith("\n")
    lines = text.split("\n")[:-1]
    assert len(lines) == 100
    assert all(len(line.split("\t")) == len(COLUMNS) for line in lines)


def test_copy_text_zero_rows():
    assert BookFactory(5).copy_text(0) == ""


@pytest.mark.parametrize("value, escaped", [
    ("plain", "plain"),
    (1999, "1999"),
    ("a\tb", "a\\tb"),
    ("a\nb", "a\\nb"),
    ("a\rb", "a\\rb"),
    ("back\\slash", "back\\\\slash"),
    ("\\t is not a tab", "\\\\t is not a tab"),
    ("\\\t\n", "\\\\\\t\\n"),
])
def test_copy_escape(value, escaped):
    assert _copy_escape(value) == escaped


@pytest.mark.parametrize("value", ["x\ty\\z\nw\r", "\\\\\\", "\t\t", "no escapes", "ends with \\"])
def test_copy_escape_round_trips_and_hides_separators(value):
    escaped = _copy_escape(value)
    assert "\t" not in escaped and "\n" not in escaped and "\r" not in escaped
    assert unescape_copy(escaped) == value


def test_copy_text_escapes_titles_from_the_pool():
    factory = BookFactory(9)
    factory.titles = ["Tab\there"]
    factory.authors = ["Back\\slash\nAuthor"]
    lines = factory.copy_text(3).split("\n")[:-1]
    assert len(lines) == 3
    for line in lines:
        fields = line.split("\t")
        assert len(fields) == len(COLUMNS)
        assert unescape_copy(fields[1]) == "Tab\there"
        assert unescape_copy(fields[2]) == "Back\\slash\nAuthor"
