"""Speed of the monitor against river, like with like, in one run on one generated file (issue 15).

Run from the project root::

    python benchmarks/replay.py                              # 5M readings, 10M memory check, live
    python benchmarks/replay.py --n 1000000 --no-10m         # quicker
    python benchmarks/replay.py --baseline ../base-main      # also an older tree, same run (before/after)
    python benchmarks/replay.py --live-only --baseline ../base-main --repeat 3   # stage 5 alone, A/B rounds

Everything is measured on the same seeded synthetic heart-rate stream (streams.SyntheticHeartRate)
written to a CSV "t,hr" of N readings. Rows (wall-clock rate, rate per CPU second, peak RSS):

1. whole process, monitor: ``monitor replay FILE --format csv --out OUT`` (and ``--format jsonl``),
   start-up, parsing, scoring, training, metrics and writing every record included; accuracy from
   its ``--summary-json``; CPU includes the reader and writer processes it forks (waited for), and
   "main process" is the CPU of the process itself (with a free core for the others, its wall time);
   "peak RSS" is the main process's VmHWM, "all procs" the largest sum of the proportional set
   sizes (Pss) of it and its children, sampled every 20 ms;
2. whole process, river: this file run with ``--river-child FILE OUT``: pandas reads the same CSV,
   ``StandardScaler | LogisticRegression(optim.Adam(0.01))`` scores then learns each reading (test
   then train, the monitor's label: above 91 bpm) and a CSV record is written per reading;
3. in the loop, both on the same first ``--loop-n`` readings already in memory (no file, no
   output): the monitor's ``Monitor.process`` on 65,536-reading batches, river's
   ``predict_proba_one`` / ``learn_one`` per reading;
4. peak RSS of 1M and 10M readings (``--no-10m`` skips the second);
5. live: ``monitor replay -`` started, one line written and its record awaited (start-up), then
   ``--live-seconds`` x ``--live-rate`` lines written at that pace from reading 2 on, the model's
   warm-up included; the time from each line written to its record read back (p50, p99, max);
6. start-up: ``python -c pass``, ``monitor --help``, ``monitor info FILE`` (1,000-line file) and
   ``import torch``, median of 5 runs.

With ``--baseline TREE`` the monitor rows (1, 3, 4, 5, 6) are also run from that source tree, in
the same run, so before/after ratios share the machine's load. The machine may be shared: CPU
times are printed beside wall times, and ratios are taken between rows of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _stream(n: int, seed: int) -> np.ndarray:
    """The readings `write_csv` writes, in memory (``f"{v:.2f}"`` of each is the file's text)."""
    sys.path.insert(0, ROOT)
    from streams.synthetic import SyntheticHeartRate

    return SyntheticHeartRate(n=n, seed=seed).values()


def write_csv(path: str, n: int, seed: int = 0) -> None:
    """N readings of the synthetic stream as "t,hr" with two decimals, written in blocks."""
    sys.path.insert(0, ROOT)
    from streams.synthetic import SyntheticHeartRate

    hr = SyntheticHeartRate(n=n, seed=seed).values()
    with open(path, "w") as fh:
        fh.write("t,hr\n")
        for start in range(0, n, 1_000_000):
            t = np.arange(start, min(n, start + 1_000_000)) * 0.5
            block = np.column_stack([t, hr[start:start + 1_000_000]])
            np.savetxt(fh, block, fmt=("%.1f", "%.2f"), delimiter=",")


# The child reports its own peak RSS (VmHWM) when it exits: os.wait4's ru_maxrss carries the
# parent's high-water mark into a vforked child at exec, so it cannot be used.
_PEAK = """import atexit, os, resource, runpy, sys
def _peak(path=os.environ["MONITOR_BENCH_PEAK"]):
    own = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/status") as f, open(path, "w") as out:
        out.write(next(ln for ln in f if ln.startswith("VmHWM")).split()[1] + " " + repr(own.ru_utime + own.ru_stime))
atexit.register(_peak)
target = sys.argv[1]
sys.argv = [target] + sys.argv[2:]
if target == "monitor":
    runpy.run_module("monitor", run_name="__main__", alter_sys=True)
else:
    runpy.run_path(target, run_name="__main__")
"""


def run_child(target: str, args: list[str], tree: str = ROOT) -> dict:
    """Run ``monitor ARGS`` (or a script) from source tree `tree`: wall s, CPU s, peak RSS MB.

    Every child runs with its tree as the working directory too: ``python -c``/``-m`` put the
    working directory first on sys.path, ahead of PYTHONPATH."""
    with tempfile.NamedTemporaryFile("r", suffix=".peak") as peak:
        env = dict(os.environ, PYTHONPATH=tree, MONITOR_BENCH_PEAK=peak.name)
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", _PEAK, target, *args], env=env, cwd=tree,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        tree_peak = _TreePeak(proc.pid)
        err = proc.stderr.read().decode()
        tree_peak.stop()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.stderr.close()
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise SystemExit(f"{target} {' '.join(args)} failed ({code}):\n{err}")
        rss_kb, own_cpu = (peak.read().split() + ["0", "0"])[:2]
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": int(rss_kb) / 1024,
            "tree_mb": tree_peak.peak_kb / 1024, "main_cpu": float(own_cpu)}


class _TreePeak:
    """The largest sum of proportional set sizes (Pss) of a process and its children, every 20 ms.

    The monitor forks a reader and a writer process for a file replay (issue 15); the child's own
    VmHWM (the "peak RSS" column) is the main process alone. Pss shares each page among the
    processes that map it (copy-on-write pages after a fork), so the sum is the memory they take
    together; sampled, it may miss a peak shorter than 20 ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_kb = max(self.peak_kb, sum(_pss_kb(p) for p in _family(self.pid)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _family(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as fh:
                todo += [int(c) for c in fh.read().split()]
        except OSError:
            pass
    return out


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            return int(next((ln for ln in fh if ln.startswith("Pss:")), "Pss: 0").split()[1])
    except (OSError, ValueError):
        return 0


def _count_lines(path: str) -> int:
    with open(path, "rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))


def monitor_process(csv: str, out: str, n: int, fmt: str, tree: str) -> dict:
    summary = out + ".summary.json"
    r = run_child("monitor", ["replay", csv, "--format", fmt, "--out", out, "-q", "--summary-json", summary], tree)
    records = _count_lines(out) - (fmt == "csv")
    if records != n:
        raise SystemExit(f"monitor wrote {records} records for {n} readings")
    with open(summary) as fh:
        r["accuracy"] = json.load(fh)["accuracy"]
    r.update(rate=n / r["wall"], cpu_rate=n / r["cpu"])
    return r


def river_process(csv: str, out: str, n: int) -> dict:
    r = run_child(os.path.abspath(__file__), ["--river-child", csv, out])
    with open(out + ".accuracy") as fh:
        r["accuracy"] = float(fh.read())
    r.update(rate=n / r["wall"], cpu_rate=n / r["cpu"])
    return r


def _river_model():
    from river import linear_model, optim, preprocessing
    return preprocessing.StandardScaler() | linear_model.LogisticRegression(optimizer=optim.Adam(0.01))


def river_child(csv: str, out: str) -> None:
    """The river per-reading pipeline as a whole process: read, score, learn, write each record."""
    import pandas as pd

    frame = pd.read_csv(csv)
    model = _river_model()
    correct = 0
    with open(out, "w") as fh:
        fh.write("time,value,label,p_abnormal,flag\n")
        for t, v in zip(frame["t"].tolist(), frame["hr"].tolist()):
            x, y = {"hr": v}, v > 91.0
            p = model.predict_proba_one(x).get(True, 0.0)
            correct += (p > 0.5) == y
            fh.write(f"{t!r},{v!r},{int(y)},{p:.6f},{int(p > 0.5)}\n")
            model.learn_one(x, y)
    with open(out + ".accuracy", "w") as fh:
        fh.write(repr(correct / len(frame)))


def river_loop(hr: np.ndarray) -> dict:
    model = _river_model()
    correct = 0
    start, cpu = time.perf_counter(), time.process_time()
    for v in hr.tolist():
        x, y = {"hr": v}, v > 91.0
        correct += (model.predict_proba_one(x).get(True, 0.0) > 0.5) == y
        model.learn_one(x, y)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"rate": len(hr) / wall, "cpu_rate": len(hr) / cpu, "accuracy": correct / len(hr)}


_LOOP = """import json, sys, time
import numpy as np, torch
torch.set_num_threads(1)
import os
if os.path.exists("monitor/core/monitor.py"):  # (run in the tree's directory)
    from monitor.core.monitor import Monitor
else:  # a --baseline tree from before issue 14's sub-packages (an ImportError try would mix two trees)
    from monitor.pipeline import Monitor
from streams import Batch
hr = np.load(sys.argv[1])
mon = Monitor(seed=0)
start, cpu = time.perf_counter(), time.process_time()
for i in range(0, len(hr), 65536):
    v = hr[i:i + 65536]
    mon.process(Batch.of_values(v))
wall, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"rate": len(hr) / wall, "cpu_rate": len(hr) / cpu, "accuracy": mon.summary()["accuracy"]}))
"""


def monitor_loop(values_npy: str, n: int, tree: str) -> dict:
    """Monitor.process over the readings in memory, in a fresh process importing from `tree`."""
    out = subprocess.run([sys.executable, "-c", _LOOP, values_npy], env=dict(os.environ, PYTHONPATH=tree),
                         cwd=tree, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def live_latency(hr: np.ndarray, tree: str, *, seconds: float, rate: float) -> dict:
    """Start `monitor replay -`, one line for start-up, then seconds x rate lines at that pace."""
    n = int(seconds * rate)
    env = dict(os.environ, PYTHONPATH=tree)
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "replay", "-", "--format", "jsonl", "-q"],
                            env=env, cwd=tree, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    lines = [f"{v:.2f}\n".encode() for v in hr[:n + 1].tolist()]
    sent = np.zeros(n + 1)
    got = np.zeros(n + 1)
    done = threading.Event()

    def reader():
        for i in range(n + 1):
            if not proc.stdout.readline():
                break
            got[i] = time.perf_counter()
        done.set()

    switch = sys.getswitchinterval()  # the reader thread must not wait 5 ms for the GIL the pacing loop holds
    sys.setswitchinterval(1e-4)
    threading.Thread(target=reader, daemon=True).start()
    start = time.perf_counter()
    sent[0] = start
    proc.stdin.write(lines[0])  # start-up: the process reads its first line once it has imported
    while got[0] == 0 and not done.is_set():
        time.sleep(0.001)
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        due = t0 + (i - 1) / rate
        while (now := time.perf_counter()) < due:
            if due - now > 0.0005:
                time.sleep(due - now - 0.0004)
        sent[i] = time.perf_counter()
        proc.stdin.write(lines[i])
    done.wait(60)
    sys.setswitchinterval(switch)
    proc.stdin.close()
    proc.wait(60)
    lat = (got[1:] - sent[1:]) * 1e3  # ms, reading 2 on: the model's warm-up included
    if (got[1:] == 0).any():
        raise SystemExit("live run: some records never came back")
    return {"n": n, "first": (got[0] - sent[0]), "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99)), "max": float(lat.max()),
            "over_2ms": int((lat > 2.0).sum()), "over_2ms_first_500": int((lat[:500] > 2.0).sum()),
            "over_2ms_by_line": np.histogram(np.nonzero(lat > 2.0)[0], bins=SLOW_BINS)[0].tolist(),
            "ms_first_200": np.round(lat[:200:10], 1).tolist()}


SLOW_BINS = [0, 50, 100, 150, 200, 300, 500, 1000, 2000, 10**9]  # line ranges the slow lines are counted in


def _live_line(label: str, lat: dict, rate: float) -> str:
    return (f"live ({label}): {lat['n']:,} lines at {rate:,.0f}/s after a start-up line "
            f"({lat['first']:.2f} s to its record): p50 {lat['p50']:.3f} ms, p99 {lat['p99']:.3f} ms, "
            f"max {lat['max']:.1f} ms, {lat['over_2ms']} lines over 2 ms ({lat['over_2ms_first_500']} of them "
            f"in the first 500)")


def live_only(trees: list, args) -> int:
    """The live stage alone, each tree in turn, `args.repeat` rounds (A/B pairs share the load)."""
    hr = _stream(args.n, args.seed)  # the full benchmark's file's readings (its first lines are sent)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())} at the start", flush=True)
    for r in range(args.repeat):
        for label, tree in trees:
            lat = live_latency(hr, tree, seconds=args.live_seconds, rate=args.live_rate)
            print(f"round {r + 1}, " + _live_line(label, lat, args.live_rate) +
                  f" (load {os.getloadavg()[0]:.2f})", flush=True)
            ranges = ", ".join(f"{a}-{b if b < 10**9 else lat['n']}: {k}"
                               for a, b, k in zip(SLOW_BINS, SLOW_BINS[1:], lat["over_2ms_by_line"]))
            print(f"  lines over 2 ms by line range: {ranges}", flush=True)
            print(f"  ms, every 10th of the first 200 lines: {lat['ms_first_200']}", flush=True)
    return 0


def start_times(tree: str, info_file: str, repeat: int = 5) -> dict:
    env = dict(os.environ, PYTHONPATH=tree)
    cmds = {"python -c pass": ["-c", "pass"], "monitor --help": ["-m", "monitor", "--help"],
            "monitor info FILE": ["-m", "monitor", "info", info_file], "import torch": ["-c", "import torch"]}
    out = {}
    for name, args in cmds.items():
        walls = []
        for _ in range(repeat):
            start = time.perf_counter()
            r = subprocess.run([sys.executable, *args], env=env, cwd=tree, capture_output=True)
            walls.append(time.perf_counter() - start)
            if r.returncode != 0:
                raise SystemExit(f"{name} failed: {r.stderr.decode()}")
        out[name] = statistics.median(walls)
    return out


def _row(name: str, r: dict, extra: str = "") -> str:
    rss = f"{r['rss_mb']:>7.0f} MB" if "rss_mb" in r else " " * 10
    tree = f"{r['tree_mb']:>7.0f} MB" if "tree_mb" in r else " " * 10
    return f"{name:46} {r['rate']:>12,.0f} {r['cpu_rate']:>12,.0f} {rss} {tree}   {extra}"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5_000_000, help="readings in the generated file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--loop-n", type=int, default=500_000, help="readings for the in-loop comparison")
    ap.add_argument("--no-10m", dest="big", action="store_false", help="skip the 10M-reading memory run")
    ap.add_argument("--live-seconds", type=float, default=10.0)
    ap.add_argument("--live-rate", type=float, default=1000.0)
    ap.add_argument("--live-only", action="store_true", help="only the live stage (5), --repeat times, trees in turn")
    ap.add_argument("--repeat", type=int, default=1, help="with --live-only: A/B rounds")
    ap.add_argument("--baseline", help="another source tree of the monitor, run in the same benchmark")
    ap.add_argument("--dir", help="where to write the files (default: a temporary directory)")
    ap.add_argument("--river-child", nargs=2, metavar=("CSV", "OUT"), help=argparse.SUPPRESS)
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.river_child:
        river_child(*args.river_child)
        return 0
    trees = [("this tree", ROOT)] + ([("baseline", os.path.abspath(args.baseline))] if args.baseline else [])
    if args.live_only:
        return live_only(trees, args)

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        csv, out = os.path.join(tmp, "hr.csv"), os.path.join(tmp, "records")
        write_csv(csv, args.n, args.seed)
        import pandas as pd
        hr = pd.read_csv(csv)["hr"].to_numpy()
        loop_npy = os.path.join(tmp, "loop.npy")
        np.save(loop_npy, hr[:args.loop_n])
        info_file = os.path.join(tmp, "small.csv")
        write_csv(info_file, 1000, args.seed)
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} "
              f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f} at the start")
        print(f"file: {args.n:,} synthetic readings (seed {args.seed}), {os.path.getsize(csv) / 1e6:.1f} MB CSV\n")
        print(f"{'':46} {'readings/s':>12} {'per CPU s':>12} {'peak RSS':>10} {'all procs':>10}")
        whole = {}
        for label, tree in trees:
            for fmt in ("csv", "jsonl"):
                r = whole[label, fmt] = monitor_process(csv, out + "." + fmt, args.n, fmt, tree)
                print(_row(f"whole process, monitor ({label}), {fmt}", r,
                           f"{r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU ({r['main_cpu']:.1f} s main process), "
                           f"accuracy {r['accuracy']:.5f}"), flush=True)
        riv = river_process(csv, out + ".river.csv", args.n)
        print(_row("whole process, river StandardScaler|LogReg(Adam)", riv,
                   f"{riv['wall']:.1f} s wall, {riv['cpu']:.1f} s CPU, accuracy {riv['accuracy']:.5f}"), flush=True)
        loops = {label: monitor_loop(loop_npy, args.loop_n, tree) for label, tree in trees}
        for label, r in loops.items():
            print(_row(f"in the loop, Monitor.process ({label})", r,
                       f"{args.loop_n:,} readings, accuracy {r['accuracy']:.5f}"))
        rloop = river_loop(hr[:args.loop_n])
        print(_row("in the loop, river predict/learn_one", rloop,
                   f"{args.loop_n:,} readings, accuracy {rloop['accuracy']:.5f}"), flush=True)
        print()
        me = whole["this tree", "csv"]
        print(f"monitor / river, whole process, CSV: {me['rate'] / riv['rate']:.2f}x wall, "
              f"{me['cpu_rate'] / riv['cpu_rate']:.2f}x CPU (target >= 5x)")
        print(f"monitor / river, in the loop: {loops['this tree']['rate'] / rloop['rate']:.2f}x wall, "
              f"{loops['this tree']['cpu_rate'] / rloop['cpu_rate']:.2f}x CPU")
        if args.baseline:
            for fmt in ("csv", "jsonl"):
                a, b = whole["this tree", fmt], whole["baseline", fmt]
                print(f"this tree / baseline, whole process, {fmt}: {a['rate'] / b['rate']:.2f}x wall, "
                      f"{a['cpu_rate'] / b['cpu_rate']:.2f}x CPU")
        print(f"targets: CSV >= 1,000,000/s: {me['rate']:,.0f} wall ({me['cpu_rate']:,.0f} per CPU s); "
              f"JSON Lines >= 800,000/s: {whole['this tree', 'jsonl']['rate']:,.0f} wall "
              f"({whole['this tree', 'jsonl']['cpu_rate']:,.0f} per CPU s)")
        if args.big:
            print()
            one_m, ten_m = os.path.join(tmp, "1m.csv"), os.path.join(tmp, "10m.csv")
            write_csv(one_m, 1_000_000, args.seed)
            write_csv(ten_m, 10_000_000, args.seed)
            for label, tree in trees:
                one = monitor_process(one_m, out + ".csv", 1_000_000, "csv", tree)
                ten = monitor_process(ten_m, out + ".csv", 10_000_000, "csv", tree)
                print(f"peak RSS ({label}): 1,000,000 readings {one['rss_mb']:.0f} MB, 10,000,000 readings "
                      f"{ten['rss_mb']:.0f} MB ({ten['rate']:,.0f} readings/s, {ten['cpu_rate']:,.0f} per CPU s); "
                      f"all processes: {one['tree_mb']:.0f} MB, {ten['tree_mb']:.0f} MB", flush=True)
        print()
        for label, tree in trees:
            lat = live_latency(hr, tree, seconds=args.live_seconds, rate=args.live_rate)
            print(_live_line(label, lat, args.live_rate), flush=True)
        print()
        for label, tree in trees:
            st = start_times(tree, info_file)
            print(f"start-up ({label}), median of 5: " + ", ".join(f"{k} {v:.3f} s" for k, v in st.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
