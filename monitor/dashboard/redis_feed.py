"""The dashboard of a `monitor serve` (or a `monitor replay redis://...`), read from Redis.

A serve writes, per input stream S (``STREAM`` or ``STREAM:i`` for shard i), the records to
``S:records`` (field ``record``: one JSON Lines record an entry; or field ``records``: a batch's
records, newline-separated; both are read) and the alert records to ``S:alerts`` (field
``alert``). `RedisFeed` tails those streams from their start (XREAD, in a background thread), turns
each read into one `Scored` batch for the dashboard's `WardState`, and reads every shard's consumer
group for its pending entries (read, not acknowledged) and lag (not yet read).

The summary it shows is computed from the records themselves: readings, flags, accuracy, log loss,
precision, recall (the model's own counters, such as training steps, are not in the streams).
"""

from __future__ import annotations

import json
import math
import threading
import time

import numpy as np

from monitor.dashboard.state import WardState
from monitor.core.monitor import Scored

__all__ = ["RedisFeed", "find_shards"]

EPS = 1e-7  # p clipped for the log loss, as the monitor's metrics do


def find_shards(client, stream: str) -> list[str]:
    """The input streams of a serve: ``STREAM`` and/or ``STREAM:i``, found by their own keys or by
    their records streams, sorted (shards in order)."""
    found = set()
    for name in client.scan_iter(match=f"{_glob(stream)}*", count=1000):
        name = name.decode() if isinstance(name, bytes) else name
        base = name[: -len(":records")] if name.endswith(":records") else name
        rest = base[len(stream):]
        if rest == "" or (rest.startswith(":") and rest[1:].isdigit()):
            if name != base or client.type(name) in (b"stream", "stream"):
                found.add(base)
    return sorted(found, key=lambda s: (len(s), s))


def _glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisFeed:
    """Tail the records and alerts streams of ``streams`` into ``state``; see the module docstring.

    Parameters
    ----------
    client
        redis-py client (its own: the feed runs in a thread of its own).
    streams
        Input stream names (``STREAM`` or ``STREAM:0`` ...); their ``:records``/``:alerts`` are read.
    state
        The dashboard's state.
    group
        The serve's consumer group on the input streams (for pending and lag).
    count, block_ms
        Entries per stream and read, and how long a read waits for new ones.
    """

    def __init__(self, client, streams: list[str], state: WardState, *, group: str = "monitor",
                 count: int = 5000, block_ms: int = 200) -> None:
        self.client = client
        self.streams = list(streams)
        self.state = state
        self.group = group
        self.count = count
        self.block_ms = block_ms
        self.last = {s: "0" for st in self.streams for s in (f"{st}:records", f"{st}:alerts")}
        self.tally = np.zeros(6)  # labelled, correct, log loss sum, tp, fp, fn
        self.flags = 0
        self.readings = 0
        self._pending_at = -math.inf
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def __repr__(self) -> str:
        return f"RedisFeed(streams={self.streams!r}, readings={self.readings})"

    # ------------------------------------------------------------------ reading

    def poll(self, block_ms: int | None = None) -> int:
        """One read of every stream; returns the entries taken in."""
        block = self.block_ms if block_ms is None else block_ms
        got = self.client.xread(self.last, count=self.count, block=block or None)  # (BLOCK 0 waits forever)
        records, alerts = [], []
        for name, entries in got or []:
            name = name.decode() if isinstance(name, bytes) else name
            if not entries:
                continue
            last = entries[-1][0]
            self.last[name] = last.decode() if isinstance(last, bytes) else last
            if name.endswith(":records"):  # an entry per reading (field record) or per batch (records)
                for _, f in entries:
                    block = f.get(b"records", f.get("records"))
                    if block is not None:
                        records += (block.decode() if isinstance(block, bytes) else block).splitlines()
                    else:
                        records.append(f.get(b"record", f.get("record")))
            else:
                alerts += [f.get(b"alert", f.get("alert")) for _, f in entries]
        if time.monotonic() - self._pending_at >= 1.0:  # (before the records it may cover are shown)
            self._pending_at = time.monotonic()
            self.state.set_pending(self.pending())
        batch = self._scored(records, alerts)
        if batch is not None:
            self.state.update(batch)
            self.state.set_summary(self.summary())
        return len(records) + len(alerts)

    def _scored(self, records: list, alerts: list) -> Scored | None:
        if not records and not alerts:
            return None
        events = tuple(json.loads(a) for a in alerts if a)
        texts = [r.decode() if isinstance(r, bytes) else r for r in records if r]
        rows = json.loads("[" + ",".join(texts) + "]") if texts else []
        n = len(rows)
        time_ = np.fromiter((r["time"] for r in rows), float, n)
        value = np.fromiter((r["value"] if "value" in r else r["x"][0] for r in rows), float, n)
        label = np.fromiter((math.nan if r.get("label") is None else r["label"] for r in rows), float, n)
        p = np.fromiter((r["p_abnormal"] for r in rows), float, n)
        flag = np.fromiter((r["flag"] for r in rows), bool, n)
        keyed = n and "key" in rows[0]
        key = np.array([r.get("key") for r in rows], dtype=object) if keyed else None
        self._count(label, p, flag)
        return Scored(time=time_, x=value[:, None], label=label, p=p, flag=flag, line=np.zeros(n, np.int64),
                      key=key, alerts=events)

    def _count(self, label: np.ndarray, p: np.ndarray, flag: np.ndarray) -> None:
        self.readings += len(p)
        self.flags += int(flag.sum())
        known = ~np.isnan(label)
        y, f, q = label[known] > 0.5, flag[known], np.clip(p[known], EPS, 1 - EPS)
        loss = -(np.log(q[y]).sum() + np.log1p(-q[~y]).sum())
        self.tally += [known.sum(), (f == y).sum(), loss, (f & y).sum(), (f & ~y).sum(), (~f & y).sum()]

    def summary(self) -> dict:
        """Figures from the records read so far (see the module docstring)."""
        n, correct, loss, tp, fp, fn = self.tally.tolist()
        return {"readings": self.readings, "flags": self.flags,
                "accuracy": correct / n if n else None, "log_loss": loss / n if n else None,
                "precision": tp / (tp + fp) if tp + fp else 0.0, "recall": tp / (tp + fn) if tp + fn else 0.0,
                "rejected": 0, "source": "redis: " + ", ".join(self.streams)}

    def pending(self) -> dict[str, int]:
        """Per input stream: entries its consumer group has delivered and not acknowledged, plus
        entries not yet delivered (lag); 0 for a stream without the group."""
        out = {}
        for s in self.streams:
            try:
                groups = self.client.xinfo_groups(s)
            except Exception:  # noqa: BLE001  no such stream (yet)
                groups = []
            g = next((g for g in groups if g["name"] in (self.group, self.group.encode())), None)
            out[s] = 0 if g is None else int(g.get("pending") or 0) + int(g.get("lag") or 0)
        return out

    # ------------------------------------------------------------------ thread

    def start(self) -> "RedisFeed":
        self._thread = threading.Thread(target=self._run, name="monitor-dashboard-redis", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
                self.error = None
            except Exception as e:  # noqa: BLE001  Redis gone for a while: said on the page, retried
                self.error = f"{type(e).__name__}: {e}"
                self._stop.wait(1.0)

    def catch_up(self, timeout: float = 10.0) -> None:
        """Stop the thread, then read here until the streams have nothing more (the writer has ended)."""
        self.stop()
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.poll(block_ms=0):
            pass
        self._pending_at = -math.inf
        self.poll(block_ms=0)  # the pending counts after the last acknowledgements

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3.0)
