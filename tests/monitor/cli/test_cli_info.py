"""`monitor info` in this process (click's CliRunner): the report, --json, errors."""

from __future__ import annotations

import json

from click.testing import CliRunner

from monitor.cli import main


def test_info_on_csv_and_json(tmp_path):
    path = tmp_path / "hr.csv"
    path.write_text("time,pulse\n1711954800,80\n1711954805,95\nbad,90\n1711954810,85\n")
    res = CliRunner().invoke(main, ["info", str(path)])
    assert res.exit_code == 0
    assert "format          csv\n" in res.stdout
    assert "reading column 'pulse', time column 'time'" in res.stdout
    assert "readings        3  (1 rejected, 1 header line)" in res.stdout
    assert "2024-04-01 07:00:00 UTC .. 2024-04-01 07:00:10 UTC  (span 10 s)" in res.stdout
    assert "above 91 bpm    33.3%  (1 of 3)" in res.stdout
    res = CliRunner().invoke(main, ["info", str(path), "--json", "--threshold", "82"])
    d = json.loads(res.stdout)
    assert d["readings"] == 3 and d["mean"] == 260 / 3 and d["above_threshold"] == 2 / 3
    assert d["first_rejects"] == [[4, "not a time: 'bad'"]]


def test_without_a_time_column_the_times_are_reading_indices_not_a_span_in_seconds(tmp_path):
    path = tmp_path / "hr.csv"
    path.write_text("hr\n" + "80\n" * 200_000)  # 200,000 readings: not "2.3 days"
    res = CliRunner().invoke(main, ["info", str(path)])
    assert res.exit_code == 0
    assert "time            reading index 0 .. 199999  (no time column)\n" in res.stdout
    d = json.loads(CliRunner().invoke(main, ["info", str(path), "--json"]).stdout)
    assert d["time_is_index"] is True and (d["time_first"], d["time_last"]) == (0, 199_999)
    path.write_text("t,hr\n0,80\n0.5,81\n")
    assert json.loads(CliRunner().invoke(main, ["info", str(path), "--json"]).stdout)["time_is_index"] is False


def test_info_on_a_missing_file_is_one_line():
    res = CliRunner().invoke(main, ["info", "/nonexistent/nope.csv"])
    assert res.exit_code == 2 and res.stderr == "Error: no such file: /nonexistent/nope.csv\n"
