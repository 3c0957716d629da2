"""One shard's consumer: an input stream through one KeyedMonitor into its output streams.

What is promised, and how:

at-least-once delivery
    An input entry is acknowledged (XACK) only after its outputs are written and the checkpoint
    covering it is saved (monitor.distributed.checkpoints). A consumer that dies leaves its entries
    pending; the next one claims them (XAUTOCLAIM), starts from the checkpoint and processes them
    again.
exactly-once effect on outputs
    What is computed again is dropped at or below the last id of each output stream
    (monitor.distributed.redis_outputs); the records recomputed are the same (same state, same
    readings, same order).
counts
    processed, rejected, written and alert counts are saved in the checkpoint, so a summary after
    restarts counts every reading once.
rejects
    An entry that holds no reading (no value, a value that is not a number or lies outside
    ``config.valid_range``, a label that is not 0/1) is acknowledged with the others and counted
    in ``rejected``, the first few with their entry id and reason (any producer can write into a
    stream: a bad entry is never a crash and never silently dropped).
"""

from __future__ import annotations

import io

import numpy as np

from monitor.distributed.checkpoints import open_store
from monitor.distributed.config import SHOW_REJECTS, ServeConfig
from monitor.distributed.redis_outputs import RecordWriter, alert_ids
from streams.redis_stream import entry_id_text

__all__ = ["ShardConsumer"]


class ShardConsumer:
    """One input stream through one KeyedMonitor into its output streams; see the module docstring.

    Parameters
    ----------
    client
        redis-py client.
    stream
        The input stream (one shard); it must exist (StreamMissing otherwise: nothing is created).
    config
        The monitor and how Redis is read and written (`ServeConfig`); a checkpoint saved with
        other ``config.options()`` is refused.
    checkpoint
        "redis" (key ``STREAM:state``), a file path, a `MemoryCheckpoint`, or None (a new one).
    group, consumer
        The consumer group, and this consumer's name (stable per shard: a restarted consumer finds
        its own pending entries).
    collect
        "records", "alerts" or None: what `step` hands back to its caller (``out``) for live outputs.
    defer_save
        True: a checkpoint that falls due is saved at the start of the next `step`, once the caller
        has taken the outputs of this one (what a remote caller needs: nothing acknowledged that it
        has not received).
    """

    def __init__(self, *, client, stream: str, config: ServeConfig, checkpoint="redis", group: str = "monitor",
                 consumer: str | None = None, collect: str | None = None, defer_save: bool = False) -> None:
        from monitor.keyed.keyed_monitor import KeyedMonitor
        from streams.redis_stream import RedisReadings

        self.client = client
        self.stream = stream
        self.config = config
        self.collect = collect
        self.defer_save = defer_save
        self.monitor = KeyedMonitor(**config.monitor_kwargs())
        self.store = open_store(checkpoint, client=client, stream=stream, group=group, options=config.options())
        saved = self.store.load()
        self.last_id: str | None = None
        self.resumed_ = saved is not None
        self.writer = RecordWriter(client=client, stream=stream, maxlen=config.maxlen, records=config.records_stream)
        counts = {}
        if saved is not None:
            self.monitor.load_state_dict(saved["monitor"])
            self.last_id = saved["last_id"]
            counts = saved.get("counts", {})
        self.processed_ = int(counts.get("processed", self.monitor.n_scored))  # each reading once
        self.rejected_ = int(counts.get("rejected", 0))
        self.first_rejects_: list[dict] = list(counts.get("first_rejects", []))
        self.writer.written_ = int(counts.get("written", 0))
        self.writer.alerts_written_ = int(counts.get("alerts", 0))
        self.restarts_ = int(counts.get("restarts", 0)) + (saved is not None)
        self.reader = RedisReadings(client=client, stream=stream, group=group, consumer=consumer or f"{stream}:c",
                                    count=config.count, block_ms=config.block_ms, after=self.last_id,
                                    first_line=self.monitor.n_scored + 1, valid_range=config.valid_range)
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
        if self._due:
            self.save()
        got_readings, idle, out = 0, False, []
        for _ in range(max_batches):
            asked = self.reader.count
            got = self.reader.read()
            if got is None:
                idle = True
                break
            n = self._process(got, out)
            got_readings += n
            if self._since >= self.config.checkpoint_every:
                if not self.defer_save:
                    self.save()
                else:
                    self._due = True
                    break
            if got.ids and len(got.ids) < asked:  # caught up with the producer: hand the outputs over now
                break
        if idle and self._unacked:
            if self.defer_save:
                self._due = True
            else:
                self.save()
        return {"readings": got_readings, "idle": idle, "out": out}

    def _process(self, got, out: list) -> int:
        """One read: score and learn, write the outputs, remember what to acknowledge; readings done."""
        ids, entry, skip, batch = got
        if skip:
            self.skipped_ += len(skip)
            self.client.xack(self.stream, self.reader.group, *skip)
        if not ids:
            return 0
        if batch.rejected:
            self.rejected_ += len(batch.rejected)
            self.first_rejects_ += [{"entry": r.raw.removeprefix("entry "), "reason": r.reason}
                                    for r in batch.rejected[:max(0, SHOW_REJECTS - len(self.first_rejects_))]]
        if not len(batch):  # entries without a reading: acknowledged with the next checkpoint
            self._unacked.extend(ids)
            return 0
        scored = self.monitor.process(batch)
        text = self._records_text(scored)
        events = list(scored.alerts)
        aids = alert_ids(events, ids, entry, scored.time, scored.key) if events else []
        self.writer.write(ids, entry, scored, text, events, aids)
        if self.collect:
            out.append({"ids": [entry_id_text(i) for i in ids], "counts": np.bincount(entry, minlength=len(ids)).tolist(),
                        "records": text if self.collect == "records" else None,
                        "alerts": list(zip(aids, events))})
        self.processed_ += len(batch)
        self.last_id = entry_id_text(ids[-1])
        self._unacked.extend(ids)
        self._since += len(batch)
        return len(batch)

    def _records_text(self, scored) -> str | None:
        from monitor.output.sinks import JsonlSink

        if not len(scored) or not (self.writer.records or self.collect == "records"):
            return None
        buf = io.StringIO()
        JsonlSink(buf).write(scored)
        return buf.getvalue()

    def save(self) -> None:
        """Save the checkpoint and acknowledge every entry it covers (nothing when nothing is new)."""
        self._due = False
        if not self._unacked:
            return
        counts = {"processed": self.processed_, "rejected": self.rejected_, "first_rejects": self.first_rejects_,
                  "written": self.writer.written_,
                  "alerts": self.writer.alerts_written_, "restarts": self.restarts_}
        self.store.save({"monitor": self.monitor.state_dict(), "last_id": self.last_id, "counts": counts},
                        self._unacked)
        self._unacked = []
        self._since = 0

    def drained(self) -> bool:
        """True when nothing waits to be acknowledged and the group has delivered every entry."""
        return not self._unacked and self.reader.drained()

    def summary(self) -> dict:
        out = self.monitor.summary()
        out.update({"stream": self.stream, "processed": self.processed_, "rejected": self.rejected_,
                    "first_rejects": self.first_rejects_, "written": self.writer.written_,
                    "alerts_written": self.writer.alerts_written_, "duplicates_skipped": self.writer.duplicates_,
                    "claimed": self.reader.claimed_, "covered_by_checkpoint": self.skipped_,
                    "resumed": self.resumed_, "restarts": self.restarts_})
        return out
