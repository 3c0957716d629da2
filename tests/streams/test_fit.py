"""Garmin FIT, encoded here by a minimal writer (header, definitions, data, CRC): the same flags as CSV."""

from __future__ import annotations

import gzip
import struct

import pytest
from test_formats import csv_text, readings, replay_cli

from monitor.app.describe_input import describe
from streams import SourceError, detect, open_file
from streams.fit import FIT_EPOCH, FitRecords

_CRC = [0x0000, 0xCC01, 0xD801, 0x1400, 0xF001, 0x3C00, 0x2800, 0xE401,
        0xA001, 0x6C00, 0x7800, 0xB401, 0x5000, 0x9C01, 0x8801, 0x4400]


def fit_crc(data: bytes, crc: int = 0) -> int:
    """The FIT SDK's CRC-16 (nibble table)."""
    for byte in data:
        for nibble in (byte & 0xF, byte >> 4):
            tmp = _CRC[crc & 0xF]
            crc = ((crc >> 4) & 0x0FFF) ^ tmp ^ _CRC[nibble]
    return crc


def definition(local: int, global_num: int, fields: list[tuple[int, int, int]]) -> bytes:
    """A definition message: little-endian, (field number, size, base type) per field."""
    return (struct.pack("<BBBHB", 0x40 | local, 0, 0, global_num, len(fields))
            + b"".join(struct.pack("<BBB", *f) for f in fields))


def fit_bytes(records: list[tuple[int | None, int | None]]) -> bytes:
    """A FIT activity file: file_id, then one record message per (epoch seconds, heart rate);
    None is FIT's invalid value (0xFFFFFFFF timestamp, 0xFF heart rate)."""
    first = next(s for s, _ in records if s is not None)
    body = definition(0, 0, [(0, 1, 0x00), (1, 2, 0x84), (4, 4, 0x86)])  # file_id: type, manufacturer, time_created
    body += struct.pack("<BBHI", 0, 4, 1, first - FIT_EPOCH)  # activity, Garmin
    body += definition(1, 20, [(253, 4, 0x86), (3, 1, 0x02), (5, 4, 0x86)])  # record: timestamp, heart_rate, distance
    for i, (s, hr) in enumerate(records):
        body += struct.pack("<BIBI", 1, 0xFFFFFFFF if s is None else s - FIT_EPOCH, 0xFF if hr is None else hr, 100 * i)
    header = struct.pack("<BBHI4s", 14, 0x20, 2132, len(body), b".FIT")
    header += struct.pack("<H", fit_crc(header))
    return header + body + struct.pack("<H", fit_crc(header + body))


def records_with_gaps(t, bpm):
    """Every 7th record without a heart rate (normal: skipped), record 50 without a timestamp."""
    recs = [(int(s), None if i % 7 == 3 else int(b)) for i, (s, b) in enumerate(zip(t, bpm))]
    recs.insert(49, (None, 80))
    return recs


def test_records_give_the_same_flags_as_csv(tmp_path):
    t, bpm = readings(300)
    data = fit_bytes(records_with_gaps(t, bpm))
    (tmp_path / "a.fit").write_bytes(data)
    (tmp_path / "a.fit.gz").write_bytes(gzip.compress(data))
    keep = [i for i in range(300) if i % 7 != 3]
    (tmp_path / "same.csv").write_text(csv_text([t[i] for i in keep], [bpm[i] for i in keep]))
    assert str(detect(tmp_path / "a.fit")) == "fit" and str(detect(tmp_path / "a.fit.gz")) == "fit (gzip)"
    want, _, code = replay_cli(str(tmp_path / "same.csv"))
    assert code == 0 and want.count(b"\n") == len(keep)
    for name in ("a.fit", "a.fit.gz"):
        got, err, code = replay_cli(str(tmp_path / name))
        assert code == 0, err
        assert got == want
        assert "record 50 rejected: missing timestamp" in err
    source = open_file(tmp_path / "a.fit")
    assert [(r.line, r.reason) for b in source for r in b.rejected] == [(50, "missing timestamp")]
    assert source.found_ == "301 record messages, 43 without heart rate (skipped)"
    d = describe(tmp_path / "a.fit")
    assert (d["format"], d["readings"], d["rejected"], d["time_first"]) == ("fit", len(keep), 1, t[0])


def test_truncated_and_damaged_files_keep_what_was_decoded(tmp_path):
    t, bpm = readings(100)
    data = fit_bytes([(int(s), int(b)) for s, b in zip(t, bpm)])
    p = tmp_path / "cut.fit"
    p.write_bytes(data[:len(data) // 2])
    batches = list(FitRecords(p))
    n = sum(len(b) for b in batches)
    (cut,) = [r for b in batches for r in b.rejected]
    assert 30 < n < 60 and cut.line == n + 1 and cut.reason == "truncated FIT file (cut off?)"
    damaged = bytearray(data)
    damaged[-3] ^= 0x01  # the last heart rate changes: the CRC no longer matches
    p.write_bytes(bytes(damaged))
    batches = list(FitRecords(p))
    (bad,) = [r for b in batches for r in b.rejected]
    assert "CRC" in bad.reason and sum(len(b) for b in batches) == 100
    p.write_bytes(b"\x0e\x20" + b"\x00" * 30)
    with pytest.raises(SourceError, match="expected a FIT file"):
        list(FitRecords(p))
    _, err, code = replay_cli(str(p), "--format-in", "fit")
    assert code == 2 and err.count("\n") == 1
