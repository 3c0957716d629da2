"""A progress bar on stderr while a file is replayed: records done, readings/s, running accuracy.

Shown only when it can help a person: a file (not standard input, where records are the output),
stderr a terminal, and no --quiet. It wraps the source, so the replay loop does not know about it:
when the loop asks for the next batch, the previous one has been scored and learned.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Iterable, Iterator, TextIO

from streams import Batch

__all__ = ["with_progress", "wants_progress", "estimate_records"]

_COUNT_LIMIT = 1 << 31  # files larger than this (2 GiB) are not pre-scanned for a total
_MARKERS = {"fitbit": b'"bpm"', "apple-health": b"HKQuantityTypeIdentifierHeartRate", "tcx": b"<HeartRateBpm",
            "fhir": b'"8867-4"'}
_NO_TOTAL = ("wfdb", "fit")  # binary signal files: no marker to count


def wants_progress(*, path: str | None, live: bool, quiet: bool, stderr: TextIO) -> bool:
    """True when a bar belongs on stderr: a file replayed to a terminal, without --quiet."""
    return bool(path) and path != "-" and not live and not quiet and stderr.isatty()


def estimate_records(path: str, fmt: str, gzip: bool) -> int | None:
    """Records in a file, for the bar's total: lines of a CSV, heart-rate markers of JSON/XML.

    One pass of C-level byte counting; None for gzip (it would mean decompressing twice) or a
    file larger than 2 GiB, and the bar then counts without a total.
    """
    if gzip or fmt in _NO_TOTAL or os.path.getsize(path) > _COUNT_LIMIT:
        return None
    marker = _MARKERS.get(fmt, b"\n")
    count, last = 0, b""
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            count += (last[-len(marker) + 1:] + block).count(marker) if len(marker) > 1 else block.count(marker)
            last = block
    if fmt == "csv" and last and not last.endswith(b"\n"):
        count += 1  # a last line without a newline
    return count


def with_progress(source: Iterable[Batch], monitor, *, total: int | None, stream: TextIO,
                  step: int = 2048) -> Iterator[Batch]:
    """Yield the source's batches, advancing a tqdm bar once each has been processed."""
    from tqdm import tqdm

    bar = tqdm(total=total, unit=" readings", file=stream, dynamic_ncols=True, leave=False,
               smoothing=0.1, mininterval=0.2)
    try:
        for batch in source:
            for piece in _pieces(batch, step):
                yield piece  # the loop scores and learns it before asking for the next one
                m = monitor.metrics
                if getattr(m, "readings_", 0):
                    bar.set_postfix_str(f"accuracy {(m.tp_ + m.tn_) / m.readings_:.4f}", refresh=False)
                bar.update(len(piece) + len(piece.rejected) + piece.header_lines)
        bar.refresh()  # the final count and accuracy drawn once, even when the run took under mininterval
    finally:
        bar.close()


def _pieces(batch: Batch, step: int) -> Iterator[Batch]:
    """A file's large batch in pieces of ``step`` readings, so the bar moves while it is learned.

    The monitor's output does not depend on how its input is sliced; the first piece carries the
    batch's rejects and header count.
    """
    if len(batch) <= step:
        yield batch
        return
    for start in range(0, len(batch), step):
        piece = batch.slice(start, start + step)
        yield replace(piece, rejected=batch.rejected, header_lines=batch.header_lines) if start == 0 else piece
