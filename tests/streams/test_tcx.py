"""Garmin TCX: trackpoints with and without heart rate, the same flags as CSV, a cut-off file."""

from __future__ import annotations

import datetime as dt
import gzip

import pytest
from test_formats import csv_text, readings, replay_cli

from monitor.app.describe_input import describe
from streams import SourceError, detect, open_file
from streams.tcx import TcxTrackpoints

NS = "http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2"


def tcx_text(t, bpm, bad=True) -> str:
    """A TCX activity in two laps; every 9th trackpoint has no heart rate (normal), bad ones added."""
    def tp(s, inner):
        when = dt.datetime.fromtimestamp(s, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return (f"<Trackpoint><Time>{when}</Time><Position><LatitudeDegrees>51.5</LatitudeDegrees>"
                f"<LongitudeDegrees>-0.1</LongitudeDegrees></Position>{inner}</Trackpoint>\n")
    points = []
    for i, (s, b) in enumerate(zip(t, bpm)):
        if i % 9 == 4:
            points.append(tp(s + 1, "<DistanceMeters>10</DistanceMeters>"))  # no heart rate: skipped
        points.append(tp(s, f'<HeartRateBpm xsi:type="HeartRateInBeatsPerMinute_t"><Value>{b}</Value></HeartRateBpm>'))
    if bad:
        points.insert(20, tp(t[0], "<HeartRateBpm><Value>--</Value></HeartRateBpm>"))
        points.insert(30, "<Trackpoint><HeartRateBpm><Value>70</Value></HeartRateBpm></Trackpoint>\n")
        points.insert(40, tp(t[0], "<HeartRateBpm><Value>400</Value></HeartRateBpm>"))
    half = len(points) // 2
    lap = '<Lap StartTime="2024-04-01T07:00:00Z"><TotalTimeSeconds>600</TotalTimeSeconds><Track>\n{}</Track></Lap>\n'
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<TrainingCenterDatabase xmlns="{NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
            '<Activities><Activity Sport="Running"><Id>2024-04-01T07:00:00Z</Id>\n'
            + lap.format("".join(points[:half])) + lap.format("".join(points[half:]))
            + "</Activity></Activities></TrainingCenterDatabase>\n")


def test_trackpoints_give_the_same_flags_as_csv(tmp_path):
    t, bpm = readings(300)
    text = tcx_text(t, bpm)
    (tmp_path / "run.tcx").write_text(text)
    (tmp_path / "run.tcx.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "same.csv").write_text(csv_text(t, bpm))
    assert str(detect(tmp_path / "run.tcx")) == "tcx" and str(detect(tmp_path / "run.tcx.gz")) == "tcx (gzip)"
    want, _, code = replay_cli(str(tmp_path / "same.csv"))
    assert code == 0 and want.count(b"\n") == 300
    for name in ("run.tcx", "run.tcx.gz"):
        got, err, code = replay_cli(str(tmp_path / name))
        assert code == 0, err
        assert got == want
    source = open_file(tmp_path / "run.tcx", valid_range=(20.0, 300.0))
    rejects = [(r.line, r.reason) for b in source for r in b.rejected]
    assert [reason for _, reason in rejects] == ["not a number: '--'", "missing Time", "out of range 20..300: '400'"]
    assert source.found_ == "336 trackpoints, 33 without heart rate (skipped)"
    d = describe(tmp_path / "run.tcx")
    # info applies the replay's range check (issue 12): the 400 bpm trackpoint is a reject there too
    assert (d["format"], d["readings"], d["rejected"], d["unit"]) == ("tcx", 300, 3, "trackpoint")


def test_cut_off_and_broken(tmp_path):
    t, bpm = readings(100)
    text = tcx_text(t, bpm, bad=False)
    p = tmp_path / "cut.tcx"
    p.write_text(text[: len(text) // 2])
    batches = list(TcxTrackpoints(p, block=16))
    n = sum(len(b) for b in batches)
    (cut,) = [r for b in batches for r in b.rejected]
    assert 30 < n < 70 and "file cut off" in cut.reason
    p.write_text(text.replace("<Value>", "<Valu>", 1))
    with pytest.raises(SourceError, match="not well-formed XML"):
        list(TcxTrackpoints(p))
    p.write_text(f'<TrainingCenterDatabase xmlns="{NS}"><Activities/></TrainingCenterDatabase>')
    with pytest.raises(SourceError, match="no trackpoints with a heart rate"):
        list(TcxTrackpoints(p))
