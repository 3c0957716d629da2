"""How fast the monitor learns from few readings (issue 5): one pass over each stream, seeds 0-4.

For each stream and seed, one single pass, test-then-train, with the default settings (or the
LearnerConfig fields given with --set), and prints per stream the min / median over the seeds of:

- accuracy: single-pass prequential accuracy (every reading scored before it is learned);
- 2nd half: accuracy over the second half of the stream;
- until 0.99: readings until accuracy over a sliding window of 100 first reaches 0.99
  ("never" when it does not);
- flagged: share of readings flagged abnormal (the resting series must stay at or below 1%).

Streams: the shipped MIT series (sample, 1,800 readings), the resting MIT series (950 readings, no
reading above 91), the synthetic heart-rate stream (5,000), circles (10,000), a slow drift (the
baseline climbs from 80 to 100 bpm over 20,000 readings) and a mostly-above-threshold series
(synthetic with its baseline at 100 bpm).

Regime-change streams (issue 13), each with the readings where the regime changes:

- regime: the two shipped MIT series spliced as rest (950) -> tachycardia (1,800) -> rest (950) ->
  tachycardia 6 bpm lower (1,800): 5,500 readings, changes at 950, 2750, 3700;
- offset: synthetic (6,000 readings) whose sensor reads 10 bpm higher from reading 3,000 on;
- threshold: synthetic (6,000) with a label column: above 91 bpm for the first half, above 95 after;
- patients: a new patient every 30 minutes (3,600 readings at 0.5 s), four patients with baselines
  88, 96, 80 and 93 bpm (synthetic, each its own noise).

For those, "recover" is, per change, the readings after the change until the accuracy over the last
100 readings is back at 0.99 once it fell below it (0 when it never fell; see
``readings_to_recover``); the table shows the worst over the seeds, change by change.

Run from the project root::

    python benchmarks/learning.py                      # defaults, seeds 0-4
    python benchmarks/learning.py --set warm_steps=1   # one lever changed
    python benchmarks/learning.py --per-seed           # every seed's row too
    python benchmarks/learning.py --streams regime,offset,threshold,patients
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from monitor.core.metrics import first_sustained  # noqa: E402
from monitor.core.monitor import Monitor  # noqa: E402

__all__ = ["STREAMS", "REGIMES", "readings_to_recover", "run_stream", "main"]


def _drift(seed: int, n: int = 20_000):
    """Baseline climbing linearly 80 -> 100 bpm, with AR(1) noise of 3 bpm (0.5 s apart)."""
    from streams import Batch
    from streams.synthetic import SyntheticHeartRate

    noise = SyntheticHeartRate(n=n, baseline=100.0, drift=0.0, noise=3.0, seed=seed).values() - 100.0
    hr = np.linspace(80.0, 100.0, n) + noise  # noise includes the synthetic stream's rare bursts
    return [Batch.of_values(hr[i:i + 1000], first_line=i + 1) for i in range(0, n, 1000)]


def _batches(hr: np.ndarray, y: np.ndarray | None = None, size: int = 1000):
    """Readings (n,) and optional labels (n,) as file-like batches of `size`."""
    from streams import Batch

    out = []
    for i in range(0, len(hr), size):
        b = Batch.of_values(hr[i:i + size], first_line=i + 1)
        if y is not None:
            b = Batch(time=b.time, x=b.x, y=np.asarray(y[i:i + size], dtype=np.float64), line=b.line)
        out.append(b)
    return out


def _regime(seed: int):
    """rest -> tachycardia -> rest -> tachycardia 6 bpm lower, from the two shipped MIT series."""
    from streams import Sample

    rest = np.concatenate([b.x[:, 0] for b in Sample(name="mit-hr-207")])
    tachy = np.concatenate([b.x[:, 0] for b in Sample()])
    parts = [rest, tachy, rest, tachy - 6.0]
    return _batches(np.concatenate(parts)), list(np.cumsum([len(p) for p in parts])[:-1])


def _offset(seed: int, n: int = 6000):
    """Synthetic heart rate whose sensor reads +10 bpm from the middle on."""
    from streams.synthetic import SyntheticHeartRate

    hr = SyntheticHeartRate(n=n, seed=seed).values()
    hr[n // 2:] += 10.0
    return _batches(hr), [n // 2]


def _threshold(seed: int, n: int = 6000):
    """Synthetic heart rate with a label column: > 91 bpm for the first half, > 95 bpm after."""
    from streams.synthetic import SyntheticHeartRate

    hr = SyntheticHeartRate(n=n, seed=seed).values()
    y = np.where(np.arange(n) < n // 2, hr > 91.0, hr > 95.0).astype(np.float64)
    return _batches(hr, y), [n // 2]


def _patients(seed: int, n: int = 3600, baselines=(88.0, 96.0, 80.0, 93.0)):
    """A new patient every 30 minutes (3,600 readings 0.5 s apart), each with its own baseline."""
    from streams.synthetic import SyntheticHeartRate

    hr = np.concatenate([SyntheticHeartRate(n=n, baseline=b, seed=100 * seed + k).values()
                         for k, b in enumerate(baselines)])
    return _batches(hr), [n * k for k in range(1, len(baselines))]


REGIMES = {"regime": _regime, "offset": _offset, "threshold": _threshold, "patients": _patients}


def readings_to_recover(correct: np.ndarray, change: int, end: int, *, window: int = 100,
                        level: float = 0.99) -> int | None:
    """Readings after `change` until the accuracy over the last `window` is back at `level`.

    The window slides over the whole stream (it holds readings from before the change at first).
    Returns 0 when it does not fall below `level` within `window` readings of the change (a later
    fall is not the change's doing), else the readings from the change until it first holds
    `level` again after that fall; None when that does not happen before `end` (the next change
    or the end of the stream).

    >>> correct = np.ones(400, dtype=bool)
    >>> readings_to_recover(correct, 200, 400)
    0
    >>> correct[200:210] = False   # ten mistakes right after the change
    >>> readings_to_recover(correct, 200, 400)
    109
    >>> print(readings_to_recover(correct, 200, 250))
    None
    """
    c = np.concatenate([[0], np.cumsum(np.asarray(correct, dtype=np.int64))])
    t = np.arange(max(change + 1, window), end + 1)  # readings consumed
    ok = (c[t] - c[t - window]) >= level * window - 1e-9
    low = np.flatnonzero(~ok)
    if low.size == 0 or t[low[0]] > change + window:
        return 0
    back = np.flatnonzero(ok[low[0]:])
    return None if back.size == 0 else int(t[low[0] + back[0]] - change)


def _source(name: str, seed: int):
    from streams import Circles, Sample, SyntheticHeartRate

    if name == "sample":
        return Sample()
    if name == "resting":
        return Sample(name="mit-hr-207")
    if name == "synthetic":
        return SyntheticHeartRate(n=5_000, seed=seed)
    if name == "circles":
        return Circles(n=10_000, seed=seed)
    if name == "drift":
        return _drift(seed)
    if name == "above":
        return SyntheticHeartRate(n=5_000, baseline=100.0, seed=seed)
    raise ValueError(name)


STREAMS = ("sample", "resting", "synthetic", "circles", "drift", "above") + tuple(REGIMES)


def run_stream(name: str, seed: int, config=None) -> dict:
    """One single pass of a stream through a fresh Monitor; the figures of one table row."""
    import torch

    torch.set_num_threads(1)
    mon = Monitor(config, seed=seed, trace=True)
    batches, changes = REGIMES[name](seed) if name in REGIMES else (_source(name, seed), [])
    start = time.perf_counter()
    for batch in batches:
        mon.process(batch)
    elapsed = time.perf_counter() - start
    tr = mon.trace.arrays()
    correct = (tr["p"] > 0.5) == (tr["label"] > 0.5)
    half = len(correct) // 2
    ends = list(changes[1:]) + [len(correct)]
    return {"recover": [readings_to_recover(correct, c, e) for c, e in zip(changes, ends)],
            "accuracy": float(correct.mean()), "second_half": float(correct[half:].mean()),
            "until_99": first_sustained(correct, window=100, level=0.99),
            "flagged": float((tr["p"] > 0.5).mean()), "readings": len(correct),
            "steps": mon.learner.n_steps_, "seconds": elapsed}


def _parse_sets(items):
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        for cast in (int, float):
            try:
                out[key] = cast(value)
                break
            except ValueError:
                pass
        else:
            out[key] = {"true": True, "false": False}.get(value.lower(), value)
    return out


def _fmt_until(v):
    return "never" if v is None else str(v)


def _recover_cell(rows) -> str:
    """'  recover a,b,c': per change, the worst readings-to-recover over the seeds."""
    if not rows[0]["recover"]:
        return ""
    worst = []
    for per_change in zip(*(r["recover"] for r in rows)):
        worst.append("never" if None in per_change else str(max(per_change)))
    return "  recover " + ",".join(worst)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0-4", help="a range like 0-4, or a list like 0,3")
    ap.add_argument("--streams", default=",".join(STREAMS))
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a LearnerConfig field (repeatable)")
    ap.add_argument("--per-seed", action="store_true", help="print every seed's row too")
    args = ap.parse_args(argv)
    if "-" in args.seeds:
        lo, hi = map(int, args.seeds.split("-"))
        seeds = list(range(lo, hi + 1))
    else:
        seeds = [int(s) for s in args.seeds.split(",")]
    from models.learner import LearnerConfig

    config = LearnerConfig(**_parse_sets(args.set))
    changed = {k: v for k, v in config.to_dict().items() if v != getattr(LearnerConfig(), k)}
    print(f"config: {'defaults' if not changed else changed}; seeds {seeds[0]}-{seeds[-1]} ({len(seeds)})")
    print(f"{'stream':<10} {'readings':>8}  {'accuracy min/med':>17}  {'2nd half min/med':>17}  "
          f"{'until 0.99 max/med':>19}  {'flagged max':>11}  {'steps':>6}  {'s/run':>6}  recover max")
    for name in args.streams.split(","):
        rows = [run_stream(name, s, config) for s in seeds]
        if args.per_seed:
            for s, r in zip(seeds, rows):
                print(f"  seed {s}: accuracy {r['accuracy']:.4f}  2nd half {r['second_half']:.4f}  "
                      f"until 0.99 {_fmt_until(r['until_99'])}  flagged {r['flagged']:.4f}"
                      + (f"  recover {','.join(map(_fmt_until, r['recover']))}" if r["recover"] else ""))
        acc = [r["accuracy"] for r in rows]
        late = [r["second_half"] for r in rows]
        until = [r["until_99"] for r in rows]
        known = sorted(u for u in until if u is not None)
        worst = "never" if None in until else str(max(known))
        med = (_fmt_until(sorted(until, key=lambda u: float("inf") if u is None else u)[len(until) // 2]))
        print(f"{name:<10} {rows[0]['readings']:>8}  {min(acc):>8.4f}/{statistics.median(acc):.4f}  "
              f"{min(late):>8.4f}/{statistics.median(late):.4f}  {worst:>10}/{med:<8}  "
              f"{max(r['flagged'] for r in rows):>11.4f}  {rows[0]['steps']:>6}  "
              f"{statistics.median(r['seconds'] for r in rows):>6.2f}" + _recover_cell(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
