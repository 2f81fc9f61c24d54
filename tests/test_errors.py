"""Errors that explain themselves."""

import pytest

from harness.errors import CommandFailed, HarnessError, RecoveryFailed, SetupError, TargetRefused, VerificationFailed


def test_render_has_cause_fix_and_details():
    error = HarnessError("Barman is not installed.", "Run ./setup.sh.", "    line 1\n    line 2\n")
    assert error.render() == "Barman is not installed. Run ./setup.sh.\n    line 1\n    line 2"
    assert str(error) == error.render()
    assert (error.cause, error.fix, error.details) == ("Barman is not installed.", "Run ./setup.sh.",
                                                        "    line 1\n    line 2\n")


def test_render_cause_only():
    assert HarnessError("Something broke.  ").render() == "Something broke."


def test_render_details_without_fix():
    assert HarnessError("Cause.", details="evidence").render() == "Cause.\nevidence"


def test_hierarchy():
    assert issubclass(SetupError, HarnessError)
    assert issubclass(CommandFailed, HarnessError)
    assert issubclass(RecoveryFailed, VerificationFailed)
    assert issubclass(TargetRefused, VerificationFailed)
    assert not issubclass(SetupError, VerificationFailed)


def test_command_failed_default_cause_names_command_and_exit_code():
    error = CommandFailed(["barman", "-c", "/x/barman.conf", "check", "source"], 1, "FAILED\n")
    assert error.cause == "`barman -c /x/barman.conf check source` failed with exit code 1."
    assert error.argv == ["barman", "-c", "/x/barman.conf", "check", "source"]
    assert error.returncode == 1
    assert error.details == "    FAILED"


def test_command_failed_keeps_only_last_lines_of_long_output():
    output = "\n".join(f"output line {i}" for i in range(1, 101)) + "\n"
    error = CommandFailed(["pg_ctl", "start"], 1, output, cause="The server did not start.", fix="See its log.")
    lines = error.details.splitlines()
    assert lines[0] == "    ... (75 earlier lines)"
    assert lines[1:] == [f"    output line {i}" for i in range(76, 101)]
    assert error.output == output  # the full output stays on the exception
    assert error.render().startswith("The server did not start. See its log.\n")
    assert "output line 75\n" not in error.render() + "\n"
    assert error.render().endswith("output line 100")


def test_command_failed_short_output_is_kept_whole():
    output = "\n".join(f"l{i}" for i in range(25))
    error = CommandFailed(["x"], 2, output)
    assert error.details.splitlines() == [f"    l{i}" for i in range(25)]
    assert "earlier lines" not in error.details


@pytest.mark.parametrize("output", [None, ""])
def test_command_failed_without_output(output):
    error = CommandFailed(["x"], 3, output)
    assert error.details == ""
    assert error.render() == "`x` failed with exit code 3."
