"""WFDB records (wfdb.wrsamp fixtures): the HR signal picked, times from the header, the same flags as CSV."""

from __future__ import annotations

import datetime as dt
import gzip
import json

import numpy as np
import pytest
from test_formats import START, csv_text, readings, replay_cli

from monitor.app.describe_input import describe
from streams import SourceError, detect, open_file
from streams.wfdb_record import WfdbRecord, _quiet, _wfdb

FS = 0.2  # one sample every 5 s, as readings() times them


def write_record(folder, bpm, name="num", signals=("HR", "SpO2", "PULSE")) -> None:
    """A numerics record: heart rate, SpO2 and pulse, 16-bit, gain 10 (0.1 bpm resolution)."""
    hr = np.asarray(bpm, dtype=np.float64)
    cols = {"HR": hr, "SpO2": 97 + (np.arange(len(hr)) % 3), "PULSE": hr + 1, "ECG": np.zeros(len(hr))}
    _quiet(_wfdb().wrsamp, name, fs=FS, units=["bpm" if s != "SpO2" else "%" for s in signals],
           sig_name=list(signals), p_signal=np.column_stack([cols[s] for s in signals]),
           fmt=["16"] * len(signals), adc_gain=[10.0] * len(signals), baseline=[0] * len(signals),
           base_date=START.date(), base_time=START.time(), write_dir=str(folder))


def with_bad_samples(bpm):
    """The series with WFDB's missing samples (NaN) at 11, 12 and an out-of-range 0 at 31 (1-based)."""
    bad = [float(b) for b in bpm]
    bad[10] = bad[11] = np.nan
    bad[30] = 0.0
    return bad


def test_samples_times_and_rejects_equal_the_csv_values(tmp_path):
    t, bpm = readings(300)
    write_record(tmp_path, with_bad_samples(bpm))
    source = open_file(tmp_path / "num.hea", valid_range=(20.0, 300.0))
    assert isinstance(source, WfdbRecord) and str(detect(tmp_path / "num.hea")) == "wfdb"
    batches = list(WfdbRecord(tmp_path / "num", valid_range=(20.0, 300.0), block=64))  # record name, small blocks
    keep = [i for i in range(300) if i not in (10, 11, 30)]
    assert np.concatenate([b.x[:, 0] for b in batches]).tolist() == [float(bpm[i]) for i in keep]
    assert np.concatenate([b.time for b in batches]).tolist() == [t[i] for i in keep]
    assert [(r.line, r.reason) for b in batches for r in b.rejected] == [
        (11, "missing sample (WFDB invalid value)"), (12, "missing sample (WFDB invalid value)"),
        (31, "out of range 20..300: '0'")]


def test_replay_gives_the_same_flags_as_csv_plain_gzipped_and_by_record_name(tmp_path):
    t, bpm = readings(300)
    write_record(tmp_path, with_bad_samples(bpm))
    keep = [i for i in range(300) if i not in (10, 11, 30)]
    (tmp_path / "same.csv").write_text(csv_text([t[i] for i in keep], [bpm[i] for i in keep]))
    want, _, code = replay_cli(str(tmp_path / "same.csv"))
    assert code == 0 and want.count(b"\n") == 297
    gz = tmp_path / "gz"
    gz.mkdir()
    for f in ("num.hea", "num.dat"):
        (gz / (f + ".gz")).write_bytes(gzip.compress((tmp_path / f).read_bytes()))
    for arg in (tmp_path / "num.hea", tmp_path / "num", gz / "num.hea.gz", gz / "num"):
        got, err, code = replay_cli(str(arg))
        assert code == 0, err
        assert got == want, arg
        assert "sample 11 rejected: missing sample" in err and "sample 31 rejected: out of range" in err
    assert str(detect(gz / "num.hea.gz")) == "wfdb (gzip)"


def test_signal_choice_and_errors(tmp_path):
    _, bpm = readings(20)
    write_record(tmp_path, bpm, name="pulse", signals=("SpO2", "PULSE"))
    assert [v for b in open_file(tmp_path / "pulse.hea") for v in b.x[:, 0].tolist()] == [b + 1.0 for b in bpm]
    got = [v for b in open_file(tmp_path / "pulse.hea", column="spo2") for v in b.x[:, 0].tolist()]
    assert got == [97.0 + i % 3 for i in range(20)]
    write_record(tmp_path, bpm, name="ecg", signals=("ECG",))
    with pytest.raises(SourceError, match=r"no heart-rate signal \(HR, Heart Rate, PULSE\) among: ECG; name one"):
        list(open_file(tmp_path / "ecg.hea"))
    _, err, code = replay_cli(str(tmp_path / "pulse.hea"), "--column", "RESP")
    assert code == 2 and err.endswith("no signal named 'RESP'; the record has: SpO2, PULSE\n") and err.count("\n") == 1
    (tmp_path / "pulse.dat").write_bytes((tmp_path / "pulse.dat").read_bytes()[:40])  # cut: 10 of 20 frames
    batches = list(open_file(tmp_path / "pulse.hea"))
    assert sum(len(b) for b in batches) < 20
    (cut,) = [r for b in batches for r in b.rejected]
    assert "cut off" in cut.reason


def test_info_names_the_signals(tmp_path):
    _, bpm = readings(30)
    write_record(tmp_path, bpm)
    d = describe(tmp_path / "num.hea")
    assert d["format"] == "wfdb" and d["readings"] == 30 and d["unit"] == "sample"
    assert d["found"] == "signals HR (bpm), SpO2 (%), PULSE (bpm); picked HR; 30 samples at 0.2 Hz"
    assert d["time_first"] == START.timestamp() and d["time_span_s"] == 29 * 5
    json.dumps(d)
