"""A pytest plugin that says how many seconds of CPU each test file took (for conftest's HEAVIEST_FIRST).

Opt in: ``python -m pytest -q -n auto --dist loadfile -p tests.cpu_per_file``. CPU is the test
process's own plus that of the child processes it waited for, around each test (setup, call and
teardown); with xdist each worker measures its files and the controller prints the 30 heaviest at
the end of the run.
"""

from __future__ import annotations

import collections
import resource

import pytest

_STASH = "cpu_per_file"
SHOWN = 30  # files listed; the rest are summed on one line


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def pytest_configure(config) -> None:
    config._cpu_per_file = collections.Counter()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = _cpu()
    yield
    item.config._cpu_per_file[item.nodeid.split("::")[0]] += _cpu() - start


def pytest_sessionfinish(session) -> None:
    if hasattr(session.config, "workeroutput"):  # an xdist worker: hand the counts to the controller
        session.config.workeroutput[_STASH] = dict(session.config._cpu_per_file)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:  # xdist's controller, as each worker ends
    node.config._cpu_per_file.update(getattr(node, "workeroutput", {}).get(_STASH, {}))


def pytest_terminal_summary(terminalreporter) -> None:
    counts = terminalreporter.config._cpu_per_file
    terminalreporter.write_sep("-", f"CPU per test file ({sum(counts.values()):.1f} s in tests)")
    ranked = counts.most_common()
    for path, seconds in ranked[:SHOWN]:
        terminalreporter.write_line(f"{seconds:7.1f} s  {path}")
    if len(ranked) > SHOWN:
        rest = sum(seconds for _, seconds in ranked[SHOWN:])
        terminalreporter.write_line(f"{rest:7.1f} s  the other {len(ranked) - SHOWN} files")
