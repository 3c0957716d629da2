"""What --dashboard costs a file replay: the same command with and without it, side by side.

Run from the project root:

    python benchmarks/dashboard.py [--patients 200] [--minutes 120] [--repeat 3] [--client]

It writes a simulated ward (streams.ward.Ward, a reading every 5 s per patient) as a CSV into a
temporary directory, then runs, alternately, REPEAT times each:

    monitor replay ward.csv --out /dev/null -q
    monitor replay ward.csv --out /dev/null -q --dashboard 127.0.0.1:0 --no-dashboard-hold

as separate processes (start-up included: the dashboard imports aiohttp and starts a thread), and
prints the median CPU seconds (user + system, of the child) of each and their ratio, pair by pair.
With --client, a browser-like client reads /events during each dashboard run (it is this process,
so its own CPU is not counted).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.ward import Ward  # noqa: E402


def run(args: list[str], client: bool) -> float:
    """CPU seconds (user + system) of one `monitor` process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    before = os.times()
    proc = subprocess.Popen([sys.executable, "-m", "monitor", *args], stderr=subprocess.PIPE, env=env, text=True)
    if client:
        for line in proc.stderr:  # -q is not given with --client: the URL is said on stderr
            m = re.search(r"dashboard at (http://\S+)", line)
            if m:
                threading.Thread(target=_read_events, args=(m.group(1) + "events",), daemon=True).start()
                break
    err = proc.stderr.read()
    if proc.wait() != 0:
        sys.exit(f"monitor {' '.join(args)} failed:\n{err}")
    after = os.times()
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def _read_events(url: str) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            while r.readline():
                pass
    except OSError:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=120.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--client", action="store_true", help="read /events during the dashboard runs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "ward.csv")
        Ward(patients=args.patients, minutes=args.minutes, seed=args.seed).to_csv(path)
        n = sum(1 for _ in open(path)) - 1
        plain = ["replay", str(path), "--out", os.devnull] + ([] if args.client else ["-q"])
        dash = plain + ["--dashboard", "127.0.0.1:0", "--no-dashboard-hold"]
        run(plain, False)  # warm-up: file cache, bytecode
        pairs = []
        for _ in range(args.repeat):
            b = run(plain, False)
            a = run(dash, args.client)
            pairs.append((a, b))
    a_med = statistics.median(a for a, _ in pairs)
    b_med = statistics.median(b for _, b in pairs)
    ratio = statistics.median(a / b for a, b in pairs)
    print(f"ward: {args.patients} patients x {args.minutes:g} min = {n:,} readings, seed {args.seed}, "
          f"{args.repeat} pairs{', an /events client attached' if args.client else ''}")
    print(f"without --dashboard: {b_med:.2f} CPU s (median)")
    print(f"with    --dashboard: {a_med:.2f} CPU s (median)")
    print(f"with / without (median of the pairs): {ratio:.3f}")


if __name__ == "__main__":
    main()
