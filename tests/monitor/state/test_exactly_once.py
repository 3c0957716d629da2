"""Exactly once for real (issue 12, items 1 and 2): one run per --state, and no resume on other bytes."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from click.testing import CliRunner

from monitor.cli import main
from tests.forked import ForkedCli


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
    a = ForkedCli(["replay", "-", "--out", str(out), "--state", str(state), "-q"], stdout=False)  # a real process
    lines = ["t,hr"] + hr_lines(40)
    try:
        a.stdin.write(("\n".join(lines[:21]) + "\n").encode())
        a.stdin.flush()
        deadline = time.monotonic() + 60
        while (not out.exists() or out.read_text().count("\n") < 20) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not out.exists():  # say why (run A's exit status and last words), not only that the file is missing
            a.kill()
            pytest.fail(f"run A wrote no record in 60 s (exit {a.wait()}): {a.stderr.read().decode()[-2000:]}")
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
    from monitor.state.checkpoint import Checkpoint

    state = tmp_path / "s.pt"
    Checkpoint(state, options={}).save({"monitor": {}, "position": None})
    live = tmp_path / f".s.pt.tmp-{os.getppid()}"  # a live process's temporary file
    live.write_bytes(b"being written")
    Checkpoint(state, options={}).read()
    assert live.exists()
    dead = tmp_path / ".s.pt.tmp-999999999"  # no such process: left by a killed run
    dead.write_bytes(b"x")
    from monitor.state.state_lock import StateLock
    with StateLock(state) as lock:
        lock.remove_stale_temps()
    assert live.exists() and not dead.exists()


def test_a_held_lock_is_refused_in_process(tmp_path):
    from monitor.state.state_lock import StateLock

    data, state = write_csv(tmp_path / "a.csv", 10), tmp_path / "s.pt"
    with StateLock(state):
        res = run("replay", str(data), "--out", str(tmp_path / "o.jsonl"), "--state", str(state))
    assert res.exit_code == 2
    assert f"PID {os.getpid()}" in res.output
    assert not (tmp_path / "o.jsonl").exists()


def test_a_redis_replay_with_a_busy_state_is_refused_too(tmp_path):
    from monitor.state.state_lock import StateLock

    state = tmp_path / "s.pt"
    with StateLock(state):
        res = run("replay", "redis://127.0.0.1:1/hr", "--state", str(state), "--until-idle")
    assert res.exit_code == 2 and f"PID {os.getpid()}" in res.output


# -- item 2: input replaced between runs ----------------------------------------------------------

def _killed_half_way(tmp_path, data, out, state):
    """A run that stops after its first checkpoint (the test hook kills it), as after a crash."""
    from tests.monitor.state.test_resume import in_child
    args = ["replay", str(data), "--out", str(out), "--state", str(state), "--checkpoint-every", "10", "-q"]
    status = in_child(args, kill="2:before")
    assert os.WIFSIGNALED(status)
    return args


def saved_offset(state) -> int:
    """The byte of the input where the checkpoint's run goes on."""
    from monitor.state.checkpoint import Checkpoint
    return int(Checkpoint(state, options={}).read()["position"]["offset"])


def test_an_input_replaced_by_other_bytes_is_refused_and_the_output_kept(tmp_path):
    data, out, state = write_csv(tmp_path / "a.csv", 60), tmp_path / "o.jsonl", tmp_path / "s.pt"
    _killed_half_way(tmp_path, data, out, state)
    write_csv(data, 80, seed=2)  # log rotation: another file, longer, under the same name
    res = run("replay", str(data), "--out", str(out), "--state", str(state), "--checkpoint-every", "10", "-q")
    assert res.exit_code == 2, res.output
    offset = saved_offset(state)
    assert res.output == (f"Error: cannot resume {data}: its first {offset} bytes differ from those the "
                          "checkpoint was saved on (replaced or rewritten since?); give another --state to "
                          "start afresh\n")
    times = [json.loads(ln)["time"] for ln in out.read_text().splitlines()]
    assert times == [i * 0.5 for i in range(len(times))]  # what it holds, it holds once, in order


def test_an_input_cut_short_is_refused_saying_how_much_is_left(tmp_path):
    data, out, state = write_csv(tmp_path / "a.csv", 60), tmp_path / "o.jsonl", tmp_path / "s.pt"
    _killed_half_way(tmp_path, data, out, state)
    offset = saved_offset(state)
    data.write_bytes(data.read_bytes()[:40])
    res = run("replay", str(data), "--out", str(out), "--state", str(state), "--checkpoint-every", "10", "-q")
    assert res.exit_code == 2
    assert res.output == (f"Error: cannot resume {data}: it has only 40 of the {offset} bytes the checkpoint "
                          "was saved on (replaced or rewritten since?); give another --state to start afresh\n")


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


# -- the resume path, as a property: kills, concurrent runs and replaced inputs in any order ------

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

EVENTS = st.lists(st.one_of(
    st.tuples(st.just("kill"), st.integers(1, 4), st.sampled_from(["before", "tmp", "after"])),
    st.tuples(st.just("concurrent")),
    st.tuples(st.just("replace"), st.integers(0, 2)),
), min_size=1, max_size=4)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The input, and the outputs of one uninterrupted run over it."""
    from tests.monitor.state.test_resume import hr_file, in_child
    d = tmp_path_factory.mktemp("ref")
    data = hr_file(d / "hr.csv", n=60)  # 6 saves at --checkpoint-every 10: every kill point (1-4) falls in the run
    status = in_child(["replay", str(data), "--out", str(d / "o.jsonl"), "--rejects", str(d / "r.jsonl"),
                       "--state", str(d / "s.pt"), "--checkpoint-every", "10", "-q"])
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    return data, (d / "o.jsonl").read_bytes(), (d / "r.jsonl").read_bytes()


@settings(max_examples=5, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(events=EVENTS)
def test_any_mix_of_kills_concurrent_runs_and_replaced_inputs_ends_exactly_once(reference, events):
    import shutil
    import tempfile

    from monitor.state.state_lock import StateLock
    from tests.monitor.state.test_resume import in_child

    original, ref_out, ref_rej = reference
    d = tempfile.mkdtemp()
    try:
        data = os.path.join(d, "hr.csv")
        shutil.copy(original, data)
        out, rej, state = (os.path.join(d, n) for n in ("o.jsonl", "r.jsonl", "s.pt"))
        args = ["replay", data, "--out", out, "--rejects", rej, "--state", state, "--checkpoint-every", "10", "-q"]

        def outputs():
            return tuple(open(p, "rb").read() if os.path.exists(p) else None for p in (out, rej, state))

        for event in events:
            if event[0] == "kill":
                status = in_child(args, kill=f"{event[1]}:{event[2]}")
                assert os.WIFSIGNALED(status) or os.WEXITSTATUS(status) == 0  # (a run may end before the kill)
            elif event[0] == "concurrent":  # another run holds the state: refused, nothing touched
                before = outputs()
                with StateLock(state):
                    status = in_child(args)
                assert os.WEXITSTATUS(status) == 2 and outputs() == before
            else:  # the input replaced: refused once a checkpoint covers some of it; then put back
                before = outputs()
                text = open(original).read().splitlines(keepends=True)
                text[1 + event[1]] = "0.25,77.7\n"  # one reading changed near the start, same length or not
                with open(data, "w") as fh:
                    fh.write("".join(text))
                status = in_child(args)
                if before[2] is not None:  # a checkpoint exists: the changed bytes lie before its offset
                    assert os.WEXITSTATUS(status) == 2 and outputs() == before
                shutil.copy(original, data)
                if before[2] is None and os.WEXITSTATUS(status) == 0:  # it ran on the other file: start afresh
                    for p in (out, rej, state):
                        os.unlink(p)
        assert os.WEXITSTATUS(in_child(args)) == 0
        assert open(out, "rb").read() == ref_out and open(rej, "rb").read() == ref_rej
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_a_long_run_resumes_after_its_mini_batches_grew_past_batch_size(tmp_path):
    """After the warm-up mini-batches grow past --batch-size (up to max_batch): the checkpoint of such
    a run is valid, and a grown file resumes it to the records of one run over the whole file."""
    full = tmp_path / "full.csv"
    write_csv(full, 9000)
    lines = full.read_text().splitlines(keepends=True)
    part = tmp_path / "grow.csv"
    part.write_text("".join(lines[:6001]))
    state, out = tmp_path / "s.pt", tmp_path / "o.jsonl"
    assert run("replay", str(part), "--out", str(out), "--state", str(state), "-q").exit_code == 0
    part.write_text("".join(lines))  # the file grew
    res = run("replay", str(part), "--out", str(out), "--state", str(state), "-q")
    assert res.exit_code == 0, res.output
    whole = tmp_path / "whole.jsonl"
    assert run("replay", str(full), "--out", str(whole), "-q").exit_code == 0
    assert out.read_bytes() == whole.read_bytes()
