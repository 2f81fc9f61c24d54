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

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.measure import harness_drill  # noqa: E402
from harness.stacks import compose  # noqa: E402
from harness.errors import HarnessError  # noqa: E402
from harness.stacks.local import LocalStack, StackOptions  # noqa: E402

GOALS = {"up_to_check_ok_seconds": ("<=", 45), "compose_vs_local_drill": ("<=", 2.0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    figures: dict = {}
    try:
        compose.ensure_engine()
        started = time.perf_counter()
        base_image = compose.build_images()
        figures["image_build_seconds"] = time.perf_counter() - started
        plan = compose.plan(f"pgbvbench{uuid.uuid4().hex[:6]}", base_image)
        local = LocalStack(StackOptions()).start()
        try:
            started = time.perf_counter()
            plan.run("up", "-d", "postgres", "barman", timeout=300)
            stack = compose.ComposeStack(plan).attach()
            figures["up_to_check_ok_seconds"] = time.perf_counter() - started
            try:
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
                stack.close()
        finally:
            plan.run("--profile", "scratch", "down", "-v", "--remove-orphans", timeout=300, check=False)
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
