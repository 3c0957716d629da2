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

Run from the project root::

    python benchmarks/learning.py                      # defaults, seeds 0-4
    python benchmarks/learning.py --set warm_steps=1   # one lever changed
    python benchmarks/learning.py --per-seed           # every seed's row too
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from monitor.metrics import first_sustained  # noqa: E402
from monitor.pipeline import Monitor  # noqa: E402

__all__ = ["STREAMS", "run_stream", "main"]


def _drift(seed: int, n: int = 20_000):
    """Baseline climbing linearly 80 -> 100 bpm, with AR(1) noise of 3 bpm (0.5 s apart)."""
    from streams import Batch
    from streams.synthetic import SyntheticHeartRate

    noise = SyntheticHeartRate(n=n, baseline=100.0, drift=0.0, noise=3.0, seed=seed).values() - 100.0
    hr = np.linspace(80.0, 100.0, n) + noise  # noise includes the synthetic stream's rare bursts
    return [Batch.of_values(hr[i:i + 1000], first_line=i + 1) for i in range(0, n, 1000)]


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


STREAMS = ("sample", "resting", "synthetic", "circles", "drift", "above")


def run_stream(name: str, seed: int, config=None) -> dict:
    """One single pass of a stream through a fresh Monitor; the figures of one table row."""
    import torch

    torch.set_num_threads(1)
    mon = Monitor(config, seed=seed, trace=True)
    start = time.perf_counter()
    for batch in _source(name, seed):
        mon.process(batch)
    elapsed = time.perf_counter() - start
    tr = mon.trace.arrays()
    correct = (tr["p"] > 0.5) == (tr["label"] > 0.5)
    half = len(correct) // 2
    return {"accuracy": float(correct.mean()), "second_half": float(correct[half:].mean()),
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
          f"{'until 0.99 max/med':>19}  {'flagged max':>11}  {'steps':>6}  {'s/run':>6}")
    for name in args.streams.split(","):
        rows = [run_stream(name, s, config) for s in seeds]
        if args.per_seed:
            for s, r in zip(seeds, rows):
                print(f"  seed {s}: accuracy {r['accuracy']:.4f}  2nd half {r['second_half']:.4f}  "
                      f"until 0.99 {_fmt_until(r['until_99'])}  flagged {r['flagged']:.4f}")
        acc = [r["accuracy"] for r in rows]
        late = [r["second_half"] for r in rows]
        until = [r["until_99"] for r in rows]
        known = sorted(u for u in until if u is not None)
        worst = "never" if None in until else str(max(known))
        med = (_fmt_until(sorted(until, key=lambda u: float("inf") if u is None else u)[len(until) // 2]))
        print(f"{name:<10} {rows[0]['readings']:>8}  {min(acc):>8.4f}/{statistics.median(acc):.4f}  "
              f"{min(late):>8.4f}/{statistics.median(late):.4f}  {worst:>10}/{med:<8}  "
              f"{max(r['flagged'] for r in rows):>11.4f}  {rows[0]['steps']:>6}  "
              f"{statistics.median(r['seconds'] for r in rows):>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
