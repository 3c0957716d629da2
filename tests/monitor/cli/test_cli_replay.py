"""`monitor replay` in this process (click's CliRunner): records, formats, summaries, exact messages,
output paths a user can get wrong. The few behaviours that need a real process are in test_cli_process.py."""

from __future__ import annotations

import json
import time

from click.testing import CliRunner

from monitor.cli import main
from streams.sample import sample_path
from streams.ward import Ward

SUMMARY_KEYS = {"readings", "accuracy", "log_loss", "roc_auc", "precision", "recall", "flags", "tp", "fp", "tn",
                "fn", "learn", "threshold", "steps", "skipped_steps", "normaliser_skipped", "nan_scores",
                "final_loss", "network", "episodes", "alert_after", "alert_clear", "rejected", "header_lines", "interrupted",
                "elapsed_s", "readings_per_s", "source", "seed"}


def replay(*args: str, input: bytes | None = None):
    return CliRunner().invoke(main, ["replay", *args], input=input)


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def small_csv(tmp_path, values, n: int = 300):
    """The first n of the seeded readings, as t,hr (a run whose behaviour does not need size)."""
    p = tmp_path / f"small{n}.csv"
    p.write_text("t,hr\n" + "".join(f"{i * 0.5},{v!r}\n" for i, v in enumerate(values[:n].tolist())))
    return p


def sample_copy(tmp_path):
    p = tmp_path / "hr.csv"
    p.write_bytes(sample_path().read_bytes())
    return p


# -- records ----------------------------------------------------------------------------------------

def test_three_readings_on_stdin_give_three_records():
    res = replay("-", input=b"80\n95\n88\n")
    assert res.exit_code == 0, res.stderr
    recs = records(res.stdout)
    assert [r["value"] for r in recs] == [80.0, 95.0, 88.0]
    assert [r["label"] for r in recs] == [0, 1, 0]
    assert [r["time"] for r in recs] == [0.0, 1.0, 2.0]
    assert set(recs[0]) == {"time", "value", "label", "p_abnormal", "flag"}


def test_piped_stdin_is_read_when_no_file_is_given():
    res = CliRunner().invoke(main, ["replay"], input=b"80\n95\n")
    assert res.exit_code == 0, res.stderr
    assert [r["value"] for r in records(res.stdout)] == [80.0, 95.0]


def test_csv_file_with_summary_json(hr_csv, tmp_path):
    summary, out = tmp_path / "s.json", tmp_path / "out.jsonl"
    res = replay(str(hr_csv), "--out", str(out), "--summary-json", str(summary))
    assert res.exit_code == 0, res.stderr
    s = json.loads(summary.read_text())
    assert set(s) == SUMMARY_KEYS
    # the seeded run as measured (issue 13's default network): 1,000 readings, 3 wrong (1 false flag, 2 missed)
    assert (s["readings"], s["rejected"], s["header_lines"], s["flags"]) == (1000, 0, 1, 384)
    assert (s["tp"], s["fp"], s["tn"], s["fn"]) == (383, 1, 614, 2) and s["accuracy"] == 0.997
    assert (s["steps"], s["skipped_steps"], s["nan_scores"], s["episodes"]) == (1120, 0, 0, 0)
    assert s["network"] == "RunningNormaliser -> BatchRenorm1d(1) -> Linear(1, 16) -> ReLU -> Linear(16, 1)"
    assert s["source"] == str(hr_csv) and s["seed"] == 0 and s["interrupted"] is False
    assert len(out.read_text().splitlines()) == 1000
    assert res.stderr.startswith("monitor: reading column 'hr', time column 't'\n"
                                 "monitor: readings 1000  rejected 0  flags 384  (")
    assert "monitor: accuracy 0.9970  log loss 0.0076  ROC AUC 1.0000  precision 0.9974  recall 0.9948\n" in res.stderr


def test_same_seed_gives_byte_identical_output(tmp_path, hr_values):
    path = small_csv(tmp_path, hr_values)
    a, b, c = (replay(str(path), "--seed", seed).stdout_bytes for seed in ("3", "3", "4"))
    assert a == b and a != c and a.count(b"\n") == 300


def test_csv_and_table_formats(tmp_path, hr_values):
    path = small_csv(tmp_path, hr_values, 100)
    csv_out = replay(str(path), "--format", "csv").stdout.splitlines()
    assert csv_out[0] == "time,value,label,p_abnormal,flag" and len(csv_out) == 101
    res = replay(str(path), "--format", "table")  # not a terminal: no colour, no progress bar
    table = res.stdout.splitlines()
    assert table[0].split() == ["line", "time", "value", "label", "p_abnormal", "flag"]
    assert len(table) == 101 and "\x1b[" not in res.stdout and "%|" not in res.stderr


def test_shipped_sample_in_one_pass(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # writes nothing but what it is asked to
    summary = tmp_path / "s.json"
    res = replay("--stream", "sample", "--out", "o.jsonl", "--summary-json", str(summary))
    assert res.exit_code == 0, res.stderr
    s = json.loads(summary.read_text())
    # measured on the seeded run (docs/learning.md): 4 of 1,800 wrong, 0.9978
    assert (s["readings"], s["flags"], s["tp"], s["fp"], s["tn"], s["fn"]) == (1800, 1051, 1050, 1, 746, 3)
    assert s["accuracy"] == 1796 / 1800 and s["steps"] == 1280 and s["episodes"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.jsonl", "s.json"]


def test_circles_sanity_check_passes_with_defaults(tmp_path):
    res = replay("--stream", "circles", "--out", str(tmp_path / "c.jsonl"))
    assert res.exit_code == 0, res.stderr
    assert "monitor: circles sanity check passed: accuracy over the second half 0.9998\n" in res.stderr


# (the circles check failing, exit 1: test_cli_exit.py)


def test_speed_paces_by_the_time_column(tmp_path):
    path = tmp_path / "paced.csv"
    path.write_text("t,hr\n0,80\n0.5,95\n1.0,88\n1.5,90\n")
    start = time.perf_counter()
    res = replay(str(path), "--speed", "2", "--quiet")
    took = time.perf_counter() - start
    assert res.exit_code == 0 and [r["value"] for r in records(res.stdout)] == [80.0, 95.0, 88.0, 90.0]
    assert took >= 0.75  # 1.5 s of stream at twice real time


# -- bad input and usage: one line, exit 2 ------------------------------------------------------------

def test_missing_file_is_one_line_and_exit_2(tmp_path):
    res = replay(str(tmp_path / "nope.csv"))
    assert res.exit_code == 2
    assert res.stderr == f"Error: no such file: {tmp_path / 'nope.csv'}\n"


def test_missing_column_is_one_line_and_exit_2(hr_csv):
    res = replay(str(hr_csv), "--column", "pulse")
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("Error: ") and "'pulse'" in res.stderr


def test_empty_file_is_one_line_and_exit_2(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    res = replay(str(empty))
    assert res.exit_code == 2
    assert res.stderr == f"Error: {empty} is empty\n"


def test_bad_lines_are_skipped_counted_and_named(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("t,hr\n0,80\n0.5,abc\n1,\n1.5,nan\n2,95,7\n2.5,inf\n3,88\n")
    summary = tmp_path / "s.json"
    res = replay(str(path), "--summary-json", str(summary))
    assert res.exit_code == 0
    s = json.loads(summary.read_text())
    assert (s["readings"], s["rejected"], s["header_lines"]) == (2, 5, 1)
    assert [r["value"] for r in records(res.stdout)] == [80.0, 88.0]
    assert "monitor: line 3 rejected: not a number: 'abc'\n" in res.stderr
    assert "monitor: line 7 rejected" in res.stderr


def test_file_and_stream_together_is_a_usage_error():
    res = replay("--stream", "circles", "x.csv")
    assert res.exit_code == 2
    assert "give either FILE (x.csv) or --stream circles, not both" in res.stderr


# -- output paths ---------------------------------------------------------------------------------------

def test_out_equal_to_the_input_is_refused_and_the_input_kept(tmp_path):
    p = sample_copy(tmp_path)
    before = p.read_bytes()
    res = replay(str(p), "--out", str(p), "-q")
    assert res.exit_code == 2 and "is the input file" in res.output
    assert p.read_bytes() == before


def test_two_outputs_on_one_file_are_refused(tmp_path):
    p = sample_copy(tmp_path)
    res = replay(str(p), "--out", str(tmp_path / "o.jsonl"), "--alerts", str(tmp_path / "o.jsonl"), "-q")
    assert res.exit_code == 2 and "--out and --alerts are the same file" in res.output


def test_an_output_in_a_missing_directory_is_refused_before_the_run(tmp_path):
    p = sample_copy(tmp_path)
    res = replay(str(p), "--out", str(tmp_path / "o.jsonl"), "--summary-json", str(tmp_path / "no" / "s.json"), "-q")
    assert res.exit_code == 2 and "no directory" in res.output
    assert not (tmp_path / "o.jsonl").exists()


def test_state_with_out_to_dev_null_writes_its_checkpoint(tmp_path, hr_values):
    p = small_csv(tmp_path, hr_values)
    state = tmp_path / "s.pt"
    res = replay(str(p), "--out", "/dev/null", "--state", str(state), "--checkpoint-every", "100", "-q")
    assert res.exit_code == 0, res.output
    assert state.exists()
    again = replay(str(p), "--out", "/dev/null", "--state", str(state), "--summary-json", str(tmp_path / "s.json"),
                   "-q")
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "s.json").read_text())["readings"] == 300


def test_a_keyed_checkpoint_on_an_unkeyed_file_is_one_line(tmp_path, hr_values):
    keyed = tmp_path / "ward.csv"
    keyed.write_text("t,patient,hr\n" + "".join(f"{i},{'AB'[i % 2]},{80 + i % 20}\n" for i in range(200)))
    state = tmp_path / "k.pt"
    assert replay(str(keyed), "--out", str(tmp_path / "a.jsonl"), "--state", str(state), "-q").exit_code == 0
    res = replay(str(small_csv(tmp_path, hr_values, 50)), "--no-learn", "--state", str(state), "--out", str(tmp_path / "b.jsonl"),
                 "-q")
    assert res.exit_code == 2 and "does not fit this input" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_episodes_of_evicted_keys_still_count_in_the_summary(tmp_path):
    rows = []
    for j, key in enumerate("ABCD"):  # A has a tachycardia run; then B, C, D push it out of 2 slots
        for i in range(400):
            hr = 120 if key == "A" and 100 <= i < 200 else 70
            rows.append(f"{j * 400 + i},{key},{hr}\n")
    p = tmp_path / "ev.csv"
    p.write_text("t,patient,hr\n" + "".join(rows))
    alerts, summary = tmp_path / "a.jsonl", tmp_path / "s.json"
    res = replay(str(p), "--out", str(tmp_path / "o.jsonl"), "--alerts", str(alerts), "--summary-json",
                 str(summary), "--max-keys", "2", "--alert-after", "10", "--alert-clear", "10", "-q")
    assert res.exit_code == 0, res.output
    events = [json.loads(ln) for ln in alerts.read_text().splitlines()]
    s = json.loads(summary.read_text())
    # A's one episode opens, closes when A is normal again, and A is evicted later (by C, then B by D)
    assert [(e["key"], e["event"]) for e in events] == [("A", "open"), ("A", "close")]
    assert (s["evicted_keys"], s["keys_held"], s["episodes"]) == (2, 2, 1)


# -- keyed streams --------------------------------------------------------------------------------------

def test_cli_ward_alerts_only_and_file(tmp_path):
    alerts, summary = tmp_path / "alerts.jsonl", tmp_path / "s.json"
    r = CliRunner().invoke(main, ["replay", "--stream", "ward", "--patients", "12", "--n", "30", "--alert-after", "12",
                                  "--alert-clear", "1m", "--alerts", str(alerts), "--alerts-only", "--summary-json",
                                  str(summary), "-q"])
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines and alerts.read_text().splitlines() == lines
    recs = [json.loads(ln) for ln in lines]
    assert {e["event"] for e in recs} <= {"open", "close"} and all({"key", "start", "end", "peak", "mean"} <= set(e) for e in recs)
    s = json.loads(summary.read_text())
    assert s["alert_after"] == "12" and len(s["keys"]) == 12 and s["episodes"] == sum(e["event"] == "open" for e in recs)


def test_cli_picks_the_patient_column_and_records_carry_the_key(tmp_path):
    path = tmp_path / "ward.csv"
    Ward(patients=3, minutes=5, seed=1).to_csv(path)
    r = CliRunner().invoke(main, ["replay", str(path), "--summary-json", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.stderr
    assert "key column 'patient'" in r.stderr
    recs = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert len(recs) == 180 and {rec["key"] for rec in recs} == {"P000", "P001", "P002"}
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["key_model"] == "shared" and sum(k["readings"] for k in s["keys"].values()) == 180


def test_cli_bad_alert_span_is_a_one_line_error():
    r = CliRunner().invoke(main, ["replay", "--stream", "ward", "--alert-after", "10x"])
    assert r.exit_code == 2
    err = r.stderr.strip().splitlines()
    assert "--alert-after" in err[-1] and "10x" in err[-1]
