"""Which input format a file is in, told from its first bytes, and the source that reads it.

Formats: ``csv`` (CSV with or without a header, or one number per line), ``fitbit`` (Fitbit JSON
export), ``apple-health`` (Apple Health export.xml), ``wfdb`` (PhysioNet WFDB record: FILE is the
``.hea`` header or the record name), ``fhir`` (FHIR R4 Observations, a Bundle or NDJSON), ``tcx``
(Garmin TCX) and ``fit`` (Garmin FIT). Any of them may be gzip-compressed: that is told by the
gzip magic bytes, whatever the file is called, and undone on the fly. Detection looks at the first
bytes of the (decompressed) content: a FIT header is FIT; a WFDB record line followed by signal
lines is WFDB; ``{`` with a ``"resourceType"`` is FHIR, other ``[`` or ``{`` is Fitbit JSON; ``<``
is XML, TCX when its root is ``TrainingCenterDatabase``, else Apple Health; anything else is CSV.
``format_in`` overrides it. See docs/formats.md.

>>> import gzip, pathlib, tempfile
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "a.csv").write_text("t,hr\\n0,80\\n")
>>> _ = (d / "b.json").write_bytes(gzip.compress(b' [{"dateTime": "04/01/24 00:00:05", "value": {"bpm": 62}}]'))
>>> _ = (d / "export.xml").write_text('<?xml version="1.0"?><HealthData/>')
>>> [str(detect(d / n)) for n in ("a.csv", "b.json", "export.xml")]
['csv', 'fitbit (gzip)', 'apple-health']
>>> open_file(d / "b.json")  # doctest: +ELLIPSIS
FitbitJson('...b.json')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from streams.batch import SourceError
from streams.compression import GZIP_MAGIC, open_bytes

__all__ = ["FORMATS", "Detected", "detect", "open_file"]

FORMATS = ("csv", "fitbit", "apple-health", "wfdb", "fhir", "tcx", "fit")
_PEEK = 4096  # bytes looked at to tell the format


@dataclass(frozen=True)
class Detected:
    """A file's format and whether it is gzip-compressed."""

    format: str  # one of FORMATS
    gzip: bool

    def __str__(self) -> str:
        return self.format + (" (gzip)" if self.gzip else "")


def detect(path: str | os.PathLike) -> Detected:
    """Tell a file's format from its first bytes (see the module docstring); SourceError if unreadable."""
    from streams.fhir import looks_like_fhir
    from streams.fit import looks_like_fit
    from streams.tcx import looks_like_tcx
    from streams.wfdb_record import header_path, looks_like_header

    path = header_path(path)  # a WFDB record may be named without its .hea
    with open_bytes(path) as f:
        try:
            head = f.read(_PEEK)
        except (OSError, EOFError) as e:
            raise SourceError(f"{os.fspath(path)}: damaged gzip data ({e})") from None
    with open(path, "rb") as raw:
        gz = raw.read(2) == GZIP_MAGIC
    if looks_like_fit(head):
        return Detected("fit", gz)
    first = head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")[:1]
    if first in (b"[", b"{"):
        return Detected("fhir" if looks_like_fhir(head) else "fitbit", gz)
    if first == b"<":
        return Detected("tcx" if looks_like_tcx(head) else "apple-health", gz)
    if looks_like_header(head):
        return Detected("wfdb", gz)
    return Detected("csv", gz)


def open_file(path: str | os.PathLike, *, format_in: str | None = None, column: str | None = None,
              time_column: str | None = None, label_column: str | None = None,
              on_note: Callable[[str], None] | None = None, **csv_options):
    """The source for a file: its detected format, or ``format_in`` when given.

    ``column``, ``time_column`` and ``label_column`` choose CSV columns (``column`` also names a
    WFDB signal); the other formats have fixed fields, so giving one for them is a SourceError.
    ``csv_options`` (key_column, valid_range, max_line, max_lines, resume) go to CsvReplay;
    ``valid_range`` applies to every format, ``max_line`` (as the longest record) to Fitbit, Apple
    Health, TCX and FHIR too; resuming (``resume``/``max_lines``, used by --state) is only offered for
    CSV, whose byte offsets a checkpoint can hold.
    """
    if format_in is not None and format_in not in FORMATS:
        raise SourceError(f"unknown input format {format_in!r}; expected one of: {', '.join(FORMATS)}")
    fmt = format_in or detect(path).format
    if fmt == "csv":
        from streams.replay import CsvReplay
        opts = {k: v for k, v in csv_options.items() if not (k == "max_line" and v is None)}
        return CsvReplay(path, column=column, time_column=time_column, label_column=label_column,
                         on_note=on_note, **opts)
    if csv_options.get("resume") is not None or csv_options.get("max_lines") is not None:
        raise SourceError(f"--state (checkpoints and resume) needs a CSV file; {os.fspath(path)} is read as "
                          f"{fmt}: convert it to CSV first, or run without --state")
    given = [flag for flag, v in (("--column", None if fmt == "wfdb" else column), ("--time-column", time_column),
                                  ("--label-column", label_column)) if v is not None]
    if given:
        raise SourceError(f"{' and '.join(given)} choose CSV columns; {os.fspath(path)} is read as "
                          f"{fmt}, whose fields are fixed (use --format-in csv to read it as CSV)")
    valid_range = csv_options.get("valid_range")
    checks = {"valid_range": valid_range}  # the same checks for every format
    if csv_options.get("max_line") is not None:
        checks["max_record"] = csv_options["max_line"]
    if fmt == "wfdb":
        from streams.wfdb_record import WfdbRecord
        return WfdbRecord(path, column=column, valid_range=valid_range, on_note=on_note)
    if fmt == "fhir":
        from streams.fhir import FhirObservations
        return FhirObservations(path, on_note=on_note, **checks)
    if fmt == "tcx":
        from streams.tcx import TcxTrackpoints
        return TcxTrackpoints(path, on_note=on_note, **checks)
    if fmt == "fit":
        from streams.fit import FitRecords
        return FitRecords(path, valid_range=valid_range, on_note=on_note)
    if fmt == "fitbit":
        from streams.fitbit import FitbitJson
        return FitbitJson(path, on_note=on_note, **checks)
    from streams.apple_health import AppleHealthXml
    return AppleHealthXml(path, on_note=on_note, **checks)
