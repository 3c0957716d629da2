"""The replay loop: source -> monitor -> sink, with rejects reported and a summary at the end."""

from __future__ import annotations

import sys
import time
from typing import Callable, Iterable, TextIO

from monitor.pacing import Pacer
from monitor.pipeline import Monitor
from streams import Batch, Reject

__all__ = ["replay", "RejectReport", "format_summary"]


class RejectReport:
    """Counts rejected lines and prints the first few (line number and reason) to a stream."""

    def __init__(self, stream: TextIO | None = None, *, show: int = 5, unit: str = "line") -> None:
        self.stream = stream
        self.show = show
        self.unit = unit  # what Reject.line counts: "line" for text, "record" for JSON/XML exports
        self.count = 0

    def __repr__(self) -> str:
        return f"RejectReport(count={self.count})"

    def add(self, rejects: Iterable[Reject]) -> None:
        for r in rejects:
            self.count += 1
            if self.stream is not None and self.count <= self.show:
                self.stream.write(f"monitor: {self.unit} {r.line} rejected: {r.reason}\n")

    def close(self) -> None:
        if self.stream is not None and self.count > self.show:
            self.stream.write(f"monitor: {self.count - self.show} more {self.unit}s rejected ({self.count} in all)\n")


def replay(source: Iterable[Batch], monitor: Monitor, sink, *, live: bool = False,
           pacer: Pacer | None = None, rejects: RejectReport | None = None,
           clock: Callable[[], float] = time.perf_counter) -> dict:
    """Run a source through the monitor into the sink; returns the summary dict.

    On a live source (or with pacing) every record is flushed as soon as its reading is scored.
    Ctrl-C stops the loop after flushing what was scored; the summary then says "interrupted".
    """
    pacer = pacer or Pacer()
    rejects = rejects or RejectReport()
    flush_each = live or pacer.speed > 0
    start = clock()
    headers = 0
    interrupted = False
    try:
        for batch in source:
            rejects.add(batch.rejected)
            headers += batch.header_lines
            for part in pacer.split(batch.time):
                scored = monitor.process(batch.slice(part.start, part.stop))
                sink.write(scored)
                if flush_each:
                    sink.flush()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        try:
            sink.flush()
        except BrokenPipeError:
            pass
        rejects.close()
    elapsed = clock() - start
    out = monitor.summary()
    out.update({"rejected": rejects.count, "header_lines": headers, "interrupted": interrupted,
                "elapsed_s": round(elapsed, 6),
                "readings_per_s": round(out["readings"] / elapsed, 1) if elapsed > 0 else None})
    return out


def format_summary(s: dict) -> str:
    """The few lines printed on stderr at the end of a run."""
    def f(v, spec=".4f"):
        return "n/a" if v is None else format(v, spec)
    lines = [
        f"readings {s['readings']}  rejected {s['rejected']}  flags {s['flags']}  "
        f"({f(s.get('readings_per_s'), ',.0f')} readings/s, {s['elapsed_s']:.2f} s)",
        f"accuracy {f(s['accuracy'])}  log loss {f(s['log_loss'])}  ROC AUC {f(s['roc_auc'])}  "
        f"precision {f(s['precision'])}  recall {f(s['recall'])}",
    ]
    if not s.get("learn", True):
        lines.append("model frozen (--no-learn): nothing was learned from this stream")
    if s.get("skipped_steps"):
        lines.append(f"{s['skipped_steps']} training steps skipped (loss or gradient not finite)")
    return "\n".join("monitor: " + ln for ln in lines) + "\n"
