"""Compose stack figures: image build, stack up to `barman check` all OK, one PITR drill vs local.

    .venv/bin/python bench/compose.py [--repeats 3]

Needs a Docker engine (docker/engine.sh). The drill is the same harness drill on both stacks,
alternated, medians compared, so the ratio is taken in one run. Prints a table and writes
reports/bench-compose.json. Exit 0 when every measurement ran, 2 otherwise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

from harness import DrillConfig, HarnessError, make_stack

from measure import harness_drill

ROOT = Path(__file__).resolve().parent.parent

GOALS = {"up_to_check_ok_seconds": ("<=", 45), "compose_vs_local_drill": ("<=", 2.0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    figures: dict = {}
    try:
        local = make_stack(DrillConfig()).start()
        try:
            # The compose stack's own lifecycle (engine, images, up, down) as the plugin uses it;
            # images are built first so the up figure is measured on its own.
            from harness.stacks.compose_project import build_images, ensure_engine
            ensure_engine()
            started = time.perf_counter()
            build_images()
            figures["image_build_seconds"] = time.perf_counter() - started
            started = time.perf_counter()
            with make_stack(DrillConfig(stack="compose", compose_project=f"pgbvbench{uuid.uuid4().hex[:6]}")) as stack:
                figures["up_to_check_ok_seconds"] = time.perf_counter() - started
                timings = {"local": [], "compose": []}
                books = {"local": local.source.books(1), "compose": stack.source.books(1)}
                for name in books:
                    books[name].insert(10_000)
                for round_ in range(args.repeats):
                    for name, running in (("local", local), ("compose", stack)):
                        timings[name].append(harness_drill(running, books[name], f"bench-{round_}")["total"])
                figures["local_drill_seconds"] = statistics.median(timings["local"])
                figures["compose_drill_seconds"] = statistics.median(timings["compose"])
                figures["compose_vs_local_drill"] = figures["compose_drill_seconds"] / figures["local_drill_seconds"]
        finally:
            local.close()
    except HarnessError as exc:
        print(f"bench/compose.py: {exc.render()}", file=sys.stderr)
        return 2
    print(f"{'figure':<28}{'value':>10}  goal")
    for name, value in figures.items():
        goal = GOALS.get(name)
        mark = ""
        if goal:
            ok = value <= goal[1] if goal[0] == "<=" else value >= goal[1]
            mark = f"{goal[0]} {goal[1]}  {'met' if ok else 'MISSED'}"
        print(f"{name:<28}{value:>10.2f}  {mark}")
    out = ROOT / "reports" / "bench-compose.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
