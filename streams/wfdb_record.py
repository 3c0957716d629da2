"""PhysioNet WFDB records: a ``.hea`` header and its signal files, read with the ``wfdb`` package.

This is the format of the MIT-BIH databases and of the MIMIC waveform "numerics" records, which
hold several vital signs in one record (HR, PULSE, RESP, SpO2...), often one sample a minute.
A multi-segment record (a header listing segments, fixed or variable layout) reads as one record:
the signals are named by its layout segment (or first segment), and a segment without the
signal picked gives missing samples (Rejects); gzip is not read for those. The
heart-rate signal is picked by name (HR, then "Heart Rate", then PULSE, any case) unless
``column`` names another. The time of sample i is the header's base date and time (UTC) plus
i / fs; without a base date it is the base time of day (or 0) plus i / fs, in seconds.

The record is read ``block`` samples at a time (``wfdb.rdrecord`` with ``sampfrom``/``sampto``),
so memory holds one block, never the record. Samples are numbered from 1; a sample WFDB marks
as missing (the format's invalid value, NaN once read) is a Reject, like a value out of range.

Gzip: a header that is gzip-compressed (``rec.hea.gz``, or any name) is read through, and each
signal file is looked for as named in the header or with ``.gz`` added; compressed ones are
decompressed once into a temporary directory (on disk, block by block), removed at the end.

>>> import pathlib, tempfile, numpy as np
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> import datetime
>>> _quiet(_wfdb().wrsamp, "num", fs=1 / 60, units=["bpm", "%"], sig_name=["HR", "SpO2"], write_dir=str(d),
...        p_signal=np.array([[80.0, 97.0], [np.nan, 98.0], [95.0, 96.0]]), fmt=["16", "16"],
...        adc_gain=[10.0, 10.0], baseline=[0, 0], base_date=datetime.date(2024, 4, 1), base_time=datetime.time(8, 0))
>>> source = WfdbRecord(d / "num.hea", on_note=print)
>>> [(b.x.ravel().tolist(), b.time.tolist(), b.line.tolist()) for b in source]
reading signal 'HR' (bpm) of HR, SpO2 at 0.0166667 Hz (WFDB record num)
[([80.0, 95.0], [1711958400.0, 1711958520.0], [1, 3])]
>>> source.found_
'signals HR (bpm), SpO2 (%); picked HR; 3 samples at 0.0166667 Hz'
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import os
import re
import shutil
import tempfile
from typing import Callable, Iterator

import numpy as np

from streams.batch import Batch, Reject, SourceError
from streams.compression import GZIP_MAGIC, open_bytes
from streams.records import RecordFile, to_batch

__all__ = ["WfdbRecord", "HR_NAMES", "looks_like_header", "header_path"]

HR_NAMES = ("hr", "heart rate", "heartrate", "heart_rate", "pulse")  # picked in this order, any case
_FMT = re.compile(rb"^\d+(x\d+)?(:\d+)?(\+\d+)?$")  # a signal line's format field: 16, 212, 16x4:0+24
_NUMBER = re.compile(rb"[-+.\deE]+")  # a signal line starts with a file name, never a number


def header_path(path: str | os.PathLike) -> str:
    """The header file of a record given by its header path or its record name (``rec`` -> ``rec.hea``)."""
    name = os.fspath(path)
    if not os.path.exists(name):
        for ext in (".hea", ".hea.gz"):
            if os.path.exists(name + ext):
                return name + ext
    return name


def looks_like_header(head: bytes) -> bool:
    """True when bytes start like a WFDB header: a record line, then signal lines (file, format).

    >>> looks_like_header(b"100 2 360 650000\\n100.dat 212 200 11 1024 995 -22131 0 MLII\\n")
    True
    >>> looks_like_header(b"t,hr\\n0,80\\n"), looks_like_header(b"80\\n81\\n"), looks_like_header(b"1 2 3\\n4 5 6\\n")
    (False, False, False)
    """
    lines = [ln.split() for ln in head.splitlines() if ln.strip() and not ln.lstrip().startswith(b"#")]
    if not lines or b"," in lines[0][0] or len(lines[0]) < 2 or not lines[0][1].isdigit():
        return False
    n = int(lines[0][1])
    if n == 0:
        return len(lines) == 1 and len(lines[0]) > 2
    signals = lines[1:1 + n]
    return len(signals) == min(n, len(lines) - 1) > 0 and all(
        len(s) >= 2 and not _NUMBER.fullmatch(s[0]) and _FMT.match(s[1]) for s in signals)


class WfdbRecord(RecordFile):
    """Heart-rate samples of a WFDB record. See the module docstring.

    Parameters
    ----------
    path
        The ``.hea`` file or the record name (the path without ``.hea``).
    column
        Signal name to read (any case); None picks one by name (HR_NAMES).
    valid_range
        ``(low, high)``: samples outside it are rejected; None accepts any finite value.
    block
        Samples read at a time (one Batch each).
    on_note
        Called once with a one-line note saying what is read.

    Attributes
    ----------
    found_ : str
        After iteration: the signals found, the one picked, samples and frequency.
    """

    record_unit = "sample"  # Reject.line and Batch.line count samples

    def __init__(self, path: str | os.PathLike, *, column: str | None = None,
                 valid_range: tuple[float, float] | None = None, block: int = 1 << 16,
                 on_note: Callable[[str], None] | None = None) -> None:
        super().__init__(path, valid_range=valid_range, block=block, on_note=on_note)  # samples are fixed-size:
        self.column = column  # max_record is not needed

    def __repr__(self) -> str:
        extra = "" if self.column is None else f", column={self.column!r}"
        return f"WfdbRecord({os.fspath(self.path)!r}{extra})"

    def __iter__(self) -> Iterator[Batch]:
        wfdb = _wfdb()
        hea = header_path(self.path)
        with _plain_record(hea) as record:
            try:
                h = _quiet(wfdb.rdheader, record)
            except Exception as e:  # wfdb raises bare ValueError/FileNotFoundError/... on a bad header
                raise SourceError(f"{hea}: not a readable WFDB header ({_first_line(e)})") from None
            names, units = _signals(wfdb, h, record, hea)
            if not names:
                raise SourceError(f"{hea}: the WFDB record has no signals")
            j = self._pick(names, hea)
            fs = float(h.fs)
            if not fs > 0:
                raise SourceError(f"{hea}: sampling frequency {h.fs!r} is not positive")
            n = int(h.sig_len or 0)
            start = _start_seconds(h)
            listing = ", ".join(f"{s} ({u})" if u else s for s, u in zip(names, units))
            self.found_ = f"signals {listing}; picked {names[j]}; {n} samples at {fs:g} Hz"
            if self.on_note is not None:
                unit = f" ({units[j]})" if units[j] else ""
                self.on_note(f"reading signal {names[j]!r}{unit} of {', '.join(names)} at {fs:g} Hz "
                             f"(WFDB record {h.record_name})")
            if n == 0:
                raise SourceError(f"{hea}: the WFDB record holds no samples")
            for lo in range(0, n, self.block):
                hi = min(n, lo + self.block)
                try:
                    rec = _quiet(wfdb.rdrecord, record, sampfrom=lo, sampto=hi, channels=[j])
                    x = np.asarray(rec.p_signal, dtype=np.float64)[:, 0]  # (m,) NaN where WFDB marks none
                except Exception as e:  # a signal file shorter than the header says, unreadable, ...
                    yield _cut(lo + 1, f"signal file unreadable from sample {lo + 1} on ({_first_line(e)}): cut off?")
                    return
                idx = np.arange(lo, lo + len(x))
                missing = dict.fromkeys(np.flatnonzero(np.isnan(x)).tolist(), "missing sample (WFDB invalid value)")
                yield to_batch(x, start + idx / fs, idx + 1, raw=lambda i, x=x, lo=lo: f"{names[j]}[{lo + i + 1}]={x[i]:g}",
                               problems=missing, valid_range=self.valid_range)
                if len(x) < hi - lo:
                    yield _cut(lo + len(x) + 1, f"the header says {n} samples, the signal file ends "
                                                f"after {lo + len(x)}: cut off?")
                    return

    def _pick(self, names: list[str], hea: str) -> int:
        low = [s.strip().lower() for s in names]
        if self.column is not None:
            if self.column.strip().lower() in low:
                return low.index(self.column.strip().lower())
            raise SourceError(f"{hea}: no signal named {self.column!r}; the record has: {', '.join(names)}")
        for want in HR_NAMES:
            if want in low:
                return low.index(want)
        raise SourceError(f"{hea}: no heart-rate signal (HR, Heart Rate, PULSE) among: {', '.join(names)}; "
                          "name one with --column")


def _signals(wfdb, h, record: str, hea: str) -> tuple[list[str], list[str]]:
    """Names and units of a record's signals. A multi-segment record (a header listing segments,
    as MIMIC waveform records are) names them in its layout segment (variable layout: the first
    segment, of length 0) or, with a fixed layout, in each segment alike: the first is read."""
    if hasattr(h, "seg_name"):
        first = next((s for s in h.seg_name if s != "~"), None)  # "~" is a gap with no signal file
        if first is None:
            return [], []
        try:
            h = _quiet(wfdb.rdheader, os.path.join(os.path.dirname(record), first))
        except Exception as e:
            raise SourceError(f"{hea}: segment {first!r} of the multi-segment record is not readable "
                              f"({_first_line(e)})") from None
    names = [str(s) for s in (h.sig_name or [])]
    return names, [str(u) for u in (h.units or [""] * len(names))]


def _wfdb():
    """The wfdb package, imported without the deprecation warnings it sets off in pandas."""
    try:
        return _quiet(__import__, "wfdb")
    except ImportError:
        raise SourceError("reading WFDB records needs the wfdb package: pip install 'monitor[formats]'") from None


def _quiet(fn, *args, **kwargs):
    """fn(*args, **kwargs) without warnings (wfdb 4.3 sets off pandas deprecation warnings)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _cut(sample: int, reason: str) -> Batch:
    from streams.records import no_readings
    return no_readings([Reject(sample, "", reason)])


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:160]


def _start_seconds(h) -> float:
    """Epoch seconds (UTC) of sample 0 from the header's base date and time; seconds of the day
    (or 0) when the header has no date."""
    base_time, base_date = getattr(h, "base_time", None), getattr(h, "base_date", None)
    if base_date is not None:
        stamp = dt.datetime.combine(base_date, base_time or dt.time(0), tzinfo=dt.timezone.utc)
        return stamp.timestamp()
    if base_time is not None:
        return base_time.hour * 3600 + base_time.minute * 60 + base_time.second + base_time.microsecond / 1e6
    return 0.0


@contextlib.contextmanager
def _plain_record(hea: str) -> Iterator[str]:
    """The record name (path without .hea) wfdb can read: the record itself when nothing is
    compressed, else a temporary copy with the header and compressed signal files decompressed."""
    with open_bytes(hea) as f:
        header = f.read(1 << 20)
    with open(hea, "rb") as f:
        gz_header = f.read(2) == GZIP_MAGIC
    folder = os.path.dirname(os.path.abspath(hea))
    if _multi_segment(header):  # wfdb reads the segments' own headers and signal files from the folder
        if gz_header or not hea.endswith(".hea"):
            raise SourceError(f"{hea}: a compressed multi-segment WFDB record is not read; decompress its "
                              "header and segments first")
        yield hea[:-len(".hea")]
        return
    files = _signal_files(header)
    found = {name: _locate(folder, name) for name in files}
    if not gz_header and hea.endswith(".hea") and all(p == os.path.join(folder, n) for n, p in found.items()):
        yield hea[:-len(".hea")]
        return
    record = _record_name(header) or "record"
    with tempfile.TemporaryDirectory(prefix="monitor-wfdb-") as tmp:
        with open(os.path.join(tmp, os.path.basename(record) + ".hea"), "wb") as out:
            out.write(header)
        for name, src in found.items():
            if src is None:
                continue  # wfdb names the missing file when it reads the signal
            dst = os.path.join(tmp, name)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open_bytes(src) as fin, open(dst, "wb") as fout:
                try:
                    shutil.copyfileobj(fin, fout, 1 << 20)
                except (OSError, EOFError, gzip.BadGzipFile) as e:
                    raise SourceError(f"{src}: damaged gzip data ({e})") from None
        yield os.path.join(tmp, os.path.basename(record))


def _multi_segment(header: bytes) -> bool:
    """True for the header of a multi-segment record (its record line reads ``name/segments ...``)."""
    name = _record_name_field(header)
    return name is not None and b"/" in name


def _record_name_field(header: bytes) -> bytes | None:
    for ln in header.splitlines():
        if ln.strip() and not ln.lstrip().startswith(b"#"):
            return ln.split()[0]
    return None


def _record_name(header: bytes) -> str | None:
    for ln in header.splitlines():
        if ln.strip() and not ln.lstrip().startswith(b"#"):
            return ln.split()[0].split(b"/")[0].decode("utf-8", "replace")
    return None


def _signal_files(header: bytes) -> list[str]:
    """The distinct signal file names a header refers to."""
    lines = [ln.split() for ln in header.splitlines() if ln.strip() and not ln.lstrip().startswith(b"#")]
    if not lines or len(lines[0]) < 2 or not lines[0][1].isdigit():
        return []
    names: list[str] = []
    for s in lines[1:1 + int(lines[0][1])]:
        name = s[0].decode("utf-8", "replace")
        if name not in names and name != "-" and "/" not in name and "\\" not in name:
            names.append(name)
    return names


def _locate(folder: str, name: str) -> str | None:
    for candidate in (name, name + ".gz"):
        p = os.path.join(folder, candidate)
        if os.path.exists(p):
            return p
    return None
