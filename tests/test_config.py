"""One configuration, one precedence: command line, then environment, then ini, then default."""

import argparse
from pathlib import Path

import pytest

from harness.config import SETTINGS, ConfigError, DrillConfig, add_arguments, from_arguments


def test_defaults_when_nothing_is_given():
    config = DrillConfig.resolve({}, env={})
    assert config == DrillConfig()
    assert (config.stack, config.rows, config.keep_on_failure, config.reports_dir) == ("local", 10_000, True, Path("reports"))


def test_command_line_wins_over_environment_which_wins_over_ini():
    env = {"DRILL_ROWS": "200", "DRILL_PG_BINDIR": "/from/env"}
    ini = {"rows": "300", "pg_bindir": "/from/ini", "workdir": "/from/ini/work"}
    config = DrillConfig.resolve({"rows": "100"}, env=env, ini=ini)
    assert config.rows == 100                     # command line
    assert config.pg_bindir == "/from/env"        # environment over ini
    assert config.workdir == "/from/ini/work"     # ini over the default


def test_values_are_converted_and_frozen():
    config = DrillConfig.resolve({"keep": True, "source_port": "5499", "reports_dir": "out"}, env={},
                                 ini={"keep_on_failure": "off"})
    assert (config.keep, config.source_port, config.reports_dir, config.keep_on_failure) == (True, 5499, Path("out"), False)
    with pytest.raises(AttributeError):
        config.rows = 1  # frozen: built once, handed around, never changed behind anyone's back
    assert config.replace(rows=1).rows == 1 and config.rows == 10_000


@pytest.mark.parametrize("given, env, message", [
    ({"rows": "many"}, {}, "--rows 'many'"),
    ({}, {"DRILL_ROWS": "lots"}, "DRILL_ROWS 'lots'"),
    ({}, {"DRILL_STACK": "kubernetes"}, "is not one of: local, compose"),
])
def test_bad_values_name_where_they_came_from(given, env, message):
    with pytest.raises(ConfigError, match=message):
        DrillConfig.resolve(given, env=env)


def test_a_script_gets_the_same_settings_from_argparse():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = {action.option_strings[0] for action in parser._actions if action.option_strings}
    assert {setting.flag for setting in SETTINGS} <= flags
    namespace = parser.parse_args(["--rows", "50", "--no-keep-on-failure", "--stack", "compose"])
    config = from_arguments(namespace)
    assert (config.rows, config.keep_on_failure, config.stack) == (50, False, "compose")
