"""Which input format a file is in, told from its first bytes, and the source that reads it.

Formats: ``csv`` (CSV with or without a header, or one number per line), ``fitbit`` (Fitbit JSON
export), ``apple-health`` (Apple Health export.xml). Any of them may be gzip-compressed: that is
told by the gzip magic bytes, whatever the file is called, and undone on the fly. Detection looks
at the first non-blank byte of the (decompressed) content: ``[`` or ``{`` is JSON, ``<`` is XML,
anything else is CSV. ``format_in`` overrides it.

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

FORMATS = ("csv", "fitbit", "apple-health")
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
    with open_bytes(path) as f:
        try:
            head = f.read(_PEEK)
        except (OSError, EOFError) as e:
            raise SourceError(f"{os.fspath(path)}: damaged gzip data ({e})") from None
    with open(path, "rb") as raw:
        gz = raw.read(2) == GZIP_MAGIC
    first = head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")[:1]
    if first in (b"[", b"{"):
        return Detected("fitbit", gz)
    if first == b"<":
        return Detected("apple-health", gz)
    return Detected("csv", gz)


def open_file(path: str | os.PathLike, *, format_in: str | None = None, column: str | None = None,
              time_column: str | None = None, label_column: str | None = None,
              on_note: Callable[[str], None] | None = None, **csv_options):
    """The source for a file: its detected format, or ``format_in`` when given.

    ``column``, ``time_column`` and ``label_column`` choose CSV columns; the JSON and XML exports
    have fixed fields, so giving one for them is a SourceError. ``csv_options`` (key_column,
    valid_range, max_line, max_lines, resume) go to CsvReplay; valid_range and max_line (as the
    longest record) apply to every format; resuming (``resume``/``max_lines``, used by
    --state) is only offered for CSV, whose byte offsets a checkpoint can hold.
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
    given = [flag for flag, v in (("--column", column), ("--time-column", time_column),
                                  ("--label-column", label_column)) if v is not None]
    if given:
        raise SourceError(f"{' and '.join(given)} choose CSV columns; {os.fspath(path)} is read as "
                          f"{fmt}, whose fields are fixed (use --format-in csv to read it as CSV)")
    checks = {"valid_range": csv_options.get("valid_range")}  # the same checks for every format
    if csv_options.get("max_line") is not None:
        checks["max_record"] = csv_options["max_line"]
    if fmt == "fitbit":
        from streams.fitbit import FitbitJson
        return FitbitJson(path, on_note=on_note, **checks)
    from streams.apple_health import AppleHealthXml
    return AppleHealthXml(path, on_note=on_note, **checks)
