"""The exit statuses of `monitor` (monitor.errors, README "Exit status"), in this process, and the
options an input does not use, refused in one line. A runtime failure (1, an output that fills up)
is in test_output_errors.py; signals (130, 143) need a real process: see test_resume.py and
test_output_errors.py."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.errors import EXIT_FAILED, EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, EXIT_USAGE, MonitorError, RuntimeFailure


def replay(*args: str, input: bytes | None = None):
    return CliRunner().invoke(main, ["replay", *args], input=input)


def test_the_written_down_statuses():
    assert (EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM) == (0, 1, 2, 130, 143)
    assert issubclass(RuntimeFailure, MonitorError)  # one domain error type, two statuses


def test_done_is_0():
    res = replay("-", "-q", input=b"80\n95\n")
    assert res.exit_code == 0 and res.stderr == ""


def test_a_failed_check_is_1(tmp_path):
    res = replay("--stream", "circles", "--n", "100", "--lr", "1e-7", "-q", "--out", str(tmp_path / "c.jsonl"))
    assert res.exit_code == 1
    assert res.stderr == "monitor: circles sanity check failed: accuracy over the second half 0.52 < 0.99\n"


def test_an_input_error_is_2_in_one_line(tmp_path):
    res = replay(str(tmp_path / "missing.csv"))
    assert res.exit_code == 2 and res.stderr == f"Error: no such file: {tmp_path / 'missing.csv'}\n"


def test_a_control_character_from_the_data_is_escaped_in_the_message(tmp_path):
    res = replay(str(tmp_path / "a\x1bb.csv"))
    assert res.exit_code == 2 and res.stderr == f"Error: no such file: {tmp_path}/a\\x1bb.csv\n"


@pytest.mark.parametrize("args, flag", [
    (["--format", "csv"], "--format"), (["--rejects", "r.jsonl"], "--rejects"), (["--strict"], "--strict"),
    (["--no-learn"], "--no-learn"), (["--speed", "1"], "--speed"), (["--plot", "p.png"], "--plot"),
    (["--column", "hr"], "--column"), (["--time-column", "t"], "--time-column"),
    (["--label-column", "y"], "--label-column"), (["--key", "who"], "--key-column"),
    (["--format-in", "csv"], "--format-in"), (["--min", "30"], "--min"), (["--no-range-check"], "--no-range-check"),
    (["--max-line-bytes", "100"], "--max-line-bytes"), (["--patients", "3"], "--patients"),
])
def test_options_a_redis_input_does_not_use_are_refused(args, flag):
    # refused before any connection: the port is never tried
    res = replay("redis://127.0.0.1:1/ward", *args)
    assert res.exit_code == 2
    assert res.stderr == (f"Error: {flag} does not apply to a redis:// input (it reads readings, keys and "
                          "labels as published)\n")


def test_until_idle_is_refused_for_a_file(hr_csv):
    res = replay(str(hr_csv), "--until-idle")
    assert res.exit_code == 2
    assert res.stderr == "Error: --until-idle is for a redis:// input, not a file, standard input or a built-in stream\n"


@pytest.mark.parametrize("args, message", [
    (["--n", "100"], "--n applies to --stream circles or synthetic or ward only"),
    (["--patients", "3"], "--patients applies to --stream ward only"),
])
def test_generated_stream_sizes_are_refused_for_a_file(hr_csv, args, message):
    res = replay(str(hr_csv), *args)
    assert res.exit_code == 2 and res.stderr == f"Error: {message}\n"


def test_options_given_at_their_default_value_are_still_refused(hr_csv):
    res = replay("redis://127.0.0.1:1/ward", "--speed", "0")
    assert res.exit_code == 2 and res.stderr.startswith("Error: --speed does not apply")
