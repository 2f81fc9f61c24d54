"""pgbv-merge: fold the reports of a sharded run (``--shard K/N`` on N machines) into one.

    pgbv-merge OUT_DIR SHARD_DIR [SHARD_DIR ...] [--shard-run KEY] [--max-spread 6h] [--metrics-file PATH]

Each SHARD_DIR is one shard's reports directory (its ``--reports-dir``): its newest ``drill-*.json``
and its JUnit file (``junit.xml``, else its newest ``*.xml``) are read. OUT_DIR receives one
``junit.xml``, one ``drill-<stamp>-<run id>.json``, one ``.html`` of that name and the metrics file
(``--metrics-file``, default OUT_DIR/pgbv.prom). A shard missing, unreadable or given twice, shards
that collected different plans or are of different runs (their ``--shard-run`` keys differ, or are not
``--shard-run KEY`` given here; without keys, their starts lie more than ``--max-spread`` apart), a
shard whose report does not hold the drills it was dealt, a drill reported twice: each is said, and
each makes the merged verdict "no verdict". Exit codes as pgbv-nightly: 0 every drill verified, 1 a
drill failed verification, 2 no verdict (a problem above, a drill that could not run, nothing run, bad
input).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.config import add_arguments, from_arguments
from harness.errors import HarnessError
from harness.evidence.files import evidence_stem
from harness.evidence.junit_merge import (
    JUnitUnreadable,
    failed_cases,
    fold_junit,
    junit_address,
    read_suites,
    repeated_cases,
)
from harness.evidence.merge import Merged, Part, merge_runs
from harness.evidence.read_json import EvidenceUnreadable, read_run
from harness.evidence.report_html import write_html
from harness.evidence.report_json import write_json


def newest(directory: Path, pattern: str) -> Path | None:
    """drill-<UTC stamp>-<run id>.json: the stamp orders by time (to the second, whatever copying did to the
    files' times); within one second, the file written last."""
    return max(directory.glob(pattern), key=lambda path: (path.name.split("-")[1][:16], path.stat().st_mtime),
               default=None)


def read_shard(directory: Path):
    """(Part, the JUnit suites or None, what could not be read)."""
    if not directory.is_dir():
        return Part(str(directory), None, "not a directory" if directory.exists() else "no such directory"), None, None
    json_path = newest(directory, "drill-*.json")
    junit_path = directory / "junit.xml" if (directory / "junit.xml").is_file() else \
        max(directory.glob("*.xml"), key=lambda p: p.stat().st_mtime, default=None)
    part = Part(str(directory), None, f"no drill-*.json in {directory}")
    if json_path is not None:
        try:
            part = Part(str(directory), read_run(json_path))
        except EvidenceUnreadable as exc:
            part = Part(str(directory), None, exc.cause)
    if junit_path is None:
        return part, None, f"no JUnit file (*.xml) in {directory}"
    try:
        return part, read_suites(junit_path), None
    except JUnitUnreadable as exc:
        return part, None, exc.cause


def merge_directories(directories: list[Path], run_key: str | None = None,
                      max_spread: float | None = None) -> tuple[Merged, list]:
    parts, shards, junit_problems = [], [], []
    for directory in directories:
        part, suites, junit_problem = read_shard(directory)
        parts.append(part)
        if suites is not None:
            shards.append((part.source, suites))
        elif part.record is not None:  # the JSON stands; the JUnit reader would miss this shard's tests
            junit_problems.append((part.source, f"its JUnit is missing from the merge: {junit_problem}"))
    merged = merge_runs(parts, extra_problems=junit_problems, run_key=run_key, max_spread=max_spread)
    drill_addresses = {junit_address(drill.nodeid) for drill in merged.record.drills}
    for test, where in repeated_cases(shards):
        classname, _, name = test.partition("::")
        if (classname, name) not in drill_addresses:  # a repeated drill is already a problem of the merge
            merged.add_problem(test, f"reported {where}: the shards did not share the work as planned")
    merged.other_failures = [f"{classname}::{name}" for classname, name in failed_cases(shards)
                             if (classname, name) not in drill_addresses]
    return merged, shards


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pgbv-merge", description="Fold the reports of --shard K/N runs into one "
                                     "JUnit, JSON, HTML and metrics file. Exit 0 verified, 1 failed, 2 no verdict.")
    parser.add_argument("out_dir", type=Path, help="where the merged reports go (not one of the shard dirs)")
    parser.add_argument("shard_dirs", type=Path, nargs="+", help="each shard's reports directory (--reports-dir)")
    add_arguments(parser, names=("metrics_file", "shard_run", "max_spread"))
    args = parser.parse_args(argv)   # bad usage: argparse says so and exits 2
    try:
        config = from_arguments(args)
        out = args.out_dir
        if any(out.resolve() == shard.resolve() for shard in args.shard_dirs):
            raise HarnessError(f"{out} is also a shard directory: the merged report would be read as that "
                               "shard's next time.", "Give another OUT_DIR.")
        if out.exists() and not out.is_dir():
            raise HarnessError(f"{out} is not a directory: the merged report cannot be written there.",
                               "Give a directory (it is made if it does not exist) as OUT_DIR.")
        merged, shards = merge_directories(args.shard_dirs, config.shard_run, config.max_spread)
        record = merged.record
        stem = evidence_stem(record.facts["run_id"])
        out.mkdir(parents=True, exist_ok=True)
        fold_junit(shards, merged.problem_cases).write(str(out / "junit.xml"), pretty=True)
        written = [out / "junit.xml", write_json(record, out / f"{stem}.json", []),
                   write_html(record, out / f"{stem}.html", [])]
    except HarnessError as exc:
        print(f"pgbv-merge: NO VERDICT: {exc.render()}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"pgbv-merge: NO VERDICT: the merged report could not be written to {args.out_dir}: {exc}",
              file=sys.stderr)
        return 2
    written += write_merged_metrics(merged, config.metrics_file or out / "pgbv.prom")
    for note in merged.notes:
        print(f"pgbv-merge: note: {note}")
    for problem in merged.problems:
        print(f"pgbv-merge: problem: {problem}")
    for test in merged.other_failures:
        print(f"pgbv-merge: failed (not a drill): {test}")
    for path in written:
        print(f"pgbv-merge: wrote {path}")
    code = merged.exit_code
    verdict = {0: "OK", 1: "FAILED VERIFICATION", 2: "NO VERDICT"}[code]
    print(f"pgbv-merge: {verdict}: {record.summary_line()}; {len(args.shard_dirs)} report(s) merged")
    return code


def write_merged_metrics(merged: Merged, path: Path) -> list[Path]:
    from harness.evidence.metrics import MetricsNotWritten, write_metrics

    try:
        for note in write_metrics(merged.record, path, ended=merged.ended):
            print(f"pgbv-merge: metrics: {note}")
    except MetricsNotWritten as exc:
        print(f"pgbv-merge: metrics NOT WRITTEN (the verdict stands): {exc.render()}")
        return []
    except Exception as exc:  # a bug of the harness: said, and the merged verdict and reports stand
        print(f"pgbv-merge: metrics NOT WRITTEN (the verdict stands): the harness itself failed "
              f"({type(exc).__name__}: {exc}); this is a bug of pgbv, please report it with this line")
        return []
    return [path]


if __name__ == "__main__":
    sys.exit(main())
