"""Speed of the monitor against its peers (issue 4), in one run on one generated stream.

Run from the project root::

    python benchmarks/replay.py                 # 1,000,000 readings, plus the 10M memory check
    python benchmarks/replay.py --no-10m        # skip the 10,000,000-reading run (about a minute)
    python benchmarks/replay.py --n 200000      # a smaller stream

What it measures, all on the same seeded synthetic heart-rate stream (streams.SyntheticHeartRate,
written to a CSV "t,hr" of N readings):

1. ``monitor replay FILE --out FILE`` end to end, as a subprocess (start-up, parsing, normalising,
   scoring every reading, training, metrics, writing every JSON record): readings/s from the wall
   time, the CPU time, and the peak RSS of the child (its VmHWM, read as it exits);
2. river ``StandardScaler | LogisticRegression`` test-then-train, one reading at a time (subset);
3. a per-reading torch MLP in deep-river's style (the same network, one Adam step per reading on a
   running-scaled input, predict before learn; subset);
4. the floor: a bare torch loop of the same network, torch.optim.Adam and the monitor's largest
   mini-batch, on pre-normalised tensors (nothing else);
5. peak RSS of a 10M-reading replay against the 1M one (memory must not grow with the stream);
6. live latency: lines written one by one into ``monitor replay -`` at 1,000/s, the time from a
   line written to its record read back (p50, p99, max), after a warm-up;
7. ``monitor --help`` wall time.

The machine is shared: wall-clock rates move with the load, so CPU times are printed alongside.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
ENV = dict(os.environ, PYTHONPATH=ROOT)


def write_csv(path: str, n: int, seed: int = 0) -> None:
    """N readings of the synthetic stream as "t,hr" with two decimals, written in blocks."""
    from streams.synthetic import SyntheticHeartRate

    hr = SyntheticHeartRate(n=n, seed=seed).values()
    with open(path, "w") as fh:
        fh.write("t,hr\n")
        for start in range(0, n, 1_000_000):
            t = np.arange(start, min(n, start + 1_000_000)) * 0.5
            block = np.column_stack([t, hr[start:start + 1_000_000]])
            np.savetxt(fh, block, fmt=("%.1f", "%.2f"), delimiter=",")


# The child reports its own peak RSS (VmHWM of its address space) when it exits. os.wait4's
# ru_maxrss cannot be used: subprocess starts children with vfork, and Linux carries the parent's
# high-water RSS into the child's ru_maxrss at exec, so a child started by a benchmark that had
# generated a 10M-reading stream "peaked" at the benchmark's own size (the 902 MB once reported).
_PEAK = """import atexit, os, runpy, sys
def _peak(path=os.environ["MONITOR_BENCH_PEAK"]):
    with open("/proc/self/status") as f, open(path, "w") as out:
        out.write(next(ln for ln in f if ln.startswith("VmHWM")).split()[1])
atexit.register(_peak)
sys.argv = ["monitor"] + sys.argv[1:]
runpy.run_module("monitor", run_name="__main__")
"""


def run_child(args: list[str]) -> dict:
    """Run ``python -m monitor ARGS``; wall seconds, CPU seconds and peak RSS (MB) of that child alone."""
    with tempfile.NamedTemporaryFile("r", suffix=".peak") as peak:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", _PEAK, *args], env=dict(ENV, MONITOR_BENCH_PEAK=peak.name),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        err = proc.stderr.read().decode()
        proc.stderr.close()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"monitor {' '.join(args)} failed ({proc.returncode}):\n{err}")
        rss_kb = int(peak.read() or 0)
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": rss_kb / 1024}


def monitor_replay(csv: str, out: str, n: int) -> dict:
    r = run_child(["replay", csv, "--out", out, "-q"])
    with open(out, "rb") as fh:
        records = sum(1 for _ in fh)
    if records != n:
        raise SystemExit(f"monitor wrote {records} records for {n} readings")
    r["rate"] = n / r["wall"]
    r["cpu_rate"] = n / r["cpu"]
    return r


def _values(csv: str, n: int) -> np.ndarray:
    import pandas as pd

    return pd.read_csv(csv, nrows=n)["hr"].to_numpy()


def river_rate(hr: np.ndarray) -> dict:
    from river import linear_model, preprocessing

    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    correct = 0
    start, cpu = time.perf_counter(), time.process_time()
    for v in hr.tolist():
        x, y = {"hr": v}, v > 91.0
        correct += (model.predict_proba_one(x).get(True, 0.0) > 0.5) == y
        model.learn_one(x, y)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"n": len(hr), "rate": len(hr) / wall, "cpu_rate": len(hr) / cpu, "accuracy": correct / len(hr)}


def per_reading_torch_rate(hr: np.ndarray) -> dict:
    """deep-river style: dict in, one forward for the prediction, one Adam step per reading."""
    import torch
    from river import preprocessing

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    opt = torch.optim.Adam(net.parameters(), lr=0.001)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    scaler = preprocessing.StandardScaler()
    correct = 0
    start, cpu = time.perf_counter(), time.process_time()
    for v in hr.tolist():
        x, y = {"hr": v}, float(v > 91.0)
        scaler.learn_one(x)
        xt = torch.tensor([[scaler.transform_one(x)["hr"]]], dtype=torch.float32)
        net.eval()
        with torch.no_grad():
            p = torch.sigmoid(net(xt))[0, 0].item()
        correct += (p > 0.5) == (y == 1.0)
        net.train()
        loss = loss_fn(net(xt)[:, 0], torch.tensor([y]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"n": len(hr), "rate": len(hr) / wall, "cpu_rate": len(hr) / cpu, "accuracy": correct / len(hr)}


def floor_rate(hr: np.ndarray, batch: int) -> dict:
    """A bare torch loop: same network, torch.optim.Adam, one step per `batch` readings."""
    import torch
    from models.learner import LearnerConfig
    from models.network import build_network

    c = LearnerConfig()
    net = build_network(c.network, seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=c.lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x = torch.from_numpy(((hr - hr.mean()) / hr.std()).astype(np.float32)).reshape(-1, 1)
    y = torch.from_numpy((hr > 91.0).astype(np.float32))
    net.train()
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(hr) - batch + 1, batch):
        loss = loss_fn(net(x[i:i + batch])[:, 0], y[i:i + batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    n = len(hr) // batch * batch
    return {"n": n, "rate": n / wall, "cpu_rate": n / cpu, "batch": batch}


def live_latency(hr: np.ndarray, *, warm: int, n: int, rate: float = 1000.0) -> dict:
    """Write lines one by one at `rate`/s into `monitor replay -`; time each until its record is read."""
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "replay", "-", "--format", "jsonl", "-q"],
                            env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    lines = [f"{v:.2f}\n".encode() for v in hr[:warm + n].tolist()]
    sent = np.zeros(warm + n)
    got = np.zeros(warm + n)
    done = threading.Event()

    def reader():
        for i in range(warm + n):
            if not proc.stdout.readline():
                break
            got[i] = time.perf_counter()
        done.set()

    threading.Thread(target=reader, daemon=True).start()
    proc.stdin.write(b"".join(lines[:warm]))  # warm-up: start-up and the first training steps
    while got[warm - 1] == 0 and not done.is_set():
        time.sleep(0.01)
    t0 = time.perf_counter()
    for i in range(warm, warm + n):
        due = t0 + (i - warm) / rate
        while (now := time.perf_counter()) < due:
            if due - now > 0.0005:
                time.sleep(due - now - 0.0004)
        sent[i] = time.perf_counter()
        proc.stdin.write(lines[i])
    done.wait(30)
    proc.stdin.close()
    proc.wait(30)
    lat = (got[warm:] - sent[warm:]) * 1e3  # ms
    return {"n": n, "warm": warm, "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
            "max": float(lat.max())}


def help_time(repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "monitor", "--help"], env=ENV, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Speed of the monitor against its peers (issue 4).")
    ap.add_argument("--n", type=int, default=1_000_000, help="readings in the generated stream")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--river-n", type=int, default=20_000, help="readings for river (subset)")
    ap.add_argument("--torch-n", type=int, default=3_000, help="readings for the per-reading MLP (subset)")
    ap.add_argument("--no-10m", dest="big", action="store_false", help="skip the 10M-reading memory run")
    ap.add_argument("--live-n", type=int, default=5_000, help="live readings timed, after --live-warm")
    ap.add_argument("--live-warm", type=int, default=5_000)
    ap.add_argument("--dir", help="where to write the CSVs and records (default: a temporary directory)")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from models.learner import LearnerConfig

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        csv, out = os.path.join(tmp, "hr.csv"), os.path.join(tmp, "records.jsonl")
        write_csv(csv, args.n, args.seed)
        print(f"stream: {args.n:,} synthetic readings (seed {args.seed}), {os.path.getsize(csv) / 1e6:.1f} MB CSV; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
        mon = monitor_replay(csv, out, args.n)
        hr = _values(csv, args.n)
        riv = river_rate(hr[:args.river_n])
        per = per_reading_torch_rate(hr[:args.torch_n])
        batch = LearnerConfig().batch_size
        flo = floor_rate(hr, batch)
        print(f"{'':34} {'readings/s':>12} {'(CPU time)':>12}")
        print(f"{'monitor replay, end to end':34} {mon['rate']:>12,.0f} {mon['cpu_rate']:>12,.0f}   "
              f"{mon['wall']:.2f} s wall, peak RSS {mon['rss_mb']:.0f} MB")
        print(f"{'river StandardScaler|LogReg':34} {riv['rate']:>12,.0f} {riv['cpu_rate']:>12,.0f}   "
              f"{riv['n']:,} readings, accuracy {riv['accuracy']:.4f}")
        print(f"{'per-reading torch MLP':34} {per['rate']:>12,.0f} {per['cpu_rate']:>12,.0f}   "
              f"{per['n']:,} readings, accuracy {per['accuracy']:.4f}")
        print(f"{'bare torch loop (floor), batch ' + str(batch):34} {flo['rate']:>12,.0f} {flo['cpu_rate']:>12,.0f}   "
              f"{flo['n']:,} readings")
        for name, ref, target in (("river", riv, 20), ("per-reading torch", per, 400), ("floor", flo, 0.5)):
            r, rc = mon["rate"] / ref["rate"], mon["cpu_rate"] / ref["cpu_rate"]
            ok = "holds" if r >= target else "MISSED"
            print(f"monitor / {name:18} {r:8.2f}x wall  {rc:8.2f}x CPU   target >= {target}x: {ok}")
        if args.big:
            big = 10 * args.n
            write_csv(csv, big, args.seed)
            mon10 = monitor_replay(csv, out, big)
            ok = "holds" if mon10["rss_mb"] < 600 else "MISSED"
            print(f"peak RSS: {args.n:,} readings {mon['rss_mb']:.0f} MB, {big:,} readings {mon10['rss_mb']:.0f} MB "
                  f"(< 600 MB: {ok}); {big:,} readings at {mon10['rate']:,.0f} readings/s "
                  f"({mon10['cpu_rate']:,.0f} per CPU second)")
        lat = live_latency(hr, warm=args.live_warm, n=args.live_n)
        ok = "holds" if lat["p99"] <= 2.0 else "MISSED"
        print(f"live latency, {lat['n']:,} lines at 1,000/s into `monitor replay -` after {lat['warm']:,} warm-up lines: "
              f"p50 {lat['p50']:.3f} ms, p99 {lat['p99']:.3f} ms, max {lat['max']:.1f} ms (p99 <= 2 ms: {ok})")
        h = help_time()
        print(f"monitor --help: {h:.3f} s (median of 5; < 0.3 s: {'holds' if h < 0.3 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
