"""The `monitor` group in this process (click's CliRunner): --version, help texts, shell completion,
commands registered. One file per command: test_cli_replay.py, test_cli_info.py; real processes in
test_cli_process.py."""

from __future__ import annotations

import tomllib

from click.testing import CliRunner

from monitor import __version__
from monitor.cli import main
from tests.conftest import ROOT


def test_version_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert __version__ == project["version"]
    res = CliRunner().invoke(main, ["--version"])
    assert res.exit_code == 0 and res.stdout == f"monitor {project['version']}\n"


def test_every_command_is_registered():
    assert sorted(main.commands) == ["ablate", "dashboard", "info", "publish", "replay", "serve"]
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0
    listed = res.stdout.split("Commands:\n")[1].split()
    assert [w for w in listed if w in main.commands] == ["ablate", "dashboard", "info", "publish", "replay", "serve"]


def test_help_has_examples():
    for args in ([], ["replay"], ["info"], ["ablate"], ["publish"], ["serve"], ["dashboard"]):
        res = CliRunner().invoke(main, [*args, "--help"])
        assert res.exit_code == 0 and "Examples:" in res.stdout and "monitor " in res.stdout, args
    assert CliRunner().invoke(main, ["replay", "-h"]).stdout == CliRunner().invoke(main, ["replay", "--help"]).stdout


def test_bash_completion_script_and_completions():
    res = CliRunner().invoke(main, [], prog_name="monitor", env={"_MONITOR_COMPLETE": "bash_source"})
    assert res.exit_code == 0 and "_monitor_completion()" in res.stdout
    res = CliRunner().invoke(main, [], prog_name="monitor", env={
        "_MONITOR_COMPLETE": "bash_complete", "COMP_WORDS": "monitor re", "COMP_CWORD": "1"})
    assert res.stdout.split() == ["plain,replay"]


def test_unknown_command_is_a_usage_error():
    res = CliRunner().invoke(main, ["replya"])
    assert res.exit_code == 2 and "No such command 'replya'" in res.stderr
