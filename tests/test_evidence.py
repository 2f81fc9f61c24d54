"""Evidence rendered from typed records: JUnit property names of release 0.1.0, JSON, HTML."""

import json
from dataclasses import fields
from pathlib import Path

import pytest

from harness.evidence.files import redacted, utc_stamp
from harness.evidence.properties import drill_properties, restore_properties
from harness.evidence.records import CheckOutcome, DrillRecord, RestoreRecord, RunRecord
from harness.evidence.report_html import render_html, write_html
from harness.evidence.report_json import write_json

RECORDED = json.loads((Path(__file__).parent / "data" / "junit-properties-0.1.0.json").read_text())["cases"]
CHECKS = ["backup_metadata", "verify_backup", "wal_continuity", "target_accepted", "target_reached",
          "timeline", "amcheck", "fingerprint"]
FULL, INCR1, INCR2 = "20261126T114500", "20261126T115000", "20261126T115500"
SECRET = "s3cr3t-Pa55word_x"


def restore(backup_id=FULL, kind="immediate", value="immediate", *, checks=CHECKS, combined=(), rpo=1.5,
            failed="", timeline=1) -> RestoreRecord:
    record = RestoreRecord(backup_id, "2026-11-26 11:45:37+00", kind, value, kind != "time",
                           stop_line="LOG:  recovery stopping after commit of transaction 812",
                           timeline=timeline, combined_backups=combined, copy_seconds=2.25, start_seconds=0.5,
                           reach_seconds=1.0, rpo_seconds=rpo, expected_fingerprint="books 300 rows 9f3a",
                           actual_fingerprint="books 300 rows 9f3a")
    for name in checks:
        if name == failed:
            record.checks.append(CheckOutcome(name, False, "restored 290 rows, expected 300"))
        else:
            record.passed(name, "checksum 9f3a" if name == "fingerprint" else "")
    return record


def restore_part(recorded: list[str]) -> tuple[list[str], list[str]]:
    """The recorded names split into the drill's own facts and its restores' properties."""
    start = next(i for i, name in enumerate(recorded) if name.endswith("backup_id"))
    return recorded[:start], recorded[start:]


def names(pairs):
    return [name for name, _ in pairs]


# -- JUnit properties -----------------------------------------------------------------------------

def test_one_restore_has_the_recorded_unprefixed_names():
    facts, expected = restore_part(RECORDED["test_full_backup_restores_to_immediate"])
    assert facts == ["postgresql_version", "data_seed"]
    assert names(restore_properties([restore()])) == expected


def test_three_restores_have_the_recorded_numbered_names():
    _, expected = restore_part(RECORDED["test_each_backup_restores_to_its_own_target"])
    records = [restore(FULL), restore(INCR1, "xid", "812"), restore(INCR2, "latest", "latest")]
    assert names(restore_properties(records)) == expected


def test_incremental_restore_has_the_recorded_chain_check():
    facts, expected = restore_part(RECORDED["test_pitr_inside_each_link_restores_exact_state[in-incremental-1]"])
    checks = CHECKS[:2] + ["backup_chain"] + CHECKS[2:]
    record = restore(INCR1, "time", "2026-11-26 11:52:00+00", checks=checks, combined=(FULL, INCR1))
    assert facts == ["postgresql_version"]
    assert names(restore_properties([record])) == expected


def test_property_values_are_spelled_as_release_0_1_0():
    record = restore(INCR1, "time", "2026-11-26 11:52:00+00", combined=(FULL, INCR1), failed="fingerprint")
    values = dict(restore_properties([record]))
    assert values["target_inclusive"] == "false"
    assert values["recovery_stop"] == record.stop_line
    assert values["timeline"] == "1"
    assert values["backups_combined"] == f"{FULL} <- {INCR1}"
    assert values["recovery_seconds"] == "3.750"
    assert values["rpo_seconds"] == "1.500"
    assert values["check_verify_backup"] == "passed"
    assert values["check_fingerprint"] == "FAILED: restored 290 rows, expected 300"


def test_a_restore_that_stopped_early_leaves_blank_values():
    record = RestoreRecord(FULL, "", "immediate", "immediate", True)
    record.failed("backup_metadata", type("Error", (), {"cause": "backup.info is missing"})())
    values = dict(restore_properties([record]))
    assert values["timeline"] == values["rpo_seconds"] == values["backups_combined"] == ""
    assert values["target_inclusive"] == "true"
    assert values["check_backup_metadata"] == "FAILED: backup.info is missing"


# -- one run, as the JSON and HTML show it --------------------------------------------------------

@pytest.fixture
def run() -> RunRecord:
    drills = [
        DrillRecord("scenarios/test_full.py::test_full_backup_restores_to_immediate", "passed", 12.5,
                    restores=[restore()], facts={"postgresql_version": "18.1", "data_seed": "42"}),
        DrillRecord("scenarios/test_pitr.py::test_each_backup_restores_to_its_own_target", "failed", 30.0,
                    reason=f"<script>alert('x')</script> password={SECRET}",
                    restores=[restore(FULL), restore(INCR1, "xid", "812", failed="fingerprint"),
                              restore(INCR2, "latest", "latest", rpo=None, timeline=None)],
                    facts={"postgresql_version": "18.1", "data_seed": "7", "kept_evidence": "reports/kept/x"}),
        DrillRecord("scenarios/test_incremental_chain.py::test_pitr_inside_each_link_restores_exact_state"
                    "[in-incremental-1-with-a-rather-long-parameter]", "passed", 9.0,
                    restores=[restore(INCR1, "time", "2026-11-26 11:52:00+00", combined=(FULL, INCR1))]),
        DrillRecord("scenarios/test_pitr.py::test_needs_postgresql_17", "skipped", 0.0, reason="needs 17+"),
    ]
    return RunRecord({"harness_version": "0.2.0", "stack": "local", "postgresql": "18.1", "barman": "3.19.1",
                      "host": "ci-1", "run_started_utc": "2026-11-26T11:40:00+00:00"}, drills,
                     ["reports/kept/x"])


def test_html_escapes_a_drill_reason(run):
    page = render_html(run)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page


def test_html_has_one_row_per_drill_and_a_bar_per_recovered_drill(run):
    page = render_html(run)
    assert page.count("<tr class=") == len(run.drills)
    assert page.count("<rect ") == 3  # the skipped drill restored nothing
    assert 'id="verdict"' in page and "NOT VERIFIED: 2/4 drills passed, 1 failed" in page
    assert "<td>xid 812</td>" not in page  # the target column shows the drill's first restore
    assert "<td>immediate</td>" in page and "<td>time 2026-11-26 11:52:00+00</td>" in page
    assert "<td class='num'>11.25</td>" in page  # RTO: three restores of 3.75 s
    assert "test_pitr_inside_each_link_restores_exact_state[in-incremental-1-with-a-rather-long-parameter]" \
        not in page.split("<svg", 1)[1]  # chart labels are shortened
    assert "<li><code>reports/kept/x</code></li>" in page


def test_html_without_recoveries_says_so(run):
    run.drills = run.drills[-1:]
    page = render_html(run)
    assert "No drill recovered a backup." in page and "<svg" not in page
    assert page.count("<tr class=") == 1


def test_html_written_is_redacted(run, tmp_path):
    page = write_html(run, tmp_path / "out" / f"drill-{utc_stamp()}.html", [SECRET]).read_text(encoding="utf-8")
    assert SECRET not in page
    assert "password=********</td></tr>" in page  # the mask stops at the value, the row stays whole


def test_json_round_trip_keeps_flat_properties_and_typed_restores(run, tmp_path):
    path = write_json(run, tmp_path / "drill.json", [SECRET])
    text = path.read_text()
    assert SECRET not in text
    data = json.loads(text)  # a masked password setting does not swallow the closing quote
    assert data["drills"][1]["reason"].endswith("password=********")
    assert data["run"] == run.facts and data["kept"] == run.kept
    assert data["summary"] == run.summary_line() and data["counts"] == run.counts()
    assert [d["nodeid"] for d in data["drills"]] == [d.nodeid for d in run.drills]
    for written, drill in zip(data["drills"], run.drills):
        assert (written["outcome"], written["seconds"]) == (drill.outcome, drill.seconds)
        assert list(written["properties"].items()) == list(drill_properties(drill).items())
        for typed, record in zip(written["restores"], drill.restores, strict=True):
            assert typed["recovery_seconds"] == record.recovery_seconds
            rebuilt = RestoreRecord(**{f.name: typed[f.name] for f in fields(RestoreRecord)})
            rebuilt.checks = [CheckOutcome(**check) for check in typed["checks"]]
            rebuilt.combined_backups = tuple(typed["combined_backups"])
            assert rebuilt == redacted(record, [SECRET]) == record
    failed = data["drills"][1]
    assert failed["properties"]["restore2_check_fingerprint"].startswith("FAILED")
    assert failed["properties"]["kept_evidence"] == "reports/kept/x"
    assert failed["restores"][2]["timeline"] is None and failed["properties"]["restore3_timeline"] == ""


def test_utc_stamp_names_files_by_utc_second():
    import datetime as dt
    moment = dt.datetime(2026, 11, 26, 11, 40, 5, tzinfo=dt.timezone.utc)
    assert utc_stamp(moment) == "20261126T114005Z"
