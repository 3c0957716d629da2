"""Readings in Redis Streams: a consumer-group source, a sharded publisher, and the URL they share.

Two kinds of entry are read, in any mix:

single reading (any producer)
    fields ``time``, ``value``, and optionally ``key`` (the patient) and ``label`` (0/1), as text.
packed block, format 1 (what ``monitor publish`` writes)
    ``m`` = ``1`` (the format version), ``n`` = the number of readings, ``time``, ``value`` and
    ``label`` = n little-endian IEEE-754 float64 each (label NaN where unknown; ``label`` may be
    absent), and ``key`` = the n keys as a JSON array of strings (absent without keys). An entry
    with an ``m`` this reader does not know is refused with one line (SourceError).

Readings of one patient always go to the same stream: with N shards, ``monitor publish`` writes
key k to ``STREAM:{crc32(k) % N}`` (`shard_of`), so one patient's state lives in one consumer. With
one shard the stream is ``STREAM`` itself (`shard_streams`). The layout is stored beside the stream
at publish, in the hash ``STREAM:layout`` (fields ``shards``, ``format``), so that a consumer can
follow it or refuse a mismatch (`read_layout`).

`RedisReadings` reads one stream through a consumer group (XREADGROUP, ``count`` entries a call,
blocking ``block_ms``) and hands over `Batch` objects together with their entry ids. It never
acknowledges: the caller XACKs once what it made of the entries is safe (see monitor.distributed.consumer).
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

import itertools
import os
import time as _time
import zlib
from typing import Iterable, Iterator, NamedTuple
from urllib.parse import unquote, urlsplit

import numpy as np

from streams.batch import Batch, Reject, SourceError
from streams.records import reject_reason

__all__ = ["RedisTarget", "parse_url", "connect", "shard_of", "shard_streams", "RedisReadings",
           "publish", "PASSWORD_ENV", "StreamMissing", "Read", "LayoutMismatch", "PACK_FORMAT", "pack_entry", "read_layout", "layout_key", "entry_id_text"]

PASSWORD_ENV = "MONITOR_REDIS_PASSWORD"
PACK_FORMAT = 1  # the version of the packed entry written by `publish` (field ``m``)
PACK = 500  # readings per packed entry, at most


def layout_key(stream: str) -> str:
    """The hash that records how ``stream`` was published: ``STREAM:layout``."""
    return f"{stream}:layout"


def read_layout(client, stream: str) -> dict | None:
    """{"shards": N, "format": F} as stored by `publish`, or None (not published by monitor)."""
    raw = client.hgetall(layout_key(stream))
    if not raw:
        return None
    d = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
         for k, v in raw.items()}
    return {"shards": int(d.get("shards", 1)), "format": d.get("format", "single")}


def pack_entry(time: np.ndarray, value: np.ndarray, label: np.ndarray, key: list[str] | None) -> dict:
    """The fields of one packed entry (format 1) holding these readings; see the module docstring.

    >>> f = pack_entry(np.array([1.0, 2.0]), np.array([80.0, 95.0]), np.array([np.nan, 1.0]), ["a", "b"])
    >>> sorted(f), f["n"], f["key"]
    (['key', 'label', 'm', 'n', 'time', 'value'], 2, '["a", "b"]')
    >>> ids, entry, b = _to_batch([(b"1-0", {k.encode(): (v if isinstance(v, bytes) else str(v).encode())
    ...                                for k, v in f.items()})], 1)
    >>> b.x[:, 0].tolist(), b.key.tolist(), b.y.tolist()[1]
    ([80.0, 95.0], ['a', 'b'], 1.0)
    """
    import json

    fields = {"m": PACK_FORMAT, "n": len(time), "time": np.ascontiguousarray(time, "<f8").tobytes(),
              "value": np.ascontiguousarray(value, "<f8").tobytes()}
    if not np.isnan(label).all():
        fields["label"] = np.ascontiguousarray(label, "<f8").tobytes()
    if key is not None:
        fields["key"] = json.dumps(key)
    return fields


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
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # no silent retries inside redis-py: a lost connection reaches the caller, which notes it and
    # resumes from its checkpoint (monitor.distributed.serve); a retried XADD could otherwise land twice
    return redis.Redis(host=target.host, port=target.port, db=target.db,
                       password=os.environ.get(PASSWORD_ENV) or None, decode_responses=False,
                       socket_connect_timeout=5, retry=Retry(NoBackoff(), 0))


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


def _to_batch(entries: list, first_line: int,
              valid_range: tuple[float, float] | None = None) -> tuple[list[bytes], np.ndarray, Batch]:
    """XREADGROUP/XAUTOCLAIM entries -> (ids, entry, Batch), single and packed entries mixed.

    Entries without fields (deleted, as XAUTOCLAIM reports them) are dropped; ``entry[i]`` is the
    index in ``ids`` of the entry that reading i came from (increasing). A reading that is not one
    (no ``value`` field, a value or time that is not a number, a label that is not 0/1, a value not
    finite or outside ``valid_range``) is a `Reject` of the Batch, with its entry id and reason, as
    a bad line of a file is: any producer can write into a stream. Readings are numbered from
    ``first_line``, rejects not counted (a resumed consumer numbers on from the readings it scored).
    """
    entries = [(i, f) for i, f in entries if f]
    ids = [i for i, _ in entries]
    parts = []
    for packed, run in itertools.groupby(enumerate(entries), key=lambda e: b"m" in e[1][1]):
        run = list(run)  # consecutive entries of one kind: a run of single readings is parsed at once
        if packed:
            parts += [_unpack(f, j) for j, (_, f) in run]
        else:
            parts.append(_singles([f for _, (_, f) in run], [j for j, _ in run]))
    if not parts:
        parts = [(np.empty(0), np.empty(0), np.empty(0), None, np.empty(0, dtype=np.int64), {})]
    t = np.concatenate([p[0] for p in parts])
    v = np.concatenate([p[1] for p in parts])
    y = np.concatenate([p[2] for p in parts])
    has_key = [p[3] is not None for p in parts if len(p[0])]
    key = np.concatenate([p[3] for p in parts if len(p[0])]) if has_key and all(has_key) else None
    entry = np.concatenate([p[4] for p in parts])
    problems = {}
    at = 0
    for p in parts:
        problems.update({at + i: why for i, why in p[5].items()})
        at += len(p[0])
    ok = np.isfinite(v) & ~np.isinf(t)  # (a NaN time is no time: the reading's number stands for it)
    ok[list(problems)] = False
    if valid_range is not None:
        ok &= (v >= valid_range[0]) & (v <= valid_range[1])
    # readings are numbered from first_line; a reject gets the number of the reading after it
    number = first_line + np.cumsum(ok) - ok
    t = np.where(np.isnan(t), number - 1.0, t)
    rejects = tuple(Reject(int(number[i]), f"entry {entry_id_text(ids[entry[i]])}",
                           reject_reason(problems.get(i), v[i], t[i], valid_range)) for i in np.flatnonzero(~ok).tolist())
    batch = Batch(time=t[ok], x=v[ok].reshape(-1, 1), y=y[ok], line=number[ok].astype(np.int64),
                  key=None if key is None else key[ok], rejected=rejects)
    return ids, entry[ok], batch


def entry_id_text(i: bytes | str) -> str:
    """An entry id as text ("1700000000000-0"), as redis-py gives it (bytes) or as text."""
    return i.decode(errors="replace") if isinstance(i, bytes) else str(i)


def _unpack(f: dict, j: int):
    import json

    version = f[b"m"]
    if version != str(PACK_FORMAT).encode():
        raise SourceError(f"a packed entry of format {version.decode(errors='replace')!r}: this monitor reads "
                          f"format {PACK_FORMAT} (upgrade it, or publish single readings)")
    n = int(f[b"n"])
    try:
        t = np.frombuffer(f[b"time"], "<f8").astype(np.float64)
        v = np.frombuffer(f[b"value"], "<f8").astype(np.float64)
        y = np.frombuffer(f[b"label"], "<f8").astype(np.float64) if b"label" in f else np.full(n, np.nan)
        key = np.array(json.loads(f[b"key"]), dtype=object) if b"key" in f else None
    except (ValueError, KeyError) as e:
        raise SourceError(f"a packed entry that does not decode: {type(e).__name__}: {e}") from None
    if not (len(t) == len(v) == len(y) == n) or (key is not None and len(key) != n):
        raise SourceError(f"a packed entry whose arrays do not hold n={n} readings each")
    return t, v, y, key, np.full(n, j, dtype=np.int64), {}


def _floats(fields: list[dict], name: bytes) -> tuple[np.ndarray, dict[int, str]]:
    """Field ``name`` of single-reading entries as float64 (NaN where absent), and {i: why} for
    those whose field is not a number (entry by entry only when the whole column fails)."""
    raw = [f.get(name) for f in fields]
    try:
        return np.array([np.nan if r is None else float(r) for r in raw], dtype=np.float64), {}
    except ValueError:
        out, bad = np.full(len(raw), np.nan), {}
        for i, r in enumerate(raw):
            try:
                out[i] = np.nan if r is None else float(r)
            except ValueError:
                bad[i] = f"{name.decode()} is not a number: {r[:40].decode(errors='replace')!r}"
        return out, bad


def _singles(fields: list[dict], js: list[int]):
    """Single-reading entries (any producer: fields as text) -> the arrays `_unpack` gives, and
    {i: why} for those that hold no reading (the first reason that applies)."""
    v, bad_v = _floats(fields, b"value")
    t, bad_t = _floats(fields, b"time")
    y, bad_y = _floats(fields, b"label")
    # from the last reason to the first: a later update wins
    problems = {i: "not a time" for i in np.flatnonzero(np.isnan(t)).tolist() if b"time" in fields[i]}
    problems.update({i: f"label is not 0 or 1: {y[i]:g}"
                     for i in np.flatnonzero(~np.isnan(y) & (y != 0.0) & (y != 1.0)).tolist()})
    for bad in (bad_y, bad_t, bad_v):
        problems.update(bad)
    problems.update({i: "no value field" for i, f in enumerate(fields) if b"value" not in f})
    has_key = all(b"key" in f for f in fields)
    key = np.array([f[b"key"].decode(errors="replace") for f in fields], dtype=object) if has_key else None
    return t, v, y, key, np.asarray(js, dtype=np.int64), problems


class StreamMissing(SourceError):
    """The stream (or its consumer group) is not in Redis: never published, or Redis lost it."""


class Read(NamedTuple):
    """One read: entry ids to process, the entry index of each reading, ids only to acknowledge
    (covered by a checkpoint, or empty entries), and the readings."""

    ids: list
    entry: np.ndarray
    skip: list
    batch: Batch


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
        Entries per XREADGROUP call (one Batch), at most; with packed entries fewer, so that a
        batch holds about ``target`` readings.
    target
        Readings per batch aimed at when entries are packed.
    block_ms
        How long one read waits for new entries.
    after
        Entry id already covered by a checkpoint: pending entries at or before it are returned
        for acknowledgement only (``skipped``), not processed again.
    first_line
        Number given to the first reading handed over (Batch.line counts readings from 1).
    valid_range
        ``(low, high)`` bpm: values outside are rejects of the Batch (`Batch.rejected`), as are
        entries that hold no reading; None accepts any finite value.

    Attributes
    ----------
    claimed_ : int
        Pending entries taken over at start.
    """

    def __init__(self, *, client, stream: str, group: str = "monitor", consumer: str = "c0", count: int = 500,
                 block_ms: int = 100, after: str | None = None, first_line: int = 1, target: int = 4096,
                 valid_range: tuple[float, float] | None = None) -> None:
        self.client = client
        self.valid_range = valid_range
        self.max_count = count
        self.target = target
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
        """Create the consumer group (reading from the stream's start) if it does not exist.

        The stream must exist (nothing is created in Redis for a stream nobody wrote): StreamMissing.
        """
        import redis
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=False)
        except redis.ResponseError as e:
            if "BUSYGROUP" in str(e):
                pass
            elif "requires the key to exist" in str(e):
                raise StreamMissing(f"stream {self.stream!r} does not exist") from None
            else:
                raise
        self._ready = True

    def read(self) -> Read | None:
        """The next batch as a `Read`; None when nothing came.

        Pending entries (claimed with XAUTOCLAIM) come first, then new ones (XREADGROUP ``>``).
        A stream or group that vanished (a Redis that came back empty) raises StreamMissing.
        """
        import redis
        if not self._ready:
            self.ensure_group()
        try:
            entries = self._next_entries()
        except redis.ResponseError as e:
            if "NOGROUP" in str(e):
                raise StreamMissing(f"stream {self.stream!r} or its consumer group {self.group!r} is gone") from None
            raise
        if entries is None:
            return None
        skip: list[bytes] = []
        if self.after is not None:
            limit = _id_tuple(self.after)
            skip = [i for i, _ in entries if _id_tuple(i) <= limit]
            entries = [(i, f) for i, f in entries if _id_tuple(i) > limit]
        skip += [i for i, f in entries if not f]
        ids, entry, batch = _to_batch(entries, self.first_line, self.valid_range)
        self.first_line += len(batch)
        if ids:  # packed entries: fewer per read, for batches of about `target` readings
            self.count = max(1, min(self.max_count, self.target * len(ids) // max(1, len(batch))))
        return Read(ids, entry, skip, batch)

    def _next_entries(self):
        while self._claim_cursor is not None:
            cursor, claimed, *_ = self.client.xautoclaim(self.stream, self.group, self.consumer,
                                                          min_idle_time=0, start_id=self._claim_cursor,
                                                          count=self.count)
            self._claim_cursor = None if cursor in (b"0-0", "0-0") else cursor
            if claimed:
                self.claimed_ += len(claimed)
                return claimed
        got = self.client.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=self.count,
                                     block=self.block_ms or None)
        return got[0][1] if got else None

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
            ids, _, skip, batch = got
            if len(batch):
                yield batch
            if ids or skip:
                self.client.xack(self.stream, self.group, *(ids + skip))


class LayoutMismatch(SourceError):
    """A stream published with another number of shards than asked for."""


def publish(client, stream: str, batches: Iterable[Batch], *, shards: int = 1, rate: float = 0.0,
            pipeline: int = 500, maxlen: int | None = None, pack: int = PACK, sleep=_time.sleep) -> dict:
    """Write readings into the shard streams of ``stream``; returns {"readings", "entries", "per_shard", ...}.

    ``pack`` > 1: each entry is a packed block (format 1, module docstring) of up to ``pack``
    readings of one shard, in their order; ``pack`` = 1: one entry per reading (fields time, value,
    key when the batch has keys, label when known), in pipelines of ``pipeline`` entries. ``rate`` >
    0 paces to that many readings per second, in steps of 10 ms (so a block never holds back a
    reading longer than that). The layout (shards, format) is stored in ``STREAM:layout``; a
    stream already published with another number of shards is refused (LayoutMismatch). A stream
    without keys can only go to one shard.
    """
    names = shard_streams(stream, shards)
    fmt = f"packed/{PACK_FORMAT}" if pack > 1 else "single"
    known = read_layout(client, stream)
    if known is not None and known["shards"] != shards:
        raise LayoutMismatch(f"{stream!r} was published with --shards {known['shards']}: publish with --shards "
                             f"{known['shards']}, or to another stream")
    client.hset(layout_key(stream), mapping={"shards": shards, "format": fmt, "pack_format": PACK_FORMAT})
    for name in names:  # every shard stream exists, even one that no key falls into (with its group)
        try:
            client.xgroup_create(name, "monitor", id="0", mkstream=True)
        except Exception as e:
            if "BUSYGROUP" not in str(e):
                raise
    if rate > 0:
        pack = max(1, min(pack, int(rate / 100)))
    sent = np.zeros(shards, dtype=np.int64)
    start = _time.perf_counter()
    total = entries = rejected = 0

    def pace(done: int) -> None:
        if rate > 0:
            ahead = done / rate - (_time.perf_counter() - start)
            if ahead > 0:
                sleep(ahead)

    for batch in batches:
        n = len(batch)
        rejected += len(batch.rejected)  # not published: the same rejects as a file replay's
        if not n:
            continue
        if batch.key is None and shards > 1:
            raise SourceError("readings without a key cannot be sharded: give --shards 1, or a key column")
        shard = shard_of(batch.key, shards) if batch.key is not None else np.zeros(n, dtype=np.intp)
        step = pack * len(names) if pack > 1 else pipeline
        if rate > 0:
            step = max(1, int(rate / 100))  # 10 ms of readings per round trip
        for a in range(0, n, step):
            b = min(n, a + step)
            pipe = client.pipeline(transaction=False)
            entries += _add(pipe, names, batch, shard, a, b, pack, maxlen)
            pipe.execute()
            total += b - a
            pace(total)
        sent += np.bincount(shard, minlength=shards)
    return {"readings": total, "entries": entries, "rejected": rejected, "per_shard": sent.tolist(), "streams": names,
            "format": fmt, "elapsed_s": round(_time.perf_counter() - start, 6)}


def _add(pipe, names: list[str], batch: Batch, shard: np.ndarray, a: int, b: int, pack: int,
         maxlen: int | None) -> int:
    """Queue readings a..b of ``batch`` on ``pipe`` (packed per shard, or one entry each); entries queued."""
    sh = shard[a:b]
    keys = None if batch.key is None else list(map(str, batch.key[a:b].tolist()))
    t, v, y = batch.time[a:b], batch.x[a:b, 0], batch.y[a:b]
    if pack > 1:
        order = np.argsort(sh, kind="stable")
        bounds = np.searchsorted(sh[order], np.arange(len(names) + 1))
        n = 0
        for s_i in range(len(names)):
            idx = order[bounds[s_i]:bounds[s_i + 1]]
            for c in range(0, len(idx), pack):
                part = idx[c:c + pack]
                k = None if keys is None else [keys[i] for i in part.tolist()]
                pipe.xadd(names[s_i], pack_entry(t[part], v[part], y[part], k), maxlen=maxlen, approximate=True)
                n += 1
        return n
    times, values, labels, shard_l = list(map(repr, t.tolist())), list(map(repr, v.tolist())), y.tolist(), sh.tolist()
    for i in range(b - a):
        fields = {"time": times[i], "value": values[i]}
        if keys is not None:
            fields["key"] = keys[i]
        if labels[i] == labels[i]:
            fields["label"] = int(labels[i])
        pipe.xadd(names[shard_l[i]], fields, maxlen=maxlen, approximate=True)
    return b - a
