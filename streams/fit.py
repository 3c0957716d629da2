"""Garmin FIT activity files: the ``heart_rate`` of each ``record`` message, decoded with ``fitdecode``.

FIT is a binary format: a header, then definition messages (the layout of a message type) and data
messages, and a CRC. ``fitdecode`` decodes it frame by frame from the open file (gzip decompressed
on the fly), so memory holds a frame and one block of readings, never the file. The reading is
``heart_rate`` (bpm), the time ``timestamp`` (seconds since 1989-12-31 UTC, as epoch seconds; a
device's relative time, below 0x10000000, is kept as seconds).

``record`` messages are numbered from 1; one without a heart rate (no field, or FIT's invalid
value) is normal and skipped and counted (``found_``); one without a timestamp is a Reject. A file
cut off mid-way, or whose CRC does not match, keeps the readings decoded before the damage and
counts the damage as a rejected record with the reason.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Iterator

import numpy as np

from streams.batch import Batch, Reject, SourceError
from streams.compression import open_bytes
from streams.records import RecordFile, no_readings, to_batch

__all__ = ["FitRecords", "looks_like_fit", "FIT_EPOCH"]

FIT_EPOCH = 631065600  # 1989-12-31T00:00:00Z in epoch seconds
_DATETIME_MIN = 0x10000000  # smaller FIT date_time values are relative to the device's power-on


def looks_like_fit(head: bytes) -> bool:
    """True when the bytes start with a FIT file header (size 12 or 14, then ``.FIT`` at byte 8).

    >>> looks_like_fit(bytes([14, 0x20, 0x2d, 0x08, 0, 0, 0, 0]) + b".FIT" + bytes(2)), looks_like_fit(b"t,hr\\n")
    (True, False)
    """
    return len(head) >= 12 and head[0] in (12, 14) and head[8:12] == b".FIT"


class FitRecords(RecordFile):
    """Heart-rate readings from a Garmin FIT file. See the module docstring.

    Parameters: see `streams.records.RecordFile`.
    """

    record_unit = "record"  # Reject.line and Batch.line count FIT record messages

    def __iter__(self) -> Iterator[Batch]:
        try:
            import fitdecode
        except ImportError:
            raise SourceError("reading FIT files needs the fitdecode package: pip install 'monitor[formats]'") from None

        name = os.fspath(self.path)
        values: list = []
        stamps: list = []
        numbers: list = []
        n_records = n_without = 0
        damage = None
        with open_bytes(self.path) as f:
            if not looks_like_fit(f.read(12)):
                raise SourceError(f"{name}: expected a FIT file (a 12- or 14-byte header with .FIT)")
            f.seek(0)
            if self.on_note is not None:
                self.on_note("reading record messages: heart_rate, time timestamp (Garmin FIT)")
            reader = fitdecode.FitReader(f, check_crc=fitdecode.CrcCheck.RAISE,
                                         error_handling=fitdecode.ErrorHandling.RAISE)
            try:
                for frame in reader:
                    if frame.frame_type != fitdecode.FIT_FRAME_DATA or frame.name != "record":
                        continue
                    n_records += 1
                    hr = frame.get_value("heart_rate", fallback=None)
                    if hr is None:
                        n_without += 1
                        continue
                    values.append(hr)
                    stamps.append(frame.get_value("timestamp", fallback=None, raw_value=True))
                    numbers.append(n_records)
                    if len(values) == self.block:
                        yield self._batch(values, stamps, numbers)
                        values, stamps, numbers = [], [], []
            except fitdecode.FitEOFError:
                damage = "truncated FIT file (cut off?)"
            except fitdecode.FitCRCError as e:
                damage = f"FIT CRC mismatch ({e}): damaged file"
            except (fitdecode.FitError, ValueError, KeyError, IndexError) as e:
                if n_records == 0:
                    raise SourceError(f"{name}: not a readable FIT file ({str(e)[:160]})") from None
                damage = f"cannot decode the FIT file after this point ({str(e)[:160]})"
            except (OSError, EOFError) as e:
                raise SourceError(f"{name}: cannot read ({e})") from None
        self.found_ = f"{n_records} record messages, {n_without} without heart rate (skipped)"
        batch = self._batch(values, stamps, numbers) if values else None
        if damage is not None:
            batch = batch or no_readings()
            batch = replace(batch, rejected=tuple(batch.rejected) + (Reject(n_records + 1, "", damage),))
        if batch is not None:
            yield batch
        if n_records == 0 and damage is None:
            raise SourceError(f"{name} holds no record messages (not an activity file?)")
        if n_records == n_without and damage is None:
            raise SourceError(f"{name} holds no heart-rate readings ({self.found_})")

    def _batch(self, values: list, stamps: list, numbers: list) -> Batch:
        x = np.array([float(v) if isinstance(v, (int, float)) else np.nan for v in values], dtype=np.float64)
        raw_t = np.array([np.nan if s is None else float(s) for s in stamps], dtype=np.float64)
        t = np.where(raw_t >= _DATETIME_MIN, raw_t + FIT_EPOCH, raw_t)
        problems = {i: "missing timestamp" for i in np.flatnonzero(np.isnan(raw_t)).tolist()}
        problems.update({i: f"heart_rate not a number: {values[i]!r}"[:80]
                         for i in np.flatnonzero(np.isnan(x)).tolist()})
        return to_batch(x, t, np.array(numbers, dtype=np.int64), problems=problems,
                        raw=lambda i: f"timestamp={stamps[i]} heart_rate={values[i]}", valid_range=self.valid_range)
