"""WAL arithmetic: LSNs, segment names and gaps in an archived range."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.postgres.wal import SEGMENT_SIZE, lsn_to_int, missing_segments, segment_name, segment_number, segment_of

PER_XLOGID = 0x100000000 // SEGMENT_SIZE  # 256 segments of 16 MB per xlogid


@pytest.mark.parametrize("lsn, value", [
    ("0/0", 0),
    ("0/3000060", 50331744),
    ("1/0", 1 << 32),
    ("A/FF", (10 << 32) | 0xFF),
    ("a/ff", (10 << 32) | 0xFF),
    ("FFFFFFFF/FFFFFFFF", 2 ** 64 - 1),
])
def test_lsn_to_int(lsn, value):
    assert lsn_to_int(lsn) == value


def test_lsn_ordering_follows_integer_ordering():
    assert lsn_to_int("0/FFFFFFFF") < lsn_to_int("1/0") < lsn_to_int("1/1")


def test_segment_number_known_value():
    assert segment_number("000000010000000200000003") == 2 * 256 + 3
    assert segment_number("000000020000000200000003") == 2 * 256 + 3  # timeline does not count


@pytest.mark.parametrize("bad", ["00000001000000020000003", "000000010000000200000003.partial",
                                 "00000002.history", "000000010000000a00000003", ""])
def test_segment_number_rejects_other_names(bad):
    with pytest.raises(ValueError, match="not a WAL segment name"):
        segment_number(bad)


def test_segment_name_known_value():
    assert segment_name(1, 2 * 256 + 3) == "000000010000000200000003"
    assert segment_name(0x1A, 255) == "0000001A00000000000000FF"
    assert segment_name(1, 256) == "000000010000000100000000"


def test_segment_size_changes_segments_per_xlogid():
    size = 64 * 1024 * 1024  # 64 segments per xlogid
    assert segment_number("000000010000000200000003", size) == 2 * 64 + 3
    assert segment_name(1, 64, size) == "000000010000000100000000"


@settings(database=None, max_examples=200)
@given(timeline=st.integers(1, 0xFFFF), number=st.integers(0, 0xFFFFFFFF * PER_XLOGID))
def test_segment_name_number_round_trip(timeline, number):
    name = segment_name(timeline, number)
    assert len(name) == 24
    assert int(name[:8], 16) == timeline
    assert segment_number(name) == number
    assert segment_name(timeline, segment_number(name)) == name


@pytest.mark.parametrize("lsn, timeline, segment", [
    ("0/3000060", 1, "000000010000000000000003"),
    ("0/2FFFFFF", 1, "000000010000000000000002"),
    ("0/3000000", 2, "000000020000000000000003"),
    ("0/FF000028", 1, "0000000100000000000000FF"),
    ("1/0", 1, "000000010000000100000000"),
    ("2/5159658", 3, "000000030000000200000005"),
])
def test_segment_of(lsn, timeline, segment):
    assert segment_of(lsn, timeline) == segment


def test_missing_segments_none_missing():
    names = [segment_name(1, n) for n in range(3, 9)]
    assert missing_segments(names, names[0], names[-1]) == []


def test_missing_segments_gap_across_xlogid_boundary():
    names = [segment_name(1, n) for n in range(254, 260)]
    archived = [n for n in names if n not in ("0000000100000000000000FF", "000000010000000100000001")]
    assert missing_segments(archived, names[0], names[-1]) == [
        "0000000100000000000000FF", "000000010000000100000001"]


def test_missing_segments_ignores_partial_history_and_other_timelines():
    first, last = segment_name(1, 3), segment_name(1, 5)
    archived = [first, segment_name(1, 4) + ".partial", "00000002.history", segment_name(2, 4), last]
    assert missing_segments(archived, first, last) == [segment_name(1, 4)]


def test_missing_segments_bounds_are_inclusive():
    first, last = segment_name(1, 10), segment_name(1, 12)
    assert missing_segments([segment_name(1, 11)], first, last) == [first, last]
    assert missing_segments([], first, first) == [first]


@st.composite
def archived_ranges(draw):
    timeline = draw(st.integers(1, 20))
    if draw(st.booleans()):
        # Start shortly before an xlogid boundary so the range crosses it.
        xlogid = draw(st.integers(0, 0xFFFF))
        start = (xlogid + 1) * PER_XLOGID - draw(st.integers(1, 20))
    else:
        start = draw(st.integers(0, 0xFFFF * PER_XLOGID))
    length = draw(st.integers(1, 3 * PER_XLOGID))
    numbers = list(range(start, start + length))
    removed = sorted(draw(st.sets(st.sampled_from(numbers), max_size=length)))
    return timeline, numbers, removed, draw(st.randoms(use_true_random=False))


@settings(database=None, max_examples=300, deadline=None)
@given(archived_ranges())
def test_missing_segments_finds_exactly_the_removed_segments(case):
    timeline, numbers, removed, rnd = case
    names = [segment_name(timeline, n) for n in numbers]
    gone = {segment_name(timeline, n) for n in removed}
    archived = [n for n in names if n not in gone]
    rnd.shuffle(archived)  # archive listing order must not matter
    result = missing_segments(archived, names[0], names[-1])
    assert result == [segment_name(timeline, n) for n in removed]
    assert result == sorted(result, key=segment_number)
