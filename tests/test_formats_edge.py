"""Edge cases of real exports found in review: each failed before its fix."""

from __future__ import annotations

import json

import pytest

from streams import CsvReplay, SourceError
from streams.apple_health import AppleHealthXml
from streams.fitbit import FitbitJson


def test_fitbit_string_ending_in_a_backslash_does_not_derail_record_boundaries(tmp_path):
    p = tmp_path / "hr.json"
    json.dump([{"dateTime": "04/01/24 00:00:00", "value": {"bpm": 70}, "note": "C:\\"},
               {"dateTime": "04/01/24 00:00:01", "value": {"bpm": 71}},
               {"dateTime": "04/01/24 00:00:02", "value": {"bpm": 72}, "note": "}{"}], p.open("w"))
    assert [v for b in FitbitJson(p) for v in b.x.ravel().tolist()] == [70.0, 71.0, 72.0]


def test_fitbit_integer_too_large_for_a_float_is_a_counted_reject(tmp_path):
    p = tmp_path / "hr.json"
    json.dump([{"dateTime": "04/01/24 00:00:00", "value": {"bpm": 70}},
               {"dateTime": "04/01/24 00:00:01", "value": {"bpm": 10 ** 400}}], p.open("w"))
    batches = list(FitbitJson(p))
    assert sum(len(b) for b in batches) == 1
    (reject,) = [r for b in batches for r in b.rejected]
    assert reject.line == 2 and reject.reason.startswith("bpm not finite")


def test_apple_export_cut_off_keeps_the_readings_before_the_cut(tmp_path):
    records = "".join(f'<Record type="HKQuantityTypeIdentifierHeartRate" unit="count/min" value="{70 + i}" '
                      f'startDate="2024-04-01 00:00:{i:02d} +0000"/>\n' for i in range(30))
    doc = '<?xml version="1.0"?>\n<HealthData>\n' + records + "</HealthData>\n"
    p = tmp_path / "export.xml"
    p.write_text(doc[: len(doc) // 2])
    batches = list(AppleHealthXml(p))
    n = sum(len(b) for b in batches)
    (cut,) = [r for b in batches for r in b.rejected]
    assert 10 <= n < 30 and cut.line == n + 1 and "file cut off" in cut.reason


@pytest.mark.parametrize("block_bytes", [7, 1 << 22])
def test_old_mac_line_endings_are_named_not_misread(tmp_path, block_bytes):
    p = tmp_path / "cr.csv"
    p.write_bytes(b"t,hr\r0,80\r1,81\r")
    with pytest.raises(SourceError, match="old Mac line endings"):
        list(CsvReplay(p, block_bytes=block_bytes))


@pytest.mark.parametrize("block_bytes", [3, 5, 7, 1 << 22])
def test_windows_line_endings_split_across_blocks_still_read(tmp_path, block_bytes):
    p = tmp_path / "crlf.csv"
    p.write_bytes(b"t,hr\r\n0,80\r\n1,81\r\n")
    assert [v for b in CsvReplay(p, block_bytes=block_bytes) for v in b.x.ravel().tolist()] == [80.0, 81.0]
