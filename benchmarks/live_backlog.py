"""Can training keep up with a live feed? The warm-up's step costs replayed against arrival times.

Learns the first N readings of the benchmark's stream (the lines ``benchmarks/replay.py``'s live stage
sends: its 5M-reading synthetic series, seed 0, two decimals) with the monitor's learner (a
mini-batch's steps in one TorchScript call, `models.scripted_steps`; ``--compare`` also times the
Python step loop), timing each piece of training (CPU of this thread), then replays those costs against lines arriving at ``--rate`` per second: a training thread
with ``share`` of a core works through the mini-batches in order, and reading i is scored (taking
``--per-line`` ms) once every step whose model scores it under the lag schedule
(`monitor.core.background_learner.Lag`, with its training clock ``--steps``) has finished. Prints, per
clock setting and core share, the latency p50 / p99 / max and the lines over 2 ms. A model of the
live path (no GIL, no other processes), to tell what the schedule allows from what the machine does.

Run from the project root::

    python benchmarks/live_backlog.py
    python benchmarks/live_backlog.py --n 10000 --steps 0,0.5,1,2 --shares 1,0.7,0.5
    python benchmarks/live_backlog.py --compare --steps 0 # the Python step loop too, A/B in this run
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def step_costs(n: int, seed: int = 0, *, scripted: bool = True) -> np.ndarray:
    """(pieces, 3): readings learned after each piece, optimiser steps in it, CPU seconds it took.

    ``scripted=False``: the mini-batch's steps in the Python loop (``ManualStepLearner._manual_step``
    one call per step) instead of one TorchScript call (`models.scripted_steps`); same bits."""
    import torch

    from models.learner import LearnerConfig
    from models.manual_step import ManualStepLearner
    from monitor.core.labels import DEFAULT_THRESHOLD, label
    from streams.synthetic import SyntheticHeartRate

    torch.set_num_threads(1)
    hr = SyntheticHeartRate(n=5_000_000, seed=seed).values()[:n]  # replay.py's file (its series depends on n)
    x = np.array([float(f"{v:.2f}") for v in hr]).reshape(-1, 1)  # the lines its live stage sends, as parsed
    y = label(x, np.full(n, np.nan), threshold=DEFAULT_THRESHOLD)
    ln = ManualStepLearner(LearnerConfig(), seed=seed)
    if not scripted:
        ln._scripted = None
    rows, i = [], 0
    while i < n:
        k = min(ln.room(x[i:], y[i:]), n - i)
        before, start = ln.n_steps_ + ln.n_skipped_, time.thread_time()
        ln.learn_many(x[i:i + k], y[i:i + k])
        i += k
        rows.append((i, ln.n_steps_ + ln.n_skipped_ - before, time.thread_time() - start))
    return np.array(rows)


def replay_costs(rows: np.ndarray, lag, *, share: float, rate: float, per_line: float) -> np.ndarray:
    """(n - 1,) ms from each line's arrival (reading 1 on) to its record, under schedule `lag`."""
    gap, t, clock, starts, done = 1.0 / rate, 0.0, 0.0, [], []
    for e, k, cpu in rows:
        e = int(e)
        t = max(t, (e - 1) * gap) + cpu / share  # a step starts once its last reading has come
        clock = max(clock, e) + k * lag.step
        starts.append(lag.start(e, clock))
        done.append(t)
    starts, done = np.array(starts), np.maximum.accumulate(np.array(done))
    n = int(rows[-1, 0])
    lat, free = np.zeros(n), 0.0
    for i in range(1, n):
        j = int(np.searchsorted(starts, i, side="right"))  # the steps whose models score reading i or earlier
        arrive = (i - 1) * gap
        free = max(arrive, done[j - 1] if j else 0.0, free) + per_line
        lat[i] = free - arrive
    return lat[1:] * 1e3


def main(argv=None) -> int:
    from monitor.core.background_learner import Lag

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="readings (the benchmark's live stage: 10,000)")
    ap.add_argument("--rate", type=float, default=1000.0, help="lines per second")
    ap.add_argument("--per-line", type=float, default=0.3, help="ms of scoring and writing per line")
    ap.add_argument("--steps", default="0,0.25,0.5,1,2", help="Lag.step values (readings per optimiser step)")
    ap.add_argument("--shares", default="1,0.7,0.5", help="shares of a core the training thread gets")
    ap.add_argument("--compare", action="store_true",
                    help="also the Python step loop (before models.scripted_steps), timed in turn in this run")
    args = ap.parse_args(argv)
    kinds = [("scripted", True)] + ([("python", False)] if args.compare else [])
    runs = {}
    for _ in range(2 if args.compare else 1):  # A/B twice: the load moves
        for name, scripted in kinds:
            rows = step_costs(args.n, scripted=scripted)
            runs.setdefault(name, []).append(rows)
            print(f"{name} steps: {args.n:,} readings, {int(rows[:, 1].sum()):,} optimiser steps, "
                  f"{rows[:, 2].sum() * 1e3:.0f} ms of training CPU ({rows[:, 2].sum() / max(1, rows[:, 1].sum()) * 1e3:.3f}"
                  f" ms a step, all in); first 256 readings {rows[rows[:, 0] <= 256, 2].sum() * 1e3:.0f} ms, "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
    for name, _ in kinds:
        rows = min(runs[name], key=lambda r: r[:, 2].sum())  # the run the load disturbed least
        for step in map(float, args.steps.split(",")):
            for share in map(float, args.shares.split(",")):
                lat = replay_costs(rows, Lag(step=step), share=share, rate=args.rate, per_line=args.per_line / 1e3)
                print(f"{name:8} Lag.step {step:<5g} core share {share:<4g} p50 {np.percentile(lat, 50):8.2f} ms  p99 "
                      f"{np.percentile(lat, 99):8.2f} ms  max {lat.max():8.1f} ms  {int((lat > 2).sum()):5d} lines over 2 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
