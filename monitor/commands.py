"""The work behind each CLI command, kept out of cli.py so `monitor --help` imports nothing heavy."""

from __future__ import annotations

import json
import os
import stat
import sys
from contextlib import ExitStack
from typing import Callable, TextIO

CIRCLES_REQUIRED = 0.99  # accuracy over the second half of the circles stream, or the sanity check fails


def _configure_torch() -> None:
    """Tiny networks: one intra-op thread is fastest and avoids over-subscribing 2 cores."""
    import torch
    torch.set_num_threads(1)


def run_replay(*, error: Callable[[str], Exception], state=None, **options) -> int:
    """Replay one source; returns the exit status (0; 1 when the circles check fails; 130 on Ctrl-C,
    143 on SIGTERM). With ``state``, resumes from and writes checkpoints (see monitor.checkpoint),
    holding the exclusive lock on it for the whole run (see monitor.statelock). With ``dashboard``
    (a started monitor.dashboard.Dashboard), every scored batch is shown on it."""
    lock = _lock_state(state, error) if state else None
    try:
        return _run_replay(error=error, state=state, **options)
    finally:
        if lock is not None:
            lock.release()


def _run_replay(*, file, stream, n, column, time_column, label_column, threshold, seed, config, fmt, out,
                summary_json, speed, quiet, error: Callable[[str], Exception], key_column=None,
                key_model="shared", max_keys=None, patients=None, alert_after=None, alert_clear=None,
                alerts_path=None, alerts_only=False, rejects_path=None, strict=False,
                valid_range=(20.0, 300.0), state=None, checkpoint_every=10_000, learn=True,
                plot=None, format_in=None, max_line=None, max_gap=60.0, dashboard=None) -> int:
    from monitor.alerts import AlertSink, Span
    from monitor.checkpoint import Checkpoint, CheckpointError
    from monitor.checkpoint_check import check_replay_state
    from monitor.interrupts import Interrupts
    from monitor.keyed import KeyedMonitor
    from monitor.pacing import Pacer
    from monitor.replay import RejectReport, StrictStop, format_summary, replay
    from monitor.sinks import make_sink
    from monitor.sources import open_source
    from streams import SourceError

    if plot:
        _require_plotting(error)
    _check_paths(file, {"--out": out, "--rejects": rejects_path, "--alerts": alerts_path,
                        "--summary-json": summary_json, "--state": state, "--plot": plot}, error)
    if not out and sys.stdout is None:  # started with standard output closed (`>&-`)
        sys.stderr.write("Error: standard output is closed; give --out FILE for the records\n")
        return 1
    _configure_torch()
    note = (lambda msg: None) if quiet else (lambda msg: print(f"monitor: {msg}", file=sys.stderr))
    fmt = fmt or ("table" if out is None and sys.stdout.isatty() else "jsonl")
    alert_after = alert_after or Span(seconds=60.0)
    alert_clear = alert_clear or Span(seconds=120.0)
    ck = saved = None
    if state:
        model_opts = {k: v for k, v in config.to_dict().items() if k != "n_features"}
        options = {**model_opts, "threshold": threshold, "seed": seed, "source": file or stream,
                   "n": n, "column": column, "time_column": time_column, "label_column": label_column,
                   "range": None if valid_range is None else list(valid_range), "format": fmt, "out": out,
                   "rejects": rejects_path, "key_column": key_column, "key_model": key_model,
                   "max_keys": max_keys, "patients": patients, "alert_after": str(alert_after),
                   "alert_clear": str(alert_clear), "alerts": alerts_path, "alerts_only": alerts_only,
                   "max_line": max_line}
        ck = Checkpoint(state, options=options)
        try:
            saved = ck.load() if learn else ck.load(keys=tuple(sorted(model_opts)))
            if saved is not None:
                check_replay_state(saved, state, file_source=bool(file) and file != "-" and learn)
        except CheckpointError as e:
            raise error(str(e))
        if saved is None and not learn:
            raise error(f"no checkpoint at {state}: --no-learn with --state scores with a saved model")
    resume = saved if learn else None  # a frozen run scores a new stream from its start
    position = resume["position"] if resume else None
    try:
        choice = open_source(file, stream=stream, n=n, seed=seed, column=column, time_column=time_column,
                             label_column=label_column, key_column=key_column, on_note=note,
                             patients=patients, valid_range=valid_range,
                             max_lines=checkpoint_every if state else None,
                             resume=position if file != "-" else None, format_in=format_in,
                             max_line=max_line)
    except SourceError as e:
        raise error(str(e))
    if resume and hasattr(choice.source, "check_resume"):
        try:  # a file replaced since the checkpoint: refused before any output is touched
            choice.source.check_resume()
        except SourceError as e:
            raise error(str(e))
    late_from = (n or 10_000) // 2 if stream == "circles" else None
    mon = KeyedMonitor(config, threshold=threshold, seed=seed, late_from=late_from, learn=learn,
                       model=key_model, max_keys=max_keys, alert_after=alert_after, alert_clear=alert_clear,
                       trace=bool(plot))
    if learn:  # scores lag training by a fixed schedule; a live feed trains on a thread
        mon.train_behind(threaded=choice.live)
    source = choice.source
    if stream is None and not state and _progress_wanted(file, choice.live, quiet):
        # (not with --state: the bar feeds a batch in pieces, and a checkpoint needs whole batches)
        source = _with_progress(file, format_in, source, mon.inner)
    if saved is not None:
        try:
            mon.load_state_dict(saved["monitor"], model_only=not learn)
        except Exception as e:  # a field the checks above let through but the monitor cannot take
            raise error(f"checkpoint {state} does not fit this monitor: "
                        f"{(str(e).splitlines() or [type(e).__name__])[0]}")
    if resume:
        note(f"resuming from checkpoint {state}: {mon.n_scored} readings scored, "
             + ("standard input goes on with whatever arrives next" if file == "-"
                else f"going on at line {(position or {}).get('line', 1)}"))
    kept = resume["outputs"] if resume else {}
    try:
        with ExitStack() as stack:
            dest = _open_output(out, kept.get("out"), stack, error) if out else sys.stdout
            rej_file = _open_output(rejects_path, kept.get("rejects"), stack, error) if rejects_path else None
            alerts_file = _open_output(alerts_path, kept.get("alerts"), stack, error) if alerts_path else None
            colour = fmt == "table" and dest.isatty() and not os.environ.get("NO_COLOR")
            sink = make_sink(fmt, dest, colour=colour)
            if resume and out and kept.get("out") and hasattr(sink, "header_written"):
                sink.header_written = True  # the header is in the part of the file kept
            only = alerts_only and not out  # --alerts-only: stdout gets alert records, not readings
            sink = AlertSink(None if only else sink, alerts=alerts_file, echo=sys.stdout if alerts_only else None)
            report = RejectReport(None if quiet else sys.stderr, file=rej_file,
                                  count=resume["counts"]["rejected"] if resume else 0,
                                  unit=getattr(choice.source, "record_unit", "line"))
            if dashboard is not None:
                sink = _dashboard_tee(dashboard, sink, mon, report, {"source": choice.name, "seed": seed})

            def save(pos, counts) -> None:
                sink.flush()
                report.flush()
                offsets = {"out": _synced_size(dest) if out else None,
                           "rejects": _synced_size(rej_file) if rej_file else None,
                           "alerts": _synced_size(alerts_file) if alerts_file else None}
                ck.save({"monitor": mon.state_dict(), "position": pos, "outputs": offsets, "counts": counts})

            start = {"position": position, "header_lines": resume["counts"]["header_lines"]} if resume else None
            try:
                with Interrupts() as interrupts:
                    pacer = Pacer(speed=speed, sleep=interrupts.sleep, on_note=note, max_gap=max_gap)
                    summary = replay(source, mon, sink, live=choice.live, pacer=pacer,
                                     rejects=report, strict=strict, interrupts=interrupts, start=start,
                                     save=save if (ck is not None and learn) else None,
                                     checkpoint_every=checkpoint_every)
            except (SourceError, StrictStop) as e:
                raise error(str(e))
            except ValueError as e:
                if saved is None:
                    raise
                # e.g. a checkpoint of a keyed stream (2 inputs) given to an unkeyed file (1 input)
                raise error(f"checkpoint {state} does not fit this input: {str(e).splitlines()[0]}")
            except BrokenPipeError:
                _silence_stdout()
                return 0
    except OSError as e:  # no space left (ENOSPC), an I/O error: the outputs or the checkpoint cannot be written
        return _write_failed(e)
    summary["source"] = choice.name
    summary["seed"] = seed
    if state:
        summary["state"] = state
        if resume:
            summary["resumed_from_line"] = (position or {}).get("line")
    if summary_json:
        try:
            with open(summary_json, "w", encoding="utf-8") as fh:
                json.dump(summary, fh, indent=2)
                fh.write("\n")
        except OSError as e:  # (checked writable before the run: a disk that filled up since)
            e.filename = e.filename or summary_json
            return _write_failed(e)
    if dashboard is not None:
        dashboard.finish(summary)
    if not quiet:
        sys.stderr.write(format_summary(summary))
    if plot:
        _write_replay_plot(mon.inner, plot, threshold=None if label_column else threshold, title=choice.name, error=error)
        if not quiet:
            sys.stderr.write(f"monitor: wrote {plot}\n")
    if summary["interrupted"]:
        return 128 + summary.get("signal", 2)
    if stream == "circles":
        acc = summary.get("accuracy_second_half")
        if acc is None or acc < CIRCLES_REQUIRED:
            sys.stderr.write(f"monitor: circles sanity check failed: accuracy over the second half "
                             f"{acc if acc is None else round(acc, 4)} < {CIRCLES_REQUIRED}\n")
            return 1
        if not quiet:
            sys.stderr.write(f"monitor: circles sanity check passed: accuracy over the second half {acc:.4f}\n")
    return 0


def _lock_state(state, error):
    """Take the exclusive lock on --state for the whole run (one line and exit 2 when it is held)."""
    from monitor.statelock import StateBusy, StateLock, StateUnwritable
    lock = StateLock(state)
    try:
        lock.acquire()
    except (StateBusy, StateUnwritable) as e:
        raise error(str(e))
    lock.remove_stale_temps()
    return lock


def _dashboard_tee(dashboard, sink, mon, report, extra: dict):
    """The sink that also feeds the dashboard, with the run's summary as it goes."""
    import time
    from monitor.dashboard.live import live_summary
    started = time.perf_counter()
    return dashboard.tee(sink, lambda: live_summary(mon, rejected=report.count, started=started, extra=extra))


def _check_paths(file, outputs: dict, error) -> None:
    """Refuse, before any work, outputs that would overwrite the input or each other, or that
    cannot be created (a missing directory)."""
    given = {opt: p for opt, p in outputs.items() if p}
    real = {opt: os.path.realpath(p) for opt, p in given.items() if not _is_device(p)}
    if file and file != "-" and not str(file).startswith("redis://"):
        src = os.path.realpath(file)
        for opt, p in real.items():
            if p == src:
                raise error(f"{opt} {given[opt]} is the input file: it would be overwritten; write elsewhere")
    seen: dict[str, str] = {}
    for opt, p in real.items():
        if p in seen:
            raise error(f"{seen[p]} and {opt} are the same file ({given[opt]}); give each its own file")
        seen[p] = opt
        parent = os.path.dirname(p) or "."
        if not os.path.isdir(parent):
            raise error(f"cannot write {given[opt]} ({opt}): no directory {os.path.dirname(given[opt]) or '.'}")
        if opt != "--state":  # (--state: its lock file is the probe)
            _probe(given[opt], opt, error)


def _probe(path: str, opt: str, error) -> None:
    """Refuse, before any work, an output that cannot be opened for writing (it is not changed)."""
    existed = os.path.exists(path)
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as e:
        raise error(f"cannot write {path} ({opt}): {e.strerror}")
    if not existed:
        os.unlink(path)


def _is_device(path: str) -> bool:
    return os.path.exists(path) and not os.path.isfile(path)


def _require_plotting(error: Callable[[str], Exception]) -> None:
    from monitor.plots import PlotUnavailable, require_matplotlib
    try:
        require_matplotlib()
    except PlotUnavailable as e:
        raise error(str(e))


def _write_replay_plot(mon, path, *, threshold, title, error: Callable[[str], Exception]) -> None:
    from monitor.plots import plot_replay
    if not mon.trace.p:
        raise error(f"nothing to plot in {path}: --plot draws one unkeyed series, and this stream was keyed "
                    "(or empty); replay one patient's readings to plot them")
    try:
        plot_replay(mon.trace.arrays(), path, threshold=threshold, flag_at=mon.flag_at, title=title)
    except OSError as e:
        raise error(f"cannot write {path}: {e.strerror or e}")


def _open_output(path: str, keep: int | None, stack: ExitStack, error) -> TextIO:
    """Open --out or --rejects: new, or (resuming) cut back to the ``keep`` bytes a checkpoint covers.

    Records written after the last checkpoint are dropped here, and written again as the resumed
    run scores those readings again: none is lost, none is duplicated.
    """
    try:
        if keep is not None and os.path.exists(path) and not os.path.isfile(path):
            keep = None  # /dev/null or a pipe: nothing to cut back
        if keep is not None:
            size = os.path.getsize(path) if os.path.exists(path) else 0
            if size < keep:
                raise error(f"cannot resume: {path} has {size} bytes but the checkpoint covers {keep}; "
                            "it was changed since the checkpoint: give another --state to start afresh")
            os.truncate(path, keep)
        return stack.enter_context(open(path, "a" if keep is not None else "w", encoding="utf-8",
                                        newline="\n", buffering=1 << 20))
    except OSError as e:
        raise error(f"cannot write {path}: {e.strerror}")


def _synced_size(fh) -> int | None:
    """Bytes of a flushed output file, made durable (fsync) before a checkpoint says they exist.

    None for an output that is not a regular file (/dev/null, a pipe): it cannot be cut back on
    resume, so the checkpoint does not claim a size for it (like standard output).
    """
    if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
        return None
    os.fsync(fh.fileno())
    return os.fstat(fh.fileno()).st_size


def _write_failed(e: OSError) -> int:
    """One line for an output that could not be written, exit status 1; the last checkpoint stands."""
    _silence_stdout()  # what is still buffered for standard output cannot go anywhere either
    where = f" {e.filename}" if e.filename else " the output"
    sys.stderr.write(f"Error: cannot write{where}: {e.strerror or e}; stopped (a --state run resumes "
                     "from its last checkpoint)\n")
    return 1


def _silence_stdout() -> None:
    """After a closed pipe (`monitor replay big.csv | head`), point stdout at /dev/null so exit is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # no standard output at all
        pass


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
