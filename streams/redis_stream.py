"""Readings in Redis Streams: a consumer-group source, a sharded publisher, and the URL they share.

A reading is one stream entry with the fields ``time``, ``value``, and optionally ``key`` (the
patient) and ``label`` (0/1). Readings of one patient always go to the same stream: with N shards,
``monitor publish`` writes key k to ``STREAM:{crc32(k) % N}`` (`shard_of`), so one patient's state
lives in one consumer. With one shard the stream is ``STREAM`` itself (`shard_streams`).

`RedisReadings` reads one stream through a consumer group (XREADGROUP, ``count`` entries a call,
blocking ``block_ms``) and hands over `Batch` objects together with their entry ids. It never
acknowledges: the caller XACKs once what it made of the entries is safe (see monitor.redis_io).
On start it first claims the group's pending entries (XAUTOCLAIM: read earlier but never
acknowledged, by a consumer that died), oldest first, so they are processed again.

redis-py is imported inside functions: ``pip install 'monitor[dist]'``. The password, if any, comes
from the environment variable MONITOR_REDIS_PASSWORD (never from a command line, never logged).

>>> parse_url("redis://127.0.0.1:6390/ward")
RedisTarget(host='127.0.0.1', port=6390, stream='ward', db=0)
>>> shard_streams("ward", 2), shard_streams("ward", 1)
(['ward:0', 'ward:1'], ['ward'])
>>> shard_of(np.array(["P000", "P004", "P002", "P000"], dtype=object), 2).tolist()
[1, 0, 1, 1]
"""

from __future__ import annotations

import os
import time as _time
import zlib
from typing import Iterable, Iterator, NamedTuple
from urllib.parse import unquote, urlsplit

import numpy as np

from streams.batch import Batch, SourceError

__all__ = ["RedisTarget", "parse_url", "connect", "shard_of", "shard_streams", "RedisReadings",
           "publish", "PASSWORD_ENV"]

PASSWORD_ENV = "MONITOR_REDIS_PASSWORD"


class RedisTarget(NamedTuple):
    """Where a stream lives: host, port, stream name (the URL path), database number."""

    host: str
    port: int
    stream: str
    db: int = 0


def parse_url(url: str) -> RedisTarget:
    """``redis://HOST[:PORT]/STREAM[?db=N]`` -> RedisTarget; SourceError (one line) when malformed.

    A password in the URL is refused: it would show in process lists and shell history; give it in
    the environment variable MONITOR_REDIS_PASSWORD.
    """
    parts = urlsplit(url)
    if parts.scheme != "redis":
        raise SourceError(f"not a redis:// URL: {url!r}")
    if parts.password is not None or parts.username is not None:
        raise SourceError(f"put no password in the URL (it shows in process lists); set {PASSWORD_ENV} instead")
    stream = unquote(parts.path.lstrip("/"))
    if not stream:
        raise SourceError(f"{url!r} names no stream: give redis://HOST:PORT/STREAM")
    try:
        port = parts.port or 6379
    except ValueError:
        digits = parts.netloc.rpartition(":")[2]
        why = "is out of range 1..65535" if digits.isascii() and digits.isdigit() else "is not a number"
        raise SourceError(f"{url!r}: the port {why}") from None
    db = 0
    for item in filter(None, parts.query.split("&")):
        name, _, value = item.partition("=")
        if name != "db" or not value.isdigit():
            raise SourceError(f"{url!r}: the only query parameter understood is db=N")
        db = int(value)
    return RedisTarget(parts.hostname or "127.0.0.1", port, stream, db)


def connect(target: RedisTarget):
    """A redis-py client (bytes responses) for ``target``, password from MONITOR_REDIS_PASSWORD."""
    try:
        import redis
    except ImportError:
        raise SourceError("Redis Streams need the redis package: pip install 'monitor[dist]'") from None
    return redis.Redis(host=target.host, port=target.port, db=target.db,
                       password=os.environ.get(PASSWORD_ENV) or None, decode_responses=False,
                       socket_connect_timeout=5)


def shard_of(keys: np.ndarray, shards: int) -> np.ndarray:
    """Shard of each key: crc32 of its UTF-8 text modulo ``shards`` (stable across runs and hosts)."""
    if shards == 1:
        return np.zeros(len(keys), dtype=np.intp)
    uniq, inverse = np.unique(np.asarray(keys, dtype=object).astype(str), return_inverse=True)
    per_key = np.array([zlib.crc32(k.encode()) % shards for k in uniq.tolist()], dtype=np.intp)
    return per_key[inverse]


def shard_streams(stream: str, shards: int) -> list[str]:
    """The input stream of each shard: ``STREAM`` for one shard, ``STREAM:0`` .. ``STREAM:N-1`` else."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    return [stream] if shards == 1 else [f"{stream}:{i}" for i in range(shards)]


def _id_tuple(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _to_batch(entries: list, first_line: int) -> tuple[list[bytes], Batch]:
    """XREADGROUP/XAUTOCLAIM entries -> (ids, Batch). Entries without a value field are skipped
    (their ids are still returned, so they are acknowledged)."""
    entries = [(i, f) for i, f in entries if f]  # XAUTOCLAIM returns None fields for deleted entries
    ids = [i for i, _ in entries]
    fields = [f for _, f in entries]
    n = len(fields)
    value = np.array([float(f.get(b"value", b"nan")) for f in fields], dtype=np.float64)
    t = np.array([float(f.get(b"time", b"nan")) for f in fields], dtype=np.float64)
    t = np.where(np.isnan(t), np.arange(first_line - 1, first_line - 1 + n, dtype=np.float64), t)
    has_key = n and b"key" in fields[0]
    key = np.array([f.get(b"key", b"").decode() for f in fields], dtype=object) if has_key else None
    label = np.array([float(f[b"label"]) if b"label" in f else np.nan for f in fields], dtype=np.float64)
    batch = Batch(time=t, x=value.reshape(-1, 1), y=label,
                  line=np.arange(first_line, first_line + n, dtype=np.int64), key=key)
    return ids, batch


class RedisReadings:
    """One input stream read through a consumer group; see the module docstring.

    Parameters
    ----------
    client
        A redis-py client (see `connect`), bytes responses.
    stream, group, consumer
        The stream, the consumer group (created at the stream's start if missing) and this
        consumer's name (a stable name per shard: a restarted consumer finds its own pending entries).
    count
        Entries per XREADGROUP call (one Batch).
    block_ms
        How long one read waits for new entries.
    after
        Entry id already covered by a checkpoint: pending entries at or before it are returned
        for acknowledgement only (``skipped``), not processed again.
    first_line
        Number given to the first reading handed over (Batch.line counts readings from 1).

    Attributes
    ----------
    claimed_ : int
        Pending entries taken over at start.
    """

    def __init__(self, *, client, stream: str, group: str = "monitor", consumer: str = "c0", count: int = 500,
                 block_ms: int = 100, after: str | None = None, first_line: int = 1) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.count = count
        self.block_ms = block_ms
        self.after = after
        self.first_line = first_line
        self.claimed_ = 0
        self._claim_cursor: bytes | None = b"0-0"
        self._ready = False

    def __repr__(self) -> str:
        return (f"RedisReadings(stream={self.stream!r}, group={self.group!r}, consumer={self.consumer!r}, "
                f"count={self.count}, claimed={self.claimed_})")

    def ensure_group(self) -> None:
        """Create the consumer group (reading from the stream's start) if it does not exist."""
        import redis
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._ready = True

    def read(self) -> tuple[list[bytes], list[bytes], Batch] | None:
        """The next batch: (ids to process, ids only to acknowledge, Batch); None when nothing came.

        Pending entries (claimed with XAUTOCLAIM) come first, then new ones (XREADGROUP ``>``).
        """
        if not self._ready:
            self.ensure_group()
        entries = None
        while self._claim_cursor is not None:
            cursor, claimed, *_ = self.client.xautoclaim(self.stream, self.group, self.consumer,
                                                          min_idle_time=0, start_id=self._claim_cursor,
                                                          count=self.count)
            self._claim_cursor = None if cursor in (b"0-0", "0-0") else cursor
            if claimed:
                entries = claimed
                self.claimed_ += len(claimed)
                break
        if entries is None:
            got = self.client.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=self.count,
                                         block=self.block_ms or None)
            if not got:
                return None
            entries = got[0][1]
        skip: list[bytes] = []
        if self.after is not None:
            limit = _id_tuple(self.after)
            skip = [i for i, _ in entries if _id_tuple(i) <= limit]
            entries = [(i, f) for i, f in entries if _id_tuple(i) > limit]
        ids, batch = _to_batch(entries, self.first_line)
        skip += [i for i, f in entries if not f]
        self.first_line += len(batch)
        return ids, skip, batch

    def drained(self) -> bool:
        """True when the group has delivered every entry and none is pending (nothing left to do)."""
        info = self.client.xinfo_groups(self.stream)
        mine = next((g for g in info if g["name"] in (self.group, self.group.encode())), None)
        if mine is None:
            return False
        lag = mine.get("lag")
        return mine["pending"] == 0 and lag == 0

    def __iter__(self) -> Iterator[Batch]:
        """Batches until the stream is drained (nothing pending, nothing new within ``block_ms``).

        Acknowledges each batch when the next is asked for: at-least-once, for simple uses; the
        monitor acknowledges only after its records and checkpoint are written.
        """
        while True:
            got = self.read()
            if got is None:
                return
            ids, skip, batch = got
            if len(batch):
                yield batch
            if ids or skip:
                self.client.xack(self.stream, self.group, *(ids + skip))


def publish(client, stream: str, batches: Iterable[Batch], *, shards: int = 1, rate: float = 0.0,
            pipeline: int = 500, maxlen: int | None = None, sleep=_time.sleep) -> dict:
    """Write readings into the shard streams of ``stream``; returns {"readings", "rejected", "per_shard", "elapsed_s"}.

    Each reading becomes one entry (time, value, key when the batch has keys, label when known),
    sent in pipelines of ``pipeline`` entries. ``rate`` > 0 paces to that many readings per second.
    A stream without keys can only go to one shard.
    """
    names = shard_streams(stream, shards)
    sent = np.zeros(shards, dtype=np.int64)
    start = _time.perf_counter()
    total = rejected = 0
    for batch in batches:
        n = len(batch)
        rejected += len(batch.rejected)  # not published: the same rejects as a file replay's
        if not n:
            continue
        if batch.key is None and shards > 1:
            raise SourceError("readings without a key cannot be sharded: give --shards 1, or a key column")
        shard = shard_of(batch.key, shards) if batch.key is not None else np.zeros(n, dtype=np.intp)
        times = list(map(repr, batch.time.tolist()))
        values = list(map(repr, batch.x[:, 0].tolist()))
        keys = None if batch.key is None else list(map(str, batch.key.tolist()))
        labels = batch.y.tolist()
        shard_l = shard.tolist()
        for a in range(0, n, pipeline):
            pipe = client.pipeline(transaction=False)
            for i in range(a, min(n, a + pipeline)):
                fields = {"time": times[i], "value": values[i]}
                if keys is not None:
                    fields["key"] = keys[i]
                if labels[i] == labels[i]:
                    fields["label"] = int(labels[i])
                pipe.xadd(names[shard_l[i]], fields, maxlen=maxlen, approximate=True)
            pipe.execute()
            total += min(n, a + pipeline) - a
            if rate > 0:
                ahead = total / rate - (_time.perf_counter() - start)
                if ahead > 0:
                    sleep(ahead)
        sent += np.bincount(shard, minlength=shards)
    return {"readings": total, "rejected": rejected, "per_shard": sent.tolist(), "streams": names,
            "elapsed_s": round(_time.perf_counter() - start, 6)}
