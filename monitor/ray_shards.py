"""`monitor serve`: one consumer per shard stream, as Ray actors (or in turn, in this process).

Each shard's consumer is a `monitor.redis_io.ShardConsumer` (the same KeyedMonitor as
``monitor replay``, its checkpoint kept in Redis). With ``engine="ray"`` each lives in a Ray actor
created with ``max_restarts=-1``: an actor that dies is started again by Ray, loads its shard's
checkpoint and claims its pending entries (see monitor.redis_io for what that promises). The
driver calls ``step`` on every actor (each call reads and processes up to ``step_batches`` batches
of ``count`` readings: never one reading per remote call), collects the results as they come
(``ray.wait``), and calls again until every shard is drained (``until_idle``).

A local Ray is started bound to 127.0.0.1, with ``num_cpus`` CPUs, no dashboard and no usage
statistics (RAY_USAGE_STATS_ENABLED=0). With ``address`` it joins an existing cluster; every node
needs ``monitor[dist]`` installed and, for a Redis password, MONITOR_REDIS_PASSWORD in the
environment of its ``ray start``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

__all__ = ["ShardWorker", "serve", "run_serve", "merge_summaries"]


class ShardWorker:
    """The body of one shard's actor: a ShardConsumer on stream ``stream`` of the Redis at ``url``."""

    def __init__(self, *, url: str, stream: str, monitor_kwargs: dict, options: dict, checkpoint_every: int,
                 maxlen: int | None, count: int = 500, block_ms: int = 100) -> None:
        import torch

        from monitor.redis_io import ShardConsumer
        from streams.redis_stream import connect, parse_url

        torch.set_num_threads(1)
        self.stream = stream
        client = connect(parse_url(url))
        self.consumer = ShardConsumer(client=client, stream=stream, monitor_kwargs=monitor_kwargs,
                                      checkpoint="redis", options=options, checkpoint_every=checkpoint_every,
                                      count=count, block_ms=block_ms, maxlen=maxlen, consumer=f"{stream}:worker")

    def __repr__(self) -> str:
        return f"ShardWorker({self.consumer!r})"

    def step(self, max_batches: int) -> dict:
        r = self.consumer.step(max_batches)
        r["drained"] = bool(r["idle"] and self.consumer.drained())
        r["pid"] = os.getpid()
        return r

    def finish(self) -> dict:
        """Save the checkpoint (acknowledging what it covers) and return the shard's summary."""
        self.consumer.save()
        return self.consumer.summary()

    def pid(self) -> int:
        return os.getpid()


def merge_summaries(shards: list[dict]) -> dict:
    """Totals over shard summaries: readings, flags, episodes, written, duplicates; accuracy weighted
    by readings; keys merged (each key lives in one shard)."""
    n = sum(s["readings"] for s in shards)
    out = {"readings": n, "flags": sum(s["flags"] for s in shards),
           "episodes": sum(s.get("episodes", 0) for s in shards)}
    for name in ("processed", "written", "duplicates_skipped", "claimed", "covered_by_checkpoint"):
        out[name] = sum(s.get(name, 0) for s in shards)
    acc = [(s["accuracy"], s["readings"]) for s in shards if s.get("accuracy") is not None]
    out["accuracy"] = round(sum(a * k for a, k in acc) / sum(k for _, k in acc), 6) if acc else None
    keys = {}
    for s in shards:
        keys.update(s.get("keys", {}))
    if keys:
        out["keys_seen"] = len(keys)
        out["keys"] = dict(sorted(keys.items()))
    return out


def _start_ray(address: str | None, num_cpus: int):
    import ray

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    if ray.is_initialized():
        return ray
    if address:
        ray.init(address=address, configure_logging=False, log_to_driver=False)
        return ray
    root = str(Path(__file__).resolve().parents[1])  # the workers import monitor from where we run
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])
    ray.init(num_cpus=num_cpus, include_dashboard=False, configure_logging=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    return ray


def serve(*, url: str, shards: int, monitor_kwargs: dict, options: dict, engine: str = "ray",
          address: str | None = None, num_cpus: int = 2, checkpoint_every: int = 5_000,
          maxlen: int | None = 1_000_000, until_idle: bool = True, step_batches: int = 8, count: int = 500,
          on_result: Callable[[int, dict, list], None] | None = None,
          stop: Callable[[], bool] = lambda: False) -> dict:
    """Run one ShardWorker per shard stream until all are drained (or ``stop()``); returns the summary.

    ``on_result(shard, result, actors)`` is called after each step's result (tests use it to kill an
    actor); a step lost to a dead actor gives ``result = None`` and is counted in ``lost_calls``.
    """
    from streams.redis_stream import parse_url, shard_streams

    target = parse_url(url)
    streams = shard_streams(target.stream, shards)
    common = dict(url=url, monitor_kwargs=monitor_kwargs, options=options, checkpoint_every=checkpoint_every,
                  maxlen=maxlen, count=count)
    start = time.perf_counter()
    if engine == "local":
        workers = [ShardWorker(stream=s, **common) for s in streams]
        live = set(range(shards))
        while live and not stop():
            for i in sorted(live):
                r = workers[i].step(step_batches)
                if on_result is not None:
                    on_result(i, r, workers)
                if until_idle and r["drained"]:
                    live.discard(i)
        per_shard = [w.finish() for w in workers]
        lost = 0
        startup = 0.0
    else:
        ray = _start_ray(address, num_cpus)
        from ray.exceptions import RayActorError

        cpus = float(ray.cluster_resources().get("CPU", 1))
        Actor = ray.remote(ShardWorker).options(max_restarts=-1, max_task_retries=0,
                                                num_cpus=min(1.0, cpus / shards))
        actors = [Actor.remote(stream=s, **common) for s in streams]
        ray.get([a.pid.remote() for a in actors])  # every actor up (torch imported, checkpoint loaded)
        startup = time.perf_counter() - start
        calls = {actors[i].step.remote(step_batches): i for i in range(shards)}
        lost = 0
        while calls:
            ready, _ = ray.wait(list(calls), num_returns=1)
            i = calls.pop(ready[0])
            try:
                r = ray.get(ready[0])
            except RayActorError:  # the actor died during the call: Ray restarts it; call it again
                r = None
                lost += 1
            if on_result is not None:
                on_result(i, r, actors)
            if stop() or (until_idle and r is not None and r["drained"]):
                continue
            calls[actors[i].step.remote(step_batches)] = i
        per_shard = _finish_all(ray, actors, RayActorError)
    elapsed = time.perf_counter() - start
    out = merge_summaries(per_shard)
    out.update({"engine": engine, "shards": shards, "streams": streams, "lost_calls": lost,
                "elapsed_s": round(elapsed, 6), "startup_s": round(startup, 6),
                "readings_per_s": round(out["processed"] / elapsed, 1) if elapsed > 0 else None,
                "per_shard": [{k: v for k, v in s.items() if k != "keys"} for s in per_shard]})
    return out


def _finish_all(ray, actors, dead) -> list[dict]:
    out = []
    for a in actors:
        for attempt in range(5):  # an actor killed just now is being restarted: ask again
            try:
                out.append(ray.get(a.finish.remote()))
                break
            except dead:
                time.sleep(0.2 * (attempt + 1))
        else:
            raise RuntimeError("a shard actor could not be reached to finish")
    return out


def run_serve(*, url, engine, shards, address, num_cpus, config, threshold, seed, key_model, max_keys,
              alert_after, alert_clear, alerts_path, out, summary_json, until_idle, checkpoint_every, maxlen,
              quiet, error) -> int:
    """`monitor serve`: check the connection, serve, copy outputs, print the summary; exit status."""
    from monitor.redis_io import _write_exports, connect_or_fail, run_options
    from streams.redis_stream import shard_streams

    target, client = connect_or_fail(url, error)
    if engine == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise error("--engine ray needs Ray: pip install 'monitor[dist]'")
    kwargs = dict(config=config, threshold=threshold, seed=seed, model=key_model, max_keys=max_keys,
                  alert_after=alert_after, alert_clear=alert_clear)
    options = run_options(config, threshold=threshold, seed=seed, key_model=key_model, max_keys=max_keys,
                          alert_after=alert_after, alert_clear=alert_clear)
    try:
        summary = serve(url=url, shards=shards, monitor_kwargs=kwargs, options=options, engine=engine,
                        address=address, num_cpus=num_cpus, checkpoint_every=checkpoint_every, maxlen=maxlen,
                        until_idle=until_idle)
    except KeyboardInterrupt:
        return 130
    summary["seed"] = seed
    _write_exports(client, shard_streams(target.stream, shards), out, alerts_path, error)
    if summary_json:
        with open(summary_json, "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2)
            fh.write("\n")
    if not quiet:
        acc = summary["accuracy"]
        sys.stderr.write(
            f"monitor: serve ({engine}, {shards} shards): readings {summary['readings']}  flags {summary['flags']}  "
            f"episodes {summary['episodes']}  accuracy {'n/a' if acc is None else format(acc, '.4f')}  "
            f"({summary['readings_per_s']:,.0f} readings/s, {summary['elapsed_s']:.2f} s)\n"
            f"monitor: redis: processed {summary['processed']}  written {summary['written']}  duplicates skipped "
            f"{summary['duplicates_skipped']}  claimed {summary['claimed']}  lost calls {summary['lost_calls']}\n")
    return 0
