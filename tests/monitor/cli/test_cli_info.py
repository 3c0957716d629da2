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


def test_info_on_a_missing_file_is_one_line():
    res = CliRunner().invoke(main, ["info", "/nonexistent/nope.csv"])
    assert res.exit_code == 2 and res.stderr == "Error: no such file: /nonexistent/nope.csv\n"
