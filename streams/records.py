"""Parsed export records to a Batch: the checks every record-based format shares.

The readers of WFDB, FHIR, TCX and FIT each pull (value, time, key) out of their records and say
why a record is not a reading when the record itself tells (a wrong unit, no value). What is
left is checked here the same way for all of them, and the same way as CSV lines: a value must be
a finite number, the time must be a time, and with ``valid_range`` the value must lie in it
(the reason reads as LineParser's: ``out of range 20..300: '350'``).

>>> import numpy as np
>>> b = to_batch(np.array([80.0, np.nan, 350.0, 90.0]), np.array([0.0, 1.0, 2.0, np.nan]),
...              np.arange(1, 5), raw="abcd".__getitem__, problems={1: "no value"}, valid_range=(20, 300))
>>> b.x.ravel().tolist(), b.line.tolist()
([80.0], [1])
>>> [(r.line, r.reason) for r in b.rejected]
[(2, 'no value'), (3, "out of range 20..300: '350'"), (4, 'not a time')]
"""

from __future__ import annotations

import os
from typing import Callable, Mapping, Sequence

import numpy as np

from streams.batch import Batch, Reject
from streams.fields import shown
from streams.lines import MAX_LINE

__all__ = ["RecordFile", "to_batch", "no_readings", "reject_reason", "RAW_MAX"]

RAW_MAX = 200  # characters of a rejected record kept in its Reject


def to_batch(x: np.ndarray, t: np.ndarray, line: np.ndarray, *, raw: Callable[[int], str],
             problems: Mapping[int, str] | None = None, key: np.ndarray | None = None,
             valid_range: tuple[float, float] | None = None) -> Batch:
    """A Batch of the good records; the others become Rejects with the first reason that applies.

    Parameters
    ----------
    x, t, line
        (n,) values (NaN where there is none), epoch seconds (NaN where not a time), record numbers.
    raw
        raw(i) quotes record i, kept (cut to RAW_MAX) in its Reject; called for rejects only.
    problems
        {i: reason} for the records the reader found wrong itself (a wrong unit, no value).
    key
        (n,) object array of keys (patient ids) or None.
    valid_range
        ``(low, high)``: values outside it are rejected; None accepts any finite value.
    """
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    line = np.asarray(line, dtype=np.int64)
    problems = problems or {}
    ok = np.ones(len(x), dtype=bool)
    ok[list(problems)] = False
    ok &= np.isfinite(x) & np.isfinite(t)
    if valid_range is not None:
        lo, hi = valid_range
        ok &= (x >= lo) & (x <= hi)
    rejects = [Reject(int(line[i]), str(raw(i))[:RAW_MAX], reject_reason(problems.get(i), x[i], t[i], valid_range))
               for i in np.flatnonzero(~ok).tolist()]
    return Batch(time=t[ok], x=x[ok].reshape(-1, 1), y=np.full(int(ok.sum()), np.nan), line=line[ok],
                 key=None if key is None else np.asarray(key, dtype=object)[ok], rejected=tuple(rejects))


def no_readings(rejected: Sequence[Reject] = (), keyed: bool = False) -> Batch:
    """A Batch with no readings, carrying only rejects."""
    return Batch(time=np.empty(0), x=np.empty((0, 1)), y=np.empty(0), line=np.empty(0, dtype=np.int64),
                 key=np.empty(0, dtype=object) if keyed else None, rejected=tuple(rejected))


def reject_reason(problem: str | None, x: float, t: float, valid_range) -> str:
    """Why a record is not a reading: ``problem`` when the reader said, else what is wrong with x or t."""
    if problem is not None:
        return problem
    if np.isnan(x):
        return "missing value"
    if not np.isfinite(x):
        return f"not finite: {shown(f'{x:g}')}"
    if not np.isfinite(t):
        return "not a time"
    lo, hi = valid_range
    return f"out of range {lo:g}..{hi:g}: {shown(f'{x:g}')}"


class RecordFile:
    """What every reader of one export file (TCX, FIT) is given and keeps; subclasses add ``__iter__``.

    Parameters
    ----------
    path
        The file (may be gzip-compressed).
    valid_range
        ``(low, high)``: readings outside it are rejected; None accepts any finite value.
    block
        Records per Batch.
    on_note
        Called once with a one-line note saying what is read.
    max_record
        Bytes one record may take (``--max-line-bytes``) where the reader has to hold a record
        before it ends (XML); a format whose records are bounded by their encoding (FIT: at most
        255 fields of 255 bytes) does not need it.

    Attributes
    ----------
    found_ : str
        After (or during) iteration: what the file holds, e.g. the records without heart rate.
    """

    live = False

    def __init__(self, path: str | os.PathLike, *, valid_range: tuple[float, float] | None = None,
                 block: int = 65536, on_note: Callable[[str], None] | None = None,
                 max_record: int = MAX_LINE) -> None:
        self.path = path
        self.valid_range = valid_range
        self.block = block
        self.on_note = on_note
        self.max_record = max_record
        self.found_: str | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({os.fspath(self.path)!r})"
