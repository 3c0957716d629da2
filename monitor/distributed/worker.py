"""`ShardWorker`: one shard's consumer that survives a lost Redis; the body of a Ray actor.

Built lazily (the constructor touches nothing), so a worker can be created while Redis is down. A
worker that loses Redis reports it (it does not raise) and is rebuilt from its checkpoint by
`recover`; a Redis back without the stream is reported as fatal; a checkpoint saved with other
options, or an entry that does not decode, as the user's to fix.
"""

from __future__ import annotations

import os

from monitor.distributed.config import ServeConfig
from monitor.distributed.connection import is_lost

__all__ = ["ShardWorker"]


class ShardWorker:
    """The body of one shard's actor: a ShardConsumer on stream ``stream`` of the Redis at ``url``.

    Built lazily (the constructor touches nothing), so a worker can be created while Redis is
    down. ``fault`` is for tests of crash recovery: {"exit_at_batch": k, "once_key": KEY} ends the
    process (os._exit) in the middle of a call, once the k-th batch of this process is written,
    the first time the Redis key KEY can be set.
    """

    def __init__(self, *, url: str, stream: str, config: ServeConfig, checkpoint="redis", collect: str | None = None,
                 consumer: str | None = None, fault: dict | None = None) -> None:
        self.url = url
        self.stream = stream
        self.kwargs = dict(stream=stream, config=config, collect=collect, defer_save=True,
                           consumer=consumer or f"{stream}:worker")
        self.checkpoint = checkpoint
        self.fault = fault
        self.consumer = None
        self._memory = None
        self._batches = 0

    def __repr__(self) -> str:
        return f"ShardWorker({self.consumer!r})"

    def _build(self) -> None:
        import torch

        from monitor.distributed.checkpoints import MemoryCheckpoint
        from monitor.distributed.consumer import ShardConsumer
        from streams.redis_stream import connect, parse_url

        torch.set_num_threads(1)
        client = connect(parse_url(self.url))
        checkpoint = self.checkpoint
        if checkpoint is None:  # kept in this process: it must outlive a reconnection
            if self._memory is None:
                self._memory = MemoryCheckpoint(client=client, stream=self.stream, group="monitor")
            self._memory.client = client
            checkpoint = self._memory
        self.consumer = None
        self.consumer = ShardConsumer(client=client, checkpoint=checkpoint, **self.kwargs)

    def _guard(self, fn) -> dict:
        from monitor.state.checkpoint import CheckpointError
        from streams.batch import SourceError
        from streams.redis_stream import StreamMissing

        try:
            if self.consumer is None:
                self._build()
            return fn()
        except StreamMissing as e:
            return {"fatal": f"{e}: Redis lost its data (run it with persistence), or publish again"}
        except (CheckpointError, SourceError) as e:  # the user's to fix: exit 2
            return {"usage": str(e)}
        except Exception as e:
            if not is_lost(e):
                raise
            self.consumer = None  # rebuilt from the checkpoint once Redis answers again
            return {"lost": f"{type(e).__name__}: {e}"}

    def step(self, max_batches: int) -> dict:
        """Process up to ``max_batches`` batches: {"readings", "idle", "drained", "out"}, or
        {"lost": why} (Redis unreachable), or {"fatal": why} (the stream is gone)."""
        def run():
            if self.fault is None:
                r = self.consumer.step(max_batches)
            else:
                r = self._step_with_fault(max_batches)
            r["drained"] = bool(r["idle"] and self.consumer.drained())
            r["pid"] = os.getpid()
            return r
        return self._guard(run)

    def _step_with_fault(self, max_batches: int) -> dict:
        r = {"readings": 0, "idle": False, "out": []}
        for _ in range(max_batches):
            one = self.consumer.step(1)
            r["readings"] += one["readings"]
            r["out"] += one["out"]
            r["idle"] = one["idle"]
            self._batches += 1
            if self._batches == self.fault["exit_at_batch"] and \
                    self.consumer.client.set(self.fault["once_key"], 1, nx=True):
                os._exit(1)  # killed in the middle of a call: records written, nothing returned
            if one["idle"] or self.consumer._due:  # a checkpoint waits for the driver to have these
                break
        return r

    def recover(self) -> dict:
        """Reconnect and resume from the checkpoint: {"ok": True}, {"lost": why} or {"fatal": why}."""
        def run():
            self.consumer.client.ping()
            return {"ok": True}
        self.consumer = None
        return self._guard(run)

    def finish(self) -> dict:
        """Save the checkpoint (acknowledging what it covers) and return the shard's summary."""
        def run():
            self.consumer.save()
            return self.consumer.summary()
        return self._guard(run)

    def pid(self) -> int:
        return os.getpid()
