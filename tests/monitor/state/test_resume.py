"""Checkpoints and resume: state round trips, safe loading, refusals, SIGKILL at seeded points, signals."""

from __future__ import annotations

import json
import os
import pickle
import signal
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from models.learner import LearnerConfig, OnlineLearner
from models.manual_step import ManualStepLearner  # the learner the monitor runs (its TorchScript steps)
from monitor.state.checkpoint import Checkpoint, CheckpointError, write_atomic
from monitor.cli import main
from monitor.core.monitor import Monitor
from streams import Batch, CsvReplay
from tests.conftest import ROOT
from tests.forked import ForkedCli


def hr_file(path, n=300, seed=1, bad=True):
    """n readings (plus, with bad, a few bad lines of several kinds), with a header; returns the path."""
    rng = np.random.default_rng(seed)
    lines = [f"{i * 0.5},{v:.2f}" for i, v in enumerate(90 + 6 * rng.standard_normal(n))]
    if bad:
        for at, text in [(17, "8.6,abc"), (60, ""), (61, "t,hr"), (140, "70.1,999"), (200, "99,nan")]:
            lines.insert(at, text)
    path.write_text("t,hr\n" + "\n".join(lines) + "\n")
    return path


def cli(*args: str) -> int:
    """Run the CLI in this process (torch is already imported): fast, same code path."""
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return res.exit_code


def in_child(args: list[str], kill: str | None = None) -> int:
    """Run the CLI in a forked child (SIGKILLed by the test hook at `kill`); its wait status."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            if kill:
                os.environ["MONITOR_TEST_KILL"] = kill
            else:
                os.environ.pop("MONITOR_TEST_KILL", None)
            code = CliRunner().invoke(main, args).exit_code
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return status


def states_equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and bool((a == b).all() | (a.isnan() & b.isnan()).all())
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(states_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(states_equal(x, y) for x, y in zip(a, b))
    return a == b


# -- state round trips --------------------------------------------------------------------------

def test_learner_state_dict_continues_exactly(hr_values):
    x, y = hr_values.reshape(-1, 1), (hr_values > 91).astype(float)
    whole = ManualStepLearner(LearnerConfig(), seed=3)
    whole.learn_many(x, y)
    first = ManualStepLearner(LearnerConfig(), seed=3)
    first.learn_many(x[:437], y[:437])  # mid mini-batch: pending buffer, replay ring and rng in use
    state = first.state_dict()
    second = ManualStepLearner(LearnerConfig(), seed=99)  # another seed: everything comes from the state
    second.load_state_dict(state)
    second.learn_many(x[437:], y[437:])
    a, b = whole.state_dict(), second.state_dict()
    assert (a.pop("seed"), b.pop("seed")) == (3, 99)  # the constructor's seed is not state
    assert states_equal(a, b)
    assert np.array_equal(whole.predict_proba_many(x), second.predict_proba_many(x))


def test_learner_refuses_a_state_of_another_config():
    state = OnlineLearner(LearnerConfig(hidden=8)).state_dict()
    with pytest.raises(ValueError, match="hidden saved 8, now 16"):
        OnlineLearner(LearnerConfig(hidden=16)).load_state_dict(state)


def test_csv_replay_resumes_at_every_batch_position(tmp_path):
    path = hr_file(tmp_path / "hr.csv", n=120)
    whole = list(CsvReplay(path, max_lines=7))
    assert len(whole) > 10
    for k, b in enumerate(whole):
        rest = list(CsvReplay(path, resume=b.position, max_lines=7))
        got = [bb.line.tolist() for bb in rest], [bb.x.ravel().tolist() for bb in rest]
        want = [bb.line.tolist() for bb in whole[k + 1:]], [bb.x.ravel().tolist() for bb in whole[k + 1:]]
        assert got == want
        assert sum(len(bb.rejected) for bb in rest) == sum(len(bb.rejected) for bb in whole[k + 1:])


def test_write_atomic_keeps_the_old_file_when_interrupted(tmp_path):
    path = tmp_path / "s.pt"
    write_atomic(path, {"a": 1})

    def crash():
        raise OSError("disk gone")
    with pytest.raises(OSError):
        write_atomic(path, {"a": 2}, before_rename=crash)
    assert torch.load(path, weights_only=True) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["s.pt"]


# -- refusals -----------------------------------------------------------------------------------

class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["torch.save", "plain pickle"])
def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, how):
    marker, state, data = tmp_path / "pwned", tmp_path / "s.pt", hr_file(tmp_path / "hr.csv", n=20)
    payload = {"format": "monitor-checkpoint", "version": 1, "monitor": _RunsCode(marker)}
    if how == "torch.save":
        torch.save(payload, state)
    else:
        state.write_bytes(pickle.dumps(payload))
    res = CliRunner().invoke(main, ["replay", str(data), "--state", str(state), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert f"Error: refused to load checkpoint {state}: it holds Python objects that could run code" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not marker.exists()


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    state, data = tmp_path / "s.pt", hr_file(tmp_path / "hr.csv", n=20)
    state.write_bytes(b"hello")
    res = CliRunner().invoke(main, ["replay", str(data), "--state", str(state)])
    assert res.exit_code == 2 and f"cannot read checkpoint {state}: not a monitor checkpoint" in res.output


def test_a_checkpoint_of_another_configuration_is_refused_naming_the_differences(tmp_path):
    state, data, out = tmp_path / "s.pt", hr_file(tmp_path / "hr.csv", n=40), tmp_path / "o.jsonl"
    assert cli("replay", str(data), "--state", str(state), "--out", str(out), "--hidden", "8") == 0
    res = CliRunner().invoke(main, ["replay", str(data), "--state", str(state), "--out", str(out),
                                    "--threshold", "95"])
    assert res.exit_code == 2
    assert "was saved with other options: hidden 8 (now 16), threshold 91.0 (now 95.0)" in res.output


# -- SIGKILL at seeded points, then resume ---------------------------------------------------------

def test_sigkill_at_ten_seeded_points_then_resume_equals_an_uninterrupted_run(tmp_path):
    data = hr_file(tmp_path / "hr.csv", n=200)

    def args(tag):
        return ["replay", str(data), "--out", str(tmp_path / f"{tag}.jsonl"), "--rejects",
                str(tmp_path / f"{tag}.rej"), "--state", str(tmp_path / f"{tag}.pt"),
                "--summary-json", str(tmp_path / f"{tag}.json"), "--checkpoint-every", "10", "-q"]

    assert in_child(args("ref")) == 0
    rng = np.random.default_rng(2024)  # the kill points: which save of each run, and at which stage
    points = [(int(rng.integers(1, 3)), str(rng.choice(["before", "tmp", "after"]))) for _ in range(10)]
    for k, stage in points:
        status = in_child(args("run"), kill=f"{k}:{stage}")
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (k, stage, status)
    assert in_child(args("run")) == 0
    for ext in ("jsonl", "rej"):  # every reading and reject exactly once, in order
        assert (tmp_path / f"run.{ext}").read_bytes() == (tmp_path / f"ref.{ext}").read_bytes()
    ref = Checkpoint(tmp_path / "ref.pt", options={}).read()
    run = Checkpoint(tmp_path / "run.pt", options={}).read()
    assert states_equal(ref["monitor"], run["monitor"])  # network, Adam, buffers, rng, metrics
    s_ref, s_run = (json.loads((tmp_path / f"{t}.json").read_text()) for t in ("ref", "run"))
    for key in ("readings", "rejected", "header_lines", "accuracy", "log_loss", "roc_auc", "steps"):
        assert s_ref[key] == s_run[key]
    assert s_run["readings"] + s_run["rejected"] + s_run["header_lines"] == 206
    lines = [json.loads(ln)["time"] for ln in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert lines == sorted(lines) and len(lines) == len(set(lines)) == s_ref["readings"]


def test_rerunning_a_finished_run_adds_nothing(tmp_path):
    data, out, state = hr_file(tmp_path / "hr.csv", n=50), tmp_path / "o.jsonl", tmp_path / "s.pt"
    assert cli("replay", str(data), "--out", str(out), "--state", str(state), "--format", "csv") == 0
    before = out.read_bytes()
    assert cli("replay", str(data), "--out", str(out), "--state", str(state), "--format", "csv") == 0
    assert out.read_bytes() == before and before.count(b"time,") == 1


def test_an_output_file_shorter_than_the_checkpoint_says_is_refused(tmp_path):
    data, out, state = hr_file(tmp_path / "hr.csv", n=50), tmp_path / "o.jsonl", tmp_path / "s.pt"
    assert cli("replay", str(data), "--out", str(out), "--state", str(state)) == 0
    out.write_text("")
    res = CliRunner().invoke(main, ["replay", str(data), "--out", str(out), "--state", str(state)])
    assert res.exit_code == 2 and "cannot resume" in res.output and "changed since the checkpoint" in res.output


# -- frozen model ---------------------------------------------------------------------------------

def test_no_learn_with_state_scores_with_the_saved_model_and_changes_nothing(tmp_path):
    train, new = hr_file(tmp_path / "a.csv", n=200, seed=1), hr_file(tmp_path / "b.csv", n=60, seed=5)
    state = tmp_path / "s.pt"
    assert cli("replay", str(train), "--state", str(state), "--out", str(tmp_path / "a.jsonl")) == 0
    saved = state.read_bytes()
    res = CliRunner().invoke(main, ["replay", str(new), "--state", str(state), "--no-learn",
                                    "--out", str(tmp_path / "b.jsonl"), "--summary-json", str(tmp_path / "s.json")])
    assert res.exit_code == 0
    assert state.read_bytes() == saved
    assert "model frozen (--no-learn): scored with the model loaded from" in res.output
    s = json.loads((tmp_path / "s.json").read_text())
    # the saved model's steps (measured: 200 readings learned, 16 steps per mini-batch while warming up)
    assert s["learn"] is False and s["readings"] == 60 and s["steps"] == 688
    frozen = [json.loads(ln)["p_abnormal"] for ln in (tmp_path / "b.jsonl").read_text().splitlines()]
    ck = Checkpoint(state, options={}).read()
    mon = Monitor(learn=False)
    mon.load_state_dict(ck["monitor"]["inner"], model_only=True)  # the shared network of a KeyedMonitor
    x = np.array([float(ln.split(",")[1]) for ln in new.read_text().splitlines()[1:]
                  if ln and ln != "t,hr" and ln.split(",")[1] not in ("abc", "nan", "999")])
    assert np.allclose(frozen, mon.learner.predict_proba_many(x.reshape(-1, 1)), atol=1e-6)
    assert len(set(frozen)) > 1  # a trained model, not the untrained constant


def test_no_learn_with_a_missing_state_is_an_error(tmp_path):
    data = hr_file(tmp_path / "hr.csv", n=20)
    res = CliRunner().invoke(main, ["replay", str(data), "--state", str(tmp_path / "none.pt"), "--no-learn"])
    assert res.exit_code == 2 and "no checkpoint at" in res.output


# -- signals ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_flushes_checkpoints_and_exits_with_its_status(tmp_path, sig, status):
    out, state = tmp_path / "o.jsonl", tmp_path / "s.pt"
    proc = ForkedCli(["replay", "-", "--out", str(out), "--state", str(state)], stdout=False)  # a real process
    try:
        proc.stdin.write(b"hr\n" + b"".join(f"{80 + i % 20}\n".encode() for i in range(30)))
        proc.stdin.flush()
        deadline = time.monotonic() + 90  # wait for the 30 records: then it waits for more input
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and len(out.read_bytes().splitlines()) == 30:
                break
            time.sleep(0.2)
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == status
        err = proc.stderr.read().decode()
    finally:
        proc.kill()
    assert "Traceback" not in err and "interrupted: output flushed, checkpoint written" in err
    assert len(out.read_text().splitlines()) == 30
    ck = Checkpoint(state, options={}).read()
    assert ck["monitor"]["n_scored"] == 30 and ck["outputs"]["out"] == out.stat().st_size
