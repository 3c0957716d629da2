"""The output streams of a shard: ``STREAM:records`` and ``STREAM:alerts``, written once each.

``STREAM:records``
    one entry per batch, id = the id of the batch's last input entry, fields ``n`` (readings) and
    ``records`` (n JSON Lines records, the ones ``monitor replay`` prints, ``\n``-separated, in
    input order). Not written with ``records=False`` (``--no-records-stream``): alerts are what a
    ward needs back.
``STREAM:alerts``
    one entry per alert, fields ``key`` and ``alert`` (the JSON alert record), id
    ``ms-(seq*65536+j)`` for the j-th alert of input entry ``ms-seq``.

Exactly-once effect: output ids increase with the input. A `RecordWriter` remembers the last id of
each output stream (read once at start) and drops what it computes again at or below it, so the
entries before a crash are written once; Redis refuses an id at or below a stream's last one, a
second guard. `export` copies the streams to text files.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # (monitor.core.monitor imports torch: not in the driver of a Ray serve)
    from monitor.core.monitor import Scored

__all__ = ["RecordWriter", "alert_ids", "export", "output_streams", "split_id", "ALERT_SLOTS"]

ALERT_SLOTS = 65536  # alert ids per input entry: ms-(seq*65536+j)


def output_streams(stream: str) -> tuple[str, str]:
    """(records stream, alerts stream) written for input ``stream``."""
    return f"{stream}:records", f"{stream}:alerts"


def split_id(entry_id) -> tuple[int, int]:
    """A stream entry id (bytes or text, ``ms-seq``) as a tuple that sorts like the id."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def alert_ids(events: list[dict], ids: list, entry: np.ndarray, time: np.ndarray, key: np.ndarray | None) -> list[str]:
    """An idempotent, increasing id for each alert record of a batch.

    An open or close record belongs to the reading at its key and time (``opened_at``/``closed_at``),
    so to that reading's input entry; a close for an evicted key to the batch's first entry. Entry
    ``ms-seq`` gives its j-th alert the id ``ms-(seq*65536+j)``: the same alert computed again gets
    the same id.

    >>> t = np.array([1.0, 2.0, 3.0])
    >>> k = np.array(["a", "b", "a"], dtype=object)
    >>> ev = [{"event": "open", "key": "a", "opened_at": 3.0}, {"event": "close", "key": "b", "closed_at": 2.0}]
    >>> alert_ids(ev, [b"5-0", b"6-0"], np.array([0, 0, 1]), t, k)
    ['6-0', '5-0']
    """
    ats = [e.get("closed_at") if e["event"] == "close" else e.get("opened_at") for e in events]
    wanted = np.array([a for a in ats if a is not None], dtype=np.float64)
    rows = np.flatnonzero(np.isin(time, wanted)) if len(wanted) else np.empty(0, dtype=np.intp)  # one pass
    out, used = [], {}
    for e, at in zip(events, ats):
        i = 0
        if e.get("reason") != "evicted" and at is not None:
            hit = rows[time[rows] == at]
            if key is not None:
                hit = hit[key[hit] == e["key"]]
            i = int(hit[0]) if len(hit) else 0
        en = int(entry[i]) if len(entry) else 0
        j = used.get(en, 0)
        used[en] = j + 1
        ms, seq = split_id(ids[en])
        out.append(f"{ms}-{seq * ALERT_SLOTS + j}")
    return out


def _last_id(client, stream: str) -> tuple[int, int]:
    got = client.xrevrange(stream, count=1)
    return split_id(got[0][0]) if got else (0, 0)


class RecordWriter:
    """Writes a batch's records (one block) and alerts to the output streams, dropping what is
    already there (see the module docstring).

    Attributes
    ----------
    written_ : int
        Readings whose records are in the records stream (written now, or found there already).
    alerts_written_ : int
        Alerts in the alerts stream (likewise).
    duplicates_ : int
        Records and alerts computed again and not written twice (after a restart).
    """

    def __init__(self, *, client, stream: str, maxlen: int | None = 1_000_000, records: bool = True) -> None:
        self.client = client
        self.stream = stream
        self.maxlen = maxlen
        self.records = records
        self.written_ = 0
        self.alerts_written_ = 0
        self.duplicates_ = 0
        self._last: tuple[tuple[int, int], tuple[int, int]] | None = None

    def __repr__(self) -> str:
        return (f"RecordWriter(stream={self.stream!r}, records={self.records}, written={self.written_}, "
                f"alerts={self.alerts_written_}, duplicates={self.duplicates_})")

    def forget(self) -> None:
        """Read the output streams' last ids again at the next write (after a reconnect)."""
        self._last = None

    def write(self, ids: list, entry: np.ndarray, scored: Scored, text: str | None,
              events: list[dict], aids: list[str]) -> None:
        """Write records ``text`` (JSON Lines of ``scored``, or None) and the alerts with ids ``aids``."""
        import redis

        rec_stream, alert_stream = output_streams(self.stream)
        if self._last is None:
            self._last = (_last_id(self.client, rec_stream), _last_id(self.client, alert_stream))
        last_rec, last_alert = self._last
        pipe = self.client.pipeline(transaction=False)
        queued = 0
        n = len(scored)
        if self.records and n and text is not None:
            first_new = next((j for j, i in enumerate(ids) if split_id(i) > last_rec), len(ids))
            start = int(np.searchsorted(entry, first_new)) if first_new else 0
            if start < n:
                block = text if start == 0 else "".join(text.splitlines(keepends=True)[start:])
                pipe.xadd(rec_stream, {"n": n - start, "records": block}, id=ids[-1], maxlen=self.maxlen,
                          approximate=True)
                queued += 1
                self._last = (split_id(ids[-1]), last_alert)
            self.duplicates_ += start
            self.written_ += n
        new_alerts = 0
        for aid, e in sorted(zip(aids, events), key=lambda p: split_id(p[0])):
            if split_id(aid) <= last_alert:
                self.duplicates_ += 1
                continue
            pipe.xadd(alert_stream, {"key": str(e.get("key")), "alert": json.dumps(e)}, id=aid,
                      maxlen=self.maxlen, approximate=True)
            last_alert = split_id(aid)
            new_alerts += 1
        self.alerts_written_ += len(events)
        if new_alerts:
            self._last = (self._last[0], last_alert)
        if queued or new_alerts:
            for res in pipe.execute(raise_on_error=False):
                if isinstance(res, redis.ResponseError):
                    if "equal or smaller" not in str(res):
                        raise res
                    self.duplicates_ += 1
                elif isinstance(res, Exception):
                    raise res


def export(client, streams: list[str], *, out=None, alerts=None) -> dict:
    """Copy the output streams of ``streams`` to text files: records (JSON Lines, stream by stream,
    in entry order) and alerts (JSON Lines, sorted by time, then key). Returns the counts."""
    n_rec = n_alert = 0
    alert_rows = []
    for s in streams:
        rec_stream, alert_stream = output_streams(s)
        if out is not None:
            for entries in _scan(client, rec_stream):
                for _, f in entries:
                    out.write(f[b"records"].decode())
                    n_rec += int(f[b"n"])
        if alerts is not None:
            for entries in _scan(client, alert_stream):
                alert_rows.extend(json.loads(f[b"alert"]) for _, f in entries)
    alert_rows.sort(key=lambda e: (e.get("closed_at", e.get("opened_at")) or 0.0, str(e.get("key")), e["event"]))
    if alerts is not None:
        alerts.write("".join(json.dumps(e) + "\n" for e in alert_rows))
        n_alert = len(alert_rows)
    return {"records": n_rec, "alerts": n_alert}


def _scan(client, stream: str, count: int = 5000):
    last = "-"
    while True:
        entries = client.xrange(stream, min=last, max="+", count=count)
        if last != "-":
            entries = entries[1:]
        if not entries:
            return
        yield entries
        last = entries[-1][0]
