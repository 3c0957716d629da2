"""Output paths a user can get wrong, and outputs that are not regular files: one line, exit 2, or it works."""

from __future__ import annotations

import json

from click.testing import CliRunner

from monitor.cli import main
from streams.sample import sample_path


def run(*args):
    return CliRunner().invoke(main, ["replay", *args, "-q"])


def sample_copy(tmp_path):
    p = tmp_path / "hr.csv"
    p.write_bytes(sample_path().read_bytes())
    return p


def test_out_equal_to_the_input_is_refused_and_the_input_kept(tmp_path):
    p = sample_copy(tmp_path)
    before = p.read_bytes()
    res = run(str(p), "--out", str(p))
    assert res.exit_code == 2 and "is the input file" in res.output
    assert p.read_bytes() == before


def test_two_outputs_on_one_file_are_refused(tmp_path):
    p = sample_copy(tmp_path)
    res = run(str(p), "--out", str(tmp_path / "o.jsonl"), "--alerts", str(tmp_path / "o.jsonl"))
    assert res.exit_code == 2 and "--out and --alerts are the same file" in res.output


def test_an_output_in_a_missing_directory_is_refused_before_the_run(tmp_path):
    p = sample_copy(tmp_path)
    res = run(str(p), "--out", str(tmp_path / "o.jsonl"), "--summary-json", str(tmp_path / "no" / "s.json"))
    assert res.exit_code == 2 and "no directory" in res.output
    assert not (tmp_path / "o.jsonl").exists()


def test_state_with_out_to_dev_null_writes_its_checkpoint(tmp_path):
    p = sample_copy(tmp_path)
    state = tmp_path / "s.pt"
    res = run(str(p), "--out", "/dev/null", "--state", str(state), "--checkpoint-every", "500")
    assert res.exit_code == 0, res.output
    assert state.exists()
    again = run(str(p), "--out", "/dev/null", "--state", str(state), "--summary-json", str(tmp_path / "s.json"))
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "s.json").read_text())["readings"] == 1800


def test_a_keyed_checkpoint_on_an_unkeyed_file_is_one_line(tmp_path):
    keyed = tmp_path / "ward.csv"
    keyed.write_text("t,patient,hr\n" + "".join(f"{i},{'AB'[i % 2]},{80 + i % 20}\n" for i in range(200)))
    state = tmp_path / "k.pt"
    assert run(str(keyed), "--out", str(tmp_path / "a.jsonl"), "--state", str(state)).exit_code == 0
    res = run(str(sample_copy(tmp_path)), "--no-learn", "--state", str(state), "--out", str(tmp_path / "b.jsonl"))
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
    res = run(str(p), "--out", str(tmp_path / "o.jsonl"), "--alerts", str(alerts), "--summary-json",
              str(summary), "--max-keys", "2", "--alert-after", "10", "--alert-clear", "10")
    assert res.exit_code == 0, res.output
    opened = [json.loads(ln) for ln in alerts.read_text().splitlines() if json.loads(ln)["event"] == "open"]
    s = json.loads(summary.read_text())
    assert s["evicted_keys"] >= 1 and len(opened) >= 1
    assert s["episodes"] == len(opened)
