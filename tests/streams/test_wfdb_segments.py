"""Multi-segment WFDB records (a header listing segments, as MIMIC waveform records are): read as one
record, fixed and variable layout, the same flags as a CSV of the same values; what is not read says so."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from test_formats import START, csv_text, readings, replay_cli

from streams import detect, open_file
from streams.wfdb_record import WfdbRecord, _quiet, _wfdb

FS = 0.2  # one sample every 5 s, as readings() times them


def write_segment(folder, name, columns: dict[str, np.ndarray]) -> None:
    names = list(columns)
    _quiet(_wfdb().wrsamp, name, fs=FS, units=["%" if s == "SpO2" else "bpm" for s in names], sig_name=names,
           p_signal=np.column_stack([columns[s] for s in names]), fmt=["16"] * len(names),
           adc_gain=[10.0] * len(names), baseline=[0] * len(names), write_dir=str(folder))


def write_multi(folder, bpm, *, layout: str) -> list[int]:
    """Record ``num`` in three segments of the series; returns the 0-based samples with no heart rate.

    fixed: every segment holds HR and SpO2. variable: a layout segment names SpO2 and HR, the
    second segment holds SpO2 only (the HR samples there are missing), the others HR alone or both.
    """
    bpm = np.asarray(bpm, dtype=np.float64)
    cuts = [0, 100, 160, len(bpm)]
    spo2 = 97.0 + np.arange(len(bpm)) % 3
    segs, missing = [], []
    for k in range(3):
        lo, hi = cuts[k], cuts[k + 1]
        name = f"num_{k + 1:04d}"
        if layout == "fixed" or k == 0:
            write_segment(folder, name, {"SpO2": spo2[lo:hi], "HR": bpm[lo:hi]})
        elif k == 1:
            write_segment(folder, name, {"SpO2": spo2[lo:hi]})
            missing += range(lo, hi)
        else:
            write_segment(folder, name, {"HR": bpm[lo:hi]})
        segs.append(f"{name} {hi - lo}")
    lines = [f"num/{3 + (layout == 'variable')} 2 {FS} {len(bpm)} {START:%H:%M:%S %d/%m/%Y}"]
    if layout == "variable":
        (folder / "num_layout.hea").write_text(
            f"num_layout 2 {FS} 0\n~ 0 10/% 16 0 0 0 0 SpO2\n~ 0 10/bpm 16 0 0 0 0 HR\n")
        lines.append("num_layout 0")
    (folder / "num.hea").write_text("\n".join(lines + segs) + "\n")
    return missing


@pytest.mark.parametrize("layout", ["fixed", "variable"])
def test_a_multi_segment_record_reads_as_one_record(tmp_path, layout):
    t, bpm = readings(300)
    missing = write_multi(tmp_path, bpm, layout=layout)
    assert str(detect(tmp_path / "num.hea")) == "wfdb"
    source = open_file(tmp_path / "num.hea")
    batches = list(source)
    keep = [i for i in range(300) if i not in missing]
    assert np.concatenate([b.x[:, 0] for b in batches]).tolist() == [float(bpm[i]) for i in keep]
    assert np.concatenate([b.time for b in batches]).tolist() == pytest.approx([t[i] for i in keep])
    rejects = [(r.line, r.reason) for b in batches for r in b.rejected]
    assert rejects == [(i + 1, "missing sample (WFDB invalid value)") for i in missing]
    assert source.found_ == "signals SpO2 (%), HR (bpm); picked HR; 300 samples at 0.2 Hz"
    # small blocks cross the segment boundaries and give the same readings
    small = list(WfdbRecord(tmp_path / "num", block=37))
    assert np.concatenate([b.x[:, 0] for b in small]).tolist() == [float(bpm[i]) for i in keep]


def test_replay_of_a_multi_segment_record_flags_as_the_csv(tmp_path):
    t, bpm = readings(300)
    write_multi(tmp_path, bpm, layout="fixed")
    (tmp_path / "same.csv").write_text(csv_text(t, bpm))
    want, _, code = replay_cli(str(tmp_path / "same.csv"))
    got, _, code2 = replay_cli(str(tmp_path / "num.hea"))
    assert code == code2 == 0 and want.count(b"\n") == 300
    assert got == want


def test_what_is_not_read_says_so_in_one_line(tmp_path):
    t, bpm = readings(300)
    write_multi(tmp_path, bpm, layout="fixed")
    gz = tmp_path / "num.hea.gz"
    gz.write_bytes(gzip.compress((tmp_path / "num.hea").read_bytes()))
    (tmp_path / "num.hea").unlink()
    out, err, code = replay_cli(str(gz))
    assert code == 2 and out == b""
    assert err.strip().splitlines()[-1].endswith("a compressed multi-segment WFDB record is not read; "
                                                         "decompress its header and segments first")
    (tmp_path / "num.hea").write_bytes(gzip.decompress(gz.read_bytes()))
    (tmp_path / "num_0003.dat").unlink()  # a segment's signal file is gone: the readings before it, then a reject
    batches = list(open_file(tmp_path / "num.hea"))
    assert sum(len(b.x) for b in batches) < 300
    assert [r.reason for b in batches for r in b.rejected][-1].startswith("signal file unreadable from sample")
