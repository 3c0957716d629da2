"""Readings/s through Redis Streams and Ray shards, beside the single-process figure, in one run.

Run from the project root (needs `pip install '.[dist]'` and redis-server on PATH):

    python benchmarks/distributed.py [--patients 200] [--minutes 60] [--shards 2] [--key-model shared]
                                     [--seed 0] [--port PORT]

Without --port it starts its own redis-server on a free loopback port (no persistence) and stops
it at the end. The input is a simulated ward (streams.ward.Ward, a reading every 5 s per patient).
Lines printed:

    single process   the ward's batches through KeyedMonitor and the JSON Lines formatting, in memory
    redis publish    `monitor publish` into SHARDS streams (pipelines of 500)
    redis, 1 process `monitor replay redis://...`: one consumer reads, scores, writes records (XADD)
    redis + ray      `monitor serve --engine ray --shards SHARDS`: one actor per shard; timed from
                     creating the actors to the last result (ray.init is not included: shown apart),
                     then without the actors' start-up (import torch, load the checkpoint)

and the accuracy and alerts of the Ray run against the single process (the same seed): with
--key-model per-key they must be identical; with a shared network (one per shard) they differ a little.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.learner import LearnerConfig  # noqa: E402
from monitor.alerts import Span  # noqa: E402
from monitor.keyed import KeyedMonitor  # noqa: E402
from monitor.sinks import JsonlSink  # noqa: E402
from streams.ward import Ward  # noqa: E402


def start_redis() -> tuple[subprocess.Popen, int, str]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    tmp = tempfile.mkdtemp()
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
    import redis
    for _ in range(100):
        try:
            redis.Redis(port=port).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.1)
    return proc, port, tmp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--key-model", default="shared")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--port", type=int)
    args = ap.parse_args()

    import torch
    torch.set_num_threads(1)
    from monitor.ray_shards import _start_ray, serve
    from monitor.redis_io import ShardConsumer, export
    from streams.redis_stream import connect, parse_url, publish, shard_streams

    ward = Ward(patients=args.patients, minutes=args.minutes, seed=args.seed)
    batches = list(ward)
    n = sum(len(b) for b in batches)
    kwargs = dict(config=LearnerConfig(), seed=args.seed, model=args.key_model,
                  alert_after=Span(seconds=60.0), alert_clear=Span(seconds=120.0))
    print(f"ward: {args.patients} patients, {args.minutes:g} minutes, {n:,} readings; key model {args.key_model}, "
          f"seed {args.seed}")

    mon = KeyedMonitor(**kwargs)
    sink = JsonlSink(io.StringIO())
    alerts1 = []
    t0 = time.perf_counter()
    for b in batches:
        s = mon.process(b)
        sink.write(s)
        alerts1.extend(s.alerts)
    single = time.perf_counter() - t0
    sum1 = mon.summary()
    print(f"single process    {n / single:>10,.0f} readings/s  ({single:.2f} s)")

    proc = None
    tmp = None
    if args.port is None:
        proc, port, tmp = start_redis()
    else:
        port = args.port
    try:
        tag = f"bench-{os.getpid()}"
        url1, urln = f"redis://127.0.0.1:{port}/{tag}-1", f"redis://127.0.0.1:{port}/{tag}-n"
        client = connect(parse_url(url1))
        r = publish(client, parse_url(urln).stream, batches, shards=args.shards)
        print(f"redis publish     {n / r['elapsed_s']:>10,.0f} readings/s  ({r['elapsed_s']:.2f} s, "
              f"{args.shards} streams)")
        publish(client, parse_url(url1).stream, batches, shards=1)

        consumer = ShardConsumer(client=client, stream=parse_url(url1).stream, monitor_kwargs=kwargs,
                                 checkpoint="redis", options={}, checkpoint_every=10_000, block_ms=10)
        t0 = time.perf_counter()
        consumer.run(until_idle=True)
        one = time.perf_counter() - t0
        print(f"redis, 1 process  {n / one:>10,.0f} readings/s  ({one:.2f} s: read, score, write records, "
              f"checkpoint + XACK every 10,000)")

        t0 = time.perf_counter()
        ray = _start_ray(None, 2)
        init = time.perf_counter() - t0
        summary = serve(url=urln, shards=args.shards, monitor_kwargs=kwargs, options={}, engine="ray",
                        checkpoint_every=10_000)
        el, up = summary["elapsed_s"], summary["startup_s"]
        print(f"redis + ray       {n / el:>10,.0f} readings/s  ({el:.2f} s, {args.shards} actors on 2 CPUs, "
              f"actor start-up included; ray.init {init:.1f} s apart)")
        print(f"  after start-up  {n / (el - up):>10,.0f} readings/s  ({el - up:.2f} s; actors up in {up:.2f} s)")
        ray.shutdown()

        out = io.StringIO()
        export(client, shard_streams(parse_url(urln).stream, args.shards), alerts=out)
        alertsn = [json.loads(x) for x in out.getvalue().splitlines()]
        per_key = lambda rows: {k: [(a["event"], a["start"]) for a in rows if a["key"] == k]  # noqa: E731
                                for k in ward.keys()}
        a1, an = per_key(alerts1), per_key(alertsn)
        same = sum(a1[k] == an[k] for k in ward.keys())
        print(f"accuracy          single {sum1['accuracy']:.4f}  ray {summary['accuracy']:.4f}  "
              f"(difference {100 * (summary['accuracy'] - sum1['accuracy']):+.2f} points)")
        print(f"alerts            single {len(alerts1)}  ray {len(alertsn)}  patients with identical alerts "
              f"{same}/{args.patients}")
        for name in client.scan_iter(f"{tag}*"):
            client.delete(name)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
