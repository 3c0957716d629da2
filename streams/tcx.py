"""Garmin Training Center XML (TCX): the heart rate of each ``Trackpoint``, streamed.

A trackpoint looks like::

    <Trackpoint><Time>2024-04-01T08:00:05Z</Time><HeartRateBpm><Value>62</Value></HeartRateBpm></Trackpoint>

The reading is ``HeartRateBpm/Value``, the time ``Time`` (ISO 8601) in epoch seconds. Trackpoints
are numbered from 1 in file order; one without ``HeartRateBpm`` is normal (the strap lost contact,
or a GPS-only point) and is skipped and counted (``found_``); one whose value or time is not
usable is a Reject with a reason. The file is read with `streams.xmlrecords.iter_records`, as
Apple Health is: each trackpoint (and every other finished element) is removed from the tree once
read, so memory holds one trackpoint and one block of readings, and more than ``max_record`` bytes
(``--max-line-bytes``, 1 MB) without an element ending is a one-line SourceError. A file cut off
mid-way keeps the readings before the cut and counts the cut as a rejected trackpoint.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp(), "run.tcx")
>>> tp = "<Trackpoint><Time>2024-04-01T08:00:{:02d}Z</Time>{}</Trackpoint>"
>>> hr = "<HeartRateBpm><Value>{}</Value></HeartRateBpm>"
>>> _ = path.write_text('<?xml version="1.0"?><TrainingCenterDatabase xmlns="http://www.garmin.com/xmlschemas/'
...     'TrainingCenterDatabase/v2"><Activities><Activity Sport="Running"><Lap><Track>'
...     + tp.format(0, hr.format(62)) + tp.format(5, "") + tp.format(10, hr.format("x")) + tp.format(15, hr.format(64))
...     + "</Track></Lap></Activity></Activities></TrainingCenterDatabase>")
>>> source = TcxTrackpoints(path)
>>> [(b.x.ravel().tolist(), b.time.tolist(), b.line.tolist(), [r.reason for r in b.rejected]) for b in source]
[([62.0, 64.0], [1711958400.0, 1711958415.0], [1, 4], ["not a number: 'x'"])]
>>> source.found_
'4 trackpoints, 1 without heart rate (skipped)'
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from typing import Iterator

import numpy as np

from streams.batch import Batch, SourceError
from streams.compression import open_bytes
from streams.fields import iso_seconds, shown
from streams.records import RecordFile, no_readings, to_batch
from streams.xmlrecords import RecordTooLong, cut_off, iter_records, local_name, too_long_message

__all__ = ["TcxTrackpoints", "looks_like_tcx"]


def looks_like_tcx(head: bytes) -> bool:
    """True when the first bytes are XML with a ``TrainingCenterDatabase`` root."""
    return b"<TrainingCenterDatabase" in head or b":TrainingCenterDatabase" in head


class TcxTrackpoints(RecordFile):
    """Heart-rate readings from a Garmin TCX file. See the module docstring.

    Parameters: see `streams.records.RecordFile`.
    """

    record_unit = "trackpoint"  # Reject.line and Batch.line count trackpoints

    def __iter__(self) -> Iterator[Batch]:
        from xml.etree.ElementTree import ParseError

        name = os.fspath(self.path)
        values: list = []
        times: list = []
        numbers: list = []
        n_points = n_without = 0
        root = None
        try:
            with open_bytes(self.path) as f:
                for kind, elem in iter_records(f, "Trackpoint", max_record=self.max_record):
                    if kind == "root":
                        root = elem
                        if local_name(elem.tag) != "TrainingCenterDatabase":
                            raise SourceError(f"{name}: expected a Garmin TCX file (<TrainingCenterDatabase>), "
                                              f"got <{local_name(elem.tag)}>")
                        if self.on_note is not None:
                            self.on_note("reading Trackpoint HeartRateBpm/Value, time Time (Garmin TCX)")
                        continue
                    n_points += 1
                    value, when = _fields(elem)
                    if value is None:
                        n_without += 1
                        continue
                    values.append(value)
                    times.append(when)
                    numbers.append(n_points)
                    if len(values) == self.block:
                        yield self._batch(values, times, numbers)
                        values, times, numbers = [], [], []
                    self.found_ = _found(n_points, n_without)
        except RecordTooLong:
            raise SourceError(too_long_message(name, self.max_record, f"trackpoint {n_points}")) from None
        except ParseError as e:
            if n_points == 0:
                raise SourceError(f"{name}: not well-formed XML ({e}); expected a Garmin TCX file") from None
            batch = self._batch(values, times, numbers) if values else no_readings()
            self.found_ = _found(n_points, n_without)
            yield replace(batch, rejected=tuple(batch.rejected) + (cut_off(n_points + 1, e),))
            return
        except (OSError, EOFError) as e:
            raise SourceError(f"{name}: cannot read ({e})") from None
        if root is None:
            raise SourceError(f"{name} is empty")
        self.found_ = _found(n_points, n_without)
        if values:
            yield self._batch(values, times, numbers)
        if n_points == n_without:
            raise SourceError(f"{name} holds no trackpoints with a heart rate ({self.found_})")

    def _batch(self, values: list, times: list, numbers: list) -> Batch:
        x = np.array([_float(v) for v in values], dtype=np.float64)
        t = iso_seconds([w if w is not None else "" for w in times])
        problems = {}
        for i in np.flatnonzero(~np.isfinite(x) | ~np.isfinite(t)).tolist():
            problems[i] = _why(values[i], times[i])
        return to_batch(x, t, np.array(numbers, dtype=np.int64), problems=problems,
                        raw=lambda i: f"Time={times[i]} HeartRateBpm={values[i]}", valid_range=self.valid_range)


def _fields(tp) -> tuple[str | None, str | None]:
    """(HeartRateBpm/Value text or None, Time text or None) of a Trackpoint element."""
    value = when = None
    for child in tp:
        tag = local_name(child.tag)
        if tag == "Time":
            when = (child.text or "").strip()
        elif tag == "HeartRateBpm":
            value = ""
            for v in child:
                if local_name(v.tag) == "Value":
                    value = (v.text or "").strip()
    return value, when


def _float(v: str) -> float:
    try:
        return float(v)
    except ValueError:
        return math.nan


def _why(value: str, when: str | None) -> str | None:
    if not value:
        return "empty HeartRateBpm/Value"
    x = _float(value)
    if math.isnan(x) and value.lower() != "nan":
        return f"not a number: {shown(value)}"
    if not math.isfinite(x):
        return f"not finite: {shown(value)}"
    if not when:
        return "missing Time"
    return f"not a time: {shown(when)}"


def _found(n_points: int, n_without: int) -> str:
    return f"{n_points} trackpoints, {n_without} without heart rate (skipped)"
