"""The summary of a run, built in one place: what --summary-json writes and stderr shows.

`build_summary` puts together the monitor's own counts (``Monitor.summary`` or
``KeyedMonitor.summary``: metrics, learning counters, keys, alerts) and the facts of the run around
it (rejected lines, header lines, time, interruption, and the run's identity: source, seed,
state). `format_summary` is the few lines printed at the end.

>>> s = build_summary({"readings": 10, "flags": 2}, RunFacts(rejected=1, header_lines=1, elapsed=0.5),
...                   about={"source": "hr.csv", "seed": 0})
>>> s["rejected"], s["readings_per_s"], s["interrupted"], s["source"]
(1, 20.0, False, 'hr.csv')
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

__all__ = ["RunFacts", "build_summary", "live_summary", "format_summary"]


@dataclass(frozen=True)
class RunFacts:
    """What the run loop knows that the monitor does not."""

    rejected: int  # lines (or records) rejected, a resumed run's earlier ones included
    header_lines: int | None  # header lines skipped; None when unknown (a summary taken mid-run)
    elapsed: float  # seconds the loop ran
    signal: int | None = None  # the signal that stopped the run (2 SIGINT, 15 SIGTERM); None: it ended


def build_summary(monitor_summary: dict, facts: RunFacts, *, about: dict | None = None) -> dict:
    """The run's summary: the monitor's, the run's facts, then ``about`` (source, seed, state, ...)."""
    out = dict(monitor_summary)
    elapsed = facts.elapsed
    out.update({"rejected": facts.rejected, "header_lines": facts.header_lines,
                "interrupted": facts.signal is not None, "elapsed_s": round(elapsed, 6),
                "readings_per_s": round(out["readings"] / elapsed, 1) if elapsed > 0 else None})
    if facts.signal is not None:
        out["signal"] = facts.signal
    out.update(about or {})
    return out


def live_summary(monitor, *, rejected: int, started: float, extra: dict | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> dict:
    """The summary a run would write now (the keys of --summary-json; header_lines unknown, None)."""
    facts = RunFacts(rejected=rejected, header_lines=None, elapsed=clock() - started)
    return build_summary(monitor.summary(), facts, about=extra)


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
