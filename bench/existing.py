"""Benchmark of `--stack existing`: one existing backup verified end to end, against the bare commands.

    .venv/bin/python bench/existing.py [--size-mb 1024] [--repeats 3] [--quick]

A production-like PostgreSQL + Barman built by hand (scenarios/production.py: production's own
settings, Barman streaming over a slot) is loaded with about --size-mb of books rows (table and
indexes), vacuumed and backed up once. That one backup is then verified, the two sides alternating:

- the harness: ExistingStack + ExistingScratch.recover to `immediate` (pre-flight checks, `barman
  recover`, a scratch started with production's dangerous settings overridden, the target proven
  reached, pg_amcheck --all --heapallindexed, pg_dump of every database to /dev/null, per-table row
  counts) and discard, in a process of its own from its start to its exit, so that its peak RSS is
  the harness's alone (getrusage RUSAGE_SELF; RUSAGE_CHILDREN for the largest program it ran);
- the bare commands: `barman recover --target-immediate --target-action promote` + chown, `pg_ctl
  start -w` (own port, 127.0.0.1, own socket dir, archive_mode=off, hot_standby=on, fsync=off as the
  harness's scratch; production's other settings kept, as a plain script keeps them), polling until
  it has promoted (pg_amcheck --install-missing writes), pg_amcheck --all --heapallindexed
  --install-missing, pg_dump of each database to /dev/null, `pg_ctl stop -m immediate`, rm.

Medians of each side are compared. Prints a table, writes reports/bench-existing.json. Exit code 0
when every measurement ran (goals met or not: a report, not a test), 2 when one failed, 130 when
interrupted. Nothing is left running or on disk but the report.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Only the standard library up here: the harness side runs this file again as a worker process whose
# peak RSS is a figure, so it must import what a harness verification imports and nothing more.

ROOT = Path(__file__).resolve().parent.parent
FULL = {"size_mb": 1024, "repeats": 3}
QUICK = {"size_mb": 100, "repeats": 1}
GOALS = {"harness_vs_bare": ("<=", 1.3, "x"), "harness_peak_rss_mb": ("<=", 200, " MB")}
LOAD_CHUNK_ROWS = 1_000_000   # one transaction each: the WAL streams to Barman as the load goes
SIDE_TIMEOUT = 3600
MiB = 2 ** 20


class BenchFailed(RuntimeError):
    pass


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/existing.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK['size_mb']} MB of data, one run per side")
    parser.add_argument("--size-mb", type=int,
                        help=f"books table + indexes to load (default {FULL['size_mb']}; quick {QUICK['size_mb']})")
    parser.add_argument("--repeats", type=int,
                        help=f"verifications per side, alternating; medians are compared (default {FULL['repeats']}; "
                             f"quick {QUICK['repeats']})")
    parser.add_argument("--report", default=str(ROOT / "reports" / "bench-existing.json"), help="where the JSON goes")
    parser.add_argument("--workdir", default=None,
                        help="where both sides restore (default: /dev/shm when roomy, else the temp dir)")
    parser.add_argument("--harness-worker", help=argparse.SUPPRESS)  # one harness verification, as its own process
    args = parser.parse_args(argv)
    if args.harness_worker:
        return args
    preset = QUICK if args.quick else FULL
    args.size_mb = preset["size_mb"] if args.size_mb is None else args.size_mb
    args.repeats = preset["repeats"] if args.repeats is None else args.repeats
    if args.size_mb < 1:
        parser.error("--size-mb must be at least 1")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # CI stops a job with SIGTERM: tear down as on Ctrl-C
    if args.harness_worker:
        return harness_worker(json.loads(args.harness_worker))

    import psycopg
    import run as bench_run  # the same machine facts and table layout as bench/run.py

    verbose = sys.stderr.isatty()

    def say(message: str) -> None:
        if verbose:
            print(f"[bench] {message}", file=sys.stderr, flush=True)

    report = {"started_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "mode": "quick" if args.quick else "full", "machine": bench_run._machine(),
              "size_mb": args.size_mb, "repeats": args.repeats}
    started = time.perf_counter()
    failure = ""
    try:
        measure(args, report, say, verbose)
    except KeyboardInterrupt:
        print("bench: interrupted; everything it started is stopped.", file=sys.stderr)
        return 130
    except (RuntimeError, subprocess.SubprocessError, OSError, psycopg.Error) as exc:
        failure = f"{type(exc).__name__}: {exc}"
    if report.get("cleanup_errors"):
        failure = (failure + "\n" if failure else "") + "left behind: " + "; ".join(report["cleanup_errors"])
    report["seconds"] = time.perf_counter() - started
    report["machine"]["load_average_end"] = os.getloadavg()
    report["figures"] = figures(report)
    if failure:
        report["failure"] = failure
    path = Path(args.report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(render(report, path, bench_run._columns))
    if failure:
        print(f"\nbench: a measurement failed, so the figures above are incomplete:\n{failure}", file=sys.stderr)
        return 2
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def load_production():
    """scenarios/production.py, the hand-built production of the existing-stack scenarios.

    scenarios/ is no package and not on sys.path, and bench/ and scenarios/ are siblings: the file
    is loaded by its path rather than by adding a directory to sys.path."""
    spec = importlib.util.spec_from_file_location("production", ROOT / "scenarios" / "production.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while they are built
    spec.loader.exec_module(module)
    return module


# -- the run ----------------------------------------------------------------------------------

def measure(args, report: dict, say, verbose: bool) -> None:
    from harness.stacks.workdir import default_workdir

    production = load_production()
    report["runs"] = {"harness": [], "bare": []}
    say("building the hand-made production (initdb, Barman streaming over a slot)")
    prod = None
    try:
        with production.production(rows=100, backups=0) as prod:
            report["machine"]["postgresql"] = _version([production.PG_BINDIR / "postgres", "--version"])
            report["machine"]["barman"] = _version(prod.barman_argv("--version"))
            say(f"loading about {args.size_mb} MB of books rows")
            report["data"] = load(prod, args.size_mb)
            say("taking the backup")
            started = time.perf_counter()
            backup_id = prod.backup(timeout=SIDE_TIMEOUT)
            report["data"].update(backup_id=backup_id, backup_seconds=time.perf_counter() - started,
                                  backup_bytes=_tree_bytes(prod.barman_home / prod.server / "base" / backup_id))
            # Both sides restore into this one directory, on the file system the drills would choose.
            base = args.workdir or default_workdir(args.size_mb * MiB // 128).path
            work = Path(tempfile.mkdtemp(prefix="pgbv-bench-existing-", dir=base))
            os.chmod(work, 0o711)  # the server user must reach the restores below
            report["workdir"] = str(work)
            bare = None
            try:
                bare = BareVerify(production, prod, work)
                for index in range(args.repeats):
                    order = ("harness", "bare") if index % 2 == 0 else ("bare", "harness")
                    for side in order:
                        say(f"run {index + 1}/{args.repeats}: {side}")
                        if side == "harness":
                            result = harness_side(prod, backup_id, work, index, verbose)
                        else:
                            result = bare.verify(backup_id, f"bare-{index}")
                        report["runs"][side].append(result)
                        say(f"  {side}: {result['total']:.1f} s")
            finally:
                if bare is not None:
                    bare.stop_all()
                shutil.rmtree(work, ignore_errors=True)
    finally:
        if prod is not None:  # close() ran on leaving the block; what it could not do is reported
            report["cleanup_errors"] = list(prod.close_errors)


def load(prod, size_mb: int) -> dict:
    """books rows through INSERT ... SELECT generate_series until table + indexes reach ``size_mb``,
    then VACUUM (FREEZE, ANALYZE) as a production's autovacuum would have: hint bits set before the backup."""
    target = size_mb * MiB
    started = time.perf_counter()
    loaded, chunk = 0, min(100_000, LOAD_CHUNK_ROWS)
    with prod.connect() as conn:
        size = conn.execute("SELECT pg_total_relation_size('books')").fetchone()[0]
        while size < target:
            conn.execute(
                "INSERT INTO books (category_id, title, author, isbn, year) "
                "SELECT 1 + i %% 20, 'Book ' || i || ' ' || md5(i::text), 'Author ' || i %% 500, "
                "'978' || lpad((i::bigint * 7919 %% 10000000000)::text, 10, '0'), 1900 + i %% 127 "
                "FROM generate_series(%s::bigint, %s::bigint) AS i", (loaded + 1, loaded + chunk))
            loaded += chunk
            size = conn.execute("SELECT pg_total_relation_size('books')").fetchone()[0]
            per_row = size / loaded
            chunk = int(min(LOAD_CHUNK_ROWS, max(1_000, (target - size) / per_row + 1)))
        load_seconds = time.perf_counter() - started
        conn.execute("VACUUM (FREEZE, ANALYZE) books")
        rows = conn.execute("SELECT count(*) FROM books").fetchone()[0]
        table_bytes = conn.execute("SELECT pg_total_relation_size('books')").fetchone()[0]
        database_bytes = conn.execute("SELECT pg_database_size('books_db')").fetchone()[0]
    return {"rows": rows, "table_bytes": table_bytes, "database_bytes": database_bytes,
            "load_seconds": load_seconds, "vacuum_seconds": time.perf_counter() - started - load_seconds}


def _tree_bytes(path: Path) -> int:
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                pass
    return total


def _version(argv) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    return (done.stdout or done.stderr).strip().splitlines()[-1] if (done.stdout or done.stderr).strip() else "?"


# -- the harness side: a process of its own ---------------------------------------------------

def harness_side(prod, backup_id: str, work: Path, index: int, verbose: bool) -> dict:
    """One verification by the harness in a fresh process; its wall time from start to exit."""
    result_path = work / f"harness-{index}.json"
    spec = {"barman_config": str(prod.barman_conf), "server": prod.server, "backup_id": backup_id,
            "workdir": str(work), "result": str(result_path), "progress": verbose}
    argv = [sys.executable, str(Path(__file__).resolve()), "--harness-worker", json.dumps(spec)]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, cwd=ROOT)
    try:
        returncode = proc.wait(timeout=SIDE_TIMEOUT)
    except BaseException:
        # SIGTERM lets the harness stop its scratch and remove its run directory itself.
        proc.terminate()
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    wall = time.perf_counter() - started
    try:
        result = json.loads(result_path.read_text())
    except (OSError, ValueError):
        raise BenchFailed(f"the harness worker exited {returncode} without a result") from None
    if result.get("failure") or returncode != 0:
        raise BenchFailed(f"the harness verification failed (rc {returncode}):\n{result.get('failure', '')}")
    result["total"] = wall
    result["interpreter_seconds"] = wall - result["in_process_seconds"]  # start, imports, exit
    return result


def harness_worker(spec: dict) -> int:
    """Run in the worker process: one verification as a user's script would drive it."""
    before_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    from harness import DrillConfig, HarnessError, RecoveryTarget
    from harness.checks import data
    from harness.drill.existing import ExistingScratch
    from harness.stacks.existing import ExistingStack

    phases: dict[str, float] = {}

    def timed(name: str) -> None:
        # The record times copy, start and reach; the reads after them are timed here.
        original = getattr(data, name)

        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - started
        setattr(data, name, wrapper)

    for name in ("amcheck_all", "full_read", "inventory"):
        timed(name)
    result: dict = {"rss_before_imports_kb": before_imports,
                    "rss_at_start_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    config = DrillConfig(stack="existing", barman_config=spec["barman_config"], barman_server=spec["server"],
                         workdir=spec["workdir"], backups=(spec["backup_id"],), progress=spec["progress"])
    t0 = time.perf_counter()
    try:
        with ExistingStack(config) as stack:
            backup = stack.chosen_backups()[-1]
            t1 = time.perf_counter()
            scratch = ExistingScratch(stack, "bench")
            try:
                restored = scratch.recover(backup, RecoveryTarget("immediate"), timeout=SIDE_TIMEOUT)
            finally:
                t2 = time.perf_counter()
                scratch.discard()
                t3 = time.perf_counter()
        t4 = time.perf_counter()
        record = restored.record
        checks = phases.get("amcheck_all", 0.0) + phases.get("full_read", 0.0) + phases.get("inventory", 0.0)
        result.update(
            setup=t1 - t0, copy=record.copy_seconds, start=record.start_seconds, reach=record.reach_seconds,
            preflight=(t2 - t1) - record.recovery_seconds - checks,  # pre-flight checks and the rest of recover()
            amcheck=phases.get("amcheck_all", 0.0), dump=phases.get("full_read", 0.0),
            row_counts=phases.get("inventory", 0.0), discard=t3 - t2, close=t4 - t3,
            checks=[f"{c.name}: {'passed' if c.passed else 'FAILED'}" for c in record.checks],
            tables=len(record.tables), rows=sum(table.rows for table in record.tables),
            overrides=len(record.overrides))
    except HarnessError as exc:
        result["failure"] = exc.render()
    result["in_process_seconds"] = time.perf_counter() - t0
    result["maxrss_self_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["maxrss_children_kb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    Path(spec["result"]).write_text(json.dumps(result))
    return 2 if "failure" in result else 0


# -- the bare side ------------------------------------------------------------------------------

class BareVerify:
    """The same verification as a plain script does it: the raw tools, no checks, no evidence."""

    def __init__(self, production, prod, work: Path):
        from harness.barman.driver import RECOVER_JOBS  # the same rsync workers as the harness

        self.jobs = RECOVER_JOBS
        self.barman = prod.barman_argv()
        self.server = prod.server
        self.bindir = production.PG_BINDIR
        self.owner = production.SERVER_USER if os.geteuid() == 0 else None  # PostgreSQL refuses root
        self.as_owner = ["runuser", "-u", self.owner, "--"] if self.owner else []
        self.work = work
        self.passfile = work / "bare.pgpass"
        fd = os.open(self.passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:  # the restore keeps production's roles and passwords
            handle.write(f"127.0.0.1:*:*:postgres:{prod.superuser_password}\n")
        with prod.connect("postgres") as conn:  # the operator knows production's tablespaces
            self.tablespaces = [row[0] for row in conn.execute(
                "SELECT spcname FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY 1")]
        self.running: list[Path] = []

    def verify(self, backup_id: str, name: str) -> dict:
        from harness.process.ports import free_port

        home = self.work / name
        data, sockets, log, port = home / "data", home / "sockets", home / "postgres.log", free_port()
        spaces = {name: home / "tablespaces" / name for name in self.tablespaces}
        for directory in (home, data, sockets, *spaces.values()):  # untimed: barman recover wants them to exist
            directory.mkdir(mode=0o700, parents=True)
        if self.owner:
            self.run(["chown", "-R", f"{self.owner}:", home])
        env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(port), "PGUSER": "postgres",
               "PGPASSFILE": str(self.passfile), "PGCONNECT_TIMEOUT": "5"}
        env.pop("PGPASSWORD", None)
        t0 = time.perf_counter()
        # Tablespaces go into the restore's own directory, never to production's paths.
        relocate = [word for name, location in spaces.items() for word in ("--tablespace", f"{name}:{location}")]
        self.run([*self.barman, "recover", "--jobs", self.jobs, "--target-immediate", "--target-action", "promote",
                  *relocate, self.server, backup_id, data])
        if self.owner:  # barman wrote the data dir and the tablespaces as root
            self.run(["chown", "-R", f"{self.owner}:", data, *spaces.values()])
        t1 = time.perf_counter()
        options = (f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={sockets} "
                   "-c archive_mode=off -c hot_standby=on -c fsync=off")
        self.running.append(data)
        try:
            self.run([*self.as_owner, self.bindir / "pg_ctl", "-D", data, "-l", log, "-o", options, "-w",
                      "-t", SIDE_TIMEOUT, "start"], cwd=home)
        except BenchFailed as exc:
            tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
            raise BenchFailed(f"{exc}\n{log}:\n" + "\n".join(tail)) from None
        t2 = time.perf_counter()
        while self.psql(env, "SELECT pg_is_in_recovery()") != "f":
            if time.perf_counter() - t2 > SIDE_TIMEOUT:
                raise BenchFailed(f"the bare restore in {data} did not leave recovery")
            time.sleep(0.1)
        t3 = time.perf_counter()
        self.run([self.bindir / "pg_amcheck", "--all", "--heapallindexed", "--install-missing"], env=env)
        t4 = time.perf_counter()
        databases = self.psql(env, "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate")
        for database in databases.split():
            self.run([self.bindir / "pg_dump", "--no-sync", "-f", "/dev/null", "-d", database], env=env)
        t5 = time.perf_counter()
        self.stop(data)
        shutil.rmtree(home)
        t6 = time.perf_counter()
        return {"copy": t1 - t0, "start": t2 - t1, "reach": t3 - t2, "amcheck": t4 - t3, "dump": t5 - t4,
                "stop": t6 - t5, "total": t6 - t0, "databases": databases.split()}

    def psql(self, env: dict, query: str) -> str:
        done = subprocess.run([str(self.bindir / "psql"), "-X", "-A", "-t", "-q", "-d", "postgres", "-c", query],
                              capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL,
                              cwd=self.work)
        return done.stdout.strip() if done.returncode == 0 else ""

    def run(self, argv, env: dict | None = None, cwd: Path | None = None) -> str:
        argv = [str(arg) for arg in argv]
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=SIDE_TIMEOUT + 60, env=env, stdin=subprocess.DEVNULL, cwd=cwd or self.work)
        if done.returncode != 0:
            raise BenchFailed(f"`{' '.join(argv)}` failed (rc {done.returncode}):\n{done.stdout[-2000:]}")
        return done.stdout

    def stop(self, data: Path) -> None:
        if data in self.running:
            self.running.remove(data)
            if (data / "postmaster.pid").exists():
                self.run([*self.as_owner, self.bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
                         cwd=data.parent)

    def stop_all(self) -> None:
        for data in list(self.running):
            try:
                self.stop(data)
            except (BenchFailed, subprocess.SubprocessError, OSError) as exc:
                print(f"bench: could not stop {data}: {exc}", file=sys.stderr)


# -- figures and the table ----------------------------------------------------------------------

def _median_run(runs: list[dict]) -> dict:
    # The run with the median total, so that its steps add up to the figure shown.
    return sorted(runs, key=lambda item: item["total"])[(len(runs) - 1) // 2]


def figures(report: dict) -> list[dict]:
    runs = report.get("runs", {})
    found = []

    def add(name: str, label: str, value: float):
        comparison, bound, unit = GOALS[name]
        met = value <= bound if comparison == "<=" else value >= bound
        found.append({"name": name, "label": label, "value": value, "unit": unit.strip(),
                      "goal": f"{comparison} {bound}{unit}", "met": met})

    harness, bare = runs.get("harness", []), runs.get("bare", [])
    if harness and bare and len(harness) == len(bare):
        ratio = statistics.median(r["total"] for r in harness) / statistics.median(r["total"] for r in bare)
        add("harness_vs_bare", "harness / bare", ratio)
    if harness:
        add("harness_peak_rss_mb", "harness process peak RSS", max(r["maxrss_self_kb"] for r in harness) / 1024)
    return found


def render(report: dict, path: Path, columns) -> str:
    machine, runs = report["machine"], report.get("runs", {})
    load = machine.get("load_average_start", (0, 0, 0))[0]
    lines = [f"bench existing ({report['mode']}): {machine.get('postgresql', 'PostgreSQL ?')}, "
             f"{machine.get('barman', 'barman ?')}, {machine['cpus']} CPUs, load {load:.1f} at start, "
             f"{report['seconds']:.0f} s"]
    data = report.get("data")
    if data:
        lines.append(f"data: books {data['table_bytes'] / MiB:,.0f} MB with indexes ({data['rows']:,} rows; "
                     f"database {data['database_bytes'] / MiB:,.0f} MB), loaded in {data['load_seconds']:.0f} s "
                     f"+ vacuum {data['vacuum_seconds']:.0f} s"
                     + (f"; backup {data['backup_id']}: {data['backup_bytes'] / MiB:,.0f} MB in "
                        f"{data['backup_seconds']:.0f} s" if "backup_id" in data else ""))
    goal = {item["name"]: item for item in report.get("figures", [])}
    table = [("measurement", "value", "goal", "met")]

    def row(label: str, value: str, key: str | None = None):
        item = goal.get(key) if key else None
        table.append((label, value, item["goal"] if item else "",
                      ("met" if item["met"] else "MISSED") if item else ""))

    harness, bare = runs.get("harness", []), runs.get("bare", [])
    if harness:
        h = _median_run(harness)
        row(f"harness verification (median run of {len(harness)})",
            f"{h['total']:.2f} s = setup {h['setup']:.2f} + pre-flight {h['preflight']:.2f} + recover "
            f"{h['copy']:.2f} + start {h['start']:.2f} + reach {h['reach']:.2f} + amcheck {h['amcheck']:.2f} + "
            f"pg_dump {h['dump']:.2f} + row counts {h['row_counts']:.2f} + discard {h['discard'] + h['close']:.2f} "
            f"+ interpreter {h['interpreter_seconds']:.2f}")
    if bare:
        b = _median_run(bare)
        row(f"bare commands (median run of {len(bare)})",
            f"{b['total']:.2f} s = recover {b['copy']:.2f} + start {b['start']:.2f} + promoted {b['reach']:.2f} + "
            f"amcheck {b['amcheck']:.2f} + pg_dump {b['dump']:.2f} + stop {b['stop']:.2f}")
    if "harness_vs_bare" in goal:
        row("  harness / bare", f"{goal['harness_vs_bare']['value']:.2f}x", "harness_vs_bare")
    if harness:
        row(f"harness process peak RSS (max of {len(harness)})",
            f"{goal['harness_peak_rss_mb']['value']:.0f} MB (after imports "
            f"{max(r['rss_at_start_kb'] for r in harness) / 1024:.0f} MB)", "harness_peak_rss_mb")
        row("  its child processes' peak RSS (the largest one)",
            f"{max(r['maxrss_children_kb'] for r in harness) / 1024:.0f} MB")
    lines.append(columns(table))
    for side, done in (("harness", harness), ("bare", bare)):
        if done:
            lines.append(f"runs, {side}: " + ", ".join(f"{item['total']:.2f}" for item in done) + " s")
    lines.append(f"report: {path}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
