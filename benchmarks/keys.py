"""Throughput with many keys against the single-key replay, in one run.

Run from the project root:

    python benchmarks/keys.py [--keys 1000] [--minutes 15] [--repeat 2] [--seed 0]

It writes a simulated ward (streams.ward.Ward: KEYS patients, MINUTES minutes, a reading every 5 s
per patient) twice into a temporary directory: as time,patient,hr (keyed) and as time,hr (the same
readings, one stream, no key). Each file goes through what `monitor replay FILE --out /dev/null` does
(CsvReplay -> KeyedMonitor with default settings -> JSON Lines sink), REPEAT times alternately; the
best time of each is kept. It prints readings/s of both and the ratio keyed time / single-key time (the issue
asks for at most 2).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.keyed.keyed_monitor import KeyedMonitor  # noqa: E402
from monitor.app.replay_loop import replay  # noqa: E402
from monitor.output.sinks import JsonlSink  # noqa: E402
from streams.replay import CsvReplay  # noqa: E402
from streams.ward import Ward  # noqa: E402


def one_run(path: Path, seed: int) -> tuple[float, dict]:
    with open(os.devnull, "w") as dev:
        start = time.perf_counter()
        summary = replay(CsvReplay(path), KeyedMonitor(seed=seed), JsonlSink(dev))
        return time.perf_counter() - start, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        keyed, single = Path(tmp, "keyed.csv"), Path(tmp, "single.csv")
        Ward(patients=args.keys, minutes=args.minutes, seed=args.seed).to_csv(keyed)
        with open(keyed) as src, open(single, "w") as dst:
            next(src)
            dst.write("time,hr\n")
            dst.writelines(f"{t},{hr}" for t, _, hr in (line.split(",") for line in src))
        best = {"single": float("inf"), "keyed": float("inf")}
        summaries = {}
        one_run(single, args.seed)  # warm-up: imports, first torch calls
        for _ in range(args.repeat):
            for name, path in (("single", single), ("keyed", keyed)):
                elapsed, summaries[name] = one_run(path, args.seed)
                best[name] = min(best[name], elapsed)
    n = summaries["single"]["readings"]
    assert summaries["keyed"]["readings"] == n
    print(f"ward: {args.keys} patients x {args.minutes:g} min = {n} readings, seed {args.seed}, "
          f"best of {args.repeat}")
    for name in ("single", "keyed"):
        s = summaries[name]
        extra = f", {s['keys_seen']} keys, {s['episodes']} alert episodes" if name == "keyed" else ""
        print(f"{name:>6}: {n / best[name]:>10,.0f} readings/s ({best[name]:.2f} s; accuracy "
              f"{s['accuracy']:.4f}{extra})")
    print(f"keyed time / single-key time: {best['keyed'] / best['single']:.2f}x")


if __name__ == "__main__":
    main()
