"""Which column holds what: header detection and the choice of reading, time, label and key columns.

>>> is_header(["t", "hr"]), is_header(["0.5", "81.2"]), is_header(["2024-01-01T10:00:00", "80"])
(True, False, False)
>>> cols = choose_columns(("t", "hr"), [["0.0", "80"]], has_header=True)
>>> cols.note()
"reading column 'hr', time column 't'"
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

from streams.batch import SourceError

__all__ = ["HR_NAMES", "TIME_NAMES", "KEY_NAMES", "Columns", "is_header", "choose_columns", "find_column"]

# Names a heart-rate column goes by, in order of preference (compared after normalise()).
HR_NAMES = ("hr", "heartrate", "bpm", "value", "pulse")
# Names a time column goes by (compared after normalise()).
TIME_NAMES = ("time", "t", "timestamp", "datetime", "date", "seconds", "ts")
# Names a key (patient, device) column goes by, in order of preference (compared after normalise()).
KEY_NAMES = ("patient", "patientid", "subject", "device")

# The command-line flag that sets each option, named in error messages.
_FLAGS = {"column": "--column", "time_column": "--time-column",
          "label_column": "--label-column", "key_column": "--key-column"}

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}([.,]\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?")


def normalise(name: str) -> str:
    """Lower case, without spaces, underscores and hyphens: 'Heart Rate' -> 'heartrate'."""
    return re.sub(r"[\s_\-]", "", name).lower()


def is_number(field: str) -> bool:
    """True when Python's float() reads the field (NaN and infinities included)."""
    try:
        float(field)
    except ValueError:
        return False
    return True


def is_iso_time(field: str) -> bool:
    """True when the field looks like an ISO 8601 date or date-time."""
    return _ISO.fullmatch(field.strip()) is not None


def is_header(fields: Sequence[str]) -> bool:
    """A first line is a header when a field is neither empty, a number nor an ISO time."""
    return any(f.strip() and not is_number(f) and not is_iso_time(f) for f in fields)


def find_column(names: Sequence[str], wanted: str | int, option: str = "column") -> int:
    """Index of the column called ``wanted`` (any case), or a SourceError listing the columns.

    Examples
    --------
    >>> find_column(("Time", "HR"), "hr")
    1
    >>> find_column(("t", "hr"), "bpm")
    Traceback (most recent call last):
    ...
    streams.batch.SourceError: no column named 'bpm' (--column); the columns are: t, hr
    """
    key = str(wanted).strip().lower()
    for i, name in enumerate(names):
        if name.strip().lower() == key:
            return i
    raise SourceError(f"no column named {str(wanted)!r} ({_FLAGS[option]}); "
                      f"the columns are: {', '.join(names)}")


NO_TIME = "no time column (time = reading index)"  # the note's words when the time is the reading index


@dataclass(frozen=True)
class Columns:
    """The columns chosen for a line source; indices into ``names``."""

    names: tuple[str, ...]  # column names; "0", "1", ... for header-less input
    reading: int  # the heart-rate column
    time: int | None = None  # None: time is the reading index
    time_iso: bool = False  # True: the time column holds ISO 8601 date-times, else seconds
    label: int | None = None  # 0/1 labels, None when the source carries none
    key: int | None = None  # patient id, None when the source carries none
    has_header: bool = True

    def used(self) -> list[int]:
        """The indices of the columns that are read, in column order."""
        return sorted({i for i in (self.reading, self.time, self.label, self.key) if i is not None})

    def note(self) -> str:
        """One line for the user saying what was chosen."""
        n = self.names
        parts = [f"reading column {n[self.reading]!r}"]
        if self.time is None:
            parts.append(NO_TIME)
        else:
            parts.append(f"time column {n[self.time]!r}" + (" (ISO 8601)" if self.time_iso else ""))
        if self.label is not None:
            parts.append(f"label column {n[self.label]!r}")
        if self.key is not None:
            parts.append(f"key column {n[self.key]!r}")
        return ", ".join(parts) + ("" if self.has_header else " (no header)")


def _share(rows: Sequence[Sequence[str]], i: int, test) -> float:
    """Share of the non-empty values of column i that pass ``test`` (0.0 when all are empty)."""
    values = [r[i].strip() for r in rows if r[i].strip()]
    return sum(map(test, values)) / len(values) if values else 0.0


def _finite(field: str) -> bool:
    return is_number(field) and math.isfinite(float(field))


def choose_columns(names: Sequence[str], rows: Sequence[Sequence[str]], *, has_header: bool,
                   column: str | int | None = None, time_column: str | int | None = None,
                   label_column: str | int | None = None,
                   key_column: str | int | None = None) -> Columns:
    """Choose the columns from the names and a sample of well-formed data rows.

    The reading column is ``column`` if given, else the first column with a common heart-rate name
    (see HR_NAMES), else the only numeric column left; the time column is ``time_column`` if given,
    else a column with a common time name whose values read as times; the key column is
    ``key_column`` if given, else a column named patient, patient_id, subject or device (KEY_NAMES).

    Examples
    --------
    >>> choose_columns(("when", "pulse"), [["2024-01-01T00:00:00", "71"]], has_header=True).note()
    "reading column 'pulse', no time column (time = reading index)"
    >>> choose_columns(("time", "Patient_ID", "hr"), [["0", "a", "71"]], has_header=True).note()
    "reading column 'hr', time column 'time', key column 'Patient_ID'"
    >>> choose_columns(("0",), [["71"]], has_header=False).note()
    "reading column '0', no time column (time = reading index) (no header)"
    >>> choose_columns(("a", "b"), [["1", "2"]], has_header=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    streams.batch.SourceError: cannot tell which column holds the heart rate among: a, b; ...
    """
    names = tuple(names)
    label = None if label_column is None else find_column(names, label_column, "label_column")
    if key_column is not None:
        key = find_column(names, key_column, "key_column")
    else:  # a column named like a patient or device id keys the stream
        key = next((i for want in KEY_NAMES for i, n in enumerate(names)
                    if normalise(n) == want and i != label), None)
    reading = None if column is None else find_column(names, column, "column")
    if time_column is not None:
        time = find_column(names, time_column, "time_column")
    else:
        time = next((i for i, n in enumerate(names)
                     if normalise(n) in TIME_NAMES and i not in (reading, label, key)
                     and _share(rows, i, lambda v: _finite(v) or is_iso_time(v)) >= 0.5), None)
    time_iso = time is not None and _share(rows, time, is_number) < 0.5
    if reading is None:
        taken = {time, label, key}
        by_name = [i for want in HR_NAMES for i, n in enumerate(names)
                   if normalise(n) == want and i not in taken]
        numeric = [i for i in range(len(names))
                   if i not in taken and _share(rows, i, _finite) >= 0.5]
        if by_name:
            reading = by_name[0]
        elif len(numeric) == 1:
            reading = numeric[0]
        else:
            raise SourceError("cannot tell which column holds the heart rate among: "
                              f"{', '.join(names)}; pass --column NAME")
    return Columns(names=names, reading=reading, time=time, time_iso=time_iso, label=label,
                   key=key, has_header=has_header)
