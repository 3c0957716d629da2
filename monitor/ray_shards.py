"""`monitor serve`: one consumer per shard stream, as Ray actors (or in turn, in this process).

Each shard's consumer is a `monitor.redis_io.ShardConsumer` (the same KeyedMonitor as
``monitor replay``, its checkpoint kept in Redis) inside a `ShardWorker`. With ``engine="ray"``
each worker lives in a Ray actor created with ``max_restarts=-1``: an actor that dies, between
calls or in the middle of one, is started again by Ray, loads its shard's checkpoint and claims
its pending entries (see monitor.redis_io for what that promises). The driver calls ``step`` on
every worker (each call reads and processes up to ``step_batches`` batches of ``count`` entries:
never one reading per remote call), writes the records and alerts each call hands back as they
come (`LiveOutputs`, flushed per call), and calls again until every shard is drained
(``until_idle``). A worker saves the checkpoint that falls due at the start of its next call, so
nothing is acknowledged before the driver has its outputs.

Faults: a worker that loses Redis reports it (it does not raise); the driver writes one note,
asks the workers to reconnect with a backoff (0.1 s doubling to 2 s) for up to ``retry_for``
seconds, and each worker resumes from its checkpoint (outputs computed again are written once).
A Redis that comes back without the stream or its group is one line, `RedisLost`. SIGINT/SIGTERM
(run_serve): no new calls, the calls under way finish, the checkpoints are saved, the outputs
written; exit status 130/143.

A local Ray is started bound to 127.0.0.1, with ``num_cpus`` CPUs, no dashboard and no usage
statistics (RAY_USAGE_STATS_ENABLED=0); docs/scaling.md lists what listens where. With ``address``
it joins an existing cluster; every node needs ``monitor[dist]`` installed and, for a Redis
password, MONITOR_REDIS_PASSWORD in the environment of its ``ray start``.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Callable

__all__ = ["ShardWorker", "serve", "run_serve", "merge_summaries", "ServeFailed", "resolve_streams", "run_redis_replay"]

_BACKOFF = (0.1, 2.0)  # first delay, longest delay between reconnection attempts (seconds)


class InputError(Exception):
    """A checkpoint saved with other options, or entries that do not decode: the user's (exit 2)."""


class ServeFailed(Exception):
    """A failure of the engine (a Ray error), as one line: a runtime failure (exit 1)."""


def _lost(e: BaseException) -> bool:
    """True for the errors of a lost Redis connection (redis-py's, and the OS's under them)."""
    import redis
    return isinstance(e, (redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError))


class ShardWorker:
    """The body of one shard's actor: a ShardConsumer on stream ``stream`` of the Redis at ``url``.

    Built lazily (the constructor touches nothing), so a worker can be created while Redis is
    down. ``fault`` is for tests of crash recovery: {"exit_at_batch": k, "once_key": KEY} ends the
    process (os._exit) in the middle of a call, once the k-th batch of this process is written,
    the first time the Redis key KEY can be set.
    """

    def __init__(self, *, url: str, stream: str, monitor_kwargs: dict, options: dict, checkpoint_every: int,
                 maxlen: int | None, count: int = 500, block_ms: int = 100, checkpoint="redis",
                 records: bool = True, collect: str | None = None, consumer: str | None = None,
                 fault: dict | None = None) -> None:
        self.url = url
        self.stream = stream
        self.kwargs = dict(stream=stream, monitor_kwargs=monitor_kwargs, options=options,
                           checkpoint_every=checkpoint_every, maxlen=maxlen, count=count, block_ms=block_ms,
                           records=records, collect=collect, defer_save=True,
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

        from monitor.redis_io import MemoryCheckpoint, ShardConsumer
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
        from monitor.checkpoint import CheckpointError
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
            if not _lost(e):
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


def merge_summaries(shards: list[dict]) -> dict:
    """Totals over shard summaries: readings, flags, episodes, written, duplicates; accuracy weighted
    by readings; keys merged (each key lives in one shard)."""
    n = sum(s["readings"] for s in shards)
    out = {"readings": n, "flags": sum(s["flags"] for s in shards),
           "episodes": sum(s.get("episodes", 0) for s in shards)}
    for name in ("processed", "written", "alerts_written", "duplicates_skipped", "claimed", "covered_by_checkpoint",
                 "restarts"):
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


_ESCAPES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _one_line(e: BaseException) -> str:
    """A Ray error as one line without terminal escape codes: its innermost cause's last line."""
    cause = getattr(e, "cause", None)
    text = str(cause if isinstance(cause, BaseException) else e)
    lines = [ln.strip() for ln in _ESCAPES.sub("", text).splitlines() if ln.strip()]
    name = type(cause if isinstance(cause, BaseException) else e).__name__
    last = lines[-1] if lines else name
    return last if last.startswith(name) else f"{name}: {last}"


class _Local:
    """Workers in this process, called in turn: the same interface as the Ray engine."""

    def __init__(self, workers: list[ShardWorker]) -> None:
        self.workers = workers
        self.queue: list[tuple[int, str, tuple]] = []

    def submit(self, i: int, method: str, *args) -> None:
        self.queue.append((i, method, args))

    def busy(self) -> int:
        return len(self.queue)

    def next(self) -> tuple[int, str, dict | None] | None:
        if not self.queue:
            return None
        i, method, args = self.queue.pop(0)
        return i, method, getattr(self.workers[i], method)(*args)

    def finish(self) -> list[dict]:
        return [w.finish() for w in self.workers]


class _Ray:
    """Workers as Ray actors (max_restarts=-1): a call lost with its actor gives None."""

    def __init__(self, ray, workers_args: list[dict], shards: int) -> None:
        from ray.exceptions import RayActorError

        self.ray = ray
        self.dead = RayActorError
        cpus = float(ray.cluster_resources().get("CPU", 1))
        Actor = ray.remote(ShardWorker).options(max_restarts=-1, max_task_retries=0, num_cpus=min(1.0, cpus / shards))
        self.actors = [Actor.remote(**a) for a in workers_args]
        ray.get([a.pid.remote() for a in self.actors])  # every actor up
        self.calls: dict = {}

    def submit(self, i: int, method: str, *args) -> None:
        self.calls[getattr(self.actors[i], method).remote(*args)] = (i, method)

    def busy(self) -> int:
        return len(self.calls)

    def next(self) -> tuple[int, str, dict | None] | None:
        ready, _ = self.ray.wait(list(self.calls), num_returns=1, timeout=0.2)
        if not ready:
            return None
        i, method = self.calls.pop(ready[0])
        try:
            return i, method, self.ray.get(ready[0])
        except self.dead:  # the actor died during the call: Ray restarts it from its checkpoint
            return i, method, None

    def finish(self) -> list[dict]:
        out = []
        for a in self.actors:
            for attempt in range(20):  # an actor killed just now is being restarted: ask again
                try:
                    out.append(self.ray.get(a.finish.remote()))
                    break
                except self.dead:
                    time.sleep(0.2 * (attempt + 1))
            else:
                raise ServeFailed("a shard actor could not be reached to finish")
        return out


def serve(*, url: str, shards: int = 1, monitor_kwargs: dict, options: dict, engine: str = "ray",
          streams: list[str] | None = None, address: str | None = None, num_cpus: int = 2,
          checkpoint="redis", checkpoint_every: int = 5_000, maxlen: int | None = 1_000_000,
          until_idle: bool = True, step_batches: int = 8, count: int = 500, records: bool = True,
          outputs=None, on_result: Callable[[int, dict | None, list], None] | None = None,
          stop: Callable[[], bool] = lambda: False, note: Callable[[str], None] = lambda m: None,
          retry_for: float = 30.0, fault: dict | None = None, consumer: str | None = None) -> dict:
    """Run one ShardWorker per shard stream until all are drained (or ``stop()``); returns the summary.

    ``outputs`` (a `monitor.redis_io.LiveOutputs`) receives each call's records/alerts. ``on_result(shard,
    result, workers)`` is called after each step's result (tests use it to kill an actor); a step
    lost with a dead actor gives ``result = None`` and is counted in ``lost_calls``. Raises RedisLost
    (Redis gone for longer than ``retry_for`` s, or back without the stream) or ServeFailed (Ray).
    """
    from monitor.redis_io import RedisLost
    from streams.redis_stream import parse_url, shard_streams

    target = parse_url(url)
    streams = streams or shard_streams(target.stream, shards)
    shards = len(streams)
    collect = None
    if outputs is not None:
        collect = "records" if outputs.records is not None else ("alerts" if outputs.alerts is not None else None)
    args = [dict(url=url, stream=s, monitor_kwargs=monitor_kwargs, options=options, checkpoint_every=checkpoint_every,
                 maxlen=maxlen, count=count, checkpoint=checkpoint, records=records, collect=collect,
                 consumer=consumer, fault=fault if i == 0 else None) for i, s in enumerate(streams)]
    start = time.perf_counter()
    if engine == "local":
        pool = _Local([ShardWorker(**a) for a in args])
        startup = 0.0
    else:
        ray = _start_ray(address, num_cpus)
        try:
            pool = _Ray(ray, args, shards)
        except ray.exceptions.RayError as e:
            raise ServeFailed(_one_line(e)) from None
        startup = time.perf_counter() - start
    handles = pool.actors if engine != "local" else pool.workers
    state = ["step"] * shards  # step | recover | done
    delay = [0.0] * shards
    due = [0.0] * shards
    lost_calls = 0
    outage: float | None = None
    for i in range(shards):
        pool.submit(i, "step", step_batches)
    try:
        while True:
            now = time.monotonic()
            for i in range(shards):  # reconnection attempts that fall due
                if state[i] == "recover-wait" and now >= due[i] and not stop():
                    state[i] = "recover"
                    pool.submit(i, "recover")
            if not pool.busy():
                if all(s in ("done", "step") for s in state) or stop():
                    break
                time.sleep(0.02)
                continue
            got = pool.next()
            if got is None:
                continue
            i, method, r = got
            if method == "step" and on_result is not None:
                on_result(i, r, handles)
            if r is None:  # the actor died: restarted by Ray; call it again
                lost_calls += 1
                r = {"readings": 0, "idle": False, "drained": False, "out": []}
            if "fatal" in r:
                raise RedisLost(r["fatal"])
            if "usage" in r:
                raise InputError(r["usage"])
            if "lost" in r:
                if outage is None:
                    outage = time.monotonic()
                    note(f"lost Redis at {target.host}:{target.port} ({r['lost']}); retrying for up to "
                         f"{retry_for:g} s")
                elif time.monotonic() - outage > retry_for:
                    raise RedisLost(f"cannot reach Redis at {target.host}:{target.port} for {retry_for:g} s: "
                                    f"{r['lost']}")
                delay[i] = min(_BACKOFF[1], max(_BACKOFF[0], delay[i] * 2))
                due[i] = time.monotonic() + delay[i]
                state[i] = "recover-wait"
                continue
            if method == "recover":
                delay[i] = 0.0
                if outage is not None and all(state[j] not in ("recover", "recover-wait")
                                              for j in range(shards) if j != i):
                    note(f"Redis back after {time.monotonic() - outage:.1f} s; resuming from the checkpoints")
                    outage = None
            elif outputs is not None and r["out"]:
                outputs.write(i, r["out"])
            if stop() or (until_idle and r.get("drained")):
                state[i] = "done" if r.get("drained") else "step"
                continue
            state[i] = "step"
            pool.submit(i, "step", step_batches)
        per_shard = _finish(pool, target, retry_for, note)
    except Exception as e:
        if engine != "local" and isinstance(e, ray.exceptions.RayError):
            raise ServeFailed(_one_line(e)) from None
        raise
    elapsed = time.perf_counter() - start
    out = merge_summaries(per_shard)
    out.update({"engine": engine, "shards": shards, "streams": streams, "lost_calls": lost_calls,
                "elapsed_s": round(elapsed, 6), "startup_s": round(startup, 6),
                "readings_per_s": round(out["processed"] / elapsed, 1) if elapsed > 0 else None,
                "per_shard": [{k: v for k, v in s.items() if k != "keys"} for s in per_shard]})
    return out


def _finish(pool, target, retry_for: float, note) -> list[dict]:
    """Every worker's final checkpoint and summary, reconnecting if Redis is away just then."""
    from monitor.redis_io import RedisLost

    begin = time.monotonic()
    delay = _BACKOFF[0]
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
        delay = min(_BACKOFF[1], delay * 2)


def resolve_streams(client, stream: str, shards: int | None, *, single: bool = False) -> tuple[list[str], list[str]]:
    """(the shard streams to read, those of them missing), following the layout stored at publish.

    Raises ValueError (one line) when ``shards`` contradicts the stored layout, or when ``single``
    (``replay redis://``) meets a stream published in several shards.
    """
    from streams.redis_stream import read_layout, shard_streams

    layout = read_layout(client, stream)
    if single:
        if layout is not None and layout["shards"] > 1:
            raise ValueError(f"{stream!r} was published in {layout['shards']} shards: serve it with "
                             f"`monitor serve`, or replay one shard, {stream}:0")
        names = [stream]
    else:
        if layout is not None and shards is not None and shards != layout["shards"]:
            raise ValueError(f"{stream!r} was published with --shards {layout['shards']}, not {shards}: serve it "
                             f"with --shards {layout['shards']} (or without --shards)")
        names = shard_streams(stream, layout["shards"] if layout is not None else (shards or 1))
    missing = [s for s in names if not client.exists(s)]
    return names, missing


def run_serve(*, url, engine, shards, address, num_cpus, config, threshold, seed, key_model, max_keys,
              alert_after, alert_clear, alerts_path, out, summary_json, until_idle, checkpoint_every, maxlen,
              quiet, error, alerts_only: bool = False, wait: bool = False, records_stream: bool = True,
              retry_for: float = 30.0, state=None, single: bool = False, count: int = 500,
              stdout=None) -> int:
    """`monitor serve` and `monitor replay redis://` (``single``): check the connection and the
    layout, serve with live outputs, print the summary; returns the exit status.

    Usage errors go through ``error`` (exit 2); RedisLost and ServeFailed propagate (exit 1).
    """
    from monitor.checkpoint import CheckpointError
    from monitor.interrupts import Interrupts
    from monitor.redis_io import LiveOutputs, connect_or_fail, run_options

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
    notes = (lambda m: None) if quiet else (lambda m: sys.stderr.write(f"monitor: {m}\n") or sys.stderr.flush())
    stdout = stdout or sys.stdout
    with Interrupts() as interrupts:
        try:
            streams = _wait_for_streams(client, target, shards, single, wait, error, interrupts, notes)
        except KeyboardInterrupt:  # stopped while waiting for the stream: nothing was read
            return 128 + (interrupts.signum or 2)
    opened = []
    try:
        rec_fh = al_fh = None
        if out:
            rec_fh = open(out, "w", encoding="utf-8")
            opened.append(rec_fh)
        elif not alerts_only:
            rec_fh = stdout
        if alerts_path:
            al_fh = open(alerts_path, "w", encoding="utf-8")
            opened.append(al_fh)
        elif alerts_only:
            al_fh = stdout
    except OSError as e:
        for fh in opened:
            fh.close()
        raise error(f"cannot write {e.filename}: {e.strerror}")
    outputs = LiveOutputs(len(streams), records=rec_fh, alerts=al_fh)
    real_stdout = sys.stdout
    if engine == "ray":
        _start_ray(address, num_cpus)  # before our handlers: ray.init installs its own
        sys.stdout = _RayNotes(notes)  # Ray prints its error messages to stdout, where our records go
    interrupted = False
    summary = None
    with Interrupts() as interrupts:
        try:
            with interrupts.critical():  # a signal is noted; the loop stops at the next result
                summary = serve(url=url, streams=streams, monitor_kwargs=kwargs, options=options, engine=engine,
                                address=address, num_cpus=num_cpus, checkpoint="redis" if not single else state,
                                checkpoint_every=checkpoint_every, maxlen=maxlen, until_idle=until_idle,
                                count=count, records=records_stream, outputs=outputs,
                                stop=lambda: interrupts.signum is not None, note=notes, retry_for=retry_for,
                                consumer=None if not single else f"{target.stream}:c")
        except KeyboardInterrupt:
            interrupted = True
        except (CheckpointError, InputError) as e:
            raise error(str(e))
        finally:
            for fh in opened:
                fh.close()
            sys.stdout = real_stdout
    interrupted = interrupted or interrupts.signum is not None
    summary.update({"seed": seed, "interrupted": interrupted, "records_out": outputs.n_records,
                    "alerts_out": outputs.n_alerts})
    if single:
        summary.update({"rejected": 0, "header_lines": 0})
    if summary_json:
        try:
            with open(summary_json, "w", encoding="utf-8") as fh:
                json.dump(summary, fh, indent=2)
                fh.write("\n")
        except OSError as e:
            raise error(f"cannot write {e.filename}: {e.strerror}")
    if not quiet:
        acc = summary["accuracy"]
        what = "replay" if single else f"serve ({engine}, {len(streams)} shard{'s' if len(streams) > 1 else ''})"
        sys.stderr.write(
            f"monitor: {what}: readings {summary['readings']}  flags {summary['flags']}  "
            f"episodes {summary['episodes']}  accuracy {'n/a' if acc is None else format(acc, '.4f')}  "
            f"({summary['readings_per_s'] or 0:,.0f} readings/s, {summary['elapsed_s']:.2f} s)"
            f"{'  interrupted' if interrupted else ''}\n"
            f"monitor: redis: processed {summary['processed']}  records written {summary['written']}  alerts "
            f"{summary['alerts_written']}  duplicates skipped {summary['duplicates_skipped']}  claimed "
            f"{summary['claimed']}  restarts {summary['restarts']}  lost calls {summary['lost_calls']}\n")
    return 128 + (interrupts.signum or 2) if interrupted else 0


class _RayNotes(io.TextIOBase):
    """Stands for stdout while Ray runs: what Ray prints there (a worker that died, ...) becomes one
    note line each on stderr, without escape codes, and stays out of the records."""

    def __init__(self, note: Callable[[str], None]) -> None:
        self.note = note
        self.buf = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.buf += text
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            line = _ESCAPES.sub("", line).strip()
            if line:
                first = line.split(". ")[0]
                self.note(f"ray: {first[:300]}")
        return len(text)


def _wait_for_streams(client, target, shards, single, wait, error, interrupts, notes) -> list[str]:
    """The shard streams, once they all exist: an error (exit 2) unless ``wait``."""
    said = False
    while True:
        try:
            streams, missing = resolve_streams(client, target.stream, shards, single=single)
        except ValueError as e:
            raise error(str(e))
        if not missing:
            return streams
        if not wait:
            raise error(f"stream {missing[0]!r} does not exist at {target.host}:{target.port}: publish to it first "
                        "(monitor publish), or give --wait to wait for it")
        if not said:
            notes(f"waiting for stream {missing[0]!r} at {target.host}:{target.port}")
            said = True
        interrupts.sleep(0.2)


def run_redis_replay(*, url: str, config, threshold: float, seed: int, key_model: str, max_keys, alert_after,
                     alert_clear, out, alerts_path, summary_json, state, checkpoint_every: int, until_idle: bool,
                     quiet: bool, error, alerts_only: bool = False, wait: bool = False, records_stream: bool = True,
                     retry_for: float = 30.0, maxlen: int | None = 1_000_000, count: int = 500) -> int:
    """``monitor replay redis://HOST:PORT/STREAM``: one consumer on one stream, in this process,
    records and alerts written as they come; returns the exit status (see run_serve)."""
    return run_serve(url=url, engine="local", shards=None, address=None, num_cpus=1, config=config,
                     threshold=threshold, seed=seed, key_model=key_model, max_keys=max_keys, alert_after=alert_after,
                     alert_clear=alert_clear, alerts_path=alerts_path, out=out, summary_json=summary_json,
                     until_idle=until_idle, checkpoint_every=checkpoint_every, maxlen=maxlen, quiet=quiet,
                     error=error, alerts_only=alerts_only, wait=wait, records_stream=records_stream,
                     retry_for=retry_for, state=state, single=True, count=count)
