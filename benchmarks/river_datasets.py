"""OnlineMLPClassifier beside river's LogisticRegression on river's own datasets.

Both models sit behind ``preprocessing.StandardScaler()`` and are scored with
``river.evaluate.progressive_val_score`` (test-then-train, every sample), on Phishing (1,250
samples, 9 features) and Bananas (5,300 samples, 2 features), which ship inside the river package
(no download). Prints accuracy and wall time per model and dataset, and ``x_lr``: the time per
sample over LogisticRegression's on the same dataset in the same run (LogisticRegression is
deterministic and fast, so it is timed 3 times and its best time used: the ratio errs against
us); ``x_lr_cpu`` is the same ratio of CPU time (``time.process_time``, one thread), which a machine
shared with other jobs disturbs less than wall time. --seeds runs ours once per seed.

    python benchmarks/river_datasets.py
    python benchmarks/river_datasets.py --seeds 0 1 2 3 4 --json results.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(dataset_name: str, model_name: str, seed: int) -> dict:
    from river import datasets, evaluate, linear_model, metrics, preprocessing

    from models import OnlineMLPClassifier

    data = {"Phishing": datasets.Phishing, "Bananas": datasets.Bananas}[dataset_name]()
    if model_name == "OnlineMLPClassifier":
        clf = OnlineMLPClassifier(seed=seed)
    else:
        clf = linear_model.LogisticRegression()
    model = preprocessing.StandardScaler() | clf
    n_true = sum(bool(y) for _, y in data)
    start, cpu = time.perf_counter(), time.process_time()
    acc = evaluate.progressive_val_score(data, model, metrics.Accuracy())
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    n = data.n_samples
    return {"dataset": dataset_name, "model": model_name, "seed": seed, "accuracy": acc.get(),
            "majority_class": max(n_true, n - n_true) / n, "seconds": elapsed, "cpu_seconds": cpu,
            "samples_per_s": n / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    import torch
    torch.set_num_threads(1)
    rows = []
    for ds in ("Phishing", "Bananas"):
        lrs = [run(ds, "LogisticRegression", 0) for _ in range(3)]
        lr = min(lrs, key=lambda r: r["seconds"])
        lr_cpu = min(r["cpu_seconds"] for r in lrs)
        ours = [run(ds, "OnlineMLPClassifier", s) for s in args.seeds]
        for r in [lr, *ours]:
            r["x_lr"] = r["seconds"] / lr["seconds"]
            r["x_lr_cpu"] = r["cpu_seconds"] / lr_cpu
        rows += [lr, *ours]
    print(f"{'dataset':9} {'model':20} {'seed':>4} {'accuracy':>8} {'majority':>8} {'seconds':>8} {'samples/s':>9} "
          f"{'x_lr':>5} {'x_lr_cpu':>8}")
    for r in rows:
        print(f"{r['dataset']:9} {r['model']:20} {r['seed']:>4} {r['accuracy']:8.4f} {r['majority_class']:8.4f} "
              f"{r['seconds']:8.2f} {r['samples_per_s']:9.0f} {r['x_lr']:5.1f} {r['x_lr_cpu']:8.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
