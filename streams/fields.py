"""Field values to arrays, a whole column at a time, and the reason a single value is refused.

Numbers follow Python's float() on ASCII decimal text: surrounding whitespace is allowed, so are
'nan' and 'inf' (which the caller refuses as not finite); underscores ('9_5') and non-ASCII digits
(full-width '９５') are not numbers. Times are float seconds or ISO 8601 date-times (to epoch
seconds; a date-time without a zone is taken as UTC). Labels are 0/1/true/false.

>>> to_float(["80", " 81.5 ", "abc"]).tolist()
[80.0, 81.5, nan]
>>> to_label(["1", "False", "maybe"]).tolist()
[1.0, 0.0, nan]
>>> iso_seconds(["1970-01-01T00:01:00Z", "later"]).tolist()
[60.0, nan]
>>> why_number("abc", "hr"), why_number("", "hr"), why_number("inf", "hr"), why_number("80", "hr")
("not a number: 'abc'", "empty field 'hr'", "not finite: 'inf'", None)
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["in_range", "why_range", "shown", "to_float", "iso_seconds", "to_label", "stripped", "why_number",
           "why_time", "why_label"]

_LABELS = {"0": 0.0, "1": 1.0, "false": 0.0, "true": 1.0}
_CHUNK = 1 << 14  # values converted per try; a chunk holding a bad value is redone one by one


def _float_or_nan(value: str) -> float:
    if not _plain(value):
        return math.nan
    try:
        return float(value)
    except ValueError:
        return math.nan


def _plain(text: str) -> bool:
    """ASCII without underscores: what float() reads beyond decimal numbers ('9_5', full-width digits) is refused."""
    return text.isascii() and "_" not in text


def to_float(values: Sequence[str]) -> np.ndarray:
    """(n,) float64 of the values read with float(); NaN where a value is not a number."""
    n = len(values)
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, _CHUNK):
        part = values[start:start + _CHUNK]
        try:
            if not _plain("".join(part)):  # one C-level check per chunk
                raise ValueError
            out[start:start + len(part)] = np.fromiter(map(float, part), np.float64, len(part))
        except ValueError:  # rare: find the bad ones
            out[start:start + len(part)] = [_float_or_nan(v) for v in part]
    return out


def iso_seconds(values: Sequence[str]) -> np.ndarray:
    """(n,) float64 epoch seconds of ISO 8601 date-times (UTC when no zone); NaN if not one."""
    import pandas as pd

    stamps = pd.to_datetime(np.asarray(values, dtype=object), format="ISO8601", utc=True,
                            errors="coerce")
    seconds = (stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    return np.asarray(seconds, dtype=np.float64)


def to_label(values: Sequence[str]) -> np.ndarray:
    """(n,) float64 labels from 0/1/true/false (any case, spaces ignored); NaN for anything else."""
    import pandas as pd

    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    table = np.array([_LABELS.get(u.strip().lower(), math.nan) for u in uniques] + [math.nan])
    return table[codes]  # code -1 (missing) picks the trailing NaN


def stripped(values: Sequence[str]) -> np.ndarray:
    """(n,) object array of the values without surrounding whitespace (keys, patient ids)."""
    import pandas as pd

    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    return np.array([u.strip() for u in uniques] + [""], dtype=object)[codes]


def shown(value: str, limit: int = 40) -> str:
    """A field as quoted in a reason, cut to ``limit`` characters: a line of megabytes stays readable.

    >>> shown("abc"), shown("9" * 50, limit=5)
    ("'abc'", "'99999...' (50 characters)")
    """
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}[:-1]...' ({len(value)} characters)".replace("'[:-1]", "")


def why_number(value: str, name: str) -> str | None:
    """Why a reading field is refused, or None when it is a finite number."""
    v = value.strip()
    if not v:
        return f"empty field {name!r}"
    try:
        if not _plain(v):
            raise ValueError
        number = float(v)
    except ValueError:
        return f"not a number: {shown(v)}" + ("" if _plain(v) else " (only ASCII decimal numbers are read)")
    return None if math.isfinite(number) else f"not finite: {shown(v)}"


def why_time(value: str, name: str, iso: bool) -> str | None:
    """Why a time field is refused, or None when it reads as a time."""
    v = value.strip()
    if not v:
        return f"empty field {name!r}"
    if iso:
        return None if math.isfinite(iso_seconds([v])[0]) else f"not a time: {shown(v)}"
    try:
        if not _plain(v):
            raise ValueError
        number = float(v)
    except ValueError:
        return f"not a time: {shown(v)}"
    return None if math.isfinite(number) else f"not finite: {shown(v)}"


def why_label(value: str, name: str) -> str | None:
    """Why a label field is refused, or None when it is 0/1/true/false."""
    v = value.strip()
    if not v:
        return f"empty field {name!r}"
    return None if v.lower() in _LABELS else f"not a label (0/1/true/false): {shown(v)}"


def in_range(x: np.ndarray, valid_range: tuple[float, float] | None) -> np.ndarray:
    """(n,) True where a reading is finite and inside ``valid_range`` (any finite one when None)."""
    ok = np.isfinite(x)
    if valid_range is not None:
        ok &= (x >= valid_range[0]) & (x <= valid_range[1])
    return ok


def why_range(value: float, valid_range: tuple[float, float]) -> str:
    """The reason a finite reading outside the range is refused (as the CSV parser words it)."""
    lo, hi = valid_range
    return f"out of range {lo:g}..{hi:g}: '{value:g}'"
