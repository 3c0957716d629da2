"""Shared network or one per key? Measure the key models on a simulated ward.

Run from the project root:

    python benchmarks/key_models.py [--patients 50] [--minutes 60] [--late 10] [--seed 0]

The stream is a ward of PATIENTS patients (streams.ward.Ward, seeded) followed, once it has run for
MINUTES, by LATE new patients (a second seeded ward, keys N000...) for another MINUTES: the new keys
arrive when the model has already learned from the others (cold start). For each key model it prints
prequential accuracy over all readings, over the first 30 readings of each late key, the true
episodes alerted (alert start and end within the alert delays of the truth), alerts opened on
patients without an episode, and readings/s. Nothing is tuned to this input: the models use the
default settings of `monitor replay`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.config import Span  # noqa: E402
from monitor.keyed.keyed_monitor import KEY_MODELS, KeyedMonitor  # noqa: E402
from streams import Batch  # noqa: E402
from streams.ward import Episode, Ward  # noqa: E402


def ward_with_late_patients(patients: int, minutes: float, late: int, seed: int):
    """Batches of the whole stream, and the true episodes (keys of late patients renamed N...)."""
    first = Ward(patients=patients, minutes=minutes, seed=seed)
    a, truth = first.arrays(), first.episodes()
    if late:
        second = Ward(patients=late, minutes=minutes, seed=seed + 1)
        b = second.arrays()
        shift = minutes * 60
        rename = np.vectorize(lambda k: "N" + k[1:], otypes=[object])
        a = {"time": np.r_[a["time"], b["time"] + shift], "key": np.r_[a["key"], rename(b["key"])],
             "hr": np.r_[a["hr"], b["hr"]]}
        truth += [Episode("N" + e.key[1:], e.start + shift, e.end + shift, e.level) for e in second.episodes()]
    n = len(a["hr"])
    batches = [Batch(time=a["time"][i:i + 1000], x=a["hr"][i:i + 1000].reshape(-1, 1),
                     y=np.full(len(a["hr"][i:i + 1000]), np.nan), line=np.arange(i + 1, i + 1 + len(a["hr"][i:i + 1000])),
                     key=a["key"][i:i + 1000]) for i in range(0, n, 1000)]
    return batches, truth, a


def match(alerts: list[dict], truth: list[Episode], after: float, clear: float) -> dict:
    """Episodes alerted with start within `after` s and end within `clear` s of the truth; false alerts."""
    closes = [e for e in alerts if e["event"] == "close"]
    opens = [e for e in alerts if e["event"] == "open"]
    hit = 0
    for ep in truth:
        ok = [e for e in closes if e["key"] == ep.key and abs(e["start"] - ep.start) <= after
              and abs(e["end"] - ep.end) <= clear]
        hit += bool(ok)
    true_keys = {ep.key for ep in truth}
    false_open = sum(1 for e in opens if e["key"] not in true_keys)
    spurious = sum(1 for e in opens if e["key"] in true_keys
                   and not any(ep.key == e["key"] and ep.start - after <= e["start"] <= ep.end for ep in truth))
    return {"episodes": len(truth), "alerted": hit, "false_alerts_no_episode": false_open,
            "false_alerts_outside_episodes": spurious}


def run(model: str, batches, truth, arrays, *, seed: int, after: Span, clear: Span) -> dict:
    mon = KeyedMonitor(seed=seed, model=model, alert_after=after, alert_clear=clear)
    alerts, parts = [], []
    start = time.perf_counter()
    for b in batches:
        s = mon.process(b)
        alerts += s.alerts
        parts.append((s.flag == (s.label > 0.5)))
    elapsed = time.perf_counter() - start
    correct = np.concatenate(parts)
    keys = arrays["key"][:len(correct)]
    late = np.array([k.startswith("N") for k in keys.tolist()])
    rank = np.zeros(len(keys), dtype=np.int64)  # how many readings of its key came before
    _, inv = np.unique(keys.astype(str), return_inverse=True)
    order = np.argsort(inv, kind="stable")
    first = np.r_[True, inv[order][1:] != inv[order][:-1]]
    starts = np.flatnonzero(first)
    rank[order] = np.arange(len(keys)) - starts[np.cumsum(first) - 1]
    cold = late & (rank < 30)
    out = {"model": model, "accuracy": round(float(correct.mean()), 4),
           "late_first30_accuracy": round(float(correct[cold].mean()), 4) if cold.any() else None,
           "readings_per_s": round(len(correct) / elapsed)}
    out.update(match(alerts, truth, after.seconds, clear.seconds))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=50)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--late", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--alert-after", default="1m")
    ap.add_argument("--alert-clear", default="2m")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    batches, truth, arrays = ward_with_late_patients(args.patients, args.minutes, args.late, args.seed)
    after, clear = Span.parse(args.alert_after), Span.parse(args.alert_clear)
    print(f"ward: {args.patients} patients + {args.late} late, {args.minutes:g} min each, seed {args.seed}, "
          f"{len(arrays['hr'])} readings, {len(truth)} true episodes; alert after {after}, clear {clear}")
    cols = ["model", "accuracy", "late_first30_accuracy", "alerted", "episodes", "false_alerts_no_episode",
            "false_alerts_outside_episodes", "readings_per_s"]
    print(" | ".join(cols))
    run("global", batches[:3], [], arrays, seed=args.seed, after=after, clear=clear)  # warm-up: imports
    for model in KEY_MODELS:
        r = run(model, batches, truth, arrays, seed=args.seed, after=after, clear=clear)
        print(" | ".join(str(r[c]) for c in cols), flush=True)


if __name__ == "__main__":
    main()
