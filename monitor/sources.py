"""Turn command-line choices into a source from `streams` (the one place the monitor picks one)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, Iterable

from streams import Batch

__all__ = ["STREAMS", "SourceChoice", "open_source"]

STREAMS = ("sample", "circles", "synthetic")


@dataclass
class SourceChoice:
    source: Iterable[Batch]
    live: bool  # records are flushed one batch at a time
    name: str  # for the summary: a path, "-", or a stream name


def open_source(path: str | None, *, stream: str | None = None, n: int | None = None, seed: int = 0,
                column: str | None = None, time_column: str | None = None,
                label_column: str | None = None, on_note: Callable[[str], None] | None = None,
                format_in: str | None = None) -> SourceChoice:
    """A file path, "-" for standard input, or a named stream (sample, circles, synthetic).

    A file's format (CSV, Fitbit JSON, Apple Health XML, any of them gzipped) is detected from its
    first bytes unless ``format_in`` names it; standard input is CSV lines.
    """
    cols = dict(column=column, time_column=time_column, label_column=label_column, on_note=on_note)
    if stream == "circles":
        from streams.circles import Circles
        return SourceChoice(Circles(n=n or 10_000, seed=seed), False, "circles")
    if stream == "synthetic":
        from streams.synthetic import SyntheticHeartRate
        return SourceChoice(SyntheticHeartRate(n=n or 5_000, seed=seed), False, "synthetic")
    if stream == "sample":
        from streams.sample import Sample
        return SourceChoice(Sample(**cols), False, "sample")
    if path == "-":
        if format_in not in (None, "csv"):
            from streams import SourceError
            raise SourceError(f"standard input is read as CSV lines; --format-in {format_in} needs a FILE")
        from streams.live import LiveLines
        return SourceChoice(LiveLines(stream=sys.stdin.buffer, **cols), True, "-")
    from streams.formats import open_file
    return SourceChoice(open_file(path, format_in=format_in, **cols), False, str(path))
