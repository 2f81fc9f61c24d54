"""Benchmark of an incremental chain on the incremental drills' data (PostgreSQL 17+).

Prints the size of each link vs the full backup, and the restore seconds of the 3-link chain
(Barman combines it with pg_combinebackup) vs a full backup of the same data, both to the end
of the backup ("immediate"): `barman recover` + server start + consistency reached.

    .venv/bin/python bench/incremental.py [--rows 10000] [--repeat 3] [--pg-bindir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys

from harness import DrillConfig, HarnessError, RecoveryTarget, Scratch, make_stack
from harness.drill.incremental import build_chain, chain_shape
from harness.postgres import versions as pgversions


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10000, help="book rows loaded before the full backup "
                        "(default: 10000, the drills' default)")
    parser.add_argument("--repeat", type=int, default=3, help="restores of each kind; the median is reported")
    parser.add_argument("--pg-bindir", default=None, help="PostgreSQL 17+ bin dir (default: newest 17+ installed)")
    parser.add_argument("--workdir", default=None, help="where the run directory goes (default: /dev/shm when roomy, else the system temp dir)")
    parser.add_argument("--seed", type=int, default=0, help="data seed (default: 0)")
    args = parser.parse_args(argv)

    bindir = args.pg_bindir
    if bindir is None:
        found = pgversions.newest(pgversions.INCREMENTAL_MIN_MAJOR)
        if found is None:
            print(f"no PostgreSQL {pgversions.INCREMENTAL_MIN_MAJOR}+ installed (found: {pgversions.describe_all()}); "
                  f"get 18 with {pgversions.how_to_get(18)}", file=sys.stderr)
            return 2
        bindir = str(found.pg.bindir)
    try:
        with make_stack(DrillConfig(pg_bindir=bindir, workdir=args.workdir)) as stack:
            return run(stack, args)
    except HarnessError as exc:
        print(exc.render(), file=sys.stderr)
        return 1


def run(stack, args) -> int:
    chain = build_chain(stack.source, stack.barman, stack.source.books(args.seed), args.rows, twin=True)
    shape = chain_shape(stack.barman, chain.backups)
    leaf, twin = chain.backups[-1], chain.twin
    twin_bytes = chain_shape(stack.barman, [twin]).full_bytes
    print(f"PostgreSQL {stack.pg.version}, {stack.versions()['barman']} Barman; {args.rows} rows loaded, "
          f"3 links of writes")
    print(shape.render())
    print(f"full backup of the same data as the last link ({twin.backup_id}): {twin_bytes / 2**20:.2f} MB; "
          f"the 3-link chain stores {shape.stored_bytes / 2**20:.2f} MB")

    timings = {"chain": [], "full": []}
    for _ in range(args.repeat):
        for kind, backup in (("chain", leaf), ("full", twin)):
            scratch = Scratch(stack, f"bench-{kind}")
            try:
                record = scratch.recover(backup, RecoveryTarget("immediate")).record
                timings[kind].append((record.copy_seconds, record.recovery_seconds))
            finally:
                scratch.discard()
    print(f"restore to the end of the backup, median of {args.repeat} "
          "(barman recover incl. pg_combinebackup / total to consistency):")
    for kind, label in (("chain", "3-link chain"), ("full", "full backup ")):
        recover = statistics.median(seconds for seconds, _ in timings[kind])
        total = statistics.median(seconds for _, seconds in timings[kind])
        print(f"  {label}: {recover:.2f} s / {total:.2f} s   (runs: "
              + ", ".join(f"{seconds:.2f}" for _, seconds in timings[kind]) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
