"""Peak memory and time of `monitor` on hostile inputs: /dev/zero, gzip bombs, an endless Fitbit string,
an Apple Health export with its records inside a wrapper element.

Run from the project root (Linux, needs /usr/bin/time):

    python benchmarks/limits.py [--dir /tmp/monitor-limits] [--gb 1] [--fitbit-mb 100] [--apple 2000000]

Each case runs `python -m monitor ...` under `/usr/bin/time -v` and prints one row: the command, its
exit status, its wall time, its maximum resident set size and the last line of its stderr. The inputs
are written into --dir first (the gzip bombs are compressed on the fly: a minute per GB here).
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_inputs(d: str, gb: float, fitbit_mb: int, apple: int) -> dict:
    os.makedirs(d, exist_ok=True)
    paths = {k: os.path.join(d, n) for k, n in (("zeros", "zeros.csv.gz"), ("line", "line.csv.gz"),
                                                 ("fitbit", "string.json"), ("apple", "wrapped.xml"))}
    block = 1 << 24
    if not os.path.exists(paths["zeros"]):
        with gzip.open(paths["zeros"], "wb", compresslevel=9) as f:
            for _ in range(int(gb * (1 << 30) / block)):
                f.write(bytes(block))
    if not os.path.exists(paths["line"]):  # a header, a reading, then one line of `gb` GB of digits
        with gzip.open(paths["line"], "wb", compresslevel=9) as f:
            f.write(b"hr\n80\n")
            for _ in range(int(gb * (1 << 30) / block)):
                f.write(b"9" * block)
            f.write(b"\n81\n")
    if not os.path.exists(paths["fitbit"]):
        with open(paths["fitbit"], "wb") as f:
            f.write(b'[{"dateTime": "04/01/24 00:00:05", "value": {"bpm": 62, "confidence": 2}}, {"dateTime": "')
            for _ in range(fitbit_mb):
                f.write(b"x" * (1 << 20))
    if not os.path.exists(paths["apple"]):
        rec = ('<Record type="HKQuantityTypeIdentifierHeartRate" unit="count/min" '
               'startDate="2024-04-01 08:{:02d}:{:02d} +0000" value="{}"/>\n')
        with open(paths["apple"], "w") as f:
            f.write('<?xml version="1.0"?>\n<HealthData><Wrapper>\n')
            for start in range(0, apple, 10_000):
                f.write("".join(rec.format(i // 60 % 60, i % 60, 60 + i % 40)
                                for i in range(start, min(apple, start + 10_000))))
            f.write("</Wrapper></HealthData>\n")
    return paths


def measure(args: list[str], stdin=None) -> tuple[int, float, float, str]:
    """(exit status, wall seconds, max RSS in MB, last stderr line) of `python -m monitor ARGS`."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "monitor", *args], stdin=stdin,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, timeout=3600)
    wall = time.perf_counter() - t0
    err = p.stderr.decode(errors="replace")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) / 1024
    mine = [ln for ln in err.splitlines() if ln and not ln.startswith("\t") and "Command exited" not in ln]
    return p.returncode, wall, rss, (mine[-1] if mine else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="/tmp/monitor-limits")
    ap.add_argument("--gb", type=float, default=1.0, help="size of each gzip bomb, decompressed")
    ap.add_argument("--fitbit-mb", type=int, default=100)
    ap.add_argument("--apple", type=int, default=2_000_000, help="heart-rate records in the wrapped export")
    a = ap.parse_args()
    p = make_inputs(a.dir, a.gb, a.fitbit_mb, a.apple)
    cases = [
        (["replay", "/dev/zero"], None),
        (["replay", "-"], "/dev/zero"),
        (["info", "/dev/zero"], None),
        (["replay", p["zeros"]], None),
        (["info", p["zeros"]], None),
        (["replay", p["line"], "-q", "--out", os.devnull], None),
        (["info", p["line"]], None),
        (["replay", p["fitbit"], "--out", os.devnull], None),
        (["replay", p["apple"], "-q", "--out", os.devnull], None),
    ]
    print(f"{'command':<58} {'exit':>4} {'wall s':>7} {'max RSS MB':>10}  last stderr line")
    for args, stdin in cases:
        fh = open(stdin, "rb") if stdin else None
        try:
            code, wall, rss, last = measure(args, fh)
        finally:
            if fh:
                fh.close()
        cmd = "monitor " + " ".join(args) + (f" < {stdin}" if stdin else "")
        print(f"{cmd[:58]:<58} {code:>4} {wall:>7.1f} {rss:>10.0f}  {last[:110]}", flush=True)


if __name__ == "__main__":
    main()
