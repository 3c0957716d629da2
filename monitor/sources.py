"""Turn command-line choices into a source from `streams` (the one place the monitor picks one)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator

import numpy as np

from streams import Batch

__all__ = ["SourceChoice", "open_source"]


@dataclass
class SourceChoice:
    source: Iterable[Batch]
    live: bool  # records are flushed one batch at a time
    name: str  # for the summary: a path, "-", or a stream name


def open_source(path: str | None, *, stream: str | None = None, n: int | None = None, seed: int = 0,
                column: str | None = None, time_column: str | None = None,
                label_column: str | None = None, key_column: str | None = None,
                on_note: Callable[[str], None] | None = None, patients: int | None = None,
                valid_range: tuple[float, float] | None = None, max_lines: int | None = None,
                resume: dict | None = None, format_in: str | None = None,
                max_line: int | None = None) -> SourceChoice:
    """A file path, "-" for standard input, or a named stream (sample, circles, synthetic, ward).

    A file's format (CSV, Fitbit JSON, Apple Health XML, any of them gzipped) is detected from its
    first bytes unless ``format_in`` names it; standard input is CSV lines, or FHIR NDJSON with
    ``format_in="fhir"``.
    For the ward, ``patients`` is the number of patients and ``n`` the length in minutes.
    ``valid_range`` applies to line sources (files, standard input, the sample), whose readings
    are heart rates; ``max_lines`` caps the lines of a file's batches (checkpoint granularity);
    ``resume`` is a saved Batch.position: a file seeks to it, a generated stream is generated
    again and the readings before it dropped, standard input (a pipe cannot be re-read) ignores it.
    """
    cols = dict(column=column, time_column=time_column, label_column=label_column, key_column=key_column,
                on_note=on_note, valid_range=valid_range)
    if max_line is not None:  # the longest line (or record) read; longer ones are counted rejects
        cols["max_line"] = max_line
    file_opts = dict(max_lines=max_lines, resume=resume)
    if stream == "ward":
        from streams.ward import Ward
        return SourceChoice(_generated(Ward(patients=patients or 50, minutes=n or 60, seed=seed), resume),
                            False, "ward")
    if stream == "circles":
        from streams.circles import Circles
        return SourceChoice(_generated(Circles(n=n or 10_000, seed=seed), resume), False, "circles")
    if stream == "synthetic":
        from streams.synthetic import SyntheticHeartRate
        return SourceChoice(_generated(SyntheticHeartRate(n=n or 5_000, seed=seed), resume), False, "synthetic")
    if stream == "sample":
        from streams.sample import Sample
        return SourceChoice(Sample(**cols, **file_opts), False, "sample")
    if path == "-":
        if format_in == "fhir":
            from streams.fhir import FhirObservations
            limit = {} if max_line is None else {"max_record": max_line}
            return SourceChoice(FhirObservations(stream=sys.stdin.buffer, valid_range=valid_range,
                                                 on_note=on_note, **limit), True, "-")
        if format_in not in (None, "csv"):
            from streams import SourceError
            raise SourceError(f"standard input is read as CSV lines (or FHIR NDJSON with --format-in fhir); "
                              f"--format-in {format_in} needs a FILE")
        from streams.live import LiveLines
        return SourceChoice(LiveLines(stream=sys.stdin.buffer, **cols), True, "-")
    from streams.formats import open_file
    return SourceChoice(open_file(path, format_in=format_in, **cols, **file_opts), False, str(path))


def _generated(source: Iterable[Batch], resume: dict | None) -> Iterator[Batch]:
    """A generated stream with positions {"line": next reading's number}, from ``resume`` on."""
    first = 1 if resume is None else int(resume["line"])
    for batch in source:
        k = int(np.searchsorted(batch.line, first))
        if k == len(batch):
            continue
        part = batch if k == 0 else batch.slice(k, len(batch))
        yield replace(part, position={"line": int(batch.line[-1]) + 1})
