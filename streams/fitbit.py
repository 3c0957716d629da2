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


def _record_ends(buf: bytes) -> int:
    """Index just past the last complete top-level {...} record in buf (which starts between records), or 0."""
    a = np.frombuffer(buf, dtype=np.uint8)
    quote = a == ord('"')
    if quote.any():  # a quote is escaped when an odd number of backslashes stands right before it
        pos = np.arange(len(a))
        last_plain = np.maximum.accumulate(np.where(a != ord("\\"), pos, -1))  # (n,) last non-backslash at or before i
        run = np.zeros(len(a), dtype=np.int64)  # (n,) backslashes right before byte i
        run[1:] = pos[:-1] - last_plain[:-1]
        quote &= run % 2 == 0
    outside = np.cumsum(quote) % 2 == 0  # (n,) True outside strings (a closing quote counts as outside)
    step = np.where(outside & (a == ord("{")), 1, 0) - np.where(outside & (a == ord("}")), 1, 0)
    depth = np.cumsum(step)  # (n,) nesting depth after each byte
    ends = np.flatnonzero((step == -1) & (depth == 0))
    return int(ends[-1]) + 1 if len(ends) else 0


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
                 on_note: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.block_bytes = block_bytes
        self.on_note = on_note

    def __repr__(self) -> str:
        return f"FitbitJson({os.fspath(self.path)!r})"

    def __iter__(self) -> Iterator[Batch]:
        name = os.fspath(self.path)
        buf = b""
        started = ended = False
        n_records = 0  # records decoded so far
        n_readings = 0
        for chunk in iter_blocks(self.path, self.block_bytes):
            buf += chunk
            if not started:
                buf = buf.lstrip(_WS).removeprefix(b"\xef\xbb\xbf").lstrip(_WS)
                if not buf:
                    continue
                if buf[:1] != b"[":
                    raise SourceError(f"{name}: expected a JSON list of Fitbit records "
                                      '([{"dateTime": ..., "value": {"bpm": ...}}, ...]), '
                                      f"got {buf[:20].decode('utf-8', 'replace')!r}...")
                started, buf = True, buf[1:]
                if self.on_note is not None:
                    self.on_note("reading value.bpm, time dateTime (Fitbit JSON)")
            end = _record_ends(buf)
            if end:
                batch = self._batch(_strip_separator(buf[:end]), n_records + 1, name)
                buf = buf[end:]
                n_records += len(batch) + len(batch.rejected)
                n_readings += len(batch)
                yield batch
        if not started:
            raise SourceError(f"{name} is empty")
        rest = _strip_separator(buf).rstrip(_WS)
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

    def _batch(self, block: bytes, first: int, name: str) -> Batch:
        """The records of a block of complete ones; first is the number of the block's first record."""
        try:
            records = json.loads(b"[" + block + b"]")
        except (ValueError, UnicodeDecodeError) as e:
            raise SourceError(f"{name}: not valid JSON at record {first + _decodable(block)}: {e}") from None
        m = len(records)
        bpm = [_bpm(r) for r in records]
        when = [r.get("dateTime") if isinstance(r, dict) else None for r in records]
        x = np.array([_number(v) for v in bpm], dtype=np.float64)
        t = fitbit_seconds(when)
        ok = np.isfinite(x) & np.isfinite(t)
        rejects = [Reject(first + i, json.dumps(records[i])[:_RAW_MAX], _why(records[i]))
                   for i in np.flatnonzero(~ok).tolist()]
        idx = np.flatnonzero(ok)
        return Batch(time=t[ok], x=x[ok].reshape(-1, 1), y=np.full(len(idx), np.nan),
                     line=(first + idx).astype(np.int64), rejected=tuple(rejects))


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


def _why(record) -> str:
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
    return f"not a time: {record['dateTime']!r}"


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
