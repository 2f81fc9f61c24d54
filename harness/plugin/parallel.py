"""pytest-xdist (``pytest -n N``): every worker runs its own stack; the controller alone writes evidence.

A worker is a pytest session of its own, so its session-scoped stack has its own run directory, Barman
home and lock directory, ports (reserved against the other workers: harness.process.ports), ownership
record and watchdog. Two names a user can fix are made per worker here: ``--compose-project NAME``
becomes NAME-gw0, NAME-gw1, ...; ``--source-port`` is refused (one port cannot serve two sources).
Which worker runs what: harness.plugin.scheduling.

What a worker verified reaches the controller with each drill's teardown report (an attribute that
pytest-xdist serializes with the report, as it does user properties), and the run's facts at its end
through ``config.workeroutput``. The controller folds them into its one RunRecord, and
harness.plugin.reporting writes one JSON, one HTML (and pytest one JUnit) from it. A worker that dies
(SIGKILL, the OOM killer) loses nothing that already arrived; the drill it was running is recorded as
no verdict on the server the configuration names for it, and the dead worker's watchdog reaps its stack.
That drill is not run again (harness.plugin.scheduling); should a scheduler run it again all the same,
its second result is told in the first one's reason, which stays no verdict.
"""

from __future__ import annotations

import json

import pytest

from harness.evidence.files import redacted
from harness.evidence.merge import merge_facts
from harness.evidence.read_json import drill_from_document
from harness.evidence.records import DrillRecord
from harness.evidence.report_json import drill_document
from harness.plugin.fixtures import configured_server
from harness.plugin.state import CONFIG, NO_VERDICT, drill_config, run_state
from harness.test_ids import without_group

PAYLOAD = "pgbv_drill"          # attribute of a worker's teardown report: the drill's evidence
RUN_OUTPUT = "pgbv_run"         # key of config.workeroutput: the worker's run facts
KEPT_SENT = pytest.StashKey[int]()
EXIT_REASON = pytest.StashKey[str]()    # on a worker: why pytest.exit() ended it (e.g. the stack did not come up)


def worker_id(config) -> str | None:
    return getattr(config, "workerinput", {}).get("workerid")


@pytest.hookimpl(trylast=True)  # after options.py built the run's DrillConfig
def pytest_configure(config):
    if not config.pluginmanager.hasplugin("xdist"):  # -p no:xdist: the existing drills still carry the mark
        config.addinivalue_line("markers", "xdist_group(name): pytest-xdist --dist loadgroup keeps a group together")
    drill = drill_config(config)
    worker = worker_id(config)
    if worker and drill.compose_project:
        config.stash[CONFIG] = drill.replace(compose_project=f"{drill.compose_project}-{worker}")
    if worker:
        config.pluginmanager.register(_ExitReason(config), "pgbv-xdist-exit-reason")
    if worker is None and _distributed(config):
        if drill.source_port:
            raise pytest.UsageError(f"--source-port {drill.source_port} names one port, but with -n every worker "
                                    "brings up a source server of its own: leave the option out (each then "
                                    "gets a free port of its own).")
        dist = config.getoption("dist", "no")
        if drill.stack == "existing" and dist != "loadgroup":
            config.issue_config_time_warning(pytest.PytestConfigWarning(
                f"--stack existing with --dist {dist}: the drills of one Barman server may run on several workers "
                "at once; leave --dist out (or use loadgroup) to keep each server's drills on one worker."),
                stacklevel=2)
        config.pluginmanager.register(Controller(config), "pgbv-xdist-controller")


def _distributed(config) -> bool:
    """Tests go to pytest-xdist workers (as pytest-xdist decides: a --dist mode and workers to run it)."""
    return config.getoption("dist", "no") != "no" and bool(config.getoption("tx", None)) \
        and not config.getoption("collectonly", False)


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
                                                                                  state.secrets),
         "exit": redacted(config.stash.get(EXIT_REASON, ""), state.secrets)})
    return True


class _ExitReason:
    """A worker ended by pytest.exit() (no verdict: the stack could not be brought up, ...): pytest-xdist
    shows the controller only "keyboard-interrupt"; the reason goes to it with the run's facts."""

    def __init__(self, config):
        self.config = config

    def pytest_keyboard_interrupt(self, excinfo):
        if isinstance(excinfo.value, pytest.exit.Exception):
            self.config.stash[EXIT_REASON] = str(excinfo.value.msg)


# --- on the controller ----------------------------------------------------------------------------

class Controller:
    """Folds the workers' drills and facts into the controller's RunRecord."""

    def __init__(self, config):
        self.config = config
        self.folded: set[str] = set()        # workers whose run facts arrived (xdist may call testnodedown twice)
        self.exits: dict[str, str] = {}      # worker -> why pytest.exit() ended it
        self.crashed: dict[str, DrillRecord] = {}   # test id -> its no-verdict record: its worker died

    def pytest_runtest_logreport(self, report):
        state = run_state(self.config)
        payload = getattr(report, PAYLOAD, None)
        worker = getattr(getattr(getattr(report, "node", None), "gateway", None), "id", "")
        if payload:
            document = json.loads(payload)
            drill = drill_from_document(document["drill"])
            state.record.kept += document["kept"]
            if drill.nodeid in self.crashed:
                _ran_again(self.crashed[drill.nodeid], f"{drill.outcome} on {drill.facts.get('xdist_worker', '?')}")
                return
            state.record.drills.append(drill)
            if document["no_verdict"]:
                state.no_verdict.append(drill.nodeid)
        elif report.when not in ("setup", "call", "teardown") and report.failed:
            # pytest-xdist's report for the test a worker was running when it ended early: no verdict,
            # on the server the configuration names (its worker never said), so that server is not verified.
            nodeid = without_group(report.nodeid)
            if nodeid in self.crashed:
                _ran_again(self.crashed[nodeid], f"its worker {worker or '?'} died too")
                return
            if self.exits.get(worker):   # it ended itself, saying why: show that, not "crashed"
                report.longrepr = reason = f"no verdict ({worker}): {self.exits[worker]}"
            else:
                reason = (f"no verdict: the pytest-xdist worker running this drill died ({report.longreprtext.strip()}"
                          "); its watchdog stops its servers and removes its run directory; rerun the drill")
            server = configured_server(self.config, nodeid)
            drill = DrillRecord(nodeid, "error", 0.0, reason, facts={"barman_server": server} if server else {})
            self.crashed[nodeid] = drill
            state.record.drills.append(drill)
            state.no_verdict.append(nodeid)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error):
        output = getattr(node, "workeroutput", None) or {}
        worker = node.gateway.id
        if RUN_OUTPUT not in output or worker in self.folded:
            return  # died before its end: its drills arrived one by one, its facts come from the others
        self.folded.add(worker)
        document = json.loads(output[RUN_OUTPUT])
        self.exits[worker] = document.get("exit", "")
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


def _ran_again(crashed: DrillRecord, how: str) -> None:
    """A drill whose worker died, run again by pytest-xdist: one record, still no verdict (a second run
    does not undo what brought the first one's worker down), the second outcome told in its reason."""
    crashed.reason += f"\nran again after its worker died: {how}; the first run's no verdict stands"
