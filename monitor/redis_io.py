"""The monitor on Redis Streams: one shard's consumer loop, its outputs and its checkpoint.

A `ShardConsumer` reads one input stream through a consumer group (streams.redis_stream), runs the
same `KeyedMonitor` as ``monitor replay FILE`` on each batch, and writes what comes out to two
output streams next to the input (the names and formats a dashboard can rely on):

``STREAM:records``
    one entry per batch, id = the id of the batch's last input entry, fields ``n`` (readings) and
    ``records`` (n JSON Lines records, the ones ``monitor replay`` prints, ``\n``-separated, in
    input order). Not written with ``records=False`` (``--no-records-stream``): alerts are what a
    ward needs back.
``STREAM:alerts``
    one entry per alert, fields ``key`` and ``alert`` (the JSON alert record), id
    ``ms-(seq*65536+j)`` for the j-th alert of input entry ``ms-seq``.

What is promised, and how:

at-least-once delivery
    An input entry is acknowledged (XACK) only after its outputs are written and the checkpoint
    covering it is saved. A consumer that dies leaves its entries pending; the next one claims
    them (XAUTOCLAIM), starts from the checkpoint and processes them again.
exactly-once effect on outputs
    Output ids increase with the input. A consumer remembers the last id of each output stream
    (read once at start) and drops what it computes again at or below it: the entries before a
    crash are written once. Redis refuses an id at or below a stream's last one, a second guard.
    The records recomputed are the same (same state, same readings, same order).
counts
    processed, written and alert counts are saved in the checkpoint, so a summary after restarts
    counts every reading once.

The checkpoint (`RedisCheckpoint`) is kept in Redis itself (key ``STREAM:state``), saved together
with the XACK of the entries it covers in one MULTI/EXEC transaction, so a consumer restarted on
any host of a cluster finds it; `FileCheckpoint` keeps it in a file (``replay --state FILE``);
`MemoryCheckpoint` in this process (no --state: it survives a lost connection, not a restart).
"""

from __future__ import annotations

import copy
import io
import json
import sys
import time
from typing import Callable

import numpy as np

from monitor.pipeline import Scored

__all__ = ["RecordWriter", "RedisCheckpoint", "FileCheckpoint", "MemoryCheckpoint", "ShardConsumer", "alert_ids",
           "export", "output_streams", "RedisLost"]

ALERT_SLOTS = 65536  # alert ids per input entry: ms-(seq*65536+j)


class RedisLost(Exception):
    """Redis unreachable after the retries, or back without the stream: a runtime failure (exit 1)."""


def output_streams(stream: str) -> tuple[str, str]:
    """(records stream, alerts stream) written for input ``stream``."""
    return f"{stream}:records", f"{stream}:alerts"


def _split_id(entry_id) -> tuple[int, int]:
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
        ms, seq = _split_id(ids[en])
        out.append(f"{ms}-{seq * ALERT_SLOTS + j}")
    return out


def _last_id(client, stream: str) -> tuple[int, int]:
    got = client.xrevrange(stream, count=1)
    return _split_id(got[0][0]) if got else (0, 0)


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
            first_new = next((j for j, i in enumerate(ids) if _split_id(i) > last_rec), len(ids))
            start = int(np.searchsorted(entry, first_new)) if first_new else 0
            if start < n:
                block = text if start == 0 else "".join(text.splitlines(keepends=True)[start:])
                pipe.xadd(rec_stream, {"n": n - start, "records": block}, id=ids[-1], maxlen=self.maxlen,
                          approximate=True)
                queued += 1
                self._last = (_split_id(ids[-1]), last_alert)
            self.duplicates_ += start
            self.written_ += n
        new_alerts = 0
        for aid, e in sorted(zip(aids, events), key=lambda p: _split_id(p[0])):
            if _split_id(aid) <= last_alert:
                self.duplicates_ += 1
                continue
            pipe.xadd(alert_stream, {"key": str(e.get("key")), "alert": json.dumps(e)}, id=aid,
                      maxlen=self.maxlen, approximate=True)
            last_alert = _split_id(aid)
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


class RedisCheckpoint:
    """A checkpoint kept in Redis (key ``STREAM:state``), saved in one transaction with the XACK of
    the entries it covers. Read with ``torch.load(weights_only=True)``: no code runs on loading."""

    def __init__(self, *, client, stream: str, group: str, options: dict) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.options = options
        self.key = f"{stream}:state"

    def __repr__(self) -> str:
        return f"RedisCheckpoint(key={self.key!r})"

    def load(self) -> dict | None:
        import torch
        from monitor.checkpoint import CheckpointError

        blob = self.client.get(self.key)
        if blob is None:
            return None
        try:
            state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(f"cannot read checkpoint {self.key}: {type(e).__name__}") from None
        _check_options(state.get("options", {}), self.options, self.key)
        return state

    def save(self, payload: dict, ack: list) -> None:
        import torch

        buf = io.BytesIO()
        torch.save({"options": self.options, **payload}, buf)
        pipe = self.client.pipeline(transaction=True)  # MULTI: the state and the XACK land together
        pipe.set(self.key, buf.getvalue())
        if ack:
            pipe.xack(self.stream, self.group, *ack)
        pipe.execute()


class FileCheckpoint:
    """A checkpoint in a file (monitor.checkpoint, written atomically), then the XACK."""

    def __init__(self, *, client, stream: str, group: str, path: str, options: dict) -> None:
        from monitor.checkpoint import Checkpoint

        self.client = client
        self.stream = stream
        self.group = group
        self.ck = Checkpoint(path, options=options)

    def __repr__(self) -> str:
        return f"FileCheckpoint({self.ck.path!r})"

    def load(self) -> dict | None:
        return self.ck.load()

    def save(self, payload: dict, ack: list) -> None:
        self.ck.save(payload)
        if ack:
            self.client.xack(self.stream, self.group, *ack)


class MemoryCheckpoint:
    """A checkpoint kept in this process (a deep copy), then the XACK: what a consumer without
    --state resumes from after a lost connection. A new process starts afresh."""

    def __init__(self, *, client, stream: str, group: str) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.saved: dict | None = None

    def __repr__(self) -> str:
        return "MemoryCheckpoint()"

    def load(self) -> dict | None:
        return copy.deepcopy(self.saved)

    def save(self, payload: dict, ack: list) -> None:
        self.saved = copy.deepcopy(payload)
        if ack:
            self.client.xack(self.stream, self.group, *ack)


def _check_options(saved: dict, now: dict, where: str) -> None:
    from monitor.checkpoint import check_options
    check_options(saved, now, where=where, afresh="delete it")


class ShardConsumer:
    """One input stream through one KeyedMonitor into its output streams; see the module docstring.

    Parameters
    ----------
    client
        redis-py client.
    stream
        The input stream (one shard); it must exist (StreamMissing otherwise: nothing is created).
    monitor_kwargs
        Arguments of `KeyedMonitor` (config, threshold, seed, model, max_keys, alert_after, ...).
    checkpoint
        "redis" (key ``STREAM:state``), a file path, a `MemoryCheckpoint`, or None (a new
        MemoryCheckpoint).
    options
        What the checkpoint is checked against (the options that shape the run).
    checkpoint_every
        Readings between checkpoints; entries are acknowledged when the checkpoint covering them
        is saved.
    count, block_ms
        Entries per read, and how long a read waits.
    maxlen
        Output streams trimmed to about this many entries.
    records
        False: write alerts only to Redis (records still formatted when ``collect`` asks for them).
    collect
        "records", "alerts" or None: what `step` hands back to its caller (``out``) for live outputs.
    defer_save
        True: a checkpoint that falls due is saved at the start of the next `step`, once the caller
        has taken the outputs of this one (what a remote caller needs: nothing acknowledged that it
        has not received).
    """

    def __init__(self, *, client, stream: str, monitor_kwargs: dict, checkpoint="redis",
                 options: dict | None = None, checkpoint_every: int = 5_000, count: int = 500,
                 block_ms: int = 100, maxlen: int | None = 1_000_000, records: bool = True,
                 group: str = "monitor", consumer: str | None = None, collect: str | None = None,
                 defer_save: bool = False) -> None:
        from monitor.keyed import KeyedMonitor
        from streams.redis_stream import RedisReadings

        self.client = client
        self.stream = stream
        self.checkpoint_every = checkpoint_every
        self.collect = collect
        self.defer_save = defer_save
        self.monitor = KeyedMonitor(**monitor_kwargs)
        options = dict(options or {})
        if checkpoint == "redis":
            self.store = RedisCheckpoint(client=client, stream=stream, group=group, options=options)
        elif isinstance(checkpoint, MemoryCheckpoint):
            self.store = checkpoint
        elif checkpoint:
            self.store = FileCheckpoint(client=client, stream=stream, group=group, path=checkpoint, options=options)
        else:
            self.store = MemoryCheckpoint(client=client, stream=stream, group=group)
        saved = self.store.load()
        self.last_id: str | None = None
        self.resumed_ = saved is not None
        self.writer = RecordWriter(client=client, stream=stream, maxlen=maxlen, records=records)
        counts = {}
        if saved is not None:
            self.monitor.load_state_dict(saved["monitor"])
            self.last_id = saved["last_id"]
            counts = saved.get("counts", {})
        self.processed_ = int(counts.get("processed", self.monitor.n_scored))  # each reading once
        self.writer.written_ = int(counts.get("written", 0))
        self.writer.alerts_written_ = int(counts.get("alerts", 0))
        self.restarts_ = int(counts.get("restarts", 0)) + (saved is not None)
        self.reader = RedisReadings(client=client, stream=stream, group=group, consumer=consumer or f"{stream}:c",
                                    count=count, block_ms=block_ms, after=self.last_id,
                                    first_line=self.monitor.n_scored + 1)
        self.reader.ensure_group()
        self._unacked: list = []
        self._since = 0
        self._due = False
        self.skipped_ = 0  # pending entries a checkpoint already covered: acknowledged only

    def __repr__(self) -> str:
        return (f"ShardConsumer(stream={self.stream!r}, processed={self.processed_}, "
                f"{self.writer!r}, store={self.store!r})")

    def step(self, max_batches: int = 10) -> dict:
        """Read and process up to ``max_batches`` batches; returns {"readings", "idle", "out"}.

        ``idle`` is True when a read came back empty (nothing pending, nothing new). ``out`` lists,
        per batch, {"ids": entry ids, "counts": readings per entry, "records": JSON Lines text or
        None, "alerts": [(alert id, alert record)]} when ``collect`` (see `LiveOutputs`).
        """
        from monitor.sinks import JsonlSink

        if self._due:
            self.save()
        got_readings = 0
        idle = False
        out = []
        for _ in range(max_batches):
            asked = self.reader.count
            got = self.reader.read()
            if got is None:
                idle = True
                break
            ids, entry, skip, batch = got
            if skip:
                self.skipped_ += len(skip)
                self.client.xack(self.stream, self.reader.group, *skip)
            if not ids:
                continue
            if not len(batch):  # entries without a reading: acknowledged with the next checkpoint
                self._unacked.extend(ids)
                continue
            scored = self.monitor.process(batch)
            text = None
            if len(scored) and (self.writer.records or self.collect == "records"):
                buf = io.StringIO()
                JsonlSink(buf).write(scored)
                text = buf.getvalue()
            events = list(scored.alerts)
            aids = alert_ids(events, ids, entry, scored.time, scored.key) if events else []
            self.writer.write(ids, entry, scored, text, events, aids)
            last = ids[-1].decode() if isinstance(ids[-1], bytes) else str(ids[-1])
            if self.collect:
                out.append({"ids": [i.decode() if isinstance(i, bytes) else str(i) for i in ids],
                            "counts": np.bincount(entry, minlength=len(ids)).tolist(),
                            "records": text if self.collect == "records" else None,
                            "alerts": list(zip(aids, events))})
            got_readings += len(batch)
            self.processed_ += len(batch)
            self.last_id = last
            self._unacked.extend(ids)
            self._since += len(batch)
            if self._since >= self.checkpoint_every:
                if not self.defer_save:
                    self.save()
                else:
                    self._due = True
                    break
            if len(ids) < asked:  # caught up with the producer: hand the outputs over now (latency)
                break
        if idle and self._unacked:
            if self.defer_save:
                self._due = True
            else:
                self.save()
        return {"readings": got_readings, "idle": idle, "out": out}

    def save(self) -> None:
        """Save the checkpoint and acknowledge every entry it covers (nothing when nothing is new)."""
        self._due = False
        if not self._unacked:
            return
        counts = {"processed": self.processed_, "written": self.writer.written_,
                  "alerts": self.writer.alerts_written_, "restarts": self.restarts_}
        self.store.save({"monitor": self.monitor.state_dict(), "last_id": self.last_id, "counts": counts},
                        self._unacked)
        self._unacked = []
        self._since = 0

    def drained(self) -> bool:
        return not self._unacked and self.reader.drained()

    def run(self, *, until_idle: bool = True, stop: Callable[[], bool] = lambda: False) -> None:
        """Step until the stream is drained (``until_idle``) or ``stop()`` says so; then save."""
        while not stop():
            r = self.step()
            if until_idle and r["idle"] and self.drained():
                break
        self.save()

    def summary(self) -> dict:
        out = self.monitor.summary()
        out.update({"stream": self.stream, "processed": self.processed_, "written": self.writer.written_,
                    "alerts_written": self.writer.alerts_written_, "duplicates_skipped": self.writer.duplicates_,
                    "claimed": self.reader.claimed_, "covered_by_checkpoint": self.skipped_,
                    "resumed": self.resumed_, "restarts": self.restarts_})
        return out


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


class LiveOutputs:
    """Records and alerts written to files as the consumers hand them over, flushed per call.

    Each shard's outputs are written once, in the shard's order, whatever restarts recomputed: what
    is at or below the last id written for that shard is dropped (see `ShardConsumer.step`).
    """

    def __init__(self, shards: int, *, records=None, alerts=None) -> None:
        self.records = records
        self.alerts = alerts
        self.last_rec = [(0, 0)] * shards
        self.last_alert = [(0, 0)] * shards
        self.n_records = 0
        self.n_alerts = 0

    def __repr__(self) -> str:
        return f"LiveOutputs(records={self.n_records}, alerts={self.n_alerts})"

    def write(self, shard: int, items: list[dict]) -> None:
        for item in items:
            ids = item["ids"]
            if self.records is not None and item["records"] is not None:
                first_new = next((j for j, i in enumerate(ids) if _split_id(i) > self.last_rec[shard]), len(ids))
                start = sum(item["counts"][:first_new])
                text = item["records"]
                if first_new < len(ids):
                    self.records.write(text if start == 0 else "".join(text.splitlines(keepends=True)[start:]))
                    self.n_records += sum(item["counts"][first_new:])
                    self.last_rec[shard] = _split_id(ids[-1])
            if self.alerts is not None:
                for aid, e in item["alerts"]:
                    if _split_id(aid) > self.last_alert[shard]:
                        self.alerts.write(json.dumps(e) + "\n")
                        self.last_alert[shard] = _split_id(aid)
                        self.n_alerts += 1
        for fh in {id(f): f for f in (self.records, self.alerts) if f is not None}.values():
            fh.flush()


def connect_or_fail(url: str, error):
    """Parse a redis:// URL, connect and ping; any failure becomes one line through ``error``."""
    from streams import SourceError
    from streams.redis_stream import connect, parse_url

    try:
        target = parse_url(url)
    except SourceError as e:
        raise error(str(e))
    try:
        client = connect(target)
        client.ping()
    except SourceError as e:
        raise error(str(e))
    except Exception as e:  # redis.ConnectionError, AuthenticationError: one line
        raise error(f"cannot reach Redis at {target.host}:{target.port}: {type(e).__name__}: {e}")
    return target, client


def run_options(config, **opts) -> dict:
    """The options a Redis checkpoint is checked against (model and alert settings)."""
    model_opts = {k: v for k, v in config.to_dict().items() if k != "n_features"}
    return {**model_opts, **{k: (str(v) if k.startswith("alert") else v) for k, v in opts.items()}}
