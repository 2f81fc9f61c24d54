"""Benchmarks: what the harness costs against the raw tools, and how a drill grows with the data.

    .venv/bin/python bench/run.py [--sizes 10k,100k,1M,5M] [--quick]

One run on this machine measures, side by side: the data writer vs the seed-style writer, the
fingerprint vs SELECT count(*), the WAL integrity check vs pg_waldump alone and `cat`, one PITR
drill through the harness vs the same steps as bare commands, drills at growing sizes vs `cp -a`
of their backup, and `pytest -k pitr` end to end.
Every figure is a ratio of two measurements of this run, so a busy machine moves both sides.
Prints a table, writes reports/bench.json and a growth chart under reports/. Exit code 0 when
every measurement ran (goals missed or not: this is a report, not a test), 2 when one failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import integrity

from harness import DrillConfig, HarnessError, make_stack
from harness.process.progress import Progress
from harness.stacks.workdir import NEED_PER_ROW

import measure
from bare import BareDrill
from chart import write_chart

ROOT = Path(__file__).resolve().parent.parent  # reports/ and the scenarios of this checkout

SECTIONS = ("generation", "fingerprint", "integrity", "overhead", "growth", "pytest")
FULL = {"generation_rows": 100_000, "fingerprint_rows": 1_000_000, "integrity_wal_bytes": 2 ** 30,
        "sizes": "10k,100k,1M,5M", "repeats": 3}
QUICK = {"generation_rows": 10_000, "fingerprint_rows": 100_000, "integrity_wal_bytes": 100 * 2 ** 20,
         "sizes": "10k", "repeats": 1}
DRILL_ROWS = 10_000  # the PITR scenarios' default (--rows), used for the overhead drills and pytest

GOALS = {  # figure -> (comparison, bound)
    "generation_rows_per_s": (">=", 100_000),
    "generation_vs_seed": (">=", 5),
    "fingerprint_vs_count": ("<=", 2),
    "wal_integrity_mb_per_s": (">=", 200),
    "drill_overhead": ("<=", 1.3),
    "recovery_vs_cp": (">=", 0.5),
    "pytest_pitr_seconds": ("<", 60),
}


def parse_rows(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    number = float(text[:-1]) if scale > 1 else float(text)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"a size must be positive: {text}")
    return int(number * scale)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (10k rows generated, 100k fingerprinted, ~100 MB of WAL read by the "
                             "integrity check, one drill per side for the overhead, growth at 10k)")
    parser.add_argument("--sizes", help=f"growth drill sizes (default {FULL['sizes']}; quick: {QUICK['sizes']})")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"which measurements to run (default: all of {','.join(SECTIONS)})")
    parser.add_argument("--repeats", type=int,
                        help="drills per side for the overhead figure, interleaved; medians are compared "
                             "(default 3; quick: 1)")
    parser.add_argument("--report", default=str(ROOT / "reports" / "bench.json"), help="where the JSON goes")
    parser.add_argument("--workdir", default=None, help="where the stack's run directory goes (default: /dev/shm when roomy, else the temp dir)")
    parser.add_argument("--pg-bindir", default=os.environ.get("DRILL_PG_BINDIR"), help="PostgreSQL bin dir")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    try:
        args.size_list = sorted({parse_rows(size) for size in (args.sizes or preset["sizes"]).split(",") if size})
    except (ValueError, argparse.ArgumentTypeError) as exc:
        parser.error(f"--sizes: {exc}")
    if args.repeats is None:
        args.repeats = preset["repeats"]
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    args.section_list = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = set(args.section_list) - set(SECTIONS)
    if unknown:
        parser.error(f"--sections: unknown {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    args.generation_rows = preset["generation_rows"]
    args.fingerprint_rows = preset["fingerprint_rows"]
    args.integrity_wal_bytes = preset["integrity_wal_bytes"]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    progress = Progress(sys.stderr.isatty())

    def say(message: str) -> None:
        if progress.enabled:
            print(f"[bench] {message}", file=sys.stderr, flush=True)

    signal.signal(signal.SIGTERM, _interrupt)  # CI stops a job with SIGTERM: tear down as on Ctrl-C
    report = {"started_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "mode": "quick" if args.quick else "full", "machine": _machine(), "results": {}}
    results = report["results"]
    started = time.perf_counter()
    failure = ""
    try:
        needs_stack = [name for name in args.section_list if name != "pytest"]
        if needs_stack:
            _with_stack(args, progress, say, results, report)
        if "pytest" in args.section_list:
            results["pytest"] = measure.pytest_pitr(DRILL_ROWS, say)
    except KeyboardInterrupt:
        print("bench: interrupted; everything it started is stopped.", file=sys.stderr)
        return 130
    except (HarnessError, RuntimeError, subprocess.SubprocessError, OSError) as exc:
        failure = exc.render() if isinstance(exc, HarnessError) else f"{type(exc).__name__}: {exc}"
    report["seconds"] = time.perf_counter() - started
    report["machine"]["load_average_end"] = os.getloadavg()
    report["figures"] = figures(results)
    if failure:
        report["failure"] = failure
    path = Path(args.report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(render(report, path))
    if failure:
        print(f"\nbench: a measurement failed, so the figures above are incomplete:\n{failure}", file=sys.stderr)
        return 2
    return 0


def _with_stack(args, progress, say, results: dict, report: dict) -> None:
    say("starting the local stack (source server + Barman streaming)")
    rows = max(args.size_list) + args.fingerprint_rows + args.generation_rows  # the most the run holds at once
    if "integrity" in args.section_list:  # its WAL, archived and in the source's pg_wal, counted as rows
        rows += 3 * args.integrity_wal_bytes // NEED_PER_ROW
    stack = make_stack(DrillConfig(pg_bindir=args.pg_bindir, workdir=args.workdir, rows=rows,
                                   progress=progress.enabled))
    bare = None
    try:
        stack.start()
        report["machine"].update(stack.versions())
        if "generation" in args.section_list:
            results["generation"] = measure.generation(stack, args.generation_rows, say)
        if "fingerprint" in args.section_list:
            results["fingerprint"] = measure.fingerprint_cost(stack, args.fingerprint_rows, say)
        if "integrity" in args.section_list:
            results["integrity"] = integrity.throughput(stack, args.integrity_wal_bytes, say,
                                                        repeats=args.repeats)
        books = stack.source.books(seed=20261126)
        bare = BareDrill(stack)
        if "overhead" in args.section_list:
            books.insert(DRILL_ROWS)
            results["overhead"] = measure.drill_overhead(stack, books, bare, say, repeats=args.repeats)
        if "growth" in args.section_list:
            results["growth"] = []
            for rows in args.size_list:
                results["growth"].append(measure.growth_drill(stack, books, bare, rows, say))
            report["chart"] = str(write_chart(results["growth"], ROOT / "reports"))
    finally:
        if bare is not None:
            bare.stop_all()
        stack.close()


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _machine() -> dict:
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "commit": commit, "load_average_start": os.getloadavg()}


# -- figures and the table ------------------------------------------------------------------------

def figures(results: dict) -> list[dict]:
    """The goal-bearing figures: name, value, goal, met."""
    found = []

    def add(name: str, label: str, value: float, unit: str, valid: bool = True):
        comparison, bound = GOALS[name]
        met = valid and {">=": value >= bound, "<=": value <= bound, "<": value < bound}[comparison]
        found.append({"name": name, "label": label, "value": value, "unit": unit,
                      "goal": f"{comparison} {bound:,}{unit}", "met": met})

    if "generation" in results:
        gen = results["generation"]
        add("generation_rows_per_s", "harness writer rows/s", gen["harness_rows_per_s"], "")
        add("generation_vs_seed", "harness writer / seed-style writer", gen["ratio"], "x")
    if "fingerprint" in results:
        add("fingerprint_vs_count", "fingerprint / count(*)", results["fingerprint"]["ratio"], "x")
    if "integrity" in results:
        add("wal_integrity_mb_per_s", "WAL integrity check MB/s", results["integrity"]["mb_per_s"]["harness"], " MB/s")
    if "overhead" in results:
        add("drill_overhead", "harness drill / bare drill", results["overhead"]["ratio"], "x")
    for item in results.get("growth", []):
        add("recovery_vs_cp", f"recovery throughput / cp -a at {item['rows']:,} rows", item["recovery_vs_cp"], "x")
    if "pytest" in results:
        # A run whose tests did not all pass says nothing about how long passing drills take.
        add("pytest_pitr_seconds", "pytest -k pitr wall", results["pytest"]["wall_seconds"], " s",
            valid=results["pytest"]["returncode"] == 0)
    return found


def render(report: dict, path: Path) -> str:
    results = report["results"]
    lines = []
    machine = report["machine"]
    load = machine.get("load_average_start", (0, 0, 0))[0]
    lines.append(f"bench ({report['mode']}): PostgreSQL {machine.get('postgresql', '?')}, "
                 f"{machine.get('barman', 'barman ?')}, {machine['cpus']} CPUs, load {load:.1f} at start, "
                 f"{report['seconds']:.0f} s")
    table = [("measurement", "value", "goal", "met")]
    goal = {item["label"]: item for item in report["figures"]}

    def row(label: str, value: str, key: str | None = None):
        item = goal.get(key or label)
        table.append((label, value, item["goal"] if item else "", ("yes" if item["met"] else "NO") if item else ""))

    if "generation" in results:
        gen = results["generation"]
        row(f"harness writer, {gen['rows']:,} rows (Books.insert, COPY)", f"{gen['harness_rows_per_s']:,.0f} rows/s",
            "harness writer rows/s")
        row("  + Faker pools, once per Books (seed)", f"{statistics.median(gen['harness_pool_seconds']):.2f} s")
        row("seed-style writer (Faker per row, 100/batch)", f"{gen['seed_style_rows_per_s']:,.0f} rows/s")
        row("  harness / seed-style", f"{gen['ratio']:.1f}x", "harness writer / seed-style writer")
    if "fingerprint" in results:
        fp = results["fingerprint"]
        med = fp["median_seconds"]
        row(f"fingerprint, {fp['rows']:,} rows (row hashes, summed)", f"{med['fingerprint']:.3f} s")
        row("count(*), same table, sequential scan", f"{med['count']:.3f} s")
        row("  fingerprint / count(*)", f"{fp['ratio']:.1f}x", "fingerprint / count(*)")
        row("  count(*) as planned (index-only scan)", f"{med['count_any_plan']:.3f} s = fingerprint / it "
            f"{fp['ratio_vs_count_any_plan']:.1f}x")
        row("  before: md5 of row text, bigint halves", f"{med['md5_fingerprint']:.3f} s = {fp['md5_ratio']:.1f}x"
            f" count; now {fp['speedup_vs_md5']:.1f}x faster")
        row("  before that: md5, numeric sums", f"{med['md5_numeric_fingerprint']:.3f} s = "
            f"{fp['md5_numeric_ratio']:.1f}x count")
        row("  floor of a text hash: row text alone", f"{med['row_text_only']:.3f} s = "
            f"{med['row_text_only'] / med['count']:.1f}x count")
    if "integrity" in results:
        wal = results["integrity"]
        med, rate, per_gb = wal["median_seconds"], wal["mb_per_s"], wal["seconds_per_gb"]
        row(f"WAL integrity check, {wal['segments']} segments, {wal['read_bytes'] / 1e6:,.0f} MB of WAL "
            f"({wal['begin_lsn']}..{wal['end_lsn']}), median of {wal['repeats']}",
            f"{med['harness']:.2f} s = {rate['harness']:,.0f} MB/s, {per_gb['harness']:.2f} s/GB",
            "WAL integrity check MB/s")
        row("  pg_waldump --quiet alone, same range, from the archive",
            f"{med['pg_waldump']:.2f} s = {rate['pg_waldump']:,.0f} MB/s; check / it {wal['harness_vs_pg_waldump']:.2f}x "
            f"(staging, size checks: {wal['harness_own_seconds']:+.2f} s)")
        row("  cat of the same segment files > /dev/null", f"{med['cat']:.2f} s = {rate['cat']:,.0f} MB/s")
    if "overhead" in results:
        over = results["overhead"]
        harness, bare = over["median"]["harness"], over["median"]["bare"]
        integrity_part = f" (WAL integrity {harness['wal_integrity']:.2f})" if harness.get("wal_integrity") is not None else ""
        row(f"drill via harness (median run of {over['repeats']}; checks include WAL integrity)",
            f"{harness['total']:.2f} s = backup {harness['backup']:.2f} + checks {harness['checks']:.2f}{integrity_part} + "
            f"recover {harness['recover']:.2f} + start {harness['start']:.2f} + reach {harness['reach']:.2f}")
        row(f"drill as bare commands (median run of {over['repeats']})",
            f"{bare['total']:.2f} s = backup {bare['backup']:.2f} + recover {bare['recover']:.2f} + "
            f"start {bare['start']:.2f} + reach {bare['reach']:.2f}")
        row("  harness / bare", f"{over['ratio']:.2f}x", "harness drill / bare drill")
        row("  restore steps alone (no backup), harness / bare", f"{over['restore_ratio']:.2f}x")
    if "pytest" in results:
        test = results["pytest"]
        verdict = "passed" if test["returncode"] == 0 else \
            f"rc {test['returncode']}: {test['failures']} failed, {test['errors']} errors"
        row(f"pytest -k pitr, {test['rows']:,} rows ({test['tests']} tests, {verdict})",
            f"{test['wall_seconds']:.1f} s", "pytest -k pitr wall")
        times = test.get("test_seconds", {})
        if times:
            row("  outside the tests (stack start, collection, teardown)",
                f"{test['wall_seconds'] - sum(times.values()):.1f} s")
            for name, seconds in list(times.items())[:3]:
                row(f"  {name}", f"{seconds:.1f} s")
    lines.append(_columns(table))

    if results.get("growth"):
        growth = [("rows", "backup MiB", "load s", "backup s", "checks s", "recovery s", "cp -a s",
                   "recovery/cp", "goal >= 0.5x", "bare recover/cp", "rsync/cp", "fingerprints s", "drill s")]
        for item in results["growth"]:
            met = goal.get(f"recovery throughput / cp -a at {item['rows']:,} rows")
            growth.append((f"{item['rows']:,}", f"{item['backup_bytes'] / 2**20:,.0f}", f"{item['load_seconds']:.1f}",
                           f"{item['backup_seconds']:.2f}", f"{item['checks_seconds']:.2f}",
                           f"{item['recovery_seconds']:.2f}", f"{item['cp_seconds']:.2f}",
                           f"{item['recovery_vs_cp']:.2f}x", "yes" if met and met["met"] else "NO",
                           f"{item['bare_barman_recover_vs_cp']:.2f}x",
                           f"{item['rsync_vs_cp']:.2f}x" if "rsync_vs_cp" in item else "",
                           f"{item['source_fingerprint_seconds']:.1f} + {item['verify_seconds']:.1f}",
                           f"{item['total_drill_seconds']:.1f}"))
        lines.append("\ngrowth (recovery = barman recover + start + reach target; checks = the harness's "
                     "pre-flight checks;\n bare recover/cp = `barman recover` alone of the same backup vs cp -a; rsync/cp = "
                     "`rsync -a` of it (the copy tool barman recover runs) vs cp -a;\n "
                     "fingerprints = source at the target + amcheck and\n fingerprint of the restore; drill = backup "
                     "to verified restore)")
        lines.append(_columns(growth))
        if report.get("chart"):
            lines.append(f"chart: {report['chart']}")
    lines.append(f"report: {path}")
    return "\n".join(lines)


def _columns(rows: list[tuple]) -> str:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    rendered = []
    for index, row in enumerate(rows):
        rendered.append("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            rendered.append("  ".join("-" * width for width in widths))
    return "\n".join(rendered)


if __name__ == "__main__":
    sys.exit(main())
