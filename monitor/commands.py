"""The work behind each CLI command, kept out of cli.py so `monitor --help` imports nothing heavy."""

from __future__ import annotations

import json
import os
import sys
from contextlib import ExitStack
from typing import Callable

CIRCLES_REQUIRED = 0.99  # accuracy over the second half of the circles stream, or the sanity check fails


def _configure_torch() -> None:
    """Tiny networks: one intra-op thread is fastest and avoids over-subscribing 2 cores."""
    import torch
    torch.set_num_threads(1)


def run_replay(*, file, stream, n, column, time_column, label_column, threshold, seed, config, fmt, out,
               summary_json, speed, quiet, error: Callable[[str], Exception], format_in=None) -> int:
    """Replay one source; returns the exit status (0, 1 when the circles check fails, 130 on Ctrl-C)."""
    from monitor.pacing import Pacer
    from monitor.pipeline import Monitor
    from monitor.replay import RejectReport, format_summary, replay
    from monitor.sinks import make_sink
    from monitor.sources import open_source
    from streams import SourceError

    _configure_torch()
    note = (lambda msg: None) if quiet else (lambda msg: print(f"monitor: {msg}", file=sys.stderr))
    try:
        choice = open_source(file, stream=stream, n=n, seed=seed, column=column, time_column=time_column,
                             label_column=label_column, on_note=note, format_in=format_in)
    except SourceError as e:
        raise error(str(e))
    late_from = (n or 10_000) // 2 if stream == "circles" else None
    mon = Monitor(config, threshold=threshold, seed=seed, late_from=late_from)
    source = choice.source
    if stream is None and _progress_wanted(file, choice.live, quiet):
        source = _with_progress(file, format_in, source, mon)
    with ExitStack() as stack:
        if out:
            try:
                dest = stack.enter_context(open(out, "w", encoding="utf-8", newline="\n", buffering=1 << 20))
            except OSError as e:
                raise error(f"cannot write {out}: {e.strerror}")
        else:
            dest = sys.stdout
        fmt = fmt or ("table" if dest.isatty() else "jsonl")
        colour = fmt == "table" and dest.isatty() and not os.environ.get("NO_COLOR")
        sink = make_sink(fmt, dest, colour=colour)
        try:
            summary = replay(source, mon, sink, live=choice.live, pacer=Pacer(speed=speed),
                             rejects=RejectReport(None if quiet else sys.stderr,
                                                  unit=getattr(choice.source, "record_unit", "line")))
        except SourceError as e:
            raise error(str(e))
        except BrokenPipeError:
            _silence_stdout()
            return 0
    summary["source"] = choice.name
    summary["seed"] = seed
    if summary_json:
        with open(summary_json, "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2)
            fh.write("\n")
    if not quiet:
        sys.stderr.write(format_summary(summary))
    if summary["interrupted"]:
        return 130
    if stream == "circles":
        acc = summary.get("accuracy_second_half")
        if acc is None or acc < CIRCLES_REQUIRED:
            sys.stderr.write(f"monitor: circles sanity check failed: accuracy over the second half "
                             f"{acc if acc is None else round(acc, 4)} < {CIRCLES_REQUIRED}\n")
            return 1
        if not quiet:
            sys.stderr.write(f"monitor: circles sanity check passed: accuracy over the second half {acc:.4f}\n")
    return 0


def _silence_stdout() -> None:
    """After a closed pipe (`monitor replay big.csv | head`), point stdout at /dev/null so exit is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _progress_wanted(file, live: bool, quiet: bool) -> bool:
    from monitor.progress import wants_progress
    return wants_progress(path=file, live=live, quiet=quiet, stderr=sys.stderr)


def _with_progress(file, format_in, source, mon):
    """The source wrapped in a progress bar on stderr (see monitor.progress)."""
    from monitor.progress import estimate_records, with_progress
    from streams.formats import detect

    found = detect(file)
    total = estimate_records(file, format_in or found.format, found.gzip)
    return with_progress(source, mon, total=total, stream=sys.stderr)
