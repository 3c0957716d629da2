"""CSV text lines to Batches: the one line parser shared by the file and the live sources.

Every line given comes back as a reading, a Reject, or the header, so that for each block
``len(batch) + len(batch.rejected) + batch.header_lines`` equals the number of lines given.

>>> p = LineParser(on_note=print)
>>> b = p.parse(["t,hr", "0.0,80", "0.5,abc", "1.0,82"])
reading column 'hr', time column 't'
>>> b
Batch(n=2, d=1, lines=2..4, rejected=1)
>>> b.x.ravel().tolist(), b.time.tolist()
([80.0, 82.0], [0.0, 1.0])
>>> b.rejected[0]
Reject(line=3, raw='0.5,abc', reason="not a number: 'abc'")
>>> p.parse(["82.5", "t,hr"], first_line=5).rejected[1].reason
'repeated header'
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, replace
from itertools import compress, repeat
from typing import Callable, Sequence

import numpy as np

from streams.batch import Batch, Reject
from streams.columns import Columns, choose_columns, find_column, is_header
from streams.fields import (iso_seconds, shown, stripped, to_float, to_label, why_label, why_number,
                            why_time)

__all__ = ["LineParser", "MAX_LINE", "too_long"]

_BOM = "\ufeff"
_RAW_MAX = 200  # characters of a rejected line kept in its Reject
_SAMPLE = 100  # well-formed data lines looked at to choose the columns
MAX_TIME = 1e13  # seconds from 0 a time may be (epoch milliseconds pass; 1e308 does not)
MAX_LINE = 1 << 20  # bytes: a longer line (or record) is a counted reject, never held whole in memory
_FAST_MIN_LINES = 2048  # smaller blocks (live input) go line by line: pandas costs ~1 ms a call


class LineParser:
    """Parse blocks of CSV lines into Batches, keeping the header and column choice across blocks.

    Parameters
    ----------
    column, time_column, label_column, key_column
        Column names (case-insensitive; "0", "1", ... for header-less input). ``column`` defaults
        to a column with a common heart-rate name, else the only numeric column; ``time_column``
        to a column with a common time name; no label or key column unless named.
    valid_range
        ``(low, high)``: a reading outside it (a heart rate of 0 or 900) is rejected with the
        reason "out of range"; None (the default) accepts any finite number.
    on_note
        Called once with a one-line note saying which columns were chosen.

    Examples
    --------
    >>> LineParser(valid_range=(20, 300)).parse(["hr", "80", "350"]).rejected[0].reason
    "out of range 20..300: '350'"
    >>> p = LineParser()
    >>> p.parse(["71", "", "72"]).rejected
    (Reject(line=2, raw='', reason='empty line'),)
    >>> p.parse(["73"], first_line=4).time.tolist()  # no time column: the reading index
    [2.0]
    """

    def __init__(self, *, column: str | None = None, time_column: str | None = None,
                 label_column: str | None = None, key_column: str | None = None,
                 valid_range: tuple[float, float] | None = None,
                 on_note: Callable[[str], None] | None = None) -> None:
        self.column = column
        self.time_column = time_column
        self.label_column = label_column
        self.key_column = key_column
        self.valid_range = valid_range
        self.on_note = on_note
        self.names_: tuple[str, ...] | None = None  # column names, once the first line is seen
        self.header_: tuple[str, ...] | None = None  # header fields, None for header-less input
        self.columns_: Columns | None = None  # the choice, once a data line is seen
        self.n_readings_ = 0  # readings returned so far (the time of header-less, time-less input)

    def __repr__(self) -> str:
        opts = [f"{k}={getattr(self, k)!r}"
                for k in ("column", "time_column", "label_column", "key_column", "valid_range")
                if getattr(self, k) is not None]
        return f"LineParser({', '.join(opts)})"

    # -- entry points ---------------------------------------------------------------------------

    def parse(self, lines: Sequence[str], first_line: int = 1) -> Batch:
        """Parse text lines (without newlines); ``first_line`` is the 1-based number of lines[0]."""
        if not lines:
            return _no_readings([])
        return self.parse_bytes("\n".join(lines).encode("utf-8", "surrogatepass"), first_line)

    def parse_bytes(self, block: bytes, first_line: int = 1, *, max_line: int | None = None,
                    rejected: dict[int, tuple[str, str]] | None = None) -> Batch:
        """Parse UTF-8 lines joined by b'\\n' (no final newline); a line not UTF-8 is rejected.

        A line of more than ``max_line`` bytes is rejected without being parsed; ``rejected``
        maps line indices (their text already replaced by nothing) to the (raw, reason) of
        their Reject: a line the caller has refused, such as one too long to be held.
        """
        bad: dict[int, tuple[str, str]] = dict(rejected or {})
        if max_line is not None and len(block) > max_line:
            block = _without_long_lines(block, max_line, bad)
        if b"\r" in block:  # Windows line endings; a CR inside a line stays (and is refused there)
            block = block.replace(b"\r\n", b"\n").removesuffix(b"\r")
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            parts = block.split(b"\n")
            for i, part in enumerate(parts):
                try:
                    part.decode("utf-8")
                except UnicodeDecodeError:
                    bad[i] = (part.decode("utf-8", "replace")[:_RAW_MAX], "not UTF-8")
                    parts[i] = b""
            block = b"\n".join(parts)
        return self._parse(block, block.count(b"\n") + 1, first_line, bad)

    # -- state (what a resumed source needs to go on parsing where it stopped) -----------------

    def state_dict(self) -> dict:
        """The header, the column choice and the reading count, as a JSON-able dict."""
        c = self.columns_
        cached = getattr(self, "_columns_state", None)  # (asdict per batch was ~10% of a live line's time)
        if cached is None or cached[0] is not c:
            cached = self._columns_state = (c, None if c is None else {**asdict(c), "names": list(c.names)})
        return {"names": None if self.names_ is None else list(self.names_),
                "header": None if self.header_ is None else list(self.header_),
                "columns": None if c is None else dict(cached[1], names=list(c.names)),
                "n_readings": self.n_readings_}

    def load_state_dict(self, state: dict) -> None:
        """Go on from a state returned by `state_dict` (after a restart, at the saved offset)."""
        tup = lambda v: None if v is None else tuple(map(str, v))  # noqa: E731
        self.names_, self.header_ = tup(state["names"]), tup(state["header"])
        c = state["columns"]
        self.columns_ = None if c is None else Columns(**{**c, "names": tup(c["names"])})
        self.n_readings_ = int(state["n_readings"])

    # -- the steps ------------------------------------------------------------------------------

    def _parse(self, block: bytes, m: int, first_line: int, bad: dict[int, str]) -> Batch:
        """m lines in block; bad maps a line index to its raw text when it is not UTF-8."""
        if self.names_ is not None:
            return self._parse_body(block, m, first_line, bad)
        lead: list[Reject] = []  # the lines before the first non-empty one
        pos = 0
        for i in range(m):
            end = block.find(b"\n", pos)
            end = len(block) if end < 0 else end
            text = block[pos:end].decode("utf-8")
            first = text.strip().lstrip(_BOM).strip()
            if i in bad:
                lead.append(Reject(first_line + i, *bad[i]))
            elif not first:
                lead.append(Reject(first_line + i, text[:_RAW_MAX], "empty line"))
            else:
                break
            pos = end + 1
        else:
            return _no_readings(lead)
        fields = [f.strip() for f in first.split(",")]
        if is_header(fields):
            self.header_ = self.names_ = tuple(fields)
            skip, body = i + 1, block[end + 1:]
        else:
            self.names_ = tuple(str(j) for j in range(len(fields)))
            skip, body = i, first.encode("utf-8") + block[end:]
        for option in ("column", "time_column", "label_column", "key_column"):
            if getattr(self, option) is not None:  # a missing column is reported at once
                find_column(self.names_, getattr(self, option), option)
        header_lines = int(self.header_ is not None)
        if skip == m:
            batch = _no_readings([])
        else:
            batch = self._parse_body(body, m - skip, first_line + skip,
                                     {j - skip: raw for j, raw in bad.items() if j >= skip})
        return replace(batch, rejected=tuple(lead) + tuple(batch.rejected),
                       header_lines=header_lines)

    def _choose(self, lines: list[str]) -> bool:
        """Choose the columns from the first well-formed lines; False when there are none yet."""
        k, rows = len(self.names_), []
        for line in lines:
            fields = [f.strip() for f in line.split(",")]
            if len(fields) == k and any(fields) and tuple(fields) != self.header_:
                rows.append(fields)
                if len(rows) == _SAMPLE:
                    break
        if not rows:
            return False
        self.columns_ = choose_columns(
            self.names_, rows, has_header=self.header_ is not None, column=self.column,
            time_column=self.time_column, label_column=self.label_column,
            key_column=self.key_column)
        if self.on_note is not None:
            self.on_note(self.columns_.note())
        return True

    def _parse_body(self, block: bytes, m: int, first_line: int, bad: dict[int, str]) -> Batch:
        if self.columns_ is None:
            lines = block.decode("utf-8").split("\n")
            if not self._choose(lines):  # nothing well-formed: every line is rejected
                return _no_readings([self._reject(lines[i], i, first_line, bad) for i in range(m)])
        values = None if bad or m < _FAST_MIN_LINES else self._fast(block, m)
        if values is None:
            values = self._slow(block.decode("utf-8").split("\n"), bad)
        rows, x, t, y, key, text_of = values  # rows: (r,) indices of the lines the arrays hold
        ok = np.isfinite(x)
        if self.valid_range is not None:
            ok &= (x >= self.valid_range[0]) & (x <= self.valid_range[1])
        if t is not None:
            ok &= np.abs(t) <= MAX_TIME  # (NaN compares False)
        if y is not None:
            ok &= ~np.isnan(y)
        if self.header_ is not None and self._header_bytes() in block:  # only on the slow path
            ok &= np.fromiter((tuple(f.strip() for f in text_of(i).split(",")) != self.header_
                               for i in rows), bool, len(rows))
        is_reading = np.zeros(m, dtype=bool)
        is_reading[rows[ok]] = True
        rejects = [self._reject(text_of(i), i, first_line, bad)
                   for i in np.flatnonzero(~is_reading).tolist()]
        n = int(ok.sum())
        if t is None:
            t = np.arange(self.n_readings_, self.n_readings_ + n, dtype=np.float64)
        else:
            t = t[ok]
        self.n_readings_ += n
        return Batch(time=t, x=x[ok].reshape(-1, 1),
                     y=np.full(n, np.nan) if y is None else y[ok],
                     line=(first_line + rows[ok]).astype(np.int64),
                     key=None if key is None else key[ok], rejected=tuple(rejects))

    def _header_bytes(self) -> bytes:
        return ",".join(self.header_).encode("utf-8")

    def _fast(self, block: bytes, m: int):
        """numpy finds the lines of the right field count, the pandas C parser reads them.

        None when the block needs the line-by-line path (a repeated header, a leading BOM, a
        line pandas does not count as we do).
        """
        k = len(self.names_)
        if block.startswith(_BOM.encode()) or (self.header_ is not None
                                               and self._header_bytes() in block):
            return None
        a = np.frombuffer(block, dtype=np.uint8)
        newlines = np.flatnonzero(a == ord("\n"))
        starts = np.concatenate(([0], newlines + 1))  # (m,) first byte of each line
        ends = np.concatenate((newlines, [len(block)]))  # (m,) byte after each line
        commas = np.flatnonzero(a == ord(",")) if k > 1 or b"," in block else np.empty(0, int)
        if _one_group_per_line(commas, newlines, m, k):
            rows, good = np.arange(m), block
        else:
            counts = np.searchsorted(commas, ends) - np.searchsorted(commas, starts)  # (m,)
            fits = counts == k - 1
            rows = np.flatnonzero(fits)
            keep = np.repeat(fits, ends - starts + 1)[:len(block)]  # (bytes,) a line and its \n
            good = a[keep].tobytes()
        cols = self._read_csv(good, len(rows))
        if cols is None:
            return None

        def text_of(i: int) -> str:
            return block[starts[i]:ends[i]].decode("utf-8")

        return (rows, *self._convert(cols), text_of)

    def _read_csv(self, block: bytes, r: int) -> dict | None:
        """{column index: (r,) array} of the used columns, numbers as float64 when all are numbers."""
        import pandas as pd

        if r == 0:
            return {j: np.empty(0, dtype=object) for j in self.columns_.used()}
        k, c = len(self.names_), self.columns_
        numeric = [j for j in (c.reading, c.time) if j is not None and not (j == c.time
                                                                            and c.time_iso)]
        for number in (np.float64, object):  # object: some field is not a number, find it later
            dtype = {str(j): number if j in numeric else object for j in c.used()}
            try:
                frame = pd.read_csv(io.BytesIO(block), header=None,
                                    names=[str(j) for j in range(k)],
                                    usecols=[str(j) for j in c.used()], dtype=dtype,
                                    na_filter=False, quoting=csv.QUOTE_NONE,
                                    skip_blank_lines=False, engine="c", encoding="utf-8")
            except ValueError:
                continue
            return {j: frame[str(j)].to_numpy() for j in c.used()} if len(frame) == r else None
        return None

    def _slow(self, lines: list[str], bad: dict[int, str]):
        """Line by line splitting (still one C-level split per block): the reference path."""
        k, c = len(self.names_), self.columns_
        good = np.fromiter(map(str.count, lines, repeat(",")), np.intp, len(lines)) == k - 1
        good[list(bad)] = False
        kept = list(compress(lines, good))
        flat = ",".join(kept).split(",") if kept else []
        cols = {j: flat[j::k] for j in c.used()}
        return (np.flatnonzero(good), *self._convert(cols), lines.__getitem__)

    def _convert(self, cols: dict):
        """(x, time or None, y or None, key or None) arrays from the columns' values."""
        c = self.columns_
        x = _numbers(cols[c.reading])
        t = None
        if c.time is not None:
            t = iso_seconds(cols[c.time]) if c.time_iso else _numbers(cols[c.time])
        y = None if c.label is None else to_label(cols[c.label])
        key = None if c.key is None else stripped(cols[c.key])
        return x, t, y, key

    def _reject(self, text: str, i: int, first_line: int, bad: dict[int, str]) -> Reject:
        if i in bad:
            return Reject(first_line + i, *bad[i])
        return Reject(first_line + i, text[:_RAW_MAX], self._why(text))

    def _why(self, line: str) -> str:
        """Why one line is not a reading (the first problem found)."""
        if not line.strip().lstrip(_BOM).strip():
            return "empty line"
        fields = [f.strip() for f in line.split(",")]
        k = len(self.names_)
        if len(fields) != k:
            return f"wrong field count: expected {k}, got {len(fields)}"
        if self.header_ is not None and tuple(fields) == self.header_:
            return "repeated header"
        c, names = self.columns_, self.names_
        if c is None:  # columns not chosen yet: only lines of empty fields get here
            return "no values"
        reason = why_number(fields[c.reading], names[c.reading])
        if reason is None and self.valid_range is not None:
            lo, hi = self.valid_range
            if not lo <= float(fields[c.reading]) <= hi:
                reason = f"out of range {lo:g}..{hi:g}: {shown(fields[c.reading])}"
        if reason is None and c.time is not None:
            reason = why_time(fields[c.time], names[c.time], c.time_iso)
            if reason is None and not c.time_iso and not abs(float(fields[c.time])) <= MAX_TIME:
                reason = f"time out of range (beyond {MAX_TIME:g} s): {shown(fields[c.time].strip())}"
        if reason is None and c.label is not None:
            reason = why_label(fields[c.label], names[c.label])
        return reason or "unreadable line"


def _without_long_lines(block: bytes, max_line: int, bad: dict) -> bytes:
    """The block with each line longer than max_line bytes emptied and noted in ``bad``."""
    a = np.frombuffer(block, dtype=np.uint8)
    newlines = np.flatnonzero(a == ord("\n"))
    length = np.diff(np.concatenate(([-1], newlines, [len(block)]))) - 1  # (m,) bytes of each line
    long = np.flatnonzero(length > max_line).tolist()
    if not long:
        return block
    parts = block.split(b"\n")
    for i in long:
        bad[i] = (parts[i][:_RAW_MAX].decode("utf-8", "replace"), too_long(len(parts[i]), max_line))
        parts[i] = b""
    return b"\n".join(parts)


def too_long(size: int, max_line: int) -> str:
    """The reason given for a line (or record) over the limit."""
    return f"longer than {max_line:,} bytes ({size:,} bytes)"


def _one_group_per_line(commas: np.ndarray, newlines: np.ndarray, m: int, k: int) -> bool:
    """True when each of the m lines holds exactly k - 1 of the (sorted) comma positions."""
    if len(commas) != m * (k - 1):
        return False
    if k == 1:
        return True
    per_line = commas.reshape(m, k - 1)  # (m, k-1): the j-th group must fall inside line j
    return bool((per_line[1:, 0] > newlines).all() and (per_line[:-1, -1] < newlines).all())


def _numbers(values) -> np.ndarray:
    """(n,) float64 of values already read by pandas, else read with float()."""
    if isinstance(values, np.ndarray) and values.dtype == np.float64:
        return values
    return to_float(values)


def _no_readings(rejected: list[Reject]) -> Batch:
    """A batch of rejects only."""
    return Batch(time=np.empty(0), x=np.empty((0, 1)), y=np.empty(0),
                 line=np.empty(0, dtype=np.int64), rejected=tuple(rejected))
