"""The record writers as they were before issue 15 (one Python format call per field): the oracle
that tests/monitor/output/test_sinks.py holds the column-at-a-time writers of monitor.output.sinks to, byte for byte.

Where records go: JSON Lines (default off a terminal), CSV, or a readable table.

Each sink formats a whole Scored batch at once and writes it with one call.

>>> import io, numpy as np
>>> from monitor.core.monitor import Scored
>>> s = Scored(time=np.array([0.0, 0.5]), x=np.array([[80.0], [95.5]]), label=np.array([0.0, 1.0]),
...            p=np.array([0.01, 0.987654321]), flag=np.array([False, True]), line=np.array([2, 3]))
>>> out = io.StringIO()
>>> JsonlSink(out).write(s)
>>> print(out.getvalue(), end="")
{"time": 0.0, "value": 80.0, "label": 0, "p_abnormal": 0.010000, "flag": false}
{"time": 0.5, "value": 95.5, "label": 1, "p_abnormal": 0.987654, "flag": true}
>>> out = io.StringIO()
>>> CsvSink(out).write(s)
>>> print(out.getvalue(), end="")
time,value,label,p_abnormal,flag
0.0,80.0,0,0.010000,0
0.5,95.5,1,0.987654,1
"""

from __future__ import annotations

import json
from typing import TextIO

import numpy as np

from monitor.core.monitor import Scored

__all__ = ["JsonlSink", "CsvSink", "TableSink", "make_sink", "FORMATS", "CHUNK"]

FORMATS = ("jsonl", "csv", "table")

# Records are formatted and written this many at a time: the per-field text lists of a whole
# 4 MB input block (~290,000 readings) took ~175 MB for a moment, most of a replay's peak RSS.
CHUNK = 8192


def _chunks(s: Scored):
    """The Scored in pieces of at most CHUNK records (itself when it is small)."""
    if len(s) <= CHUNK:
        yield s
        return
    for start in range(0, len(s), CHUNK):
        yield s.take(start, start + CHUNK)


def _columns(s: Scored) -> tuple[list[str], list]:
    """Per-record field texts as lists, built with C-level conversions (no formatting per field call)."""
    d = s.x.shape[1]
    time = list(map(repr, s.time.tolist()))
    if d == 1:
        value = list(map(repr, s.x[:, 0].tolist()))
    else:
        value = ["[" + ", ".join(map(repr, row)) + "]" for row in s.x.tolist()]
    lab = _labels(s.label)
    p = list(map("%.6f".__mod__, s.p.tolist()))  # 2-3x faster than np.char.mod
    return [time, value, lab, p], (None if s.key is None else list(map(str, s.key.tolist())))


_LABEL_TEXT = np.array(["0", "1", "null"], dtype=object)


def _labels(label: np.ndarray) -> list[str]:
    """0/1/NaN labels as "0", "1", "null", by a table lookup (any other value by int())."""
    nan = np.isnan(label)
    if ((label == 0) | (label == 1) | nan).all():
        return _LABEL_TEXT[np.where(nan, 2, label).astype(np.intp)].tolist()
    return ["null" if v != v else str(int(v)) for v in label.tolist()]


class JsonlSink:
    """One JSON object per line: time, [key,] value, label, p_abnormal, flag."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __repr__(self) -> str:
        return f"JsonlSink({getattr(self.stream, 'name', '?')})"

    def write(self, s: Scored) -> None:
        for part in _chunks(s):
            self._write(part)

    def _write(self, s: Scored) -> None:
        if not len(s):
            return
        (time, value, lab, p), key = _columns(s)
        flag = np.where(s.flag, "true", "false").tolist()
        vname = "value" if s.x.shape[1] == 1 else "x"
        if key is None:
            fmt = '{{"time": {}, "%s": {}, "label": {}, "p_abnormal": {}, "flag": {}}}\n' % vname
            self.stream.write("".join(map(fmt.format, time, value, lab, p, flag)))
        else:
            keys = [json.dumps(k) for k in key]
            fmt = '{{"time": {}, "key": {}, "%s": {}, "label": {}, "p_abnormal": {}, "flag": {}}}\n' % vname
            self.stream.write("".join(map(fmt.format, time, keys, value, lab, p, flag)))

    def flush(self) -> None:
        self.stream.flush()


class CsvSink:
    """A header line, then time,[key,]value,label,p_abnormal,flag (flag as 0/1)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.header_written = False  # True: a resumed run appends to a file that has it

    def __repr__(self) -> str:
        return f"CsvSink({getattr(self.stream, 'name', '?')})"

    def write(self, s: Scored) -> None:
        for part in _chunks(s):
            self._write(part)

    def _write(self, s: Scored) -> None:
        if not len(s):
            return
        (time, value, lab, p), key = _columns(s)
        d = s.x.shape[1]
        if d > 1:
            value = [",".join(map(repr, row)) for row in s.x.tolist()]
        lab = ["" if v == "null" else v for v in lab]
        flag = np.where(s.flag, "1", "0").tolist()
        vnames = "value" if d == 1 else ",".join(f"x{i}" for i in range(d))
        if not self.header_written:
            self.stream.write(f"time,{'key,' if key is not None else ''}{vnames},label,p_abnormal,flag\n")
            self.header_written = True
        if key is None:
            self.stream.write("".join(map("{},{},{},{},{}\n".format, time, value, lab, p, flag)))
        else:
            self.stream.write("".join(map("{},{},{},{},{},{}\n".format, time, key, value, lab, p, flag)))

    def flush(self) -> None:
        self.stream.flush()


class TableSink:
    """Aligned columns for a person at a terminal; abnormal flags marked (in red when colour is on)."""

    def __init__(self, stream: TextIO, *, colour: bool = False) -> None:
        self.stream = stream
        self.colour = colour
        self.header_written = False  # True: a resumed run appends to a file that has it

    def __repr__(self) -> str:
        return f"TableSink({getattr(self.stream, 'name', '?')}, colour={self.colour})"

    def write(self, s: Scored) -> None:
        for part in _chunks(s):
            self._write(part)

    def _write(self, s: Scored) -> None:
        if not len(s):
            return
        if not self.header_written:
            key = "key        " if s.key is not None else ""
            self.stream.write(f"{'line':>8}  {'time':>10}  {key}{'value':>8}  {'label':>5}  {'p_abnormal':>10}  flag\n")
            self.header_written = True
        red, off = ("\x1b[31m", "\x1b[0m") if self.colour else ("", "")
        rows = []
        keys = s.key.tolist() if s.key is not None else None
        for i, (ln, t, v, lab, p, f) in enumerate(zip(s.line.tolist(), s.time.tolist(), s.x[:, 0].tolist(),
                                                       s.label.tolist(), s.p.tolist(), s.flag.tolist())):
            key = f"{str(keys[i])[:10]:<10} " if keys is not None else ""
            mark = f"{red}ABNORMAL{off}" if f else "-"
            labtxt = "?" if lab != lab else str(int(lab))
            rows.append(f"{ln:>8}  {t:>10.1f}  {key}{v:>8.2f}  {labtxt:>5}  {p:>10.4f}  {mark}\n")
        self.stream.write("".join(rows))

    def flush(self) -> None:
        self.stream.flush()


def make_sink(fmt: str, stream: TextIO, *, colour: bool = False):
    """The sink for a --format value."""
    if fmt == "jsonl":
        return JsonlSink(stream)
    if fmt == "csv":
        return CsvSink(stream)
    if fmt == "table":
        return TableSink(stream, colour=colour)
    raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
