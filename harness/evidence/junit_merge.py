"""The shards' JUnit files folded into one with junitparser: each shard's <testsuite> as it was (its
suite properties say which shard, host and versions), plus a suite ``pgbv-merge`` holding an error
test case for every problem of the merge, so that a CI system reading only the JUnit sees no green
where a shard is missing.
"""

from __future__ import annotations

import re
from pathlib import Path

from junitparser import Error, Failure, JUnitXml, TestCase, TestSuite

from harness.errors import HarnessError
from harness.test_ids import without_group


class JUnitUnreadable(HarnessError):
    """A JUnit file that cannot be read."""


def junit_address(nodeid: str) -> tuple[str, str]:
    """(classname, name) pytest's junitxml gives a test id (as its ``mangle_test_address`` does)."""
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    return ".".join(names[:-1]), names[-1]


def read_suites(path: Path) -> list[TestSuite]:
    try:
        xml = JUnitXml.fromfile(str(path))
    except OSError as exc:
        raise JUnitUnreadable(f"The JUnit file {path} cannot be read: {exc.strerror or exc}.") from None
    except Exception as exc:  # lxml / ElementTree parse errors differ by installation
        raise JUnitUnreadable(f"The JUnit file {path} is not well-formed XML: {exc}.") from None
    return [xml] if isinstance(xml, TestSuite) else list(xml)


def fold_junit(shards: list[tuple[str, list[TestSuite]]], problems: list[tuple[str, str]]) -> JUnitXml:
    """One JUnit document: every shard's suites, then the merge's problems as errors."""
    merged = JUnitXml("pgbv merged shards")
    for _, suites in shards:
        for suite in suites:
            merged.add_testsuite(suite)
    if problems:
        suite = TestSuite("pgbv-merge")
        for subject, text in problems:
            case = TestCase(name=subject, classname="pgbv-merge")
            case.result = [Error(message=f"no verdict: {text}", type_="no verdict")]
            suite.add_testcase(case)
        suite.update_statistics()
        merged.add_testsuite(suite)
    merged.update_statistics()
    return merged


def repeated_cases(shards: list[tuple[str, list[TestSuite]]]) -> list[tuple[str, str]]:
    """(test, where) for each test case found in more than one shard's JUnit, by its address."""
    seen: dict[tuple[str, str], str] = {}
    repeated = []
    for label, suites in shards:
        for suite in suites:
            for case in suite:
                key = (case.classname or "", without_group(case.name or ""))
                if key in seen:
                    repeated.append((f"{key[0]}::{key[1]}", f"in the JUnit of {seen[key]} and of {label}"))
                else:
                    seen[key] = label
    return repeated


def failed_cases(shards: list[tuple[str, list[TestSuite]]]) -> list[tuple[str, str]]:
    """(classname, name) of every test case that failed or errored."""
    return [(case.classname or "", without_group(case.name or "")) for _, suites in shards for suite in suites
            for case in suite if any(isinstance(result, (Error, Failure)) for result in case.result)]
