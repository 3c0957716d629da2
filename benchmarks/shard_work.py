"""CPU seconds of one shard's work by stage: the whole ward in one consumer beside each of 2 shards.

Run from the project root (needs `pip install '.[dist]'` and redis-server on PATH):

    python benchmarks/shard_work.py [--patients 200] [--minutes 60] [--port PORT]

Publishes the simulated ward (streams.ward.Ward) into one stream and into 2 shard streams of a
redis-server of its own (or --port), then runs `ShardConsumer` (what `monitor replay redis://` and
each Ray shard actor run) on each stream in turn, in one process, and prints CPU seconds
(time.process_time: what the process used, whatever else the machine runs) by stage: the imports
a fresh process pays before its first reading (torch, pandas, the monitor), training
(OnlineLearner.learn_many, with its optimiser steps), the rest of the monitor (scoring, key table,
alerts), the JSON Lines records, and the rest (Redis reads and writes, checkpoints). What 2 shards
can gain over one consumer is at most the work that divides by shards; what each shard pays again
(imports, a network's warm-up) is not divided.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CPU = {"learn": 0.0, "monitor": 0.0, "records": 0.0}


def _timed(owner, name: str, key: str) -> None:
    f = getattr(owner, name)

    def wrapper(*args, **kwargs):
        c0 = time.process_time()
        try:
            return f(*args, **kwargs)
        finally:
            CPU[key] += time.process_time() - c0
    setattr(owner, name, wrapper)


def consume(client, stream: str) -> dict:
    """Run one ShardConsumer over ``stream`` from the start: readings, steps, CPU by stage."""
    from monitor.distributed.config import ServeConfig
    from monitor.distributed.consumer import ShardConsumer

    for k in CPU:
        CPU[k] = 0.0
    c0 = time.process_time()
    sc = ShardConsumer(client=client, stream=stream, config=ServeConfig(), checkpoint=None, collect="records")
    n = 0
    while True:
        r = sc.step(8)
        n += r["readings"]
        if r["idle"]:
            break
    sc.save()
    total = time.process_time() - c0
    return {"readings": n, "steps": sc.summary().get("steps"), "total": total, "learn": CPU["learn"],
            "monitor": CPU["monitor"] - CPU["learn"], "records": CPU["records"],
            "rest": total - CPU["monitor"] - CPU["records"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--port", type=int)
    args = ap.parse_args()
    c0 = time.process_time()
    import pandas  # noqa: F401  (the key table's; imported by a consumer's first batch)
    import torch

    from monitor.distributed.consumer import ShardConsumer
    from monitor.keyed.keyed_monitor import KeyedMonitor
    from models.learner import OnlineLearner
    imports = time.process_time() - c0
    torch.set_num_threads(1)
    _timed(OnlineLearner, "learn_many", "learn")
    _timed(KeyedMonitor, "process", "monitor")
    _timed(ShardConsumer, "_records_text", "records")

    import redis

    from benchmarks.distributed import start_redis
    from streams.redis_stream import publish
    from streams.ward import Ward

    proc = tmp = None
    port = args.port
    if port is None:
        proc, port, tmp = start_redis()
    client = redis.Redis(port=port)
    tag = f"work-{time.time_ns()}"
    try:
        for name, shards in ((f"{tag}-1", 1), (f"{tag}-2", 2)):
            publish(client, name, Ward(patients=args.patients, minutes=args.minutes, seed=0), shards=shards)
        publish(client, f"{tag}-w", Ward(patients=20, minutes=20, seed=1))
        consume(client, f"{tag}-w")  # first-use costs (lazy imports, first records) out of the figures
        print(f"ward {args.patients} patients x {args.minutes} min; CPU seconds (process_time); imports of a fresh "
              f"process (torch, pandas, the monitor) {imports:.2f}, then a small ward first (first-use costs)")
        rows = [("1 consumer", f"{tag}-1"), ("shard 0 of 2", f"{tag}-2:0"), ("shard 1 of 2", f"{tag}-2:1")]
        for label, stream in rows:
            r = consume(client, stream)
            print(f"  {label:<13} {r['readings']:>9,} readings  total {r['total']:6.2f}  training {r['learn']:5.2f} "
                  f"({r['steps']} steps)  monitor {r['monitor']:5.2f}  records {r['records']:5.2f}  "
                  f"redis+checkpoints {r['rest']:5.2f}")
    finally:
        for name in client.scan_iter(f"{tag}*"):
            client.delete(name)
        if proc is not None:
            proc.terminate()
            proc.wait()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
