"""RecoveryTarget: validation, Barman arguments, descriptions and the log line that proves the stop."""

import re

import pytest

from harness.drill.targets import KINDS, RecoveryTarget

TS = "2026-11-26 11:45:37.517915+00"
LOG = "2026-11-26 11:46:02.114 UTC [4242] LOG:  "


def matches(target: RecoveryTarget, line: str) -> bool:
    return re.search(target.stop_pattern(), line) is not None


# -- validation -------------------------------------------------------------------------------

def test_unknown_kind_is_rejected_and_names_the_kinds():
    with pytest.raises(ValueError) as info:
        RecoveryTarget("timestamp", TS)
    message = str(info.value)
    assert "'timestamp'" in message
    for kind in KINDS:
        assert kind in message


@pytest.mark.parametrize("kind", ["time", "xid", "lsn", "name"])
def test_kinds_other_than_immediate_need_a_value(kind):
    with pytest.raises(ValueError, match=f"a {kind} target needs a value"):
        RecoveryTarget(kind)


def test_immediate_needs_no_value():
    assert RecoveryTarget("immediate").value == ""


@pytest.mark.parametrize("value", [
    "2026-11-26 11:45:37",
    "2026-11-26 11:45:37.517915",
    "2026-11-26T11:45:37",
    "2026-11-26 11:45",
])
def test_time_without_utc_offset_is_rejected(value):
    with pytest.raises(ValueError, match="no explicit UTC offset"):
        RecoveryTarget("time", value)


@pytest.mark.parametrize("value", [
    "2026-11-26 11:45:37.517915+00",
    "2026-11-26 11:45:37.517915+00:00",
    "2026-11-26 11:45:37+0530",
    "2026-11-26 11:45:37-07",
    "2026-11-26T11:45:37Z",
])
def test_time_with_explicit_offset_is_accepted(value):
    assert RecoveryTarget("time", value).value == value


def test_bare_date_without_offset_is_rejected():
    with pytest.raises(ValueError, match="no explicit UTC offset"):
        RecoveryTarget("time", "2026-11-26")


def test_target_is_immutable():
    target = RecoveryTarget("xid", "731")
    with pytest.raises(AttributeError):
        target.value = "732"


# -- barman_args ------------------------------------------------------------------------------

def test_barman_args_immediate():
    assert RecoveryTarget("immediate").barman_args() == ["--target-immediate"]
    assert RecoveryTarget("immediate", inclusive=False).barman_args() == ["--target-immediate"]


@pytest.mark.parametrize("kind, value", [("time", TS), ("xid", "731"), ("lsn", "0/5159658")])
def test_barman_args_inclusive_has_no_exclusive_flag(kind, value):
    assert RecoveryTarget(kind, value).barman_args() == [f"--target-{kind}", value]


@pytest.mark.parametrize("kind, value", [("time", TS), ("xid", "731"), ("lsn", "0/5159658")])
def test_barman_args_exclusive_adds_flag(kind, value):
    assert RecoveryTarget(kind, value, inclusive=False).barman_args() == [f"--target-{kind}", value, "--exclusive"]


@pytest.mark.parametrize("inclusive", [True, False])
def test_barman_args_name_never_exclusive(inclusive):
    assert RecoveryTarget("name", "drill-abc", inclusive).barman_args() == ["--target-name", "drill-abc"]


# -- describe ---------------------------------------------------------------------------------

@pytest.mark.parametrize("target, text", [
    (RecoveryTarget("immediate"), "immediate (end of backup)"),
    (RecoveryTarget("time", TS), f"time {TS} inclusive"),
    (RecoveryTarget("time", TS, False), f"time {TS} exclusive"),
    (RecoveryTarget("xid", "731"), "xid 731 inclusive"),
    (RecoveryTarget("xid", "731", False), "xid 731 exclusive"),
    (RecoveryTarget("lsn", "0/5159658"), "lsn 0/5159658 inclusive"),
    (RecoveryTarget("lsn", "0/5159658", False), "lsn 0/5159658 exclusive"),
    (RecoveryTarget("name", "drill-abc"), "name drill-abc"),
    (RecoveryTarget("name", "drill-abc", False), "name drill-abc"),
])
def test_describe(target, text):
    assert target.describe() == text


# -- stop_pattern against PostgreSQL 15 log lines ----------------------------------------------

def test_immediate_stop_line():
    target = RecoveryTarget("immediate")
    assert matches(target, LOG + "recovery stopping after reaching consistency")
    assert not matches(target, LOG + f"recovery stopping after commit of transaction 731, time {TS}")


def test_xid_inclusive_stop_line():
    target = RecoveryTarget("xid", "731")
    assert matches(target, LOG + f"recovery stopping after commit of transaction 731, time {TS}")
    assert not matches(target, LOG + f"recovery stopping before commit of transaction 731, time {TS}")
    assert not matches(target, LOG + f"recovery stopping after commit of transaction 732, time {TS}")
    assert not matches(target, LOG + f"recovery stopping after commit of transaction 7310, time {TS}")
    assert not matches(target, LOG + f"recovery stopping after commit of transaction 73, time {TS}")


def test_xid_exclusive_stop_line():
    target = RecoveryTarget("xid", "731", inclusive=False)
    assert matches(target, LOG + f"recovery stopping before commit of transaction 731, time {TS}")
    assert not matches(target, LOG + f"recovery stopping after commit of transaction 731, time {TS}")
    assert not matches(target, LOG + f"recovery stopping before commit of transaction 1731, time {TS}")


def test_time_inclusive_with_commit_xid_stops_before_the_next_commit():
    target = RecoveryTarget("time", TS, commit_xid="731")
    # The target commit itself must be replayed: a stop before it is a wrong stop.
    assert not matches(target, LOG + f"recovery stopping before commit of transaction 731, time {TS}")
    assert matches(target, LOG + "recovery stopping before commit of transaction 732, "
                                 "time 2026-11-26 11:45:37.61002+00")
    assert matches(target, LOG + "recovery stopping before abort of transaction 733, "
                                 "time 2026-11-26 11:45:38.1+00")
    assert matches(target, LOG + "recovery stopping before commit of transaction 7310, "
                                 "time 2026-11-26 11:45:38.1+00")
    assert not matches(target, LOG + f"recovery stopping after commit of transaction 732, time {TS}")
    assert not matches(target, LOG + "recovery stopping after reaching consistency")


def test_time_inclusive_without_commit_xid_accepts_any_stop_before_a_commit_or_abort():
    target = RecoveryTarget("time", TS)
    assert matches(target, LOG + f"recovery stopping before commit of transaction 731, time {TS}")
    assert matches(target, LOG + f"recovery stopping before abort of transaction 12, time {TS}")
    assert not matches(target, LOG + f"recovery stopping after commit of transaction 731, time {TS}")


def test_time_exclusive_with_commit_xid_stops_before_that_commit():
    target = RecoveryTarget("time", TS, inclusive=False, commit_xid="731")
    assert matches(target, LOG + f"recovery stopping before commit of transaction 731, time {TS}")
    assert not matches(target, LOG + f"recovery stopping before commit of transaction 732, time {TS}")
    assert not matches(target, LOG + f"recovery stopping before commit of transaction 7310, time {TS}")
    assert not matches(target, LOG + f"recovery stopping after commit of transaction 731, time {TS}")


def test_time_exclusive_without_commit_xid():
    target = RecoveryTarget("time", TS, inclusive=False)
    assert matches(target, LOG + f"recovery stopping before commit of transaction 99, time {TS}")
    assert not matches(target, LOG + f"recovery stopping after commit of transaction 99, time {TS}")


def test_lsn_inclusive_stop_line():
    target = RecoveryTarget("lsn", "0/5159658")
    assert matches(target, LOG + 'recovery stopping after WAL location (LSN) "0/5159658"')
    assert not matches(target, LOG + 'recovery stopping before WAL location (LSN) "0/5159658"')
    assert not matches(target, LOG + 'recovery stopping after WAL location (LSN) "0/51596580"')
    assert not matches(target, LOG + 'recovery stopping after WAL location (LSN) "0/5159659"')


def test_lsn_exclusive_stop_line():
    target = RecoveryTarget("lsn", "0/5159658", inclusive=False)
    assert matches(target, LOG + 'recovery stopping before WAL location (LSN) "0/5159658"')
    assert not matches(target, LOG + 'recovery stopping after WAL location (LSN) "0/5159658"')


def test_restore_point_stop_line():
    target = RecoveryTarget("name", "drill-abc")
    assert matches(target, LOG + f'recovery stopping at restore point "drill-abc", time {TS}')
    assert not matches(target, LOG + f'recovery stopping at restore point "drill-abcd", time {TS}')
    assert not matches(target, LOG + f'recovery stopping at restore point "other", time {TS}')


def test_restore_point_name_is_escaped():
    target = RecoveryTarget("name", "a.b+c")
    assert matches(target, LOG + f'recovery stopping at restore point "a.b+c", time {TS}')
    assert not matches(target, LOG + f'recovery stopping at restore point "aXbbc", time {TS}')
