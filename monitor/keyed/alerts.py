"""Alerts a person can act on: an episode per key when flags last, closed with hysteresis.

An episode opens when a key's flags hold for ``after`` (a number of consecutive flagged readings,
or a duration from the first of them) and closes when that key's readings stay normal for ``clear``
(a number of consecutive normal readings, or a duration since its last flagged reading). A short
normal dip inside an episode does not close it, and a short run of flags never opens one.

One record goes out when an episode opens and one when it closes: key, start (time of the first
flagged reading), end (time of the last one; null while open), peak and mean of the readings from
start to the last flag (the mean rounded to 6 decimals, so that it does not depend on how the
stream was cut into batches), and the times the alert opened / closed. Times are the time column's
seconds (epoch seconds for ISO 8601), or the reading index when the source has none.

The scan is per batch: readings are grouped by key id (stable argsort), keys with nothing going on
(closed, no flag, no flagged run pending) are skipped in bulk, and a busy key is handled run by run
(runs of equal flags found with numpy), never reading by reading.

>>> import numpy as np
>>> tracker = AlertTracker(after=Span.parse("3"), clear=Span.parse("2"))
>>> flag = np.array([0, 1, 1, 0, 1, 1, 1, 1, 0, 1, 0, 0, 0], dtype=bool)
>>> value = np.where(flag, 120.0, 70.0)
>>> for e in tracker.update(np.zeros(13, dtype=np.intp), ["bed1"], np.arange(13.0), value, flag):
...     print(e["event"], e["start"], e["end"], e["peak"], round(e["mean"], 2))
open 4.0 None 120.0 120.0
close 4.0 9.0 120.0 111.67
"""

from __future__ import annotations

import json
import math
from typing import Sequence, TextIO

import numpy as np

from monitor.config import Span  # the unit of `after` and `clear`, parsed from the options

__all__ = ["AlertTracker", "AlertSink", "run_sums"]

_FIELDS = ("open", "run", "start", "last_flag", "opened_at", "n", "sum", "peak", "tn", "tsum", "tpeak",
           "episodes")


class AlertTracker:
    """Per-key episode state, as arrays indexed by key id (see the module docstring).

    Parameters
    ----------
    after
        How long flags must hold to open an episode.
    clear
        How long readings must stay normal to close it.

    Attributes
    ----------
    episodes_ : np.ndarray of shape (K,)
        Episodes opened per key id.
    """

    def __init__(self, *, after: Span, clear: Span) -> None:
        self.after = after
        self.clear = clear
        self.episodes_forgotten_ = 0  # episodes of keys evicted since (their per-key counts are dropped)
        self._grow(0)

    def __repr__(self) -> str:
        return (f"AlertTracker(after={self.after}, clear={self.clear}, open={int(self._s['open'].sum())}, "
                f"episodes={int(self._s['episodes'].sum())})")

    @property
    def episodes_(self) -> np.ndarray:
        return self._s["episodes"]

    @property
    def n_episodes_(self) -> int:
        """Episodes opened in the whole stream, those of evicted keys included."""
        return int(self._s["episodes"].sum()) + self.episodes_forgotten_

    def _grow(self, k: int) -> None:
        old = getattr(self, "_s", None)
        have = 0 if old is None else len(old["open"])
        if old is not None and k <= have:
            return
        k = max(k, 2 * have)
        s = {"open": np.zeros(k, bool), "run": np.zeros(k, np.int64), "n": np.zeros(k, np.int64),
             "tn": np.zeros(k, np.int64), "episodes": np.zeros(k, np.int64)}
        for f in ("start", "last_flag", "opened_at", "sum", "peak", "tsum", "tpeak"):
            s[f] = np.zeros(k)
        if old is not None:
            for f in _FIELDS:
                s[f][:have] = old[f]
        self._s = s

    # ------------------------------------------------------------------ the scan

    def update(self, ids: np.ndarray, key_names: Sequence, time: np.ndarray, value: np.ndarray,
               flag: np.ndarray) -> list[dict]:
        """Advance every key's state over a batch; returns the open/close records, in time order.

        ids (n,) key ids; key_names[id] is the key written in records; time, value (n,) float;
        flag (n,) bool.
        """
        n = len(flag)
        if n == 0:
            return []
        ids = np.asarray(ids, dtype=np.intp)
        self._grow(int(ids.max()) + 1)
        s = self._s
        flag = np.asarray(flag, bool)
        k0 = int(ids[0])
        if n == 1 or (ids == k0).all():  # one key (an unkeyed stream, a live line): no grouping
            if not (s["open"][k0] or flag.any()):
                s["run"][k0] = 0  # closed and all normal: a pending flagged run is broken
                return []
            events: list[tuple[float, int, dict]] = []
            self._scan(k0, key_names[k0], np.asarray(time, np.float64), np.asarray(value, np.float64),
                       flag, np.arange(n), events)
            events.sort(key=lambda e: (e[0], e[1]))
            return [e[2] for e in events]
        order = np.argsort(ids, kind="stable")
        sid, sf = ids[order], flag[order]
        first = np.r_[True, sid[1:] != sid[:-1]]
        starts = np.flatnonzero(first)
        ends = np.r_[starts[1:], n]
        keys = sid[starts]  # (g,)
        any_flag = np.add.reduceat(sf.astype(np.int64), starts) > 0  # (g,)
        busy = any_flag | s["open"][keys]
        s["run"][keys[~busy]] = 0  # closed and all normal: a pending flagged run is broken
        st, sv = np.asarray(time, np.float64)[order], np.asarray(value, np.float64)[order]
        events = []
        for g in np.flatnonzero(busy).tolist():
            a, b = starts[g], ends[g]
            self._scan(int(keys[g]), key_names[keys[g]], st[a:b], sv[a:b], sf[a:b], order[a:b], events)
        events.sort(key=lambda e: (e[0], e[1]))
        return [e[2] for e in events]

    def _scan(self, k, key, t, v, f, pos, events) -> None:
        """One key's readings in time order, run of flags by run of normal readings.

        Only the runs that can open or close an episode go through `_flag_run` / `_normal_run`
        one by one; the runs between them are folded in with array operations (a stream with
        long stretches of short flagged runs used to cost a Python call per run; issue 15).
        """
        edges = np.flatnonzero(f[1:] != f[:-1]) + 1
        starts, ends = np.r_[0, edges], np.r_[edges, len(f)]  # (r,) runs [start, end)
        flagged = f[starts]
        # which runs, starting fresh (not the first of the batch), open or close an episode
        n_run = ends - starts
        t_max = np.maximum.reduceat(t, starts) if len(t) else t  # (r,) latest time in each run
        if self.after.readings is not None:
            opens = flagged & (n_run >= self.after.readings)
        else:
            opens = flagged & (t_max - t[starts] >= self.after.seconds)
        if self.clear.readings is not None:
            closes = ~flagged & (n_run >= self.clear.readings)
        else:  # measured from the last flag: the reading before the run
            closes = ~flagged & (t_max - t[np.maximum(starts - 1, 0)] >= self.clear.seconds)
        open_at, close_at = np.flatnonzero(opens), np.flatnonzero(closes)
        s, r, last = self._s, 0, len(starts) - 1

        def next_of(cands: np.ndarray, after: int) -> int | None:
            j = int(np.searchsorted(cands, after, side="right"))
            return int(cands[j]) if j < len(cands) else None

        def run(j: int) -> None:
            a, b = int(starts[j]), int(ends[j])
            (self._flag_run if flagged[j] else self._normal_run)(k, key, t[a:b], v[a:b], pos[a:b], events)

        run(0)  # the first run may go on from the last batch: always one by one
        while r < last:
            if s["open"][k]:  # the runs before the next closing normal run belong to the episode
                c = next_of(close_at, r)
                target = last if c is None else c
                if flagged[target]:  # no close in this batch, and it ends flagged: all of it
                    self._fold(k, t, v, starts, ends, flagged, r + 1, target)
                    r = target
                    continue
                if target - 1 > r:  # runs r+1 .. target-1 end with a flag run: one flagged stretch
                    self._fold(k, t, v, starts, ends, flagged, r + 1, target - 1)
                r = target
                run(r)
            else:  # the runs before the next opening flag run only reset the pending count
                o = next_of(open_at, r)
                s["run"][k] = 0
                if o is None and not flagged[last] and last - 1 > r:
                    run(last - 1)  # the last candidate that came to nothing (its start, sum... kept)
                r = last if o is None else o
                run(r)

    def _fold(self, k, t, v, starts, ends, flagged, first: int, last: int) -> None:
        """Runs first..last (the last one flagged) inside an open episode, as `_flag_run` and
        `_normal_run` take them one by one: sums added in the same order, so to the same bits."""
        s = self._s
        a, b = int(starts[first]), int(ends[last])
        sums = run_sums(v, starts[first:last + 1], ends[first:last + 1])  # (m,)
        s["n"][k] += s["tn"][k] + (b - a)
        s["sum"][k] = _fold_sums(float(s["sum"][k]), float(s["tsum"][k]), sums, flagged[first:last + 1])
        s["peak"][k] = max(s["peak"][k], s["tpeak"][k], v[a:b].max())
        s["tn"][k], s["tsum"][k], s["tpeak"][k] = 0, 0.0, -math.inf
        s["run"][k] = 0
        s["last_flag"][k] = t[b - 1]

    @staticmethod
    def _reaches(span: Span, done: int, t: np.ndarray, t0: float) -> int | None:
        """Index in t of the reading at which a run (``done`` readings before t, begun at t0) holds."""
        if span.readings is not None:
            i = span.readings - done - 1
            return max(i, 0) if i < len(t) else None
        held = t - t0 >= span.seconds
        return int(np.argmax(held)) if held.any() else None

    def _flag_run(self, k, key, t, v, pos, events) -> None:
        s = self._s
        if s["open"][k]:  # the normal readings since the last flag belong to the episode after all
            s["n"][k] += s["tn"][k] + len(v)
            s["sum"][k] += s["tsum"][k] + v.sum()
            s["peak"][k] = max(s["peak"][k], s["tpeak"][k], v.max())
            s["tn"][k], s["tsum"][k], s["tpeak"][k] = 0, 0.0, -math.inf
            s["run"][k] = 0
            s["last_flag"][k] = t[-1]
            return
        if s["run"][k] == 0:  # a new flagged run: a candidate episode starts here
            s["start"][k], s["n"][k], s["sum"][k], s["peak"][k] = t[0], 0, 0.0, -math.inf
        i = self._reaches(self.after, int(s["run"][k]), t, s["start"][k])
        if i is not None:
            n_open = s["n"][k] + i + 1
            events.append((float(t[i]), int(pos[i]), {
                "event": "open", "key": key, "start": float(s["start"][k]), "end": None,
                "peak": float(max(s["peak"][k], v[:i + 1].max())),
                "mean": round(float((s["sum"][k] + v[:i + 1].sum()) / n_open), 6), "opened_at": float(t[i])}))
            s["open"][k], s["opened_at"][k], s["run"][k] = True, t[i], 0
            s["episodes"][k] += 1
            s["tn"][k], s["tsum"][k], s["tpeak"][k] = 0, 0.0, -math.inf
        else:
            s["run"][k] += len(v)
        s["n"][k] += len(v)
        s["sum"][k] += v.sum()
        s["peak"][k] = max(s["peak"][k], v.max())
        s["last_flag"][k] = t[-1]

    def _normal_run(self, k, key, t, v, pos, events) -> None:
        s = self._s
        if not s["open"][k]:
            s["run"][k] = 0
            return
        i = self._reaches(self.clear, int(s["run"][k]), t, s["last_flag"][k])
        if i is None:
            s["run"][k] += len(v)
            s["tn"][k] += len(v)
            s["tsum"][k] += v.sum()
            s["tpeak"][k] = max(s["tpeak"][k], v.max())
            return
        events.append((float(t[i]), int(pos[i]), self._close_record(k, key, float(t[i]))))
        s["open"][k], s["run"][k] = False, 0
        s["tn"][k], s["tsum"][k], s["tpeak"][k] = 0, 0.0, -math.inf

    def _close_record(self, k, key, at: float, reason: str | None = None) -> dict:
        s = self._s
        rec = {"event": "close", "key": key, "start": float(s["start"][k]), "end": float(s["last_flag"][k]),
               "peak": float(s["peak"][k]), "mean": round(float(s["sum"][k] / s["n"][k]), 6),
               "readings": int(s["n"][k]), "opened_at": float(s["opened_at"][k]), "closed_at": at}
        if reason:
            rec["reason"] = reason
        return rec

    def forget(self, k: int, key) -> dict | None:
        """Drop a key id's state (its key was evicted); returns the close record of an open episode."""
        if k >= len(self._s["open"]):
            return None
        rec = self._close_record(k, key, float(self._s["last_flag"][k]), "evicted") if self._s["open"][k] else None
        self.episodes_forgotten_ += int(self._s["episodes"][k])  # evicted keys' episodes still count in the total
        for f in _FIELDS:
            self._s[f][k] = 0
        return rec

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        """JSON-able state: every per-key array as a list (inf peaks stored as None)."""
        out = {"after": str(self.after), "clear": str(self.clear), "episodes_forgotten": self.episodes_forgotten_}
        for f in _FIELDS:
            a = self._s[f]
            out[f] = [None if (isinstance(x, float) and not math.isfinite(x)) else x for x in a.tolist()]
        return out

    def load_state_dict(self, state: dict) -> None:
        k = len(state["open"])
        if any(len(state[f]) != k for f in _FIELDS):
            raise ValueError("load_state_dict(): every per-key list must have the same length")
        del self._s
        self._grow(k)
        self.episodes_forgotten_ = int(state.get("episodes_forgotten", 0))
        for f in _FIELDS:
            vals = [(-math.inf if x is None else x) for x in state[f]]
            self._s[f][:k] = np.asarray(vals, dtype=self._s[f].dtype)


def run_sums(v: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """(m,) ``v[starts[j]:ends[j]].sum()`` of each run, to the same bits, without a Python call per run.

    The runs of one length are gathered as the rows of an (r, length) matrix and summed along its
    rows: numpy sums a row as it sums the 1-D run (the same pairwise order), so a run's sum does not
    depend on how many runs there are (tests/monitor/keyed/test_alert_sums.py holds it to the per-run
    sums).

    >>> v = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    >>> run_sums(v, np.array([0, 1, 4]), np.array([1, 4, 6])).tolist() == [0.1, v[1:4].sum(), v[4:].sum()]
    True
    """
    lengths = ends - starts
    out = np.empty(len(starts))
    for n in np.unique(lengths).tolist():
        rows = np.flatnonzero(lengths == n)
        out[rows] = v[starts[rows][:, None] + np.arange(n)].sum(axis=1)  # (r, n) -> (r,)
    return out


def _fold_sums(total: float, pending: float, sums: np.ndarray, flagged: np.ndarray) -> float:
    """The episode's sum after runs with sums (m,) and flags (m,), the last one flagged: as the loop
    ``if flagged: total += pending + part; pending = 0.0 else: pending += part`` gives it, the same
    float operations in the same order. Runs alternate, so a flagged run follows at most one normal run."""
    at = np.flatnonzero(flagged)  # (f,) the flagged runs
    before = at - 1  # (f,) the normal run before each (-1: none)
    pend = np.zeros(len(at))  # (f,) what is pending when each flagged run comes
    has = before >= 0
    pend[has] = 0.0 + sums[before[has]]  # (pending reset to 0.0 after the flagged run before)
    pend[0] = pending + sums[before[0]] if has[0] else pending  # the first: what the episode had pending
    return float(np.add.accumulate(np.r_[total, pend + sums[at]])[-1])  # left to right, as the loop


class AlertSink:
    """Wrap a record sink: alert records go to a JSON Lines file and/or stdout, records to the sink.

    Parameters
    ----------
    sink
        The record sink, or None to write no per-reading records (``--alerts-only``).
    alerts
        A text stream for alert records (``--alerts FILE``), or None.
    echo
        A text stream that also gets the alert records (stdout with ``--alerts-only``), or None.
    """

    def __init__(self, sink, *, alerts: TextIO | None = None, echo: TextIO | None = None) -> None:
        self.sink = sink
        self.alerts = alerts
        self.echo = echo
        self.n_records_ = 0

    def __repr__(self) -> str:
        return f"AlertSink({self.sink!r}, alerts={self.alerts is not None}, echo={self.echo is not None})"

    def write(self, scored) -> None:
        events = getattr(scored, "alerts", ())
        if events:
            text = "".join(json.dumps(e) + "\n" for e in events)
            self.n_records_ += len(events)
            for stream in (self.alerts, self.echo):
                if stream is not None:
                    stream.write(text)
        if self.sink is not None:
            self.sink.write(scored)

    def flush(self) -> None:
        for stream in (self.sink, self.alerts, self.echo):
            if stream is not None:
                stream.flush()
