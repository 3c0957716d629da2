"""Fitbit heart-rate exports: a JSON list of ``{"dateTime": ..., "value": {"bpm": ..., "confidence": ...}}``.

This is the shape of the ``heart_rate-YYYY-MM-DD.json`` files in a Fitbit data export. The file is
read in blocks (gzip decompressed on the fly): numpy finds where the last complete record of a
block ends, and everything up to there is decoded with one ``json.loads`` call, so memory holds
one block of records, not the file. ``dateTime`` is Fitbit's ``MM/DD/YY HH:MM:SS`` or ISO 8601;
a time without a zone is taken as UTC (Fitbit writes local time without one).

Records are numbered from 1 in file order; a record that is not a reading becomes a Reject with
its number and the reason (``Batch.line`` holds record numbers too). Broken JSON syntax is a
SourceError naming the record; a file cut off mid-record rejects the last, partial record.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp(), "heart_rate-2024-04-01.json")
>>> _ = path.write_text('[{"dateTime": "04/01/24 00:00:05", "value": {"bpm": 62, "confidence": 2}},'
...                     ' {"dateTime": "04/01/24 00:00:10", "value": {"confidence": 2}},'
...                     ' {"dateTime": "04/01/24 00:00:15", "value": {"bpm": 64, "confidence": 3}}]')
>>> batches = list(FitbitJson(path, on_note=print))
reading value.bpm, time dateTime (Fitbit JSON)
>>> [(b.x.ravel().tolist(), b.time.tolist(), b.line.tolist()) for b in batches]
[([62.0, 64.0], [1711929605.0, 1711929615.0], [1, 3])]
>>> batches[0].rejected
(Reject(line=2, raw='{"dateTime": "04/01/24 00:00:10", "value": {"confidence": 2}}', reason='missing value.bpm'),)
"""

from __future__ import annotations

import json
import math
import os
from typing import Callable, Iterator

import numpy as np

from streams.batch import Batch, Reject, SourceError
from streams.compression import iter_blocks
from streams.fields import in_range, why_range
from streams.lines import MAX_LINE, too_long

__all__ = ["FitbitJson", "fitbit_seconds"]

_WS = b" \t\r\n"
_RAW_MAX = 200


def fitbit_seconds(values) -> np.ndarray:
    """(n,) epoch seconds of Fitbit ``MM/DD/YY HH:MM:SS`` or ISO 8601 times (UTC if no zone); NaN if neither.

    >>> fitbit_seconds(["01/01/70 00:01:00", "1970-01-01T00:02:00Z", "soon"]).tolist()
    [60.0, 120.0, nan]
    """
    import pandas as pd

    v = pd.Series(np.asarray(values, dtype=object)).where(lambda s: s.map(type) == str)
    stamps = pd.to_datetime(v, format="%m/%d/%y %H:%M:%S", utc=True, errors="coerce")
    missing = stamps.isna() & v.notna()
    if missing.any():
        stamps[missing] = pd.to_datetime(v[missing], format="ISO8601", utc=True, errors="coerce")
    return np.asarray((stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1), dtype=np.float64)


class _Scanner:
    """Finds where top-level {...} records end, a block at a time, carrying its state across blocks.

    Each byte is looked at once (numpy over the block), so a record of any length costs time in
    proportion to its bytes: never a rescan of what came before.
    """

    def __init__(self) -> None:
        self.in_string = 0  # 1 inside a string at the end of the last block
        self.backslashes = 0  # parity of the backslashes that ended the last block
        self.depth = 0  # {} nesting depth at the end of the last block

    def ends(self, block: bytes) -> np.ndarray:
        """(k,) indices just past each record that ends in this block (depth back to 0 at a ``}``)."""
        a = np.frombuffer(block, dtype=np.uint8)
        if not len(a):
            return np.empty(0, dtype=np.intp)
        quotes = np.flatnonzero(a == ord('"'))  # (q,) positions of the quotes
        if self.backslashes or b"\\" in block:  # rare: drop the escaped quotes
            quotes = quotes[self._escaped(a, quotes) == 0]
        braces = np.flatnonzero((a == ord("{")) | (a == ord("}")))  # (b,) positions of the braces
        inside = (self.in_string + np.searchsorted(quotes, braces)) % 2  # (b,) 1 for a brace in a string
        braces = braces[inside == 0]
        step = np.where(a[braces] == ord("{"), 1, -1)  # (b,)
        depth = self.depth + np.cumsum(step)  # (b,) nesting depth after each brace
        if len(depth) and depth.min() < 0:
            raise ValueError("a } closes nothing")
        self.in_string = (self.in_string + len(quotes)) % 2
        self.depth = int(depth[-1]) if len(depth) else self.depth
        tail = len(a) - len(block.rstrip(b"\\"))  # backslashes ending the block
        self.backslashes = (tail + (self.backslashes if tail == len(a) else 0)) % 2
        return braces[(step == -1) & (depth == 0)] + 1

    def _escaped(self, a: np.ndarray, quotes: np.ndarray) -> np.ndarray:
        """(q,) parity of the run of backslashes right before each quote (carried across blocks)."""
        pos = np.arange(len(a))
        last_plain = np.maximum.accumulate(np.where(a != ord("\\"), pos, -1))  # (n,) last non-backslash at or before i
        before = np.maximum(quotes - 1, 0)
        run = np.where(quotes > 0, quotes - 1 - last_plain[before], 0)
        run = run + np.where((quotes == 0) | (last_plain[before] < 0), self.backslashes, 0)
        return run % 2


def _strip_separator(buf: bytes) -> bytes:
    """A block of records without the comma and spaces that separate it from the one before."""
    buf = buf.lstrip(_WS)
    return buf[1:].lstrip(_WS) if buf[:1] == b"," else buf


class FitbitJson:
    """Heart-rate readings from a Fitbit JSON export. See the module docstring.

    Parameters
    ----------
    path
        The file (may be gzip-compressed).
    block_bytes
        Bytes read at a time; each block's complete records become one Batch.
    on_note
        Called once with a one-line note saying what is read.
    """

    live = False
    record_unit = "record"  # Reject.line and Batch.line count records, not lines

    def __init__(self, path: str | os.PathLike, *, block_bytes: int = 1 << 20,
                 on_note: Callable[[str], None] | None = None, max_record: int = MAX_LINE,
                 valid_range: tuple[float, float] | None = None) -> None:
        self.path = path
        self.valid_range = valid_range  # readings outside (low, high) are rejected, as in a CSV
        self.block_bytes = block_bytes
        self.on_note = on_note
        self.max_record = max_record  # bytes: a longer record is a counted reject, never held whole

    def __repr__(self) -> str:
        return f"FitbitJson({os.fspath(self.path)!r})"

    def __iter__(self) -> Iterator[Batch]:
        name = os.fspath(self.path)
        parts: list[bytes] = []  # the bytes after the last complete record
        size = 0  # their length
        skipped: list | None = None  # [raw, bytes] of a record over max_record being dropped
        scan = _Scanner()
        started = ended = False
        n_records = 0  # records decoded so far
        for chunk in iter_blocks(self.path, self.block_bytes):
            if not started:
                chunk = (b"".join(parts) + chunk).lstrip(_WS).removeprefix(b"\xef\xbb\xbf").lstrip(_WS)
                parts = []
                if not chunk:
                    continue
                if chunk[:1] != b"[":
                    raise SourceError(f"{name}: expected a JSON list of Fitbit records "
                                      '([{"dateTime": ..., "value": {"bpm": ...}}, ...]), '
                                      f"got {chunk[:20].decode('utf-8', 'replace')!r}...")
                started, chunk = True, chunk[1:]
                if self.on_note is not None:
                    self.on_note("reading value.bpm, time dateTime (Fitbit JSON)")
            try:
                ends = scan.ends(chunk)
            except ValueError as e:
                raise SourceError(f"{name}: not valid JSON after record {n_records}: {e}") from None
            if skipped is not None:
                if not len(ends):
                    skipped[1] += len(chunk)
                    continue
                n_records += 1
                why = too_long(skipped[1] + int(ends[0]), self.max_record)
                yield _only_rejects([Reject(n_records, skipped[0], why)])
                skipped, chunk, ends = None, chunk[int(ends[0]):], ends[1:] - ends[0]
            if len(ends):
                lengths = np.diff(np.concatenate(([-size], ends)))  # (k,) bytes of each record (separator included)
                block = b"".join(parts) + chunk[:int(ends[-1])]
                batch = self._batch(block, n_records + 1, name, lengths)
                n_records += len(batch) + len(batch.rejected)
                yield batch
                parts, size = [], 0
                chunk = chunk[int(ends[-1]):]
            parts.append(chunk)
            size += len(chunk)
            if size > self.max_record:  # a record too long to hold: drop it as it arrives
                head = _strip_separator(b"".join(parts)[:4096])
                skipped, parts, size = [head[:_RAW_MAX].decode("utf-8", "replace"), size], [], 0
        if not started:
            raise SourceError(f"{name} is empty")
        if skipped is not None:
            n_records += 1
            yield _only_rejects([Reject(n_records, skipped[0], too_long(skipped[1], self.max_record)
                                        + ", not closed (file cut off?)")])
            return
        rest = _strip_separator(b"".join(parts)).rstrip(_WS)
        if rest.endswith(b"]"):
            rest, ended = rest[:-1].rstrip(_WS), True
        if rest:  # a partial record at the end: the file was cut off
            n_records += 1
            text = rest.decode("utf-8", "replace")[:_RAW_MAX]
            yield _only_rejects([Reject(n_records, text, "incomplete record (file cut off?)")])
        elif not ended:
            yield _only_rejects([Reject(n_records + 1, "", "the list is not closed with ] (file cut off?)")])
        if n_records == 0:
            raise SourceError(f"{name} holds an empty list: no heart-rate records")

    def _batch(self, block: bytes, first: int, name: str, lengths: np.ndarray) -> Batch:
        """The records of a block of complete ones; first is the number of the block's first record.

        ``lengths``: (k,) bytes of each record with the separator before it; a record over
        max_record becomes ``null`` (rejected as too long) before the block is decoded.
        """
        long = {}
        if int(lengths.max()) > self.max_record:
            starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
            pieces = []
            for i, (a, n) in enumerate(zip(starts.tolist(), lengths.tolist())):
                if n > self.max_record:
                    raw = _strip_separator(block[a:a + 4096])[:_RAW_MAX].decode("utf-8", "replace")
                    long[i] = (raw, too_long(n, self.max_record))
                    pieces.append(b",null")
                else:
                    pieces.append(block[a:a + n])
            block = b"".join(pieces)
        block = _strip_separator(block)
        try:
            records = json.loads(b"[" + block + b"]")
        except (ValueError, UnicodeDecodeError) as e:
            raise SourceError(f"{name}: not valid JSON at record {first + _decodable(block)}: {e}") from None
        except RecursionError:
            raise SourceError(f"{name}: a record after record {first - 1} is nested too deeply "
                              "(thousands of levels): not a Fitbit export") from None
        m = len(records)
        bpm = [_bpm(r) for r in records]
        when = [r.get("dateTime") if isinstance(r, dict) else None for r in records]
        x = np.array([_number(v) for v in bpm], dtype=np.float64)
        t = fitbit_seconds(when)
        ok = in_range(x, self.valid_range) & np.isfinite(t)
        rejects = [Reject(first + i, *long[i]) if i in long else
                   Reject(first + i, _raw(records[i]), _why(records[i], self.valid_range))
                   for i in np.flatnonzero(~ok).tolist()]
        idx = np.flatnonzero(ok)
        return Batch(time=t[ok], x=x[ok].reshape(-1, 1), y=np.full(len(idx), np.nan),
                     line=(first + idx).astype(np.int64), rejected=tuple(rejects))


def _raw(record) -> str:
    try:
        return json.dumps(record)[:_RAW_MAX]
    except (RecursionError, ValueError):
        return "(nested too deeply to show)"


def _number(v) -> float:
    """A JSON number as a float; NaN (rejected as not finite) for anything else or too large a number."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return math.nan
    try:
        return float(v)
    except OverflowError:  # an integer of hundreds of digits is valid JSON
        return math.nan


def _bpm(record):
    value = record.get("value") if isinstance(record, dict) else None
    return value.get("bpm") if isinstance(value, dict) else None


def _why(record, valid_range: tuple[float, float] | None = None) -> str:
    """Why a record is not a reading (the first problem found)."""
    if not isinstance(record, dict):
        return "not a JSON object"
    if "dateTime" not in record:
        return "missing dateTime"
    if not isinstance(record.get("value"), dict) or "bpm" not in record["value"]:
        return "missing value.bpm"
    v = record["value"]["bpm"]
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return f"bpm not a number: {v!r}"
    if not math.isfinite(_number(v)):
        return f"bpm not finite: {str(v)[:40]}"
    if valid_range is not None and not valid_range[0] <= v <= valid_range[1]:
        return why_range(float(v), valid_range)
    return f"not a time: {str(record['dateTime'])[:40]!r}"


def _decodable(block: bytes) -> int:
    """How many records at the start of block decode (to name the broken one)."""
    text = block.decode("utf-8", "replace")
    dec, pos, n = json.JSONDecoder(), 0, 0
    while True:
        try:
            _, pos = dec.raw_decode(text, pos)
        except ValueError:
            return n
        n += 1
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1


def _only_rejects(rejected: list[Reject]) -> Batch:
    return Batch(time=np.empty(0), x=np.empty((0, 1)), y=np.empty(0), line=np.empty(0, dtype=np.int64),
                 rejected=tuple(rejected))
