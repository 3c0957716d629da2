"""Where a shard's checkpoint is kept: in Redis, in a file, or in this process.

Each store has ``load()`` (the saved payload or None) and ``save(payload, ack)``: the checkpoint,
then the XACK of the input entries it covers, so an entry is acknowledged only once what was made
of it is safe. `RedisCheckpoint` (key ``STREAM:state``) saves both in one MULTI/EXEC transaction,
so a consumer restarted on any host of a cluster finds it; `FileCheckpoint` keeps it in a file
(``replay redis:// --state FILE``); `MemoryCheckpoint` in this process (no --state: it survives a
lost connection, not a restart).
"""

from __future__ import annotations

import copy
import io

__all__ = ["RedisCheckpoint", "FileCheckpoint", "MemoryCheckpoint", "open_store"]


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
        from monitor.state.checkpoint import CheckpointError

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
    """A checkpoint in a file (monitor.state.checkpoint, written atomically), then the XACK."""

    def __init__(self, *, client, stream: str, group: str, path: str, options: dict) -> None:
        from monitor.state.checkpoint import Checkpoint

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


def open_store(checkpoint, *, client, stream: str, group: str, options: dict):
    """The store for ``checkpoint``: "redis", a file path, a `MemoryCheckpoint` (kept), or None (a new one)."""
    if checkpoint == "redis":
        return RedisCheckpoint(client=client, stream=stream, group=group, options=options)
    if isinstance(checkpoint, MemoryCheckpoint):
        return checkpoint
    if checkpoint:
        return FileCheckpoint(client=client, stream=stream, group=group, path=checkpoint, options=options)
    return MemoryCheckpoint(client=client, stream=stream, group=group)


def _check_options(saved: dict, now: dict, where: str) -> None:
    from monitor.state.checkpoint import check_options
    check_options(saved, now, where=where, afresh="delete it")
