"""The replay loop: source -> monitor -> sink, with rejects reported and a summary at the end."""

from __future__ import annotations

import json
import time
from typing import Callable, Iterable, TextIO

import numpy as np

from monitor.interrupts import Interrupts
from monitor.pacing import Pacer
from monitor.pipeline import Monitor
from streams import Batch, Reject

__all__ = ["replay", "RejectReport", "StrictStop", "format_summary"]


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


def replay(source: Iterable[Batch], monitor: Monitor, sink, *, live: bool = False,
           pacer: Pacer | None = None, rejects: RejectReport | None = None,
           clock: Callable[[], float] = time.perf_counter, strict: bool = False,
           checkpoint_every: int | None = None, save: Callable[[dict | None, dict], None] | None = None,
           interrupts: Interrupts | None = None, start: dict | None = None) -> dict:
    """Run a source through the monitor into the sink; returns the summary dict.

    On a live source (or with pacing) every record is flushed as soon as its reading is scored.
    Ctrl-C or SIGTERM (with ``interrupts``) stops the loop after the batch being processed, flushing
    what was scored; the summary then says "interrupted". When pacing, give the pacer
    ``sleep=interrupts.sleep``: a signal then also cuts a pacing sleep short, in mid-batch, and no
    final checkpoint is written (the last one stands; a resumed run redoes the rest of the batch).

    With ``save``, ``save(position, counts)`` is called between batches once ``checkpoint_every``
    readings have been scored since the last call, and once at the end (also when interrupted
    between batches): ``position`` is the last batch's ``Batch.position`` and ``counts`` holds the
    reject and header-line counts. ``start`` = {"position", "header_lines"} of a resumed run.
    With ``strict``, the first rejected line raises StrictStop after the readings before it.
    """
    pacer = pacer or Pacer()
    rejects = rejects or RejectReport()
    stop = interrupts or Interrupts()
    flush_each = live or pacer.speed > 0
    behind = bool(getattr(monitor, "trains_behind", False))
    start_t = clock()
    headers = start["header_lines"] if start else 0
    position = start["position"] if start else None
    since = 0  # readings scored since the last save
    consistent = True  # the monitor's state matches `position` (False in the middle of a batch)
    interrupted = False

    def counts() -> dict:
        return {"rejected": rejects.count, "header_lines": headers}

    try:
        for batch in source:
            with stop.critical():  # a signal stops the loop after this batch, at a consistent point
                consistent = False
                if strict and batch.rejected:
                    first = batch.rejected[0]
                    k = int(np.searchsorted(batch.line, first.line))
                    sink.write(monitor.process(batch.slice(0, k)))
                    rejects.add([first])
                    raise StrictStop(first)
                rejects.add(batch.rejected)
                headers += batch.header_lines
                for part in pacer.split(batch.time):  # pacing sleeps: stop.sleep gives way to a signal
                    if flush_each:  # live: each record out (and flushed) as soon as it is scored
                        monitor.process(batch.slice(part.start, part.stop),
                                        emit=lambda s: (sink.write(s), sink.flush()))
                    elif behind:  # records written slice by slice while the worker trains (2 cores)
                        monitor.process(batch.slice(part.start, part.stop), emit=sink.write)
                    else:
                        sink.write(monitor.process(batch.slice(part.start, part.stop)))
                consistent, position = True, batch.position
                since += len(batch)
                if save is not None and checkpoint_every and since >= checkpoint_every:
                    save(position, counts())
                    since = 0
    except KeyboardInterrupt:
        interrupted = True
    finally:
        try:
            sink.flush()
        except BrokenPipeError:
            pass
        rejects.close()
    if save is not None and consistent:
        with stop.critical():
            save(position, counts())
    elapsed = clock() - start_t
    out = monitor.summary()
    out.update({"rejected": rejects.count, "header_lines": headers, "interrupted": interrupted,
                "elapsed_s": round(elapsed, 6),
                "readings_per_s": round(out["readings"] / elapsed, 1) if elapsed > 0 else None})
    if interrupted:
        out["signal"] = stop.signum or 2
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
    if "keys_seen" in s:
        lines.append(f"keys {s['keys_seen']} ({s['key_model']} network)  held {s['keys_held']}  "
                     f"evicted {s['evicted_keys']}  alert episodes {s['episodes']}")
    elif s.get("episodes"):
        lines.append(f"alert episodes {s['episodes']}")
    if s.get("resumed_from_line"):
        lines.append(f"resumed from line {s['resumed_from_line']} (checkpoint {s.get('state')})")
    if not s.get("learn", True):
        src = f" loaded from {s['state']}" if s.get("state") else ""
        lines.append(f"model frozen (--no-learn): scored with the model{src}; nothing was learned "
                     "and no checkpoint written")
    if s.get("skipped_steps"):
        lines.append(f"{s['skipped_steps']} training steps skipped (loss or gradient not finite)")
    if s.get("normaliser_skipped"):
        lines.append(f"{s['normaliser_skipped']} mini-batches left out of the normaliser (statistics would overflow)")
    if s.get("nan_scores"):
        lines.append(f"{s['nan_scores']} readings the network could not score (p set to 0.5)")
    if s.get("interrupted"):
        lines.append("interrupted: output flushed" + (", checkpoint written" if s.get("state") and s.get("learn", True) else ""))
    return "\n".join("monitor: " + ln for ln in lines) + "\n"
