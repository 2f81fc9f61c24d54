"""`pytest -m pitr -n 2` (pytest-xdist: a stack per worker) against `-n 0`, in one run of this machine.

    .venv/bin/python bench/parallel.py [--workers 2] [--repeats 1] [--dist MODE] [--rows 10000]

Runs the PITR drills the way a user does, each run with its own reports and work directories, the
sides alternating (serial, parallel, parallel, serial, ...) so that a change in the machine's load
moves both; compares median wall times. Goal: parallel / serial <= 0.7. Prints a table and writes
reports/bench-parallel.json (every sample, the load average at start and end). Exit code 0 when
every run verified its drills (goal met or not: this is a report), 2 when one did not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL = 0.7


def one_run(workers: int, dist: str | None, rows: int) -> dict:
    """One `pytest -m pitr` run with its own reports dir; wall seconds and what its evidence says."""
    scratch = Path(tempfile.mkdtemp(prefix="bench-parallel-"))
    argv = [str(ROOT / ".venv" / "bin" / "pytest"), "-m", "pitr", "-p", "no:cacheprovider", "-q",
            "--junitxml", str(scratch / "junit.xml"), f"--reports-dir={scratch}"]  # with =: README, Options
    if workers:
        argv += ["-p", "xdist", "-n", str(workers)] + (["--dist", dist] if dist else [])
    try:
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, env=dict(os.environ, DRILL_ROWS=str(rows)), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800)
        wall = time.perf_counter() - started
        evidence = sorted(scratch.glob("drill-*.json"))
        document = json.loads(evidence[-1].read_text()) if evidence else {}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"workers": workers, "wall_seconds": round(wall, 2), "returncode": done.returncode,
            "summary": document.get("summary", "no evidence written"), "drills": len(document.get("drills", [])),
            "output_tail": done.stdout.strip().splitlines()[-3:]}


def render(report: dict) -> str:
    serial, parallel = report["serial"], report["parallel"]
    load = f"load {report['load_average_start'][0]:.2f} -> {report['load_average_end'][0]:.2f}"
    dist = f"--dist {report['dist']}" if report["dist"] else "the plugin's grouping: a test file per worker"
    lines = [f"pytest -m pitr: -n 0 against -n {report['workers']} ({dist}), {report['rows']:,} rows, "
             f"{os.cpu_count()} CPUs, {load}",
             f"{'':<22}{'-n 0':>12}{'-n ' + str(report['workers']):>12}",
             f"{'wall seconds (median)':<22}{serial['median']:>12.1f}{parallel['median']:>12.1f}",
             f"{'samples':<22}{', '.join(f'{s:.1f}' for s in serial['samples']):>12}"
             f"{', '.join(f'{s:.1f}' for s in parallel['samples']):>12}",
             f"{'drills per run':<22}{serial['drills']:>12}{parallel['drills']:>12}",
             f"ratio -n {report['workers']} / -n 0: {report['ratio']:.2f}x (goal <= {GOAL}x: "
             f"{'met' if report['ratio'] <= GOAL else 'NOT met'})"]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench/parallel.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers of the parallel side (default 2)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side, alternating (default 1)")
    parser.add_argument("--dist", default=None, help="pytest-xdist --dist mode of the parallel side (default: none "
                        "given, so the plugin keeps each test file on one worker)")
    parser.add_argument("--rows", type=int, default=10_000, help="DRILL_ROWS of every run (default 10000)")
    parser.add_argument("--report", default=str(ROOT / "reports" / "bench-parallel.json"))
    args = parser.parse_args(argv)
    report = {"workers": args.workers, "dist": args.dist, "rows": args.rows, "load_average_start": os.getloadavg()}
    runs: list[dict] = []
    for index in range(args.repeats):
        order = (0, args.workers) if index % 2 == 0 else (args.workers, 0)
        for workers in order:
            print(f"bench: pytest -m pitr -n {workers} ({index + 1}/{args.repeats})", file=sys.stderr)
            runs.append(one_run(workers, args.dist, args.rows))
    report["load_average_end"] = os.getloadavg()
    report["runs"] = runs
    for side, workers in (("serial", 0), ("parallel", args.workers)):
        mine = [run for run in runs if run["workers"] == workers]
        samples = [run["wall_seconds"] for run in mine]
        report[side] = {"samples": samples, "median": statistics.median(samples), "drills": mine[0]["drills"]}
    report["ratio"] = report["parallel"]["median"] / report["serial"]["median"]
    path = Path(args.report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(render(report))
    print(f"samples: {path}")
    failed = [run for run in runs if run["returncode"] != 0 or not run["summary"].startswith("VERIFIED")]
    for run in failed:
        print(f"bench: -n {run['workers']} did not verify: {run['summary']} (exit {run['returncode']}): "
              f"{run['output_tail']}", file=sys.stderr)
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
