"""pytest-xdist (``pytest -n N``): every worker runs its own stack; the controller alone writes evidence.

A worker is a pytest session of its own, so its session-scoped stack has its own run directory, Barman
home and lock directory, ports (reserved against the other workers: harness.process.ports), ownership
record and watchdog. Two names a user can fix are made per worker here: ``--compose-project NAME``
becomes NAME-gw0, NAME-gw1, ...; ``--source-port`` is refused (one port cannot serve two sources).

What a worker verified reaches the controller with each drill's teardown report (an attribute that
pytest-xdist serializes with the report, as it does user properties), and the run's facts at its end
through ``config.workeroutput``. The controller folds them into its one RunRecord, and
harness.plugin.reporting writes one JSON, one HTML (and pytest one JUnit) from it. A worker that dies
(SIGKILL, the OOM killer) loses nothing that already arrived; the drill it was running is recorded as
no verdict, and the dead worker's watchdog reaps its stack.
"""

from __future__ import annotations

import json

import pytest

from harness.evidence.files import redacted
from harness.evidence.merge import merge_facts
from harness.evidence.read_json import drill_from_document
from harness.evidence.records import DrillRecord
from harness.evidence.report_json import drill_document
from harness.plugin.state import CONFIG, NO_VERDICT, drill_config, run_state

PAYLOAD = "pgbv_drill"          # attribute of a worker's teardown report: the drill's evidence
RUN_OUTPUT = "pgbv_run"         # key of config.workeroutput: the worker's run facts
KEPT_SENT = pytest.StashKey[int]()


def worker_id(config) -> str | None:
    return getattr(config, "workerinput", {}).get("workerid")


def plain_nodeid(item) -> str:
    """The test's id without the '@group' pytest-xdist appends under --dist loadgroup: evidence, shards
    and history name a drill the same however it was scheduled."""
    names = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                    for mark in item.iter_markers("xdist_group")})
    suffix = "@" + "_".join(names)
    return item.nodeid[:-len(suffix)] if names and item.nodeid.endswith(suffix) else item.nodeid


def _plain_crashed_id(nodeid: str) -> str:
    test, at, group = nodeid.rpartition("@")
    return test if at and "]" not in group and "/" not in group else nodeid


@pytest.hookimpl(trylast=True)  # after options.py built the run's DrillConfig
def pytest_configure(config):
    if not config.pluginmanager.hasplugin("xdist"):  # -p no:xdist: the existing drills still carry the mark
        config.addinivalue_line("markers", "xdist_group(name): pytest-xdist --dist loadgroup keeps a group on one worker")
    drill = drill_config(config)
    worker = worker_id(config)
    if worker and drill.compose_project:
        config.stash[CONFIG] = drill.replace(compose_project=f"{drill.compose_project}-{worker}")
    if worker is None and _distributed(config):
        if drill.source_port:
            raise pytest.UsageError(f"--source-port {drill.source_port} names one port, but with -n every worker "
                                    "brings up a source server of its own: leave the option out (each then "
                                    "gets a free port of its own).")
        if drill.stack == "existing" and config.getoption("dist", "no") != "loadgroup":
            config.issue_config_time_warning(pytest.PytestConfigWarning(
                "--stack existing with -n: add --dist loadgroup so that the drills of one Barman server stay on "
                "one worker (one scratch at a time per server); without it they spread over the workers."),
                stacklevel=2)
        config.pluginmanager.register(Controller(config), "pgbv-xdist-controller")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """--dist loadgroup on the existing stack: a server's drills form one group. pytest-xdist groups by
    appending '@group' to test ids, which pytest 9.2 no longer lets it do (pytest-xdist issue #1386: the
    groups are silently ignored), so the groups are also named here, from the plan of servers and backups."""
    if config.getoption("dist", "no") != "loadgroup" or drill_config(config).stack != "existing":
        return None
    from xdist.scheduler import LoadGroupScheduling

    from harness.plugin.existing import server_of_param

    class ServerGroups(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid, lambda param: server_of_param(config, param))

    return ServerGroups(config, log)


def group_of(nodeid: str, server_of) -> str:
    """The scheduling group of a test id: pytest-xdist's '@group' where it is there, else the server of an
    existing drill's parameter, else the test alone."""
    if nodeid.rfind("@") > nodeid.rfind("]"):
        return nodeid.split("@")[-1]
    server = server_of(nodeid.rpartition("[")[2][:-1]) if nodeid.endswith("]") else None
    return f"server:{server}" if server else nodeid


def _distributed(config) -> bool:
    return config.getoption("dist", "no") != "no" and not config.getoption("collectonly", False)


# --- on a worker ---------------------------------------------------------------------------------

def send_drill(item, report, drill: DrillRecord) -> None:
    """On a worker: the drill's evidence travels to the controller with its teardown report."""
    worker = worker_id(item.config)
    if worker is None:
        return
    state = run_state(item.config)
    sent = item.config.stash.get(KEPT_SENT, 0)
    item.config.stash[KEPT_SENT] = len(state.record.kept)
    drill.facts.setdefault("xdist_worker", worker)
    payload = {"drill": drill_document(redacted(drill, state.secrets)), "no_verdict": NO_VERDICT in item.stash,
               "kept": redacted(state.record.kept[sent:], state.secrets)}
    setattr(report, PAYLOAD, json.dumps(payload))


def send_run(config) -> bool:
    """On a worker, as its session ends: the run's facts and what it kept go to the controller, which
    writes the evidence. True when this is a worker (which then writes nothing itself)."""
    if worker_id(config) is None:
        return False
    state = run_state(config)
    sent = config.stash.get(KEPT_SENT, 0)
    config.workeroutput[RUN_OUTPUT] = json.dumps(
        {"facts": redacted(state.record.facts, state.secrets), "kept": redacted(state.record.kept[sent:],
                                                                                  state.secrets)})
    return True


# --- on the controller ----------------------------------------------------------------------------

class Controller:
    """Folds the workers' drills and facts into the controller's RunRecord."""

    def __init__(self, config):
        self.config = config

    def pytest_runtest_logreport(self, report):
        state = run_state(self.config)
        payload = getattr(report, PAYLOAD, None)
        if payload:
            document = json.loads(payload)
            drill = drill_from_document(document["drill"])
            state.record.drills.append(drill)
            state.record.kept += document["kept"]
            if document["no_verdict"]:
                state.no_verdict.append(drill.nodeid)
        elif report.when not in ("setup", "call", "teardown") and report.failed:
            # pytest-xdist's report for the test a worker was running when it died: no verdict.
            nodeid = _plain_crashed_id(report.nodeid)
            state.record.drills.append(DrillRecord(nodeid, "error", 0.0, (
                f"no verdict: the pytest-xdist worker running this drill died ({report.longreprtext.strip()}); its "
                "watchdog stops its servers and removes its run directory; rerun the drill")))
            state.no_verdict.append(nodeid)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error):
        output = getattr(node, "workeroutput", None) or {}
        if RUN_OUTPUT not in output:
            return  # died before its end: its drills arrived one by one, its facts come from the others
        document = json.loads(output[RUN_OUTPUT])
        merge_facts(run_state(self.config).record.facts, document["facts"])
        run_state(self.config).record.kept += document["kept"]

    @pytest.hookimpl(tryfirst=True)  # before pytest's junitxml writes the file
    def pytest_sessionfinish(self, session):
        from _pytest.junitxml import xml_key  # pytest offers no public handle on the JUnit being written

        from harness.plugin.reporting import SUITE_FACTS

        xml = session.config.stash.get(xml_key, None)
        facts = run_state(session.config).record.facts
        if xml is not None:  # workers' suite properties do not reach the controller's JUnit by themselves
            for name in SUITE_FACTS:
                if name in facts:
                    xml.add_global_property(name, facts[name])
