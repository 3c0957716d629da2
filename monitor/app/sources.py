"""Turn command-line choices into a source from `streams` (the one place the monitor picks one)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator

import numpy as np

from monitor.config import SourceSpec
from streams import Batch

__all__ = ["SourceChoice", "SourceSpec", "open_source"]


@dataclass
class SourceChoice:
    source: Iterable[Batch]
    live: bool  # records are flushed one batch at a time
    name: str  # for the summary: a path, "-", or a stream name


def open_source(spec: SourceSpec, *, seed: int = 0, on_note: Callable[[str], None] | None = None,
                max_lines: int | None = None, resume: dict | None = None) -> SourceChoice:
    """The source of ``spec``: a file path, "-" for standard input, or a named stream.

    A file's format (CSV, Fitbit JSON, Apple Health XML, any of them gzipped) is detected from its
    first bytes unless ``spec.format_in`` names it; standard input is CSV lines, or FHIR NDJSON with
    ``format_in="fhir"``. For the ward, ``spec.patients`` is the number of patients and ``spec.n``
    the length in minutes. ``spec.valid_range`` applies to line sources (files, standard input, the
    sample), whose readings are heart rates. ``seed`` seeds generated streams; ``max_lines`` caps
    the lines of a file's batches (checkpoint granularity); ``resume`` is a saved Batch.position: a
    file seeks to it, a generated stream is generated again and the readings before it dropped,
    standard input (a pipe cannot be re-read) ignores it.

    >>> choice = open_source(SourceSpec(stream="synthetic", n=5))
    >>> choice.name, choice.live, sum(len(b) for b in choice.source)
    ('synthetic', False, 5)
    """
    generated = _generated_stream(spec, seed)
    if generated is not None:
        return SourceChoice(_generated(generated, resume), False, str(spec.stream))
    cols = dict(column=spec.column, time_column=spec.time_column, label_column=spec.label_column,
                key_column=spec.key_column, on_note=on_note, valid_range=spec.valid_range)
    if spec.max_line is not None:  # the longest line (or record) read; longer ones are counted rejects
        cols["max_line"] = spec.max_line
    if spec.stream == "sample":
        from streams.sample import Sample
        return SourceChoice(Sample(**cols, max_lines=max_lines, resume=resume), False, "sample")
    if spec.file == "-":
        return SourceChoice(_stdin(spec, cols, on_note), True, "-")
    from streams.formats import open_file
    return SourceChoice(open_file(spec.file, format_in=spec.format_in, **cols, max_lines=max_lines, resume=resume),
                        False, str(spec.file))


def _generated_stream(spec: SourceSpec, seed: int):
    """The generator of --stream ward, circles or synthetic; None for other sources."""
    if spec.stream == "ward":
        from streams.ward import Ward
        return Ward(patients=spec.patients or 50, minutes=spec.n or 60, seed=seed)
    if spec.stream == "circles":
        from streams.circles import Circles
        return Circles(n=spec.n or 10_000, seed=seed)
    if spec.stream == "synthetic":
        from streams.synthetic import SyntheticHeartRate
        return SyntheticHeartRate(n=spec.n or 5_000, seed=seed)
    return None


def _stdin(spec: SourceSpec, cols: dict, on_note) -> Iterable[Batch]:
    """Standard input: CSV lines, or FHIR NDJSON (--format-in fhir)."""
    if spec.format_in == "fhir":
        from streams.fhir import FhirObservations
        limit = {} if spec.max_line is None else {"max_record": spec.max_line}
        return FhirObservations(stream=sys.stdin.buffer, valid_range=spec.valid_range, on_note=on_note, **limit)
    if spec.format_in not in (None, "csv"):
        from streams import SourceError
        raise SourceError(f"standard input is read as CSV lines (or FHIR NDJSON with --format-in fhir); "
                          f"--format-in {spec.format_in} needs a FILE")
    from streams.live import LiveLines
    return LiveLines(stream=sys.stdin.buffer, **cols)


def _generated(source: Iterable[Batch], resume: dict | None) -> Iterator[Batch]:
    """A generated stream with positions {"line": next reading's number}, from ``resume`` on."""
    first = 1 if resume is None else int(resume["line"])
    for batch in source:
        k = int(np.searchsorted(batch.line, first))
        if k == len(batch):
            continue
        part = batch if k == 0 else batch.slice(k, len(batch))
        yield replace(part, position={"line": int(batch.line[-1]) + 1})
