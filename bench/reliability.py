"""Reliability figures: consecutive clean PITR runs (no false reds) and fault detection (no misses).

    .venv/bin/python bench/reliability.py [--runs 20] [--what pitr,faults]

Each run is a fresh `pytest -m <marker>` process with its own stack. A PITR drill that fails on a
clean chain is a false red; a fault scenario that fails means its fault was not detected with the
expected diagnosis. Prints a table, writes reports/reliability.json; exit 0 when there were no
false reds and no misses, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one_run(marker: str) -> tuple[Counter, float, list[str]]:
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        junit = Path(tmp) / "junit.xml"
        started = time.perf_counter()
        # One-token options and an explicit rootdir: a bare path argument would move pytest's rootdir.
        subprocess.run([str(ROOT / ".venv/bin/pytest"), "-c", str(ROOT / "pytest.ini"), "--rootdir", str(ROOT),
                        "-p", "no:cacheprovider", "-q", "-m", marker, f"--junitxml={junit}",
                        f"--reports-dir={tmp}"], cwd=ROOT,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
        outcomes, red = Counter(), []
        if not junit.exists():
            return Counter({"red": 1}), seconds, ["(no verdict: no junit written)"]
        for case in ET.parse(junit).getroot().iter("testcase"):
            bad = case.find("failure") is not None or case.find("error") is not None
            outcomes["red" if bad else ("skipped" if case.find("skipped") is not None else "green")] += 1
            if bad:
                red.append(case.get("name"))
        return outcomes, seconds, red


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--what", default="pitr,faults")
    args = parser.parse_args()
    figures = {}
    for marker in args.what.split(","):
        totals, reds, seconds = Counter(), Counter(), []
        for index in range(1, args.runs + 1):
            outcomes, took, red = one_run(marker)
            totals.update(outcomes)
            reds.update(red)
            seconds.append(took)
            print(f"{marker} run {index}/{args.runs}: {dict(outcomes)} in {took:.0f} s"
                  + (f"; red: {', '.join(red)}" if red else ""), flush=True)
        figures[marker] = {"runs": args.runs, "drills": dict(totals), "red_drills": dict(reds),
                           "seconds_per_run": round(sum(seconds) / len(seconds), 1)}
    print(f"\n{'selection':<10}{'runs':>6}{'green':>8}{'red':>6}  meaning of red")
    for marker, data in figures.items():
        meaning = "false red (clean chain failed)" if marker == "pitr" else "fault not detected as expected"
        print(f"{marker:<10}{data['runs']:>6}{data['drills'].get('green', 0):>8}{data['drills'].get('red', 0):>6}  {meaning}")
    out = ROOT / "reports" / "reliability.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written: {out}")
    return 0 if all(not data["drills"].get("red") for data in figures.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
