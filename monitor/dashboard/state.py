"""What the dashboard shows, aggregated from the monitor's scored batches (vectorised per batch).

The monitor's loop hands each `Scored` batch to `WardState.update` (in its own thread); the web
server reads snapshots (`state`, `key_detail`, `metrics_text`) and, once per tick, the keys that
changed since the last tick (`tick`). One lock guards both sides; every update is a handful of
numpy operations on the whole batch, never a Python loop per reading (only per new key and per
alert record).

Per key it keeps the last reading (time, value, p_abnormal, flag), counts, whether an alert is
open and since when, and a ring of the last ``ring`` readings for the sparkline.

>>> import numpy as np
>>> from monitor.core.monitor import Scored
>>> st = WardState(ring=4)
>>> s = Scored(time=np.arange(6.0), x=np.array([[60.], [99.], [61.], [120.], [62.], [121.]]),
...            label=np.array([0, 1, 0, 1, 0, 1.]), p=np.array([.1, .9, .1, .95, .1, .97]),
...            flag=np.array([0, 1, 0, 1, 0, 1], bool), line=np.arange(1, 7),
...            key=np.array(["a", "b"] * 3, dtype=object),
...            alerts=({"event": "open", "key": "b", "start": 1.0, "end": None, "peak": 120.0,
...                     "mean": 109.5, "opened_at": 3.0},))
>>> st.update(s)
>>> [(k["key"], k["value"], k["flag"], k["alert"]) for k in st.state()["keys"]]
[('b', 121.0, True, True), ('a', 62.0, False, False)]
>>> st.key_detail("b")["series"]["value"]
[99.0, 120.0, 121.0]
>>> [r["key"] for r in st.tick()["records"]], st.tick()["records"]   # changed keys, once
(['a', 'b'], [])
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable

import numpy as np

__all__ = ["WardState", "SINGLE"]

SINGLE = ""  # the key name of an unkeyed stream (one series)
POINTS_PER_TICK = 12  # a tick sends at most this many points per key (max-pooled): SSE stays small


class WardState:
    """The dashboard's aggregate of a run; see the module docstring.

    Parameters
    ----------
    ring
        Readings kept per key for its sparkline (the last ones).
    ring_single
        Readings kept for an unkeyed stream's one large chart.
    clock
        Wall clock, for readings per second and the time of the last update.
    """

    def __init__(self, *, ring: int = 240, ring_single: int = 3000,
                 clock: Callable[[], float] = time.time) -> None:
        self.ring = ring
        self.ring_single = ring_single
        self.clock = clock
        self.lock = threading.Lock()
        self.readings = 0
        self.flags = 0
        self.keyed: bool | None = None
        self.names: list[str] = []  # key id -> name
        self._ids: dict = {}  # key -> key id
        self.alerts: list[dict] = []  # every alert record so far, as the monitor wrote it
        self.summary: dict = {}
        self.finished = False
        self.pending: dict[str, int] | None = None  # serve: pending entries per shard
        self.source = ""
        self.started = clock()
        self._alloc(0)
        self._dirty = np.zeros(0, bool)
        self._sent = np.zeros(0, np.int64)  # count of each key when the last tick sent it
        self._alerts_sent = 0

    def __repr__(self) -> str:
        return f"WardState(readings={self.readings}, keys={len(self.names)}, alerts={len(self.alerts)})"

    # ------------------------------------------------------------------ arrays

    def _alloc(self, k: int) -> None:
        m = self.ring_single if self.keyed is False else self.ring
        old = getattr(self, "_a", None)
        have = 0 if old is None else len(old["count"])
        if old is not None and k <= have:
            return
        k = max(k, 2 * have, 16)
        a = {"count": np.zeros(k, np.int64), "flags": np.zeros(k, np.int64),
             "t": np.zeros(k), "v": np.zeros(k), "p": np.zeros(k), "f": np.zeros(k, bool),
             "open": np.zeros(k, bool), "opened_at": np.full(k, np.nan), "seen": np.zeros(k),
             "rt": np.zeros((k, m)), "rv": np.zeros((k, m), np.float32), "rf": np.zeros((k, m), bool)}
        if old is not None:
            for name, arr in old.items():
                a[name][:have] = arr
        self._a = a
        dirty, sent = np.zeros(k, bool), np.zeros(k, np.int64)
        if old is not None:
            dirty[:have], sent[:have] = self._dirty, self._sent
        self._dirty, self._sent = dirty, sent

    def _key_ids(self, key: np.ndarray | None, n: int) -> np.ndarray:
        if key is None:
            if not self.names:
                self.names.append(SINGLE)
                self._ids[SINGLE] = 0
            return np.zeros(n, np.intp)
        import pandas as pd
        codes, uniques = pd.factorize(key)
        ids = np.empty(len(uniques), np.intp)
        for j, k in enumerate(uniques.tolist()):  # per distinct key of the batch, not per reading
            i = self._ids.get(k)
            if i is None:
                i = self._ids[k] = len(self.names)
                self.names.append(str(k))
            ids[j] = i
        return ids[codes]

    # ------------------------------------------------------------------ the monitor's side

    def update(self, scored) -> None:
        """Take one scored batch (records and the alert records it carries)."""
        n = len(scored)
        events = getattr(scored, "alerts", ())
        if not n and not events:
            return
        with self.lock:
            if n:
                self._update_records(scored, n)
            for e in events:
                self._update_alert(e)

    def _update_records(self, s, n: int) -> None:
        if self.keyed is None:
            self.keyed = s.key is not None
            del self._a
            self._alloc(1)
        ids = self._key_ids(s.key, n)
        self._alloc(len(self.names))
        a = self._a
        order = np.argsort(ids, kind="stable")
        sid = ids[order]
        starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
        sizes = np.diff(np.r_[starts, n])
        keys = sid[starts]
        last = order[starts + sizes - 1]  # (g,) index of each key's last reading
        t, v = np.asarray(s.time, np.float64), np.asarray(s.x[:, 0], np.float64)
        a["t"][keys], a["v"][keys], a["p"][keys], a["f"][keys] = t[last], v[last], s.p[last], s.flag[last]
        a["seen"][keys] = self.clock()
        # the ring: each key's last m readings of the batch, at slots following its count
        m = a["rt"].shape[1]
        rank = np.arange(n) - np.repeat(starts, sizes)  # (n,) position within its key's readings
        keep = rank >= np.repeat(sizes, sizes) - m
        slot = (a["count"][sid] + rank) % m
        rows, cols, src = sid[keep], slot[keep], order[keep]
        a["rt"][rows, cols], a["rv"][rows, cols], a["rf"][rows, cols] = t[src], v[src], s.flag[src]
        a["count"][keys] += sizes
        nflags = np.add.reduceat(s.flag[order].astype(np.int64), starts)
        a["flags"][keys] += nflags
        self._dirty[keys] = True
        self.readings += n
        self.flags += int(nflags.sum())

    def _update_alert(self, e: dict) -> None:
        self.alerts.append(e)
        key = e.get("key")
        if self.keyed is None:  # an alert before any record (read from Redis, streams apart)
            self.keyed = key is not None
            del self._a
            self._alloc(1)
        k = self._ids.get(SINGLE if key is None else key)
        if k is None:
            k = int(self._key_ids(None if key is None else np.array([key], dtype=object), 1)[0])
            self._alloc(len(self.names))
        a = self._a
        if e.get("event") == "open":
            a["open"][k], a["opened_at"][k] = True, e.get("opened_at", math.nan)
        elif e.get("event") == "close":
            a["open"][k], a["opened_at"][k] = False, math.nan
        self._dirty[k] = True

    def set_summary(self, summary: dict, *, final: bool = False) -> None:
        """The run's summary (the keys of --summary-json); ``final`` once the stream has ended."""
        with self.lock:
            self.summary = summary
            self.finished = self.finished or final

    def set_pending(self, pending: dict[str, int]) -> None:
        """serve: entries read but not yet acknowledged, per shard."""
        with self.lock:
            self.pending = dict(pending)

    # ------------------------------------------------------------------ the server's side

    def _key_row(self, k: int) -> dict:
        a = self._a
        opened = float(a["opened_at"][k])
        return {"key": self.names[k] if self.keyed else None, "time": float(a["t"][k]),
                "value": float(a["v"][k]), "p_abnormal": round(float(a["p"][k]), 6), "flag": bool(a["f"][k]),
                "alert": bool(a["open"][k]), "opened_at": None if math.isnan(opened) else opened,
                "readings": int(a["count"][k]), "flags": int(a["flags"][k])}

    def _order(self) -> list[int]:
        """Key ids: open alerts first (longest open first), then by name."""
        k = len(self.names)
        a = self._a
        opened = np.where(a["open"][:k], a["opened_at"][:k], np.inf)
        opened = np.where(np.isnan(opened), -np.inf, opened).tolist()  # open with no time: first
        names = self.names
        return sorted(range(k), key=lambda i: (opened[i], names[i]))

    def _figures(self) -> dict:
        elapsed = max(self.clock() - self.started, 1e-9)
        return {"readings": self.readings, "flags": self.flags, "keys": len(self.names) if self.keyed else 0,
                "alerts_open": int(self._a["open"][:len(self.names)].sum()), "finished": self.finished,
                "keyed": bool(self.keyed), "readings_per_s": round(self.readings / elapsed, 1),
                "source": self.source, "pending": self.pending}

    def state(self) -> dict:
        """GET /api/state: readings, keys (open alerts first), every alert record, the summary."""
        with self.lock:
            keys = [self._key_row(k) for k in self._order()]
            return {"readings": self.readings, "keys": keys, "alerts": list(self.alerts),
                    "summary": dict(self.summary), "figures": self._figures()}

    def series(self, k: int) -> dict:
        """The ring of key id k in time order: time, value, flag lists."""
        a = self._a
        m = a["rt"].shape[1]
        c = int(a["count"][k])
        idx = np.arange(max(0, c - m), c) % m
        return {"time": a["rt"][k, idx].tolist(), "value": a["rv"][k, idx].astype(float).tolist(),
                "flag": a["rf"][k, idx].tolist()}

    def key_detail(self, key: str | None) -> dict | None:
        """GET /api/key: one key's last reading, its series (the ring) and its alert records."""
        with self.lock:
            k = self._ids.get(SINGLE if not self.keyed else key)
            if k is None:
                return None
            name = None if not self.keyed else self.names[k]
            return {**self._key_row(k), "series": self.series(k),
                    "alerts": [e for e in self.alerts if e.get("key") == name]}

    def sparklines(self) -> dict:
        """GET /api/series: every key's ring, for the tiles' first drawing."""
        with self.lock:
            return {self.names[k]: self.series(k) for k in range(len(self.names))}

    def tick(self) -> dict:
        """The keys changed since the last tick (one row each, with the new readings max-pooled to
        at most POINTS_PER_TICK points) and the (number, record) of each alert record since the
        last tick; for /events."""
        with self.lock:
            a = self._a
            changed = np.flatnonzero(self._dirty[:len(self.names)]).tolist()
            m = a["rt"].shape[1]
            records = []
            for k in changed:
                row = self._key_row(k)
                c = int(a["count"][k])
                new = min(c - int(self._sent[k]), m)
                if new > 0:
                    idx = np.arange(c - new, c) % m
                    row["points"] = _pool(a["rt"][k, idx], a["rv"][k, idx], a["rf"][k, idx], POINTS_PER_TICK)
                self._sent[k] = c
                records.append(row)
            self._dirty[:] = False
            alerts = list(enumerate(self.alerts[self._alerts_sent:], start=self._alerts_sent))
            self._alerts_sent = len(self.alerts)
            summary = {k: v for k, v in self.summary.items() if k != "keys"}  # (the per-key table: in /api/state)
            return {"records": records, "alerts": alerts, "figures": self._figures(), "summary": summary}

    def metrics_text(self) -> str:
        """GET /metrics: the Prometheus text exposition format."""
        with self.lock:
            s = self.summary
            acc = s.get("accuracy")
            lines = [
                ("monitor_readings_total", "counter", "Readings scored.", self.readings),
                ("monitor_flags_total", "counter", "Readings flagged abnormal.", self.flags),
                ("monitor_rejected_total", "counter", "Input lines or records rejected.", s.get("rejected", 0)),
                ("monitor_alerts_open", "gauge", "Alert episodes open now.",
                 int(self._a["open"][:len(self.names)].sum())),
                ("monitor_alert_records_total", "counter", "Alert records (open and close).", len(self.alerts)),
                ("monitor_keys", "gauge", "Keys (patients) seen.", len(self.names) if self.keyed else 0),
                ("monitor_accuracy", "gauge", "Prequential accuracy so far (NaN before any reading).",
                 math.nan if acc is None else acc),
                ("monitor_steps_total", "counter", "Optimiser steps.", s.get("steps", 0)),
                ("monitor_finished", "gauge", "1 once a finite stream has ended.", int(self.finished)),
            ]
            out = []
            for name, kind, doc, value in lines:
                out += [f"# HELP {name} {doc}", f"# TYPE {name} {kind}", f"{name} {_num(value)}"]
            if self.pending is not None:
                out += ["# HELP monitor_pending Entries read by a shard and not yet acknowledged.",
                        "# TYPE monitor_pending gauge"]
                out += [f'monitor_pending{{shard="{_label(sh)}"}} {_num(n)}' for sh, n in sorted(self.pending.items())]
            return "\n".join(out) + "\n"


def _pool(t: np.ndarray, v: np.ndarray, f: np.ndarray, most: int) -> list[list]:
    """[[time, value, flag], ...]: at most ``most`` points, each bucket's peak (and any flag)."""
    n = len(t)
    if n <= most:
        return [[float(a), float(b), bool(c)] for a, b, c in zip(t.tolist(), v.tolist(), f.tolist())]
    cuts = np.linspace(0, n, most + 1).astype(np.intp)[:-1]
    peak = np.maximum.reduceat(v, cuts)
    flag = np.logical_or.reduceat(f, cuts)
    last = np.r_[cuts[1:], n] - 1
    return [[float(a), float(b), bool(c)] for a, b, c in zip(t[last].tolist(), peak.tolist(), flag.tolist())]


def _num(v) -> str:
    v = float(v)
    return "NaN" if math.isnan(v) else repr(int(v)) if v.is_integer() and abs(v) < 2 ** 53 else repr(v)


def _label(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
