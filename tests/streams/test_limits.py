"""Bounded memory and time (issue 12, items 5-7): a maximum line/record length, no rescans, pacing caps."""

from __future__ import annotations

import gzip
import json
import os
import time

import numpy as np
import pytest
from click.testing import CliRunner

from monitor.cli import main
from streams import CsvReplay


def run(*args: str, input=None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def one_line_error(res, code=2) -> str:
    assert res.exit_code == code, res.output
    assert len(res.output.strip().splitlines()) == 1, res.output
    return res.output


# -- item 5: no maximum line length -----------------------------------------------------------------

@pytest.mark.parametrize("block", [1 << 22, 4096, 7])
def test_a_line_over_the_limit_is_a_counted_reject_and_reading_goes_on(tmp_path, block):
    path = tmp_path / "a.csv"
    path.write_bytes(b"t,hr\n0,80\n1," + b"9" * 5000 + b"\n2,82\n3," + b"7" * 3000)
    batches = list(CsvReplay(path, block_bytes=block, max_line=1000))
    x = np.concatenate([b.x.ravel() for b in batches]).tolist()
    rejects = [r for b in batches for r in b.rejected]
    assert x == [80.0, 82.0]
    assert [r.line for r in rejects] == [3, 5]
    assert all("longer than 1,000 bytes" in r.reason for r in rejects)
    assert [len(r.raw) for r in rejects] == [200, 200]
    assert batches[-1].position["offset"] == path.stat().st_size  # every byte accounted for


def test_the_positions_and_digest_after_a_long_line_resume_exactly(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b"hr\n" + b"".join(b"%d\n" % (60 + i % 50) for i in range(300)) + b"8" * 9000 + b"\n"
                     + b"".join(b"%d\n" % (60 + i % 50) for i in range(300)))
    whole = list(CsvReplay(path, block_bytes=1000, max_line=2000, max_lines=50))
    for k in range(len(whole)):
        again = list(CsvReplay(path, block_bytes=1000, max_line=2000, max_lines=50, resume=whole[k].position))
        rest = whole[k + 1:]
        assert again[-1].position == rest[-1].position if rest else not again
        for field in ("x", "line"):
            assert np.concatenate([getattr(b, field).ravel() for b in again] or [[]]).tolist() == \
                np.concatenate([getattr(b, field).ravel() for b in rest] or [[]]).tolist()
        assert [r for b in again for r in b.rejected] == [r for b in rest for r in b.rejected]


def test_dev_zero_ends_with_one_line(tmp_path):
    t0 = time.monotonic()
    out = one_line_error(run("replay", "/dev/zero", "-q"))
    assert "not text (NUL bytes" in out and time.monotonic() - t0 < 10
    assert "not text" in one_line_error(run("info", "/dev/zero"))


def test_standard_input_of_zeros_ends_with_one_line():
    # in this process: standard input is /dev/zero's descriptor, read with os.read as from a pipe
    with open("/dev/zero", "rb") as zero:
        res = CliRunner().invoke(main, ["replay", "-", "-q"], input=zero)
    assert res.exit_code == 2 and "not text" in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr


def test_a_gzip_bomb_of_zeros_and_of_one_endless_line(tmp_path):
    bomb = tmp_path / "bomb.csv.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as f:
        for _ in range(64):
            f.write(bytes(1 << 20))  # 64 MB of zeros
    assert "not text" in one_line_error(run("replay", str(bomb), "-q"))
    assert "not text" in one_line_error(run("info", str(bomb)))
    line = tmp_path / "line.csv.gz"
    with gzip.open(line, "wb", compresslevel=9) as f:
        f.write(b"hr\n80\n")
        for _ in range(24):
            f.write(b"9" * (1 << 20))  # one line of 24 MB
        f.write(b"\n81\n")
    res = run("replay", str(line), "--summary-json", str(tmp_path / "s.json"), "--out", os.devnull)
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "s.json").read_text())
    assert (s["readings"], s["rejected"]) == (2, 1)
    assert "line 3 rejected: longer than 1,048,576 bytes (25,165,824 bytes)" in res.output


def test_utf16_is_named(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes("t,hr\n0,80\n".encode("utf-16"))
    assert "UTF-16" in one_line_error(run("replay", str(path), "-q"))


# -- item 6: Fitbit rescans, Apple wrapper ---------------------------------------------------------

def fitbit_records(n: int, start: int = 0) -> list[str]:
    def hms(s: int) -> str:
        return f"{s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}"

    return [f'{{"dateTime": "04/01/24 {hms(start + i)}", '
            f'"value": {{"bpm": {60 + i % 40}, "confidence": 2}}}}' for i in range(n)]


def test_a_fitbit_string_that_never_ends_is_rejected_in_seconds(tmp_path):
    path = tmp_path / "hr.json"
    with open(path, "wb") as f:
        f.write(("[" + ", ".join(fitbit_records(10)) + ', {"dateTime": "').encode())
        f.write(b"x" * (40 << 20))  # 40 MB, no closing quote
    t0 = time.monotonic()
    res = run("replay", str(path), "--summary-json", str(tmp_path / "s.json"), "--out", os.devnull)
    assert time.monotonic() - t0 < 20
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "s.json").read_text())
    assert (s["readings"], s["rejected"]) == (10, 1)
    assert "record 11 rejected: longer than 1,048,576 bytes" in res.output


def test_a_long_fitbit_record_is_a_reject_and_reading_goes_on(tmp_path):
    from streams.fitbit import FitbitJson

    recs = fitbit_records(30)
    recs[10] = '{"dateTime": "04/01/24 00:00:10", "note": "' + "y" * 5000 + '", "value": {"bpm": 70}}'
    path = tmp_path / "hr.json"
    path.write_text("[" + ", ".join(recs) + "]")
    for block in (64, 1000, 1 << 20):
        batches = list(FitbitJson(path, block_bytes=block, max_record=2000))
        assert sum(len(b) for b in batches) == 29
        rejected = [r for b in batches for r in b.rejected]
        assert [r.line for r in rejected] == [11] and "longer than 2,000 bytes" in rejected[0].reason
        assert np.concatenate([b.line for b in batches]).tolist() == [i for i in range(1, 31) if i != 11]


def test_fitbit_json_nested_100000_deep_is_one_line(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('[{"dateTime": "04/01/24 00:00:05", "value": ' + "[" * 100_000 + "]" * 100_000 + "}]")
    res = run("replay", str(path), "-q", "--out", os.devnull)
    assert res.exit_code in (0, 2) and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) <= 1
    res = run("info", str(path))
    assert "Traceback" not in res.output


def test_apple_records_inside_a_wrapper_are_read(tmp_path):
    from streams.apple_health import AppleHealthXml

    rec = ('<Record type="HKQuantityTypeIdentifierHeartRate" unit="count/min" '
           'startDate="2024-04-01 08:00:{:02d} +0000" value="{}"><MetadataEntry key="k" value="v"/></Record>')
    body = "".join(rec.format(i % 60, 60 + i % 30) for i in range(500))
    path = tmp_path / "export.xml"
    path.write_text(f'<?xml version="1.0"?><HealthData><Wrapper><Inner>{body}</Inner></Wrapper></HealthData>')
    batches = list(AppleHealthXml(path, block=128))
    assert sum(len(b) for b in batches) == 500
    assert np.concatenate([b.x.ravel() for b in batches]).tolist() == [60.0 + i % 30 for i in range(500)]


# -- item 7: pacing ---------------------------------------------------------------------------------

def test_a_huge_time_gap_is_capped_when_pacing():
    from monitor.app.pacing import Pacer

    slept = []
    clock = [0.0]

    def sleep(s):
        slept.append(s)
        clock[0] += s

    pacer = Pacer(speed=1, clock=lambda: clock[0], sleep=sleep, max_gap=5.0)
    parts = list(pacer.split(np.array([0.0, 1.0, 1e12, 1e12 + 1])))
    assert sum(p.stop - p.start for p in parts) == 4
    assert max(slept) <= 5.0 and sum(slept) <= 7.0
    assert pacer.n_capped_ == 1


@pytest.mark.parametrize("t", ["1e308", "-1e308", "1e20"])
def test_absurd_times_are_rejected(tmp_path, t):
    path = tmp_path / "a.csv"
    path.write_text(f"t,hr\n0,80\n{t},81\n2,82\n")
    res = run("replay", str(path), "--summary-json", str(tmp_path / "s.json"), "--out", os.devnull)
    assert res.exit_code == 0
    s = json.loads((tmp_path / "s.json").read_text())
    assert (s["readings"], s["rejected"]) == (2, 1)
    assert "time out of range" in res.output


# -- the Fitbit scanner, carried across blocks, against json.loads ---------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

_TEXT = st.text(alphabet='ab{}[]",:\\ \n\u00e9', max_size=12)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(notes=st.lists(_TEXT, min_size=1, max_size=12), block=st.integers(1, 90))
def test_the_fitbit_scanner_finds_every_record_whatever_the_blocks(tmp_path_factory, notes, block):
    from streams.fitbit import FitbitJson

    recs = [{"dateTime": f"04/01/24 00:00:{i:02d}", "note": {"t": n, "k": [n, {"x": n}]},
             "value": {"bpm": 60 + i}} for i, n in enumerate(notes)]
    path = tmp_path_factory.mktemp("fb") / "hr.json"
    path.write_text(json.dumps(recs, ensure_ascii=False), encoding="utf-8")
    batches = list(FitbitJson(path, block_bytes=block))
    assert np.concatenate([b.x.ravel() for b in batches]).tolist() == [60.0 + i for i in range(len(notes))]
    assert not [r for b in batches for r in b.rejected]


def test_the_pacing_cap_is_a_setting_and_noted(tmp_path):
    path = tmp_path / "gap.csv"
    path.write_text("t,hr\n0,80\n1,81\n1000000000000,82\n1000000000001,83\n")
    t0 = time.monotonic()
    res = run("replay", str(path), "--speed", "1000", "--max-gap", "0.5", "--out", os.devnull)
    assert res.exit_code == 0, res.output
    assert time.monotonic() - t0 < 15
    assert "a gap of 1e+12 s in the time column is cut to 0.5 s of waiting" in res.output


def test_a_binary_file_with_carriage_returns_is_named_binary_not_old_line_endings(tmp_path):
    """An executable's first bytes hold NUL and CR bytes but no newline: it is not text, whatever its CRs."""
    path = tmp_path / "program.csv"
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00" + b"\x00\x10\r\x00" * 200)
    out = one_line_error(run("replay", str(path), "-q"))
    assert "not text (NUL bytes" in out and "old Mac" not in out
