"""Where records go: JSON Lines (default off a terminal), CSV, or a readable table.

Each sink formats a whole Scored batch at once, a column at a time (see monitor.output.number_text: the bytes
are those of repr / "%.6f" / str.format per field), and writes it with one call.

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

from monitor.output.number_text import choose, fixed_text, int_text, join_rows, pad_left, repr_text, strings_text
from monitor.core.monitor import Scored

__all__ = ["JsonlSink", "CsvSink", "TableSink", "make_sink", "FORMATS", "CHUNK"]

FORMATS = ("jsonl", "csv", "table")

# Records are formatted and written this many at a time: the per-field text lists of a whole
# 4 MB input block (~290,000 readings) took ~175 MB for a moment, most of a replay's peak RSS.
CHUNK = 8192
# Batches of at most this many records (a live feed's line or two) are formatted a field at a time
# in Python: the column-at-a-time path costs ~0.3 ms whatever the size, a record this way ~5 us.
SMALL = 16


def _chunks(s: Scored):
    """The Scored in pieces of at most CHUNK records (itself when it is small)."""
    if len(s) <= CHUNK:
        yield s
        return
    for start in range(0, len(s), CHUNK):
        yield s.take(start, start + CHUNK)


def _label_code(label: np.ndarray) -> np.ndarray | None:
    """0/1/NaN labels as indices 0, 1, 2 (None when some label is another value)."""
    nan = np.isnan(label)
    if not ((label == 0) | (label == 1) | nan).all():
        return None
    return np.where(nan, 2, label).astype(np.intp)


def _label_text(label: np.ndarray, null: str) -> np.ndarray:
    """Labels as text: "0", "1", `null` for NaN, any other value as str(int(v))."""
    code = _label_code(label)
    if code is not None:
        return choose(code, [b"0", b"1", null.encode()])
    return strings_text([null if v != v else str(int(v)) for v in label.tolist()])


def _values(x: np.ndarray, sep: bytes, open_: bytes = b"", close: bytes = b"") -> list:
    """The value field(s): repr of the one reading, or `open_` x0 `sep` x1 ... `close`."""
    if x.shape[1] == 1:
        return [repr_text(x[:, 0])]
    parts: list = [open_] if open_ else []
    for j in range(x.shape[1]):
        if j:
            parts.append(sep)
        parts.append(repr_text(x[:, j]))
    if close:
        parts.append(close)
    return parts


class _Sink:
    """What the sinks share: a text stream, written a bounded chunk of rows at a time (`_write`)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __repr__(self) -> str:
        return f"{type(self).__name__}({getattr(self.stream, 'name', '?')})"

    def write(self, s: Scored) -> None:
        if 0 < len(s) <= SMALL:
            self._write_few(s)
            return
        for part in _chunks(s):
            self._write(part)

    def _write(self, s: Scored) -> None:
        raise NotImplementedError

    def _write_few(self, s: Scored) -> None:
        """A few records, one Python format per field (the same bytes as `_write`)."""
        self._write(s)

    def flush(self) -> None:
        self.stream.flush()


class JsonlSink(_Sink):
    """One JSON object per line: time, [key,] value, label, p_abnormal, flag."""

    def _write(self, s: Scored) -> None:
        if not len(s):
            return
        vname = "value" if s.x.shape[1] == 1 else "x"
        parts: list = [b'{"time": ', repr_text(s.time)]
        if s.key is not None:
            parts += [b', "key": ', strings_text([json.dumps(str(k)) for k in s.key.tolist()])]
        parts += [f', "{vname}": '.encode(), *_values(s.x, b", ", b"[", b"]"), b', "label": ',
                  _label_text(s.label, "null"), b', "p_abnormal": ', fixed_text(s.p, 6), b', "flag": ',
                  choose(s.flag.astype(np.intp), [b"false", b"true"]), b"}\n"]
        self.stream.write(join_rows(parts).decode("utf-8"))

    def _write_few(self, s: Scored) -> None:
        vname = "value" if s.x.shape[1] == 1 else "x"
        keys = None if s.key is None else s.key.tolist()
        rows = []
        for i, (t, x, lab, p, f) in enumerate(zip(s.time.tolist(), s.x.tolist(), s.label.tolist(),
                                                  s.p.tolist(), s.flag.tolist())):
            key = "" if keys is None else f', "key": {json.dumps(str(keys[i]))}'
            value = repr(x[0]) if len(x) == 1 else "[" + ", ".join(map(repr, x)) + "]"
            rows.append(f'{{"time": {t!r}{key}, "{vname}": {value}, "label": {_label_one(lab, "null")}, '
                        f'"p_abnormal": {p:.6f}, "flag": {"true" if f else "false"}}}\n')
        self.stream.write("".join(rows))


class CsvSink(_Sink):
    """A header line, then time,[key,]value,label,p_abnormal,flag (flag as 0/1)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.header_written = False  # True: a resumed run appends to a file that has it

    def _write(self, s: Scored) -> None:
        if not len(s):
            return
        d = s.x.shape[1]
        vnames = "value" if d == 1 else ",".join(f"x{i}" for i in range(d))
        if not self.header_written:
            self.stream.write(f"time,{'key,' if s.key is not None else ''}{vnames},label,p_abnormal,flag\n")
            self.header_written = True
        parts: list = [repr_text(s.time), b","]
        if s.key is not None:
            parts += [strings_text(list(map(str, s.key.tolist()))), b","]
        parts += [*_values(s.x, b","), b",", _label_text(s.label, ""), b",", fixed_text(s.p, 6), b",",
                  choose(s.flag.astype(np.intp), [b"0", b"1"]), b"\n"]
        self.stream.write(join_rows(parts).decode("utf-8"))

    def _write_few(self, s: Scored) -> None:
        if not self.header_written:  # (the header: the column path writes it)
            self._write(s)
            return
        keys = None if s.key is None else s.key.tolist()
        rows = []
        for i, (t, x, lab, p, f) in enumerate(zip(s.time.tolist(), s.x.tolist(), s.label.tolist(),
                                                  s.p.tolist(), s.flag.tolist())):
            key = "" if keys is None else f"{keys[i]},"
            rows.append(f"{t!r},{key}{','.join(map(repr, x))},{_label_one(lab, '')},{p:.6f},{'1' if f else '0'}\n")
        self.stream.write("".join(rows))


class TableSink(_Sink):
    """Aligned columns for a person at a terminal; abnormal flags marked (in red when colour is on)."""

    def __init__(self, stream: TextIO, *, colour: bool = False) -> None:
        super().__init__(stream)
        self.colour = colour
        self.header_written = False  # True: a resumed run appends to a file that has it

    def __repr__(self) -> str:
        return f"TableSink({getattr(self.stream, 'name', '?')}, colour={self.colour})"

    def _write(self, s: Scored) -> None:
        if not len(s):
            return
        if not self.header_written:
            key = "key        " if s.key is not None else ""
            self.stream.write(f"{'line':>8}  {'time':>10}  {key}{'value':>8}  {'label':>5}  {'p_abnormal':>10}  flag\n")
            self.header_written = True
        red, off = ("\x1b[31m", "\x1b[0m") if self.colour else ("", "")
        parts: list = [pad_left(int_text(s.line), 8), b"  ", pad_left(fixed_text(s.time, 1), 10), b"  "]
        if s.key is not None:
            parts += [strings_text([f"{str(k)[:10]:<10} " for k in s.key.tolist()])]
        code = _label_code(s.label)
        lab = (choose(code, [b"0", b"1", b"?"]) if code is not None
               else strings_text(["?" if v != v else str(int(v)) for v in s.label.tolist()]))
        parts += [pad_left(fixed_text(s.x[:, 0], 2), 8), b"  ", pad_left(lab, 5), b"  ",
                  pad_left(fixed_text(s.p, 4), 10), b"  ",
                  choose(s.flag.astype(np.intp), [b"-", f"{red}ABNORMAL{off}".encode()]), b"\n"]
        self.stream.write(join_rows(parts).decode("utf-8"))


def _label_one(v: float, null: str) -> str:
    """One label as `_label_text` writes it: "0", "1", `null` for NaN, another value as str(int(v))."""
    return null if v != v else str(int(v))


def make_sink(fmt: str, stream: TextIO, *, colour: bool = False):
    """The sink for a --format value."""
    if fmt == "jsonl":
        return JsonlSink(stream)
    if fmt == "csv":
        return CsvSink(stream)
    if fmt == "table":
        return TableSink(stream, colour=colour)
    raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
