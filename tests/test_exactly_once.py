"""Exactly once for real (issue 12, items 1 and 2): one run per --state, and no resume on other bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from monitor.cli import main
from tests.conftest import ROOT


def hr_lines(n: int, seed: int = 1, start: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"{(start + i) * 0.5},{v:.2f}" for i, v in enumerate(90 + 6 * rng.standard_normal(n))]


def write_csv(path, n: int, seed: int = 1):
    path.write_text("t,hr\n" + "\n".join(hr_lines(n, seed)) + "\n")
    return path


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


# -- item 1: two runs on one --state --------------------------------------------------------------

def test_a_second_run_on_a_busy_state_is_refused_at_once_naming_the_first(tmp_path):
    """Run A holds --state (a live feed still open); run B on the same --state exits 2 at once,
    naming A's PID, and writes nothing; A's output then holds every reading exactly once."""
    state, out = tmp_path / "s.pt", tmp_path / "o.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    a = subprocess.Popen([sys.executable, "-m", "monitor", "replay", "-", "--out", str(out), "--state",
                          str(state), "-q"], stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    lines = ["t,hr"] + hr_lines(40)
    try:
        a.stdin.write(("\n".join(lines[:21]) + "\n").encode())
        a.stdin.flush()
        deadline = time.monotonic() + 60
        while (not out.exists() or out.read_text().count("\n") < 20) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert out.read_text().count("\n") == 20
        t0 = time.monotonic()
        res = run("replay", "-", "--out", str(out), "--state", str(state), "-q",
                  input="\n".join(["t,hr"] + hr_lines(5, seed=9)) + "\n")
        assert time.monotonic() - t0 < 5
        assert res.exit_code == 2, res.output
        assert f"PID {a.pid}" in res.output and "--state" in res.output
        assert len(res.output.strip().splitlines()) == 1
        a.stdin.write(("\n".join(lines[21:]) + "\n").encode())
        a.stdin.close()
        assert a.wait(60) == 0, a.stderr.read()
    finally:
        if a.poll() is None:
            a.kill()
    times = [json.loads(ln)["time"] for ln in out.read_text().splitlines()]
    assert times == [i * 0.5 for i in range(40)]  # each reading once, in order


def test_the_lock_is_released_at_exit_and_a_rerun_goes_on(tmp_path):
    data, out, state = write_csv(tmp_path / "a.csv", 30), tmp_path / "o.jsonl", tmp_path / "s.pt"
    assert run("replay", str(data), "--out", str(out), "--state", str(state), "-q").exit_code == 0
    assert run("replay", str(data), "--out", str(out), "--state", str(state), "-q").exit_code == 0
    assert out.read_text().count("\n") == 30


def test_a_checkpoint_read_never_deletes_a_live_runs_temporary_file(tmp_path):
    """Reading a checkpoint (another run's start-up) must not remove the temporary file of a live save."""
    from monitor.checkpoint import Checkpoint

    state = tmp_path / "s.pt"
    Checkpoint(state, options={}).save({"monitor": {}, "position": None})
    live = tmp_path / f".s.pt.tmp-{os.getppid()}"  # a live process's temporary file
    live.write_bytes(b"being written")
    Checkpoint(state, options={}).read()
    assert live.exists()
    dead = tmp_path / ".s.pt.tmp-999999999"  # no such process: left by a killed run
    dead.write_bytes(b"x")
    from monitor.statelock import StateLock
    with StateLock(state) as lock:
        lock.remove_stale_temps()
    assert live.exists() and not dead.exists()


def test_a_held_lock_is_refused_in_process(tmp_path):
    from monitor.statelock import StateLock

    data, state = write_csv(tmp_path / "a.csv", 10), tmp_path / "s.pt"
    with StateLock(state):
        res = run("replay", str(data), "--out", str(tmp_path / "o.jsonl"), "--state", str(state))
    assert res.exit_code == 2
    assert f"PID {os.getpid()}" in res.output
    assert not (tmp_path / "o.jsonl").exists()


# -- item 2: input replaced between runs ----------------------------------------------------------

def _killed_half_way(tmp_path, data, out, state):
    """A run that stops after its first checkpoint (the test hook kills it), as after a crash."""
    from tests.test_resume import in_child
    args = ["replay", str(data), "--out", str(out), "--state", str(state), "--checkpoint-every", "10", "-q"]
    status = in_child(args, kill="2:before")
    assert os.WIFSIGNALED(status)
    return args


def test_an_input_replaced_by_other_bytes_is_refused_and_the_output_kept(tmp_path):
    data, out, state = write_csv(tmp_path / "a.csv", 60), tmp_path / "o.jsonl", tmp_path / "s.pt"
    _killed_half_way(tmp_path, data, out, state)
    write_csv(data, 80, seed=2)  # log rotation: another file, longer, under the same name
    res = run("replay", str(data), "--out", str(out), "--state", str(state), "--checkpoint-every", "10", "-q")
    assert res.exit_code == 2, res.output
    assert "replaced" in res.output and len(res.output.strip().splitlines()) == 1
    times = [json.loads(ln)["time"] for ln in out.read_text().splitlines()]
    assert times == [i * 0.5 for i in range(len(times))]  # what it holds, it holds once, in order


def test_an_offset_moved_inside_a_line_is_refused(tmp_path):
    """The same file with 3 bytes more at its start: the saved offset now falls mid-line."""
    data, out, state = write_csv(tmp_path / "a.csv", 60), tmp_path / "o.jsonl", tmp_path / "s.pt"
    _killed_half_way(tmp_path, data, out, state)
    data.write_text("t,hr\n" + "0.0,9" + data.read_text()[len("t,hr\n"):])
    res = run("replay", str(data), "--out", str(out), "--state", str(state), "--checkpoint-every", "10", "-q")
    assert res.exit_code == 2, res.output


def test_a_file_that_only_grew_still_resumes(tmp_path):
    data, out, state = write_csv(tmp_path / "a.csv", 60), tmp_path / "o.jsonl", tmp_path / "s.pt"
    args = _killed_half_way(tmp_path, data, out, state)
    with open(data, "a") as fh:
        fh.write("\n".join(hr_lines(20, seed=3, start=60)) + "\n")
    assert run(*args).exit_code == 0
    ref = tmp_path / "ref.jsonl"
    assert run("replay", str(data), "--out", str(ref), "-q").exit_code == 0
    assert out.read_bytes() == ref.read_bytes()
    with open(data, "a") as fh:  # a finished run, and the file grows again: the rerun adds the new lines
        fh.write("\n".join(hr_lines(5, seed=4, start=80)) + "\n")
    assert run(*args).exit_code == 0
    assert run("replay", str(data), "--out", str(ref), "-q").exit_code == 0
    assert out.read_bytes() == ref.read_bytes()
