"""Apple Health ``export.xml``: the ``HKQuantityTypeIdentifierHeartRate`` records, streamed.

An export holds every kind of record (steps, energy, sleep...) and is often gigabytes. It is read
with `streams.xmlrecords.iter_records` (as TCX is): each element is looked at when it ends and then
removed from the tree (records at any depth, inside a wrapper element too), so memory holds one
element and one block of readings, never the document. More than ``max_record`` bytes (1 MB,
``--max-line-bytes``) without an element ending is a one-line SourceError: the parser would have
to hold them. A heart-rate record looks like::

    <Record type="HKQuantityTypeIdentifierHeartRate" sourceName="Apple Watch" unit="count/min"
            startDate="2024-04-01 08:00:05 +0100" endDate="2024-04-01 08:00:05 +0100" value="62"/>

The reading is ``value`` (``unit`` must be count/min), the time is ``startDate`` in epoch seconds.
Heart-rate records are numbered from 1 in file order (other records are skipped, not counted); a
heart-rate record that is not a reading becomes a Reject with its number and the reason.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp(), "export.xml")
>>> _ = path.write_text('<?xml version="1.0" encoding="UTF-8"?><HealthData locale="en_GB">'
...     '<Record type="HKQuantityTypeIdentifierStepCount" unit="count" startDate="2024-04-01 08:00:00 +0000" value="12"/>'
...     '<Record type="HKQuantityTypeIdentifierHeartRate" unit="count/min" startDate="2024-04-01 08:00:05 +0000" value="62"/>'
...     '<Record type="HKQuantityTypeIdentifierHeartRate" unit="count/min" startDate="2024-04-01 08:00:10 +0000" value="n/a"/>'
...     '</HealthData>')
>>> [(b.x.ravel().tolist(), b.time.tolist(), b.line.tolist(), b.rejected) for b in AppleHealthXml(path)]
[([62.0], [1711958405.0], [1], (Reject(line=2, raw='startDate=2024-04-01 08:00:10 +0000 value=n/a unit=count/min', reason="not a number: 'n/a'"),))]
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from typing import Callable, Iterator

import numpy as np

from streams.batch import Batch, Reject, SourceError
from streams.compression import open_bytes
from streams.fields import in_range, to_float, why_range
from streams.lines import MAX_LINE
from streams.records import no_readings
from streams.xmlrecords import RecordTooLong, cut_off, iter_records, too_long_message

__all__ = ["AppleHealthXml", "HEART_RATE", "apple_seconds"]

HEART_RATE = "HKQuantityTypeIdentifierHeartRate"
_UNIT = "count/min"


def apple_seconds(values) -> np.ndarray:
    """(n,) epoch seconds of Apple's ``YYYY-MM-DD HH:MM:SS +ZZZZ`` dates (or ISO 8601); NaN if neither.

    >>> apple_seconds(["1970-01-01 01:00:00 +0100", "1970-01-01T00:02:00Z", "", None]).tolist()
    [0.0, 120.0, nan, nan]
    """
    import pandas as pd

    v = pd.Series(np.asarray(values, dtype=object)).where(lambda s: s.map(type) == str)
    stamps = pd.to_datetime(v, format="%Y-%m-%d %H:%M:%S %z", utc=True, errors="coerce")
    missing = stamps.isna() & v.notna()
    if missing.any():
        stamps[missing] = pd.to_datetime(v[missing], format="ISO8601", utc=True, errors="coerce")
    return np.asarray((stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1), dtype=np.float64)


class AppleHealthXml:
    """Heart-rate readings from an Apple Health export.xml. See the module docstring.

    Parameters
    ----------
    path
        The export.xml (may be gzip-compressed).
    block
        Heart-rate records per Batch.
    on_note
        Called once with a one-line note saying what is read.
    """

    live = False
    record_unit = "record"  # Reject.line and Batch.line count records, not lines

    def __init__(self, path: str | os.PathLike, *, block: int = 65536,
                 on_note: Callable[[str], None] | None = None, max_record: int = MAX_LINE,
                 valid_range: tuple[float, float] | None = None) -> None:
        self.path = path
        self.valid_range = valid_range  # readings outside (low, high) are rejected, as in a CSV
        self.block = block
        self.on_note = on_note
        self.max_record = max_record  # bytes fed to the parser without an element ending: refused beyond

    def __repr__(self) -> str:
        return f"AppleHealthXml({os.fspath(self.path)!r})"

    def __iter__(self) -> Iterator[Batch]:
        from xml.etree.ElementTree import ParseError

        name = os.fspath(self.path)
        values: list = []
        starts: list = []
        units: list = []
        n_hr = 0  # heart-rate records so far
        root = None
        try:
            with open_bytes(self.path) as f:
                for kind, elem in iter_records(f, "Record", max_record=self.max_record):
                    if kind == "root":
                        root = elem
                        continue
                    if elem.get("type") != HEART_RATE:
                        continue
                    if n_hr + len(values) == 0 and self.on_note is not None:
                        self.on_note(f"reading {HEART_RATE} records: value ({_UNIT}), "
                                     "time startDate (Apple Health XML)")
                    values.append(elem.get("value"))
                    starts.append(elem.get("startDate"))
                    units.append(elem.get("unit"))
                    if len(values) == self.block:
                        yield self._batch(values, starts, units, n_hr + 1)
                        n_hr += len(values)
                        values, starts, units = [], [], []
        except RecordTooLong:
            raise SourceError(too_long_message(name, self.max_record, f"heart-rate record {n_hr + len(values)}")
                              + " (not an Apple Health export?)") from None
        except ParseError as e:
            if n_hr + len(values) == 0:
                raise SourceError(f"{name}: not well-formed XML ({e}); expected an Apple Health export.xml") from None
            # an export cut off mid-file: keep what was read, and count the break as a rejected record
            batch = self._batch(values, starts, units, n_hr + 1) if values else no_readings()
            yield replace(batch, rejected=tuple(batch.rejected) + (cut_off(n_hr + len(values) + 1, e),))
            return
        except (OSError, EOFError) as e:
            raise SourceError(f"{name}: cannot read ({e})") from None
        if root is None:
            raise SourceError(f"{name} is empty")
        if root.tag != "HealthData" and n_hr + len(values) == 0:
            raise SourceError(f"{name}: expected an Apple Health export (<HealthData>), got <{root.tag}>")
        if values:
            yield self._batch(values, starts, units, n_hr + 1)
            n_hr += len(values)
        if n_hr == 0:
            raise SourceError(f"{name} holds no {HEART_RATE} records")

    def _batch(self, values: list, starts: list, units: list, first: int) -> Batch:
        x = to_float(["" if v is None else v for v in values])  # ASCII decimal numbers only, as in a CSV
        t = apple_seconds(starts)
        unit_ok = np.array([u == _UNIT for u in units], dtype=bool)
        ok = in_range(x, self.valid_range) & np.isfinite(t) & unit_ok
        rejects = []
        for i in np.flatnonzero(~ok).tolist():
            raw = f"startDate={starts[i]} value={values[i]} unit={units[i]}"
            rejects.append(Reject(first + i, raw[:200], _why(values[i], starts[i], units[i], t[i], self.valid_range)))
        idx = np.flatnonzero(ok)
        return Batch(time=t[ok], x=x[ok].reshape(-1, 1), y=np.full(len(idx), np.nan),
                     line=(first + idx).astype(np.int64), rejected=tuple(rejects))


def _why(value, start, unit, t, valid_range=None) -> str:
    if value is None:
        return "missing value"
    x = float(to_float([value])[0])
    if math.isnan(x) and value.strip().lower() != "nan":
        return f"not a number: {value!r}"
    if not math.isfinite(x):
        return f"not finite: {value!r}"
    if valid_range is not None and not valid_range[0] <= x <= valid_range[1]:
        return why_range(x, valid_range)
    if unit != _UNIT:
        return f"unit {unit!r}, expected {_UNIT!r}"
    if start is None:
        return "missing startDate"
    return f"not a time: {start!r}"
