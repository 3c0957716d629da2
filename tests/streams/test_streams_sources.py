"""Sources: CSV replay (blocks, errors), live lines over a pipe, circles, synthetic, sample."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from streams import (Batch, Circles, CsvReplay, LiveLines, Sample, SourceError, SyntheticHeartRate,
                     sample_path)
from tests.conftest import ROOT


def collect(source) -> dict:
    """All batches of a source joined, with per-batch invariant checked against the line count."""
    batches = list(source)
    rejects = [(r.line, r.raw, r.reason) for b in batches for r in b.rejected]
    return {
        "x": np.concatenate([b.x.ravel() for b in batches]).tolist(),
        "time": np.concatenate([b.time for b in batches]).tolist(),
        "line": np.concatenate([b.line for b in batches]).tolist(),
        "key": [k for b in batches if b.key is not None for k in b.key.tolist()],
        "rejects": rejects,
        "accounted": sum(len(b) + len(b.rejected) + b.header_lines for b in batches),
        "batches": len(batches),
    }


def write(tmp_path, data: bytes, name="hr.csv") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# -- CsvReplay --------------------------------------------------------------------------------

MESSY = (
    "\ufeffTime,HR,Who\r\n"
    "0.0,80.25,anna\r\n"
    "0.5,81.5,zoë\n"          # a two-byte character, split across tiny blocks
    "\n"
    "1.0,abc,anna\n"
    "1.5,82.75,anna,extra\n"
    "2.0,nan,zoë\n"
    "Time,HR,Who\n"
    "2.5,83.125,anna\n"
    "3.0,84.0625,zoë"          # no final newline
).encode("utf-8")
MESSY_READINGS = [80.25, 81.5, 83.125, 84.0625]
MESSY_REJECTS = [
    (4, "", "empty line"),
    (5, "1.0,abc,anna", "not a number: 'abc'"),
    (6, "1.5,82.75,anna,extra", "wrong field count: expected 3, got 4"),
    (7, "2.0,nan,zoë", "not finite: 'nan'"),
    (8, "Time,HR,Who", "repeated header"),
]


@pytest.mark.parametrize("block_bytes", [1, 7, 1 << 22])
def test_same_result_whatever_the_block_size(tmp_path, block_bytes):
    # with 7-byte blocks every line is split across blocks: a line parsed in pieces would
    # give other values, other line numbers or extra rejects
    path = write(tmp_path, MESSY)
    got = collect(CsvReplay(path, key_column="who", block_bytes=block_bytes))
    assert got["x"] == MESSY_READINGS
    assert got["time"] == [0.0, 0.5, 2.5, 3.0]
    assert got["line"] == [2, 3, 9, 10]
    assert got["key"] == ["anna", "zoë", "anna", "zoë"]
    assert [(n, reason) for n, _, reason in got["rejects"]] == [(n, r) for n, _, r in MESSY_REJECTS]
    assert got["rejects"] == MESSY_REJECTS
    assert got["accounted"] == 10  # every line of the file, the last one without a newline
    if block_bytes == 7:
        assert got["batches"] > 5


def test_block_cut_inside_a_line_keeps_the_line_whole(tmp_path):
    # 10-byte blocks cut "0.5,81.25\n" and "1.0,82.5\n" in the middle of their numbers
    data = b"t,hr\n0.0,80\n0.5,81.25\n1.0,82.5\n"
    got = collect(CsvReplay(write(tmp_path, data), block_bytes=10))
    assert got["x"] == [80.0, 81.25, 82.5] and got["rejects"] == []


def test_big_file_in_several_blocks(tmp_path):
    rng = np.random.default_rng(1)
    hr = np.round(rng.normal(92, 5, 20_000), 3)
    text = "t,hr\n" + "\n".join(f"{i * 0.5},{v}" for i, v in enumerate(hr)) + "\n"
    path = write(tmp_path, text.encode())
    got = collect(CsvReplay(path, block_bytes=50_000))
    assert got["batches"] > 4
    assert got["x"] == hr.tolist() and got["line"] == list(range(2, 20_002))
    assert got["time"] == [i * 0.5 for i in range(20_000)]


def test_windows_file(tmp_path):
    got = collect(CsvReplay(write(tmp_path, b"t,hr\r\n0,80\r\n1,81\r\n")))
    assert got["x"] == [80.0, 81.0] and got["rejects"] == []


def test_not_utf8_line_in_a_file(tmp_path):
    got = collect(CsvReplay(write(tmp_path, b"hr\n80\n\xe9\xff\n81\n")))
    assert got["x"] == [80.0, 81.0]
    assert [(n, reason) for n, _, reason in got["rejects"]] == [(3, "not UTF-8")]


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.csv")
    source = CsvReplay(path)  # nothing happens yet
    with pytest.raises(SourceError) as e:
        next(iter(source))
    assert str(e.value) == f"no such file: {path}"


@pytest.mark.parametrize("data", [b"", b"\n", b"\n  \n"])
def test_empty_file(tmp_path, data):
    path = write(tmp_path, data)
    with pytest.raises(SourceError) as e:
        next(iter(CsvReplay(path, block_bytes=1)))
    assert str(e.value) == f"{path} is empty"


@pytest.mark.parametrize("data", [b"t,hr", b"t,hr\n", b"t,hr\n\n\n"])
def test_header_only_file(tmp_path, data):
    path = write(tmp_path, data)
    with pytest.raises(SourceError) as e:
        next(iter(CsvReplay(path, block_bytes=1)))
    assert str(e.value) == f"{path} has a header but no readings"


def test_file_of_bad_lines_gives_its_rejects(tmp_path):
    got = collect(CsvReplay(write(tmp_path, b"t,hr\n0,x\n1,y\n")))
    assert got["x"] == [] and [n for n, _, _ in got["rejects"]] == [2, 3]


def test_missing_column_error_from_a_file(tmp_path):
    with pytest.raises(SourceError) as e:
        list(CsvReplay(write(tmp_path, b"t,hr\n0,80\n"), column="bpm"))
    assert str(e.value) == "no column named 'bpm' (--column); the columns are: t, hr"


def test_replay_note_and_repr(tmp_path):
    notes = []
    path = write(tmp_path, b"t,hr\n0,80\n")
    source = CsvReplay(path, column="hr", on_note=notes.append)
    assert repr(source) == f"CsvReplay({path!r}, column='hr')"
    assert notes == []  # the constructor does nothing
    list(source)
    list(source)  # each iteration starts over
    assert notes == ["reading column 'hr', time column 't'"] * 2
    assert CsvReplay.live is False and source.live is False


# -- LiveLines --------------------------------------------------------------------------------


def test_live_lines_hand_over_each_line_as_it_arrives():
    r, w = os.pipe()
    # (bytes written, whether a Batch must arrive before anything more is written)
    steps = [(b"t,hr\n", True), (b"0,80\n", True), (b"0.5,8", False), (b"1\n", True),
             (b"1.0,oops\n", True), (b"1.5,82", False)]  # the last line has no newline
    arrived = threading.Semaphore(0)
    late = []

    def writer():
        for data, wait in steps:
            os.write(w, data)
            if wait and not arrived.acquire(timeout=5):
                late.append(data)
        os.close(w)

    thread = threading.Thread(target=writer)
    thread.start()
    batches = []
    try:
        for b in LiveLines(stream=r):
            batches.append(b)
            arrived.release()
    finally:
        thread.join(timeout=10)
        os.close(r)
    assert late == []
    assert [b.header_lines for b in batches] == [1, 0, 0, 0, 0]
    assert [b.x.ravel().tolist() for b in batches] == [[], [80.0], [81.0], [], [82.0]]
    assert [b.line.tolist() for b in batches] == [[], [2], [3], [], [5]]
    assert [(r.line, r.reason) for r in batches[3].rejected] == [(4, "not a number: 'oops'")]


def test_live_lines_from_a_stream_object():
    stream = io.BytesIO(b"bpm\n71\n72")
    got = collect(LiveLines(stream=stream))
    assert got["x"] == [71.0, 72.0]


def test_live_lines_on_an_empty_stream():
    r, w = os.pipe()
    os.close(w)
    try:
        with pytest.raises(SourceError) as e:
            list(LiveLines(stream=r))
    finally:
        os.close(r)
    assert str(e.value) == f"fd {r} is empty"


def test_live_lines_repr_and_flag():
    assert repr(LiveLines()) == "LiveLines()"
    assert repr(LiveLines(stream=0, column="hr")) == "LiveLines(stream=standard input, column='hr')"
    assert LiveLines.live is True


# -- Circles ----------------------------------------------------------------------------------


def test_circles_shape_labels_and_batches():
    batches = list(Circles(n=2500, batch=1000))
    assert [len(b) for b in batches] == [1000, 1000, 500]
    x = np.concatenate([b.x for b in batches])
    y = np.concatenate([b.y for b in batches])
    assert x.shape == (2500, 2) and x.dtype == np.float64
    assert set(y.tolist()) == {0.0, 1.0} and int(y.sum()) == 1250
    radius = np.hypot(x[:, 0], x[:, 1])
    assert radius[y == 0].mean() > 0.8 and radius[y == 1].mean() < 0.4  # outer 0, inner 1
    assert np.concatenate([b.time for b in batches]).tolist() == list(map(float, range(2500)))
    assert np.concatenate([b.line for b in batches]).tolist() == list(range(1, 2501))


def test_circles_are_deterministic():
    a = next(iter(Circles(n=500, batch=500)))
    b = next(iter(Circles(n=500, batch=500)))
    c = next(iter(Circles(n=500, batch=500, seed=1)))
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.x, c.x)


def test_circles_repr():
    assert repr(Circles()) == "Circles(n=10000, noise=0.1, factor=0.2, seed=0, batch=1000)"


# -- SyntheticHeartRate -----------------------------------------------------------------------


def test_synthetic_is_deterministic_and_independent_of_batch():
    a = collect(SyntheticHeartRate(n=3000, batch=1000))
    b = collect(SyntheticHeartRate(n=3000, batch=7))
    c = collect(SyntheticHeartRate(n=3000, seed=1))
    assert a["x"] == b["x"] and a["time"] == b["time"]
    assert a["x"] != c["x"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synthetic_looks_like_heart_rate(seed):
    batches = list(SyntheticHeartRate(seed=seed))
    hr = np.concatenate([b.x.ravel() for b in batches])
    assert len(hr) == 5000 and abs(hr.mean() - 90) < 3
    assert hr.min() >= 30 and hr.max() <= 220
    assert hr.max() > 110  # a burst
    assert np.std(np.diff(hr)) < 3  # correlated noise: white noise of std 4 would give 5.7
    assert all(np.isnan(b.y).all() for b in batches)
    time = np.concatenate([b.time for b in batches])
    assert np.allclose(np.diff(time), 0.5) and time[0] == 0.0


def test_synthetic_clips_to_a_physiological_range():
    hr = SyntheticHeartRate(n=2000, baseline=215.0, noise=20.0).values()
    assert hr.max() == 220.0
    hr = SyntheticHeartRate(n=2000, baseline=35.0, noise=20.0).values()
    assert hr.min() == 30.0


def test_synthetic_repr():
    assert repr(SyntheticHeartRate(n=10)) == (
        "SyntheticHeartRate(n=10, baseline=90.0, drift=3.0, noise=4.0, seed=0, period=0.5, "
        "batch=1000)")


# -- Sample -----------------------------------------------------------------------------------


def test_sample_statistics():
    notes = []
    got = collect(Sample(on_note=notes.append))
    hr = np.array(got["x"])
    assert len(hr) == 1800 and got["rejects"] == []
    assert abs(hr.mean() - 92.60) <= 0.01 and abs(hr.std() - 5.49) <= 0.01
    assert int((hr > 91).sum()) == 1053
    assert got["time"][:3] == [0.0, 0.5, 1.0] and got["time"][-1] == 899.5
    assert notes == ["reading column 'hr', time column 't'"]


def test_resting_sample_has_no_reading_above_91():
    hr = np.array(collect(Sample(name="mit-hr-207"))["x"])
    assert len(hr) == 950 and hr.max() < 91 and abs(hr.mean() - 58.67) <= 0.01


def test_sample_path_is_package_data():
    path = sample_path()
    assert path.is_file() and path.parent.name == "data" and path.parent.parent.name == "streams"
    assert path.read_text().splitlines()[:2] == ["t,hr", "0.0,84.2697"]
    with pytest.raises(ValueError, match="no sample named 'x'"):
        sample_path("x")
    assert repr(Sample()) == "Sample('mit-hr-11839')"


# -- the package ------------------------------------------------------------------------------


def test_import_is_light_and_one_way():
    code = ("import sys, streams; "
            "print(sorted(m for m in ('pandas', 'sklearn', 'scipy', 'torch', 'monitor', 'models') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_sources_yield_batches():
    for source in (Circles(n=10), SyntheticHeartRate(n=10), Sample()):
        assert all(isinstance(b, Batch) for b in source)
