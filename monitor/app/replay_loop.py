"""The replay loop: source -> monitor -> sink, with rejects reported and a summary at the end."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable, Iterable, TextIO

import numpy as np

from monitor.app.interrupts import Interrupts
from monitor.app.pacing import Pacer
from monitor.core.monitor import Monitor
from monitor.app.summary import RunFacts, build_summary
from streams import Batch, Reject

__all__ = ["replay", "Checkpointing", "RejectReport", "StrictStop"]


class StrictStop(Exception):
    """--strict: the first bad line stops the run (the readings before it are scored and written)."""

    def __init__(self, reject: Reject) -> None:
        super().__init__(f"line {reject.line} rejected (--strict): {reject.reason}")
        self.reject = reject


class RejectReport:
    """Counts rejected lines, prints the first few to a stream and writes each to a JSON Lines file.

    >>> import io
    >>> out = io.StringIO()
    >>> report = RejectReport(None, file=out)
    >>> report.add([Reject(3, "0.5,abc", "not a number")])
    >>> report.count, out.getvalue()
    (1, '{"line": 3, "raw": "0.5,abc", "reason": "not a number"}\\n')
    """

    def __init__(self, stream: TextIO | None = None, *, show: int = 5, file: TextIO | None = None,
                 count: int = 0, unit: str = "line") -> None:
        self.stream = stream
        self.show = show
        self.file = file  # --rejects: one {"line", "raw", "reason"} object per rejected line
        self.count = count  # counted before (a resumed run goes on counting)
        self._shown = 0
        self.unit = unit  # what Reject.line counts: "line" for text, "record" for JSON/XML exports

    def __repr__(self) -> str:
        return f"RejectReport(count={self.count})"

    def add(self, rejects: Iterable[Reject]) -> None:
        rejects = list(rejects)
        self.count += len(rejects)
        if self.file is not None and rejects:
            self.file.write("".join(json.dumps({"line": r.line, "raw": r.raw, "reason": r.reason},
                                               ensure_ascii=False) + "\n" for r in rejects))
        if self.stream is not None:
            for r in rejects[:max(0, self.show - self._shown)]:
                self.stream.write(f"monitor: {self.unit} {r.line} rejected: {r.reason}\n")
        self._shown += len(rejects)

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()

    def close(self) -> None:
        self.flush()
        if self.stream is not None and self._shown > self.show:
            self.stream.write(f"monitor: {self._shown - self.show} more {self.unit}s rejected ({self.count} in all)\n")


@dataclass(frozen=True)
class Checkpointing:
    """When and how a replay saves its progress (see `replay`)."""

    save: Callable[[dict | None, dict], None]  # save(position, counts): the checkpoint's writer
    every: int | None = None  # readings between saves (None: only at the end)
    start: dict | None = None  # a resumed run's {"position", "header_lines"}


def replay(source: Iterable[Batch], monitor: Monitor, sink, *, live: bool = False,
           pacer: Pacer | None = None, rejects: RejectReport | None = None, strict: bool = False,
           checkpointing: Checkpointing | None = None, interrupts: Interrupts | None = None,
           clock: Callable[[], float] = time.perf_counter) -> dict:
    """Run a source through the monitor into the sink; returns the summary (monitor.app.summary.build_summary).

    On a live source (or with pacing) every record is flushed as soon as its reading is scored.
    Ctrl-C or SIGTERM (with ``interrupts``) stops the loop after the batch being processed, flushing
    what was scored; the summary then says "interrupted". When pacing, give the pacer
    ``sleep=interrupts.sleep``: a signal then also cuts a pacing sleep short, in mid-batch, and no
    final checkpoint is written (the last one stands; a resumed run redoes the rest of the batch).

    With ``checkpointing``, ``save(position, counts)`` is called between batches once ``every``
    readings have been scored since the last call, and once at the end (also when interrupted
    between batches): ``position`` is the last batch's ``Batch.position`` and ``counts`` holds the
    reject and header-line counts; ``start`` is where a resumed run starts.
    With ``strict``, the first rejected line raises StrictStop after the readings before it.
    """
    loop = _Loop(monitor, sink, pacer or Pacer(), rejects or RejectReport(), checkpointing)
    stop = interrupts or Interrupts()
    start_t = clock()
    interrupted = False
    try:
        for batch in source:
            with stop.critical():  # a signal stops the loop after this batch, at a consistent point
                loop.batch(batch, strict=strict, flush_each=live or loop.pacer.speed > 0)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        try:
            sink.flush()
        except BrokenPipeError:
            pass
        loop.rejects.close()
    if checkpointing is not None and loop.consistent:
        with stop.critical():
            loop.save()
    facts = RunFacts(rejected=loop.rejects.count, header_lines=loop.headers, elapsed=clock() - start_t,
                     signal=(stop.signum or 2) if interrupted else None)
    return build_summary(monitor.summary(), facts)


class _Loop:
    """The state of one replay between batches: headers and rejects counted, the last position."""

    def __init__(self, monitor: Monitor, sink, pacer: Pacer, rejects: RejectReport,
                 checkpointing: Checkpointing | None) -> None:
        self.monitor, self.sink, self.pacer, self.rejects = monitor, sink, pacer, rejects
        self.checkpointing = checkpointing
        start = checkpointing.start if checkpointing is not None else None
        self.headers = start["header_lines"] if start else 0
        self.position = start["position"] if start else None
        self.since = 0  # readings scored since the last save
        self.consistent = True  # the monitor's state matches `position` (False in the middle of a batch)

    def batch(self, batch: Batch, *, strict: bool, flush_each: bool) -> None:
        monitor, sink = self.monitor, self.sink
        self.consistent = False
        if strict and batch.rejected:
            first = batch.rejected[0]
            k = int(np.searchsorted(batch.line, first.line))
            sink.write(monitor.process(batch.slice(0, k)))
            self.rejects.add([first])
            raise StrictStop(first)
        self.rejects.add(batch.rejected)
        self.headers += batch.header_lines
        for part in self.pacer.split(batch.time):  # pacing sleeps: stop.sleep gives way to a signal
            if flush_each:  # live: each record out (and flushed) as soon as it is scored
                monitor.process(batch.slice(part.start, part.stop), emit=lambda s: (sink.write(s), sink.flush()))
            elif getattr(monitor, "trains_behind", False):  # records written slice by slice while the worker trains
                monitor.process(batch.slice(part.start, part.stop), emit=sink.write)
            else:
                sink.write(monitor.process(batch.slice(part.start, part.stop)))
        self.consistent, self.position = True, batch.position
        self.since += len(batch)
        every = self.checkpointing.every if self.checkpointing is not None else None
        if every and self.since >= every:
            self.save()
            self.since = 0

    def save(self) -> None:
        self.checkpointing.save(self.position, {"rejected": self.rejects.count, "header_lines": self.headers})
