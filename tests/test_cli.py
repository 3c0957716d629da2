"""The `monitor` command as a user runs it: real processes, real pipes, exact messages."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from monitor.cli import main
from tests.conftest import ROOT, run_monitor


def records(stdout: bytes) -> list[dict]:
    return [json.loads(line) for line in stdout.decode().splitlines()]


def test_help_lists_replay_and_is_light():
    res = run_monitor("--help")
    assert res.returncode == 0 and b"replay" in res.stdout
    code = "import sys, monitor.cli; print('torch' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "False"]


def test_three_readings_on_stdin_give_three_records():
    res = run_monitor("replay", "-", input=b"80\n95\n88\n")
    assert res.returncode == 0, res.stderr
    recs = records(res.stdout)
    assert [r["value"] for r in recs] == [80.0, 95.0, 88.0]
    assert [r["label"] for r in recs] == [0, 1, 0]
    assert set(recs[0]) == {"time", "value", "label", "p_abnormal", "flag"}


def test_piped_stdin_is_read_when_no_file_is_given():
    res = run_monitor("replay", input=b"80\n95\n")
    assert res.returncode == 0, res.stderr
    assert len(records(res.stdout)) == 2


def test_each_live_record_arrives_before_the_next_line_is_written():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "replay", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        for i, value in enumerate([80, 95, 88, 101, 70]):
            proc.stdin.write(f"{value}\n".encode())
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], 60 if i == 0 else 10)
            assert ready, f"no record for reading {i} while its line was the last one written"
            rec = json.loads(proc.stdout.readline())
            assert rec["value"] == value
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()


def test_csv_file_with_summary_json(hr_csv, tmp_path):
    summary = tmp_path / "s.json"
    out = tmp_path / "out.jsonl"
    res = run_monitor("replay", str(hr_csv), "--out", str(out), "--summary-json", str(summary))
    assert res.returncode == 0, res.stderr
    s = json.loads(summary.read_text())
    for key in ("readings", "rejected", "accuracy", "log_loss", "roc_auc", "flags", "elapsed_s"):
        assert key in s
    assert s["readings"] == 1000 and s["rejected"] == 0
    assert len(out.read_text().splitlines()) == 1000
    assert b"reading column 'hr'" in res.stderr and b"accuracy" in res.stderr


def test_same_seed_gives_byte_identical_output(hr_csv):
    a = run_monitor("replay", str(hr_csv), "--seed", "3").stdout
    b = run_monitor("replay", str(hr_csv), "--seed", "3").stdout
    c = run_monitor("replay", str(hr_csv), "--seed", "4").stdout
    assert a == b and a != c


def test_csv_and_table_formats(hr_csv):
    csv_out = run_monitor("replay", str(hr_csv), "--format", "csv").stdout.decode().splitlines()
    assert csv_out[0] == "time,value,label,p_abnormal,flag" and len(csv_out) == 1001
    table = run_monitor("replay", str(hr_csv), "--format", "table").stdout.decode().splitlines()
    assert table[0].split() == ["line", "time", "value", "label", "p_abnormal", "flag"]
    assert len(table) == 1001 and "\x1b[" not in "".join(table)


def test_shipped_sample_reaches_097_in_one_pass(tmp_path):
    summary = tmp_path / "s.json"
    res = run_monitor("replay", "--stream", "sample", "--out", str(tmp_path / "o.jsonl"),
                      "--summary-json", str(summary), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    s = json.loads(summary.read_text())
    assert s["readings"] == 1800
    assert s["accuracy"] >= 0.97


def test_circles_sanity_check_passes_with_defaults(tmp_path):
    res = run_monitor("replay", "--stream", "circles", "--out", str(tmp_path / "c.jsonl"))
    assert res.returncode == 0, res.stderr
    assert b"circles sanity check passed" in res.stderr


def test_circles_sanity_check_fails_loudly_when_it_cannot_learn(tmp_path):
    res = run_monitor("replay", "--stream", "circles", "--lr", "1e-7", "--out", str(tmp_path / "c.jsonl"))
    assert res.returncode == 1
    assert b"circles sanity check failed: accuracy over the second half" in res.stderr


def test_missing_file_is_one_line_and_exit_2(tmp_path):
    res = run_monitor("replay", str(tmp_path / "nope.csv"))
    assert res.returncode == 2
    assert res.stderr.decode().strip() == f"Error: no such file: {tmp_path / 'nope.csv'}"


def test_missing_column_is_one_line_and_exit_2(hr_csv):
    res = run_monitor("replay", str(hr_csv), "--column", "pulse")
    assert res.returncode == 2
    lines = res.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "pulse" in lines[0] and "Traceback" not in lines[0]


def test_empty_file_is_one_line_and_exit_2(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    res = run_monitor("replay", str(empty))
    assert res.returncode == 2
    assert res.stderr.decode().strip() == f"Error: {empty} is empty"


def test_bad_lines_are_skipped_counted_and_named(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("t,hr\n0,80\n0.5,abc\n1,\n1.5,nan\n2,95,7\n2.5,inf\n3,88\n")
    summary = tmp_path / "s.json"
    res = run_monitor("replay", str(path), "--summary-json", str(summary))
    assert res.returncode == 0
    s = json.loads(summary.read_text())
    assert (s["readings"], s["rejected"]) == (2, 5)
    err = res.stderr.decode()
    assert "line 3 rejected" in err and "line 7 rejected" in err


def test_no_input_on_a_terminal_is_a_usage_error():
    res = CliRunner().invoke(main, ["replay", "--stream", "circles", "x.csv"])
    assert res.exit_code == 2
    assert "give either FILE (x.csv) or --stream circles, not both" in res.output


def test_python_dash_m_and_broken_pipe_are_quiet(tmp_path):
    big = tmp_path / "big.csv"
    big.write_text("hr\n" + "\n".join(["80", "95"] * 50_000) + "\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run(f"{sys.executable} -m monitor replay {big} | head -n 2", shell=True,
                         capture_output=True, env=env, timeout=120)
    assert len(res.stdout.splitlines()) == 2
    assert b"Traceback" not in res.stderr and b"Error" not in res.stderr


def test_speed_paces_by_the_time_column(tmp_path):
    path = tmp_path / "paced.csv"
    path.write_text("t,hr\n0,80\n0.5,95\n1.0,88\n1.5,90\n")
    start = time.perf_counter()
    res = run_monitor("replay", str(path), "--speed", "2", "--quiet")
    took = time.perf_counter() - start
    assert res.returncode == 0 and len(records(res.stdout)) == 4
    assert took >= 0.75  # 1.5 s of stream at twice real time
