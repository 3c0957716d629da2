"""Records and alerts written to files (or stdout) as the shard consumers hand them over."""

from __future__ import annotations

import json

from monitor.distributed.redis_outputs import split_id

__all__ = ["LiveOutputs"]


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
                first_new = next((j for j, i in enumerate(ids) if split_id(i) > self.last_rec[shard]), len(ids))
                start = sum(item["counts"][:first_new])
                text = item["records"]
                if first_new < len(ids):
                    self.records.write(text if start == 0 else "".join(text.splitlines(keepends=True)[start:]))
                    self.n_records += sum(item["counts"][first_new:])
                    self.last_rec[shard] = split_id(ids[-1])
            if self.alerts is not None:
                for aid, e in item["alerts"]:
                    if split_id(aid) > self.last_alert[shard]:
                        self.alerts.write(json.dumps(e) + "\n")
                        self.last_alert[shard] = split_id(aid)
                        self.n_alerts += 1
        for fh in {id(f): f for f in (self.records, self.alerts) if f is not None}.values():
            fh.flush()
