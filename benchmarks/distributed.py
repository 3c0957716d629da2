"""Whole-process readings/s through Redis Streams and Ray shards beside one process, and latency.

Run from the project root (needs `pip install '.[dist]'` and redis-server on PATH):

    python benchmarks/distributed.py [--patients 200] [--minutes 60] [--runs 3] [--rate 1000]
                                     [--seconds 10] [--port PORT] [--skip-ray] [--latency-only]
                                     [--key-model shared] [--running-ray] [--cpu]

Without --port it starts its own redis-server on a free loopback port (no persistence) and stops
it at the end. The input is a simulated ward (streams.ward.Ward, a reading every 5 s per patient),
published once (`monitor publish`, packed entries) into one stream and into two shard streams.
Then, in turn (A B C A B C ...: pairing keeps the ratios honest on a machine whose speed drifts),
each command is timed as a whole process, its start-up included, records written to /dev/null:

    single process   monitor replay --stream ward --patients P --n M --out /dev/null -q
    1 consumer       monitor replay redis://.../ward1 --until-idle --out /dev/null -q
    2 ray shards     monitor serve redis://.../ward2 --until-idle --out /dev/null -q   (a local Ray)
    2 shards, running Ray   the same with --address: a local Ray started once before the timings
                     (--running-ray; a Ray cluster is long-lived, so its start-up is not paid per serve;
                     its token is made up for the run and given in RAY_AUTH_TOKEN)

(the consumer group, outputs and checkpoints are deleted before each run, so each run reads the
whole stream). Printed: the median wall time of each, readings/s, and the ratio of each to the
single process (readings/s over readings/s, run by run, median); for the Redis commands also the
serve loop's own rate (from --summary-json: elapsed_s - startup_s, after the actors are created:
what a long-running serve sustains, start-up excluded). --cpu adds the CPU seconds of each command
by group, sampled from /proc: the command's process tree (with a local Ray it started), the held
Ray's tree (its actors, with --running-ray) and redis-server.

Latency: a producer writes --rate readings/s for --seconds (a packed entry every 10 ms, 50
patients, the reading's time field = the wall clock at sending) while `monitor replay redis://`
runs and prints its records on stdout; the latency of a reading is the wall clock when its record
line is read from that pipe minus its time field (publish -> record out; an alert is written in
the same batch as the record that opens it). 2,000 warm-up readings of every patient go through
first, not counted (the consumer's lazy imports, the model's first steps: a one-time stall of
about a second at start), then every reading counts. Printed: p50, p99,
max.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


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


ENV = dict(os.environ, PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0")


def monitor(*args: str, stdout=subprocess.DEVNULL) -> subprocess.Popen:
    env = ENV
    return subprocess.Popen([sys.executable, "-m", "monitor", *args], stdout=stdout, stderr=subprocess.PIPE, env=env)


def hold_ray(env: dict) -> tuple[subprocess.Popen, str]:
    """A process holding a local Ray (2 CPUs) until terminated; (the process, its GCS address)."""
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); from monitor.distributed.engines import start_ray; "
            "ray = start_ray(None, 2); print(ray.get_runtime_context().gcs_address, flush=True); "
            "time.sleep(10 ** 6)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(ROOT)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, text=True)
    address = proc.stdout.readline().strip()
    if not address:
        raise SystemExit("could not start a local Ray")
    return proc, address


def reset(client, streams: list[str]) -> None:
    """Delete the consumer group, outputs and checkpoint of each stream: the next run reads it all."""
    for s in streams:
        try:
            client.xgroup_destroy(s, "monitor")
        except Exception:
            pass
        client.delete(f"{s}:records", f"{s}:alerts", f"{s}:state")


class CpuMeter:
    """CPU seconds used while a command runs, by group: the command's process tree (with a local Ray
    it started: head, raylet, actors), the held Ray's tree (a joined cluster: its actors), and
    redis-server. Sampled from /proc every 0.1 s (a process that ends between two samples loses at
    most its last 0.1 s); Linux only."""

    HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.base = {p: c for p, (_, c) in self._procs().items()}
        self.last: dict[int, tuple[str, float]] = {}

    @classmethod
    def _procs(cls) -> dict[int, tuple[int, float]]:
        out = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/stat") as fh:
                        f = fh.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                out[int(name)] = (int(f[1]), (int(f[11]) + int(f[12])) / cls.HZ)
        return out

    def sample(self) -> None:
        procs = self._procs()
        kids: dict[int, list[int]] = {}
        for pid, (ppid, _) in procs.items():
            kids.setdefault(ppid, []).append(pid)
        seen: set[int] = set()
        for group, roots in self.groups.items():  # a process counts in the first group whose tree holds it
            todo = list(roots)
            while todo:
                pid = todo.pop()
                if pid in seen or pid not in procs:
                    continue
                seen.add(pid)
                self.last[pid] = (group, procs[pid][1] - self.base.get(pid, 0.0))
                todo += kids.get(pid, [])

    def totals(self) -> dict[str, float]:
        out = {g: 0.0 for g in self.groups}
        for group, cpu in self.last.values():
            out[group] += cpu
        return out


def timed(args: list[str], meter_groups: dict[str, list[int]] | None = None) -> tuple[float, dict[str, float]]:
    """(wall seconds, CPU seconds by group when ``meter_groups``) of one whole `monitor` process."""
    t0 = time.perf_counter()
    p = monitor(*args)
    meter = CpuMeter({"command": [p.pid], **(meter_groups or {})}) if meter_groups is not None else None
    err = []
    reader = threading.Thread(target=lambda: err.append(p.stderr.read()), daemon=True)
    reader.start()
    while p.poll() is None:
        if meter is not None:
            meter.sample()
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    reader.join()
    if meter is not None:
        meter.sample()
    if p.returncode != 0:
        raise SystemExit(f"failed: monitor {' '.join(args)}\n{err[0].decode() if err else ''}")
    return wall, meter.totals() if meter is not None else {}


def latency(url: str, client, stream: str, rate: float, seconds: float) -> list[float]:
    import numpy as np

    from streams.redis_stream import pack_entry

    client.delete(stream, f"{stream}:layout")
    client.xgroup_create(stream, "monitor", id="0", mkstream=True)  # the stream exists before the consumer
    proc = monitor("replay", url, "-q", stdout=subprocess.PIPE)
    lat: list[float] = []
    keys = [f"P{i:03d}" for i in range(50)]
    per_tick = max(1, int(rate / 100))

    rng = np.random.default_rng(0)

    def produce() -> None:
        while not any(c.get("cmd") == "xreadgroup" for c in client.client_list()):  # the consumer reads
            time.sleep(0.1)
        # warm-up, not timed: 2,000 readings of every patient through the whole path (lazy imports,
        # the model's first optimiser steps and replays, a key table entry per patient)
        w = 2000
        client.xadd(stream, pack_entry(np.full(w, time.time()), 70 + 5 * rng.standard_normal(w), np.full(w, np.nan),
                                       [keys[i % len(keys)] for i in range(w)]))
        while len(got) < w:
            time.sleep(0.05)
        time.sleep(1.0)
        began.append(time.time())
        start = time.perf_counter()
        sent = 0
        while time.perf_counter() - start < seconds:
            now = time.time()
            v = 70 + 5 * rng.standard_normal(per_tick)
            k = [keys[(sent + i) % len(keys)] for i in range(per_tick)]
            client.xadd(stream, pack_entry(np.full(per_tick, now), v, np.full(per_tick, np.nan), k))
            sent += per_tick
            ahead = sent / rate - (time.perf_counter() - start)
            if ahead > 0:
                time.sleep(ahead)

    got: list[tuple[float, float]] = []
    began: list[float] = []
    t = threading.Thread(target=produce)
    t.start()

    def consume() -> None:
        for line in proc.stdout:
            got.append((time.time(), json.loads(line)["time"]))

    r = threading.Thread(target=consume, daemon=True)
    r.start()
    t.join()
    time.sleep(2.0)  # the last readings come through
    proc.terminate()
    proc.wait()
    if began:
        lat = [at - sent for at, sent in got if sent >= began[0]]
    return lat


def commands(args, base: str, address: str | None, summaries: str) -> dict[str, list[str]]:
    """The commands timed, by name; the Redis ones write their summary to SUMMARIES/NAME.json."""
    ward = ["--stream", "ward", "--patients", str(args.patients), "--n", str(args.minutes)]
    km = ["--key-model", args.key_model]
    cmds = {"single process": ["replay", *ward, *km, "--out", os.devnull, "-q"],
            "1 consumer": ["replay", f"{base}-1", *km, "--until-idle", "--out", os.devnull, "-q"]}
    if not args.skip_ray:
        cmds["2 ray shards"] = ["serve", f"{base}-2", *km, "--until-idle", "--out", os.devnull, "-q"]
    if address:
        cmds["2 shards, running Ray"] = ["serve", f"{base}-2", *km, "--address", address, "--until-idle",
                                         "--out", os.devnull, "-q"]
    for name, cmd in cmds.items():
        if name != "single process":
            cmd += ["--summary-json", os.path.join(summaries, name.replace(" ", "_").replace(",", "") + ".json")]
    return cmds


def report(n: int, walls: dict, cpus: dict, loops: dict) -> None:
    """Readings/s, ratios (run by run, median), CPU by group, and the serve loop's own rate."""
    single = walls["single process"]
    for name, w in walls.items():
        ratio = statistics.median(s / x for s, x in zip(single, w))
        print(f"{name:<22} {n / statistics.median(w):>9,.0f} readings/s  (median wall {statistics.median(w):.2f} s "
              f"of {len(w)}; {ratio:.2f}x the single process)")
    for name in ("2 ray shards", "2 shards, running Ray"):
        if name in walls:
            r = statistics.median(c / x for c, x in zip(walls["1 consumer"], walls[name]))
            print(f"{name} / 1 consumer: {r:.2f}x (whole process)")
    if any(cpus.values()):
        print("CPU seconds (median of runs; processes sampled from /proc every 0.1 s):")
        for name, runs in cpus.items():
            groups = {g: statistics.median(r[g] for r in runs) for g in runs[0]}
            total = statistics.median(sum(r.values()) for r in runs)
            parts = "  ".join(f"{g} {c:.2f}" for g, c in groups.items())
            print(f"  {name:<22} total {total:6.2f} s = {total / statistics.median(walls[name]):.2f} cores "
                  f"over the wall  ({parts})")
    for name, runs in loops.items():
        start = statistics.median(r["startup_s"] for r in runs)
        loop = statistics.median(r["elapsed_s"] - r["startup_s"] for r in runs)
        print(f"serve loop only, {name:<22} {n / loop:>9,.0f} readings/s ({loop:.2f} s after {start:.2f} s of "
              "creating actors; whole process above)")
    for name in ("2 ray shards", "2 shards, running Ray"):
        if name in loops:
            r = statistics.median((c["elapsed_s"] - c["startup_s"]) / (x["elapsed_s"] - x["startup_s"])
                                  for c, x in zip(loops["1 consumer"], loops[name]))
            print(f"{name} / 1 consumer, serve loop only: {r:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--port", type=int)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--latency-only", action="store_true")
    ap.add_argument("--key-model", default="shared", help="--key-model of every command [default: shared]")
    ap.add_argument("--running-ray", action="store_true", help="also: 2 shards on a Ray started once before")
    ap.add_argument("--cpu", action="store_true", help="also: CPU seconds of each command, Ray and redis-server")
    args = ap.parse_args()

    proc = tmp = holder = address = None
    if args.running_ray:
        import secrets
        ENV.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))  # this run's cluster only
        holder, address = hold_ray(ENV)
    if args.port is None:
        proc, port, tmp = start_redis()
    else:
        port = args.port
    import redis
    client = redis.Redis(port=port)
    tag = f"bench-{os.getpid()}"
    base = f"redis://127.0.0.1:{port}/{tag}"
    ward = ["--stream", "ward", "--patients", str(args.patients), "--n", str(args.minutes)]
    n = args.patients * args.minutes * 12
    summaries = tempfile.mkdtemp()
    groups = None
    if args.cpu:
        groups = {"ray": [holder.pid] if holder is not None else [], "redis": [proc.pid] if proc is not None else []}
    try:
        if args.latency_only:
            args.runs = 0
        for url, shards in ((f"{base}-1", "1"), (f"{base}-2", "2")):
            t, _ = timed(["publish", *ward, url, "--shards", shards, "-q"])
        print(f"ward: {args.patients} patients x {args.minutes} min = {n:,} readings; publish (2 shards, packed, "
              f"whole process) {t:.2f} s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        cmds = commands(args, base, address, summaries)
        walls: dict[str, list[float]] = {k: [] for k in cmds}
        cpus: dict[str, list[dict]] = {k: [] for k in cmds}
        loops: dict[str, list[dict]] = {k: [] for k in cmds if k != "single process"}
        for _ in range(args.runs):
            for name, cmd in cmds.items():
                reset(client, [f"{tag}-1", f"{tag}-2:0", f"{tag}-2:1"])
                wall, cpu = timed(cmd, groups)
                walls[name].append(wall)
                cpus[name].append(cpu)
                if name in loops:
                    with open(cmd[-1]) as fh:
                        loops[name].append(json.load(fh))
        if args.runs:
            report(n, walls, cpus, loops)
        lat = sorted(latency(f"{base}-lat", client, f"{tag}-lat", args.rate, args.seconds))
        if lat:
            q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000  # noqa: E731
            print(f"latency at {args.rate:,.0f} readings/s (publish -> record on the consumer's stdout, "
                  f"{len(lat):,} readings): p50 {q(0.5):.1f} ms  p99 {q(0.99):.1f} ms  max {lat[-1] * 1000:.1f} ms")
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
        for name in client.scan_iter(f"{tag}*"):
            client.delete(name)
    finally:
        if holder is not None:
            holder.terminate()  # its Ray shuts down with it
            holder.wait()
        if proc is not None:
            proc.terminate()
            proc.wait()
            shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(summaries, ignore_errors=True)


if __name__ == "__main__":
    main()
