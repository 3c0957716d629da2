"""The monitor on Redis Streams: one shard's consumer loop, its record sink and its checkpoint.

A `ShardConsumer` reads one input stream through a consumer group (streams.redis_stream), runs the
same `KeyedMonitor` as ``monitor replay FILE`` on each batch, and writes what comes out to two output
streams next to the input: ``STREAM:records`` (one entry per reading, field ``record`` = the JSON
Lines record ``monitor replay`` would print) and ``STREAM:alerts`` (field ``alert`` = the alert
record). What is promised, and how:

at-least-once delivery
    An input entry is acknowledged (XACK) only after its record is written and, with a checkpoint,
    after the checkpoint that covers it is saved. A consumer that dies leaves its entries pending;
    the next one claims them (XAUTOCLAIM) and processes them again.
exactly-once effect on records
    Every output entry gets an explicit, idempotent id: a record the id of its input entry; an
    alert the id of the reading that opened or closed it (``ms-(seq*1024+j)``). Redis refuses an id
    at or below the stream's last one, so a record written before a crash and computed again after
    it is refused, counted as ``duplicates_skipped`` and not written twice. The checkpoint holds the
    last acknowledged id: pending entries it already covers are acknowledged without processing.
    The resumed monitor starts from the checkpoint's state, so the records it computes again are
    the same ones (same state, same readings, same order).

The checkpoint (`RedisCheckpoint`) is kept in Redis itself (key ``STREAM:state``), saved together
with the XACK of the entries it covers in one MULTI/EXEC transaction, so a consumer restarted on
any host of a cluster finds it; `FileCheckpoint` keeps it in a file (``replay --state FILE``).
"""

from __future__ import annotations

import io
import json
import sys
import time
from typing import Callable

import numpy as np

from monitor.pipeline import Scored

__all__ = ["RecordWriter", "RedisCheckpoint", "FileCheckpoint", "ShardConsumer", "alert_ids", "export",
           "output_streams", "run_redis_replay"]

ALERT_SLOTS = 1024  # alert ids per reading: ms-(seq*1024+j); a batch never holds more alerts than this


def output_streams(stream: str) -> tuple[str, str]:
    """(records stream, alerts stream) written for input ``stream``."""
    return f"{stream}:records", f"{stream}:alerts"


def _split_id(entry_id) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def alert_ids(events: list[dict], ids: list, time: np.ndarray, key: np.ndarray | None) -> list[str]:
    """An idempotent, increasing id for each alert record of a batch.

    An open or close record belongs to the reading at its key and time (``opened_at``/``closed_at``);
    a close for an evicted key to the batch's first reading. Reading ``ms-seq`` gives its j-th alert
    the id ``ms-(seq*1024+j)``: the same alert computed again gets the same id.

    >>> t = np.array([1.0, 2.0, 3.0])
    >>> k = np.array(["a", "b", "a"], dtype=object)
    >>> ev = [{"event": "open", "key": "a", "opened_at": 3.0}, {"event": "close", "key": "b", "closed_at": 2.0}]
    >>> alert_ids(ev, [b"5-0", b"5-1", b"6-0"], t, k)
    ['6-0', '5-1024']
    """
    out, used = [], {}
    for e in events:
        at = e.get("closed_at") if e["event"] == "close" else e.get("opened_at")
        i = 0
        if e.get("reason") != "evicted" and at is not None:
            hit = time == at
            if key is not None:
                hit &= key == e["key"]
            where = np.flatnonzero(hit)
            i = int(where[0]) if len(where) else 0
        j = used.get(i, 0)
        used[i] = j + 1
        ms, seq = _split_id(ids[i])
        out.append(f"{ms}-{seq * ALERT_SLOTS + j}")
    return out


class RecordWriter:
    """Writes a batch's records and alerts to the output streams, pipelined, with idempotent ids.

    Parameters
    ----------
    client
        redis-py client.
    stream
        The input stream; records go to ``STREAM:records``, alerts to ``STREAM:alerts``.
    maxlen
        Approximate length the output streams are trimmed to (XADD MAXLEN ~); None: no trimming.
    records
        False: write alerts only.

    Attributes
    ----------
    written_, duplicates_ : int
        Entries written, and entries refused because their id was already there (a replayed entry).
    """

    def __init__(self, *, client, stream: str, maxlen: int | None = 1_000_000, records: bool = True) -> None:
        self.client = client
        self.stream = stream
        self.maxlen = maxlen
        self.records = records
        self.written_ = 0
        self.duplicates_ = 0

    def __repr__(self) -> str:
        return f"RecordWriter(stream={self.stream!r}, written={self.written_}, duplicates={self.duplicates_})"

    def write(self, ids: list, scored: Scored) -> None:
        import redis
        from monitor.sinks import JsonlSink

        rec_stream, alert_stream = output_streams(self.stream)
        pipe = self.client.pipeline(transaction=False)
        if self.records and len(scored):
            buf = io.StringIO()
            JsonlSink(buf).write(scored)
            lines = buf.getvalue().splitlines()
            keys = None if scored.key is None else list(map(str, scored.key.tolist()))
            for j, (entry_id, line) in enumerate(zip(ids, lines)):
                fields = {"record": line} if keys is None else {"key": keys[j], "record": line}
                pipe.xadd(rec_stream, fields, id=entry_id, maxlen=self.maxlen, approximate=True)
        events = list(scored.alerts)
        if events:
            aids = alert_ids(events, ids, scored.time, scored.key)
            for aid, e in sorted(zip(aids, events), key=lambda p: _split_id(p[0])):
                pipe.xadd(alert_stream, {"key": str(e.get("key")), "alert": json.dumps(e)}, id=aid,
                          maxlen=self.maxlen, approximate=True)
        for res in pipe.execute(raise_on_error=False):
            if isinstance(res, redis.ResponseError):
                if "equal or smaller" not in str(res):
                    raise res
                self.duplicates_ += 1
            else:
                self.written_ += 1


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


def _check_options(saved: dict, now: dict, where: str) -> None:
    from monitor.checkpoint import CheckpointError

    diff = [f"{k} {saved.get(k)!r} (now {now.get(k)!r})" for k in sorted(set(saved) | set(now))
            if saved.get(k) != now.get(k)]
    if diff:
        raise CheckpointError(f"checkpoint {where} was saved with other options: {', '.join(diff)}; "
                              "rerun with the saved options, or delete it to start afresh")


class ShardConsumer:
    """One input stream through one KeyedMonitor into its output streams; see the module docstring.

    Parameters
    ----------
    client
        redis-py client.
    stream
        The input stream (one shard).
    monitor_kwargs
        Arguments of `KeyedMonitor` (config, threshold, seed, model, max_keys, alert_after, ...).
    checkpoint
        "redis" (key ``STREAM:state``), a file path, or None (no checkpoint: acknowledge as soon as
        the records are written; a restarted consumer starts with a new model).
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
        False: write alerts only.
    """

    def __init__(self, *, client, stream: str, monitor_kwargs: dict, checkpoint: str | None = "redis",
                 options: dict | None = None, checkpoint_every: int = 5_000, count: int = 500,
                 block_ms: int = 100, maxlen: int | None = 1_000_000, records: bool = True,
                 group: str = "monitor", consumer: str | None = None) -> None:
        from monitor.keyed import KeyedMonitor
        from streams.redis_stream import RedisReadings

        self.client = client
        self.stream = stream
        self.checkpoint_every = checkpoint_every
        self.monitor = KeyedMonitor(**monitor_kwargs)
        options = dict(options or {})
        if checkpoint == "redis":
            self.store = RedisCheckpoint(client=client, stream=stream, group=group, options=options)
        elif checkpoint:
            self.store = FileCheckpoint(client=client, stream=stream, group=group, path=checkpoint, options=options)
        else:
            self.store = None
        saved = self.store.load() if self.store is not None else None
        self.last_id: str | None = None
        self.resumed_ = saved is not None
        if saved is not None:
            self.monitor.load_state_dict(saved["monitor"])
            self.last_id = saved["last_id"]
        self.reader = RedisReadings(client=client, stream=stream, group=group, consumer=consumer or f"{stream}:c",
                                    count=count, block_ms=block_ms, after=self.last_id,
                                    first_line=self.monitor.n_scored + 1)
        self.writer = RecordWriter(client=client, stream=stream, maxlen=maxlen, records=records)
        self.reader.ensure_group()
        self._unacked: list = []
        self._since = 0
        self.processed_ = 0  # readings processed by this consumer (again after a restart, those pending)
        self.skipped_ = 0  # pending entries a checkpoint already covered: acknowledged only

    def __repr__(self) -> str:
        return (f"ShardConsumer(stream={self.stream!r}, processed={self.processed_}, "
                f"{self.writer!r}, store={self.store!r})")

    def step(self, max_batches: int = 10) -> dict:
        """Read and process up to ``max_batches`` batches; returns {"readings", "idle"}.

        ``idle`` is True when a read came back empty (nothing pending, nothing new).
        """
        got_readings = 0
        idle = False
        for _ in range(max_batches):
            got = self.reader.read()
            if got is None:
                idle = True
                break
            ids, skip, batch = got
            if skip:
                self.skipped_ += len(skip)
                self.client.xack(self.stream, self.reader.group, *skip)
            if not len(batch):
                continue
            scored = self.monitor.process(batch)
            self.writer.write(ids, scored)
            got_readings += len(batch)
            self.processed_ += len(batch)
            self.last_id = ids[-1].decode() if isinstance(ids[-1], bytes) else str(ids[-1])
            if self.store is None:
                self.client.xack(self.stream, self.reader.group, *ids)
                continue
            self._unacked.extend(ids)
            self._since += len(batch)
            if self._since >= self.checkpoint_every:
                self.save()
        if idle and self._unacked:
            self.save()
        return {"readings": got_readings, "idle": idle}

    def save(self) -> None:
        """Save the checkpoint and acknowledge every entry it covers."""
        if self.store is None:
            return
        self.store.save({"monitor": self.monitor.state_dict(), "last_id": self.last_id}, self._unacked)
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
                    "duplicates_skipped": self.writer.duplicates_, "claimed": self.reader.claimed_,
                    "covered_by_checkpoint": self.skipped_, "resumed": self.resumed_})
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
                out.write("".join(f[b"record"].decode() + "\n" for _, f in entries))
                n_rec += len(entries)
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


def run_redis_replay(*, url: str, config, threshold: float, seed: int, key_model: str, max_keys, alert_after,
                     alert_clear, out, alerts_path, summary_json, state, checkpoint_every: int, until_idle: bool,
                     quiet: bool, error, maxlen: int | None = 1_000_000, count: int = 500) -> int:
    """``monitor replay redis://HOST:PORT/STREAM``: one consumer on one stream; returns the exit status."""
    from monitor.checkpoint import CheckpointError
    from monitor.interrupts import Interrupts
    from monitor.replay import format_summary

    target, client = connect_or_fail(url, error)
    kwargs = dict(config=config, threshold=threshold, seed=seed, model=key_model, max_keys=max_keys,
                  alert_after=alert_after, alert_clear=alert_clear)
    options = run_options(config, threshold=threshold, seed=seed, key_model=key_model, max_keys=max_keys,
                          alert_after=alert_after, alert_clear=alert_clear)
    start = time.perf_counter()
    try:
        consumer = ShardConsumer(client=client, stream=target.stream, monitor_kwargs=kwargs, checkpoint=state,
                                 options=options, checkpoint_every=checkpoint_every, maxlen=maxlen, count=count)
    except CheckpointError as e:
        raise error(str(e))
    interrupted = False
    with Interrupts() as interrupts:
        try:
            while True:
                with interrupts.critical():  # a signal stops the loop between steps, at a consistent point
                    r = consumer.step()
                if until_idle and r["idle"] and consumer.drained():
                    break
        except KeyboardInterrupt:
            interrupted = True
        with interrupts.critical():
            consumer.save()
    summary = consumer.summary()
    _finish(summary, start, interrupted)
    _write_exports(client, [target.stream], out, alerts_path, error)
    if summary_json:
        with open(summary_json, "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2)
            fh.write("\n")
    if not quiet:
        sys.stderr.write(format_summary(summary) + _redis_lines(summary))
    return 128 + (interrupts.signum or 2) if interrupted else 0


def run_options(config, **opts) -> dict:
    """The options a Redis checkpoint is checked against (model and alert settings)."""
    model_opts = {k: v for k, v in config.to_dict().items() if k != "n_features"}
    return {**model_opts, **{k: (str(v) if k.startswith("alert") else v) for k, v in opts.items()}}


def _finish(summary: dict, start: float, interrupted: bool) -> None:
    elapsed = time.perf_counter() - start
    summary.update({"rejected": 0, "header_lines": 0, "interrupted": interrupted, "elapsed_s": round(elapsed, 6),
                    "readings_per_s": round(summary["processed"] / elapsed, 1) if elapsed > 0 else None})


def _redis_lines(s: dict) -> str:
    return (f"monitor: redis: processed {s['processed']}  written {s['written']}  duplicates skipped "
            f"{s['duplicates_skipped']}  claimed {s['claimed']}\n")


def _write_exports(client, streams: list[str], out, alerts_path, error) -> None:
    try:
        if out:
            with open(out, "w", encoding="utf-8") as fh:
                export(client, streams, out=fh)
        if alerts_path:
            with open(alerts_path, "w", encoding="utf-8") as fh:
                export(client, streams, alerts=fh)
    except OSError as e:
        raise error(f"cannot write {e.filename}: {e.strerror}")
