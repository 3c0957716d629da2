"""The driver loop of a serve: one worker per shard stream, called until every shard is drained.

The driver calls ``step`` on every worker (each call reads and processes up to
``config.step_batches`` batches: never one reading per remote call), writes the records and alerts
each call hands back as they come (`LiveOutputs`, flushed per call), and calls again until every
shard is drained (``until_idle``) or ``hooks.stop()``. A worker saves the checkpoint that falls due
at the start of its next call, so nothing is acknowledged before the driver has its outputs.

Faults: a worker that loses Redis reports it; the driver writes one note, asks the workers to
reconnect with a backoff (0.1 s doubling to 2 s) for up to ``retry_for`` seconds, and each worker
resumes from its checkpoint (outputs computed again are written once). A Redis that comes back
without the stream or its group is one line, `RedisLost`. A call lost with its actor (Ray
restarts it) is counted in ``lost_calls`` and made again.
"""

from __future__ import annotations

import time

from monitor.distributed.config import SHOW_REJECTS, EngineSpec, Hooks, ServeConfig
from monitor.errors import MonitorError
from monitor.distributed.connection import BACKOFF, RedisLost
from monitor.distributed.engines import LocalPool, RayPool, ServeFailed, one_line, start_ray
from monitor.distributed.worker import ShardWorker

__all__ = ["serve", "merge_summaries", "InputError"]


class InputError(MonitorError):
    """A checkpoint saved with other options, or entries that do not decode: the user's (exit 2)."""


def merge_summaries(shards: list[dict]) -> dict:
    """Totals over shard summaries: readings, flags, episodes, written, duplicates; accuracy weighted
    by readings; keys merged (each key lives in one shard)."""
    n = sum(s["readings"] for s in shards)
    out = {"readings": n, "flags": sum(s["flags"] for s in shards),
           "episodes": sum(s.get("episodes", 0) for s in shards)}
    for name in ("processed", "rejected", "written", "alerts_written", "duplicates_skipped", "claimed", "covered_by_checkpoint",
                 "restarts"):
        out[name] = sum(s.get(name, 0) for s in shards)
    out["first_rejects"] = [r for s in shards for r in s.get("first_rejects", [])][:SHOW_REJECTS]
    acc = [(s["accuracy"], s["readings"]) for s in shards if s.get("accuracy") is not None]
    out["accuracy"] = round(sum(a * k for a, k in acc) / sum(k for _, k in acc), 6) if acc else None
    keys = {}
    for s in shards:
        keys.update(s.get("keys", {}))
    if keys:
        out["keys_seen"] = len(keys)
        out["keys"] = dict(sorted(keys.items()))
    return out


class _Driver:
    """The state of the loop: each shard's state (step | recover-wait | recover | done) and backoff."""

    def __init__(self, pool, target, engine: EngineSpec, config: ServeConfig, outputs, hooks: Hooks) -> None:
        self.pool, self.target, self.engine, self.config = pool, target, engine, config
        self.outputs, self.hooks = outputs, hooks
        n = len(pool.workers) if isinstance(pool, LocalPool) else len(pool.actors)
        self.state = ["step"] * n
        self.delay = [0.0] * n
        self.due = [0.0] * n
        self.lost_calls = 0
        self.outage: float | None = None

    def run(self) -> None:
        for i in range(len(self.state)):
            self.pool.submit(i, "step", self.config.step_batches)
        while True:
            self._recover_due()
            if not self.pool.busy():
                if all(s in ("done", "step") for s in self.state) or self.hooks.stop():
                    return
                time.sleep(0.02)
                continue
            got = self.pool.next()
            if got is not None:
                self._result(*got)

    def _recover_due(self) -> None:
        now = time.monotonic()
        for i, s in enumerate(self.state):  # reconnection attempts that fall due
            if s == "recover-wait" and now >= self.due[i] and not self.hooks.stop():
                self.state[i] = "recover"
                self.pool.submit(i, "recover")

    def _result(self, i: int, method: str, r: dict | None) -> None:
        if method == "step" and self.hooks.on_result is not None:
            self.hooks.on_result(i, r, self.pool.actors if isinstance(self.pool, RayPool) else self.pool.workers)
        if r is None:  # the actor died: restarted by Ray; call it again
            self.lost_calls += 1
            r = {"readings": 0, "idle": False, "drained": False, "out": []}
        if "fatal" in r:
            raise RedisLost(r["fatal"])
        if "usage" in r:
            raise InputError(r["usage"])
        if "lost" in r:
            self._lost(i, r["lost"])
            return
        if method == "recover":
            self._recovered(i)
        elif self.outputs is not None and r["out"]:
            self.outputs.write(i, r["out"])
        if self.hooks.stop() or (self.engine.until_idle and r.get("drained")):
            self.state[i] = "done" if r.get("drained") else "step"
            return
        self.state[i] = "step"
        self.pool.submit(i, "step", self.config.step_batches)

    def _lost(self, i: int, why: str) -> None:
        where = f"{self.target.host}:{self.target.port}"
        if self.outage is None:
            self.outage = time.monotonic()
            self.hooks.note(f"lost Redis at {where} ({why}); retrying for up to {self.engine.retry_for:g} s")
        elif time.monotonic() - self.outage > self.engine.retry_for:
            raise RedisLost(f"cannot reach Redis at {where} for {self.engine.retry_for:g} s: {why}")
        self.delay[i] = min(BACKOFF[1], max(BACKOFF[0], self.delay[i] * 2))
        self.due[i] = time.monotonic() + self.delay[i]
        self.state[i] = "recover-wait"

    def _recovered(self, i: int) -> None:
        self.delay[i] = 0.0
        others = [s for j, s in enumerate(self.state) if j != i]
        if self.outage is not None and all(s not in ("recover", "recover-wait") for s in others):
            self.hooks.note(f"Redis back after {time.monotonic() - self.outage:.1f} s; resuming from the checkpoints")
            self.outage = None


def _finish(pool, target, retry_for: float) -> list[dict]:
    """Every worker's final checkpoint and summary, reconnecting if Redis is away just then."""
    begin = time.monotonic()
    delay = BACKOFF[0]
    while True:
        per_shard = pool.finish()
        bad = next((r for r in per_shard if "lost" in r or "fatal" in r or "usage" in r), None)
        if bad is None:
            return per_shard
        if "usage" in bad:
            raise InputError(bad["usage"])
        if "fatal" in bad:
            raise RedisLost(bad["fatal"])
        if time.monotonic() - begin > retry_for:
            raise RedisLost(f"cannot reach Redis at {target.host}:{target.port} for {retry_for:g} s: {bad['lost']}")
        time.sleep(delay)
        delay = min(BACKOFF[1], delay * 2)


def _pool(url: str, streams: list[str], config: ServeConfig, engine: EngineSpec, checkpoint, collect, consumer,
          fault):
    args = [dict(url=url, stream=s, config=config, checkpoint=checkpoint, collect=collect, consumer=consumer,
                 fault=fault if i == 0 else None) for i, s in enumerate(streams)]
    if engine.engine == "local":
        return LocalPool([ShardWorker(**a) for a in args])
    ray = start_ray(engine.address, engine.num_cpus)
    try:
        return RayPool(ray, args, len(streams))
    except ray.exceptions.RayError as e:
        raise ServeFailed(one_line(e)) from None


def serve(*, url: str, config: ServeConfig, engine: EngineSpec = EngineSpec(), streams: list[str] | None = None,
          checkpoint="redis", outputs=None, consumer: str | None = None, hooks: Hooks = Hooks()) -> dict:
    """Run one ShardWorker per shard stream until all are drained (or ``hooks.stop()``); returns the summary.

    ``streams`` default to the ``engine.shards`` streams of the URL's stream. ``outputs`` (a
    `LiveOutputs`) receives each call's records/alerts. Raises RedisLost (Redis gone for longer
    than ``engine.retry_for`` s, or back without the stream), ServeFailed (Ray) or InputError.
    """
    from streams.redis_stream import parse_url, shard_streams

    target = parse_url(url)
    streams = streams or shard_streams(target.stream, engine.shards or 1)
    collect = None
    if outputs is not None:
        collect = "records" if outputs.records is not None else ("alerts" if outputs.alerts is not None else None)
    start = time.perf_counter()
    pool = _pool(url, streams, config, engine, checkpoint, collect, consumer, hooks.fault)
    startup = time.perf_counter() - start if engine.engine != "local" else 0.0
    driver = _Driver(pool, target, engine, config, outputs, hooks)
    try:
        driver.run()
        per_shard = _finish(pool, target, engine.retry_for)
    except Exception as e:
        if engine.engine != "local":
            import ray
            if isinstance(e, ray.exceptions.RayError):
                raise ServeFailed(one_line(e)) from None
        raise
    elapsed = time.perf_counter() - start
    out = merge_summaries(per_shard)
    out.update({"engine": engine.engine, "shards": len(streams), "streams": streams,
                "lost_calls": driver.lost_calls, "elapsed_s": round(elapsed, 6), "startup_s": round(startup, 6),
                "readings_per_s": round(out["processed"] / elapsed, 1) if elapsed > 0 else None,
                "per_shard": [{k: v for k, v in s.items() if k != "keys"} for s in per_shard]})
    return out
