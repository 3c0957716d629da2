"""Garmin Training Center XML (TCX): the heart rate of each ``Trackpoint``, streamed.

A trackpoint looks like::

    <Trackpoint><Time>2024-04-01T08:00:05Z</Time><HeartRateBpm><Value>62</Value></HeartRateBpm></Trackpoint>

The reading is ``HeartRateBpm/Value``, the time ``Time`` (ISO 8601) in epoch seconds. Trackpoints
are numbered from 1 in file order; one without ``HeartRateBpm`` is normal (the strap lost contact,
or a GPS-only point) and is skipped and counted (``found_``); one whose value or time is not
usable is a Reject with a reason. The file is read with ``iterparse`` and each trackpoint removed
from the tree once read, so memory holds one trackpoint and one block of readings. A file cut off
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
from typing import Callable, Iterator

import numpy as np

from streams.batch import Batch, Reject, SourceError
from streams.compression import open_bytes
from streams.fields import iso_seconds, shown
from streams.records import no_readings, to_batch

__all__ = ["TcxTrackpoints", "looks_like_tcx"]


def looks_like_tcx(head: bytes) -> bool:
    """True when the first bytes are XML with a ``TrainingCenterDatabase`` root."""
    return b"<TrainingCenterDatabase" in head or b":TrainingCenterDatabase" in head


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class TcxTrackpoints:
    """Heart-rate readings from a Garmin TCX file. See the module docstring.

    Parameters
    ----------
    path
        The .tcx file (may be gzip-compressed).
    valid_range
        ``(low, high)``: readings outside it are rejected; None accepts any finite value.
    block
        Trackpoints per Batch.
    on_note
        Called once with a one-line note saying what is read.
    """

    live = False
    record_unit = "trackpoint"  # Reject.line and Batch.line count trackpoints

    def __init__(self, path: str | os.PathLike, *, valid_range: tuple[float, float] | None = None,
                 block: int = 65536, on_note: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.valid_range = valid_range
        self.block = block
        self.on_note = on_note
        self.found_: str | None = None

    def __repr__(self) -> str:
        return f"TcxTrackpoints({os.fspath(self.path)!r})"

    def __iter__(self) -> Iterator[Batch]:
        from xml.etree.ElementTree import ParseError, iterparse

        name = os.fspath(self.path)
        values: list = []
        times: list = []
        numbers: list = []
        n_points = n_without = 0
        stack: list = []
        root = None
        f = open_bytes(self.path)
        try:
            with f:
                for event, elem in iterparse(f, events=("start", "end")):
                    if event == "start":
                        if root is None:
                            root = elem
                            if _local(elem.tag) != "TrainingCenterDatabase":
                                raise SourceError(f"{name}: expected a Garmin TCX file (<TrainingCenterDatabase>), "
                                                  f"got <{_local(elem.tag)}>")
                            if self.on_note is not None:
                                self.on_note("reading Trackpoint HeartRateBpm/Value, time Time (Garmin TCX)")
                        stack.append(elem)
                        continue
                    stack.pop()
                    if _local(elem.tag) != "Trackpoint":
                        continue
                    n_points += 1
                    value, when = _fields(elem)
                    if stack:
                        stack[-1].remove(elem)  # the parent keeps no finished trackpoints
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
        except ParseError as e:
            if n_points == 0:
                raise SourceError(f"{name}: not well-formed XML ({e}); expected a Garmin TCX file") from None
            cut = Reject(n_points + 1, "", f"not well-formed XML after this point ({e}): file cut off?")
            batch = self._batch(values, times, numbers) if values else no_readings()
            self.found_ = _found(n_points, n_without)
            yield replace(batch, rejected=tuple(batch.rejected) + (cut,))
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
        tag = _local(child.tag)
        if tag == "Time":
            when = (child.text or "").strip()
        elif tag == "HeartRateBpm":
            value = ""
            for v in child:
                if _local(v.tag) == "Value":
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
