"""Options, ini keys and markers of the drills; the run's one DrillConfig is built here, once."""

from __future__ import annotations

import os
import random
import signal

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from harness.config import SETTINGS, ConfigError, DrillConfig
from harness.plugin.state import CONFIG, RUN, RunState
from harness.process.progress import Progress

MARKERS = {
    "pitr": "point-in-time recovery drills (time, xid, lsn, restore point, immediate)",
    "faults": "scenarios that break the backup chain on purpose and expect a specific red diagnosis",
    "incremental": "incremental backup chains (PostgreSQL 17+): PITR inside each link, verify-backup, broken links",
    "property": "hypothesis-driven drills (random histories; size set by the hypothesis profile: ci or nightly)",
    "drill": "needs the stack: a real PostgreSQL server and a real Barman",
    "existing": "drills of a Barman this machine already runs (--stack existing)",
    "canary": "exact proof by a token written on production (--stack existing --canary)",
}

# Hypothesis profiles. A property drill recovers a backup per drawn target (seconds each): "ci" runs
# few examples, the same ones every time; "nightly" explores. Chosen with --hypothesis-profile, else
# DRILL_HYPOTHESIS_PROFILE, else "ci". A profile applies to every hypothesis test of the run: pure
# property tests set their own max_examples.
_SLOW_EXAMPLES = dict(deadline=None, database=None, print_blob=True,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
hypothesis_settings.register_profile("ci", max_examples=5, derandomize=True, **_SLOW_EXAMPLES)
hypothesis_settings.register_profile("nightly", max_examples=50, **_SLOW_EXAMPLES)


def pytest_addoption(parser):
    group = parser.getgroup("drill", "backup verification drills")
    for setting in SETTINGS:
        also = [f"also {setting.env}"] if setting.env else []
        if setting.ini:
            also.append(f"ini drill_{setting.name}")
        text = setting.help + (f" [{', '.join(also)}]" if also else "")
        if setting.boolean:
            group.addoption(setting.flag, dest=setting.name, action="store_true", default=None, help=text)
            group.addoption("--no-" + setting.flag[2:], dest=setting.name, action="store_false", default=None,
                            help=f"the opposite of {setting.flag}")
        else:
            group.addoption(setting.flag, dest=setting.name, default=None, choices=setting.choices, help=text)
        if setting.ini:
            parser.addini(f"drill_{setting.name}", setting.help, default=None)


@pytest.hookimpl(tryfirst=True)  # before hypothesis' plugin reads the profile and seed options
def pytest_configure(config):
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    given = {s.name: config.getoption(s.name) for s in SETTINGS}
    ini = {s.name: config.getini(f"drill_{s.name}") for s in SETTINGS if s.ini}
    try:
        drill = DrillConfig.resolve(given, ini=ini, progress=Progress.for_terminal().enabled)
    except ConfigError as exc:
        raise pytest.UsageError(exc.render()) from None
    _refuse_rootdir_taken_from_an_option(config)
    config.stash[CONFIG] = drill
    config.stash[RUN] = RunState()
    _per_drill_junit_properties(config)
    _choose_hypothesis_profile(config)
    # CI ends a job with SIGTERM: turn it into Ctrl-C so fixtures tear the stack down.
    if hasattr(signal, "SIGTERM"):
        try:
            signal.signal(signal.SIGTERM, _interrupt)
        except ValueError:  # not the main thread
            pass


def _refuse_rootdir_taken_from_an_option(config) -> None:
    """pytest chooses its rootdir and ini file before it knows a plugin's options, so the value of
    ``--barman-config /etc/barman.conf`` counts as a test path there and can move the rootdir away
    from the project: its pytest.ini (testpaths, junitxml, markers) would silently not apply."""
    args = [str(arg) for arg in config.invocation_params.args]
    taken = {flag: value for flag, value in zip(args, args[1:])
             if flag in {s.flag for s in SETTINGS if not s.boolean} and os.path.exists(value)}
    if not taken:
        return
    try:  # what pytest would have chosen from the test paths alone
        from _pytest.config.findpaths import determine_setup
        positional = list(config.args) if config.args_source == pytest.Config.ArgsSource.ARGS else []
        _, inipath = determine_setup(inifile=config.option.inifilename,
                                     override_ini=config.option.override_ini, args=positional,
                                     rootdir_cmd_arg=config.option.rootdir or None,
                                     invocation_dir=config.invocation_params.dir)[:2]
    except (ImportError, TypeError, AttributeError, ValueError):  # another pytest: nothing to compare with
        return
    if inipath != config.inipath:  # (a rootdir moved without an ini file lost changes nothing read)
        spelled = " ".join(f"{flag}={value}" for flag, value in taken.items())
        raise pytest.UsageError(
            f"pytest chose {config.rootpath} as its rootdir because it read the value of "
            f"{', '.join(taken)} as a test path (it chooses the rootdir before it knows the drill options); "
            f"its configuration {inipath} would not apply. Write the option with '=': {spelled}")


def _per_drill_junit_properties(config) -> None:
    """A drill's evidence is its test case's <properties>, which JUnit consumers (Jenkins, GitLab) read
    only in junit_family xunit1; pytest's default is xunit2. A project that chose a family keeps it."""
    # pytest offers no public way to tell "set" from "default", nor to set an ini default for another
    # plugin: without these attributes, the run keeps pytest's default.
    chosen = getattr(config, "_inicfg", None)
    if chosen is not None and "junit_family" not in chosen and isinstance(getattr(config, "_inicache", None), dict):
        config._inicache["junit_family"] = "xunit1"  # read by pytest's junitxml plugin as it configures


def _choose_hypothesis_profile(config) -> None:
    if not config.getoption("hypothesis_profile", None):
        config.option.hypothesis_profile = os.environ.get("DRILL_HYPOTHESIS_PROFILE") or "ci"
    try:
        profile = hypothesis_settings.get_profile(config.option.hypothesis_profile)
    except Exception as exc:  # hypothesis' InvalidArgument
        raise pytest.UsageError(f"--hypothesis-profile / DRILL_HYPOTHESIS_PROFILE: {exc} (use ci or nightly)") from None
    if not profile.derandomize and config.getoption("hypothesis_seed", None) is None:
        # A seed of our own, so a failure can be rerun: hypothesis only reports its own in rare cases.
        config.option.hypothesis_seed = str(random.getrandbits(32))


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_collection_modifyitems(config, items):
    for item in items:
        # A drill is any test that needs a stack (directly or through another fixture).
        if {"stack", "existing_stacks"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.drill)
