"""The work behind `monitor replay FILE`, kept out of the CLI so `monitor --help` imports nothing heavy.

`run_replay(config)` runs one replay, in steps: check the paths, resume from a checkpoint, open the
source, build the monitor, open the outputs, run, finish (summary, plot, exit status). Errors are
raised as monitor.errors.MonitorError (usage or input, exit 2) or RuntimeFailure (exit 1).
"""

from __future__ import annotations

import json
import os
import stat
import sys
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import TextIO

from monitor.config import ReplayConfig, checkpoint_options, model_keys
from monitor.errors import MonitorError, RuntimeFailure

__all__ = ["run_replay", "configure_torch", "lock_state", "CIRCLES_REQUIRED"]

LIVE_SWITCH = 0.00025  # s: the interpreter's thread switch interval on a live feed (see _build_monitor)
CIRCLES_REQUIRED = 0.99  # accuracy over the second half of the circles stream, or the sanity check fails


def configure_torch() -> None:
    """Tiny networks: one intra-op thread is fastest and avoids over-subscribing 2 cores."""
    import torch
    torch.set_num_threads(1)


_configure_torch = configure_torch  # (the names monitor.cli.distributed and monitor.cli.dashboard import)


def run_replay(run: ReplayConfig, *, dashboard=None) -> int:
    """Replay one source; returns the exit status (0; 1 when the circles check fails; 130 on Ctrl-C,
    143 on SIGTERM). With ``run.state``, resumes from and writes checkpoints (see monitor.state.checkpoint),
    holding the exclusive lock on it for the whole run (see monitor.state.state_lock). With ``dashboard``
    (a started monitor.dashboard.Dashboard), every scored batch is shown on it."""
    lock = lock_state(run.state) if run.state else None
    try:
        return _Replay(run, dashboard).execute()
    finally:
        if lock is not None:
            lock.release()


@dataclass
class _Outputs:
    """The open outputs of a run: records destination, rejects and alerts files, the sink, the report."""

    dest: TextIO
    rejects: TextIO | None
    alerts: TextIO | None
    sink: object
    report: object


class _Replay:
    """One `monitor replay`: each step a method, the state they share as attributes."""

    def __init__(self, run: ReplayConfig, dashboard=None) -> None:
        self.run = run
        self.dashboard = dashboard
        quiet = run.output.quiet
        self.note = (lambda msg: None) if quiet else (lambda msg: print(f"monitor: {msg}", file=sys.stderr))
        self.ck = self.saved = self.resume = self.position = None
        self.reader = None  # a SourceProcess: the file parsed by a child process
        self.plain_file = False  # a regular file without --state (_plain_file), decided once in execute

    def execute(self) -> int:
        run = self.run
        self._check()
        from monitor.app.interrupts import held_until_done
        try:
            with held_until_done():  # Ctrl-C during the imports of torch, numpy, pandas takes effect after them
                self.plain_file = _plain_file(run)  # a file's reader process parses while torch is imported
                if not self.plain_file:  # (live input and the rest: torch first, as before issue 15's reader)
                    configure_torch()
                self.fmt = run.output.fmt or ("table" if run.output.out is None and sys.stdout.isatty() else "jsonl")
                self._load_checkpoint()
                self._open_source()
                if self.plain_file:
                    configure_torch()
                self._build_monitor()
            summary = self._run_loop()
        except OSError as e:  # no space left (ENOSPC), an I/O error: the outputs or the checkpoint cannot be written
            raise _write_failed(e)
        finally:
            if self.reader is not None:
                self.reader.close()
        if summary is None:  # standard output closed by its reader (`| head`)
            return 0
        return self._finish(summary)

    # ------------------------------------------------------------------ steps

    def _check(self) -> None:
        """Refuse, before any work: no plotting library, outputs that cannot be written, no stdout."""
        run, out = self.run, self.run.output
        if out.plot:
            _require_plotting()
        _check_paths(run.source.file, {"--out": out.out, "--rejects": out.rejects, "--alerts": out.alerts,
                                       "--summary-json": out.summary_json, "--state": run.state,
                                       "--plot": out.plot})
        if not out.out and sys.stdout is None:  # started with standard output closed (`>&-`)
            raise RuntimeFailure("standard output is closed; give --out FILE for the records")

    def _load_checkpoint(self) -> None:
        """With --state: the saved checkpoint (checked), or None; a frozen run needs one."""
        from monitor.state.checkpoint import Checkpoint, CheckpointError
        from monitor.state.checkpoint_check import check_replay_state

        run, learn = self.run, self.run.monitor.learn
        if not run.state:
            return
        self.ck = Checkpoint(run.state, options=checkpoint_options(run, fmt=self.fmt))
        try:
            self.saved = self.ck.load() if learn else self.ck.load(keys=model_keys(run.monitor))
            if self.saved is not None:
                check_replay_state(self.saved, run.state, file_source=run.source.is_file and learn)
        except CheckpointError as e:
            raise MonitorError(str(e))
        if self.saved is None and not learn:
            raise MonitorError(f"no checkpoint at {run.state}: --no-learn with --state scores with a saved model")
        self.resume = self.saved if learn else None  # a frozen run scores a new stream from its start
        self.position = self.resume["position"] if self.resume else None

    def _open_source(self) -> None:
        from monitor.app.source_process import NoteRelay, SourceProcess
        from monitor.app.sources import open_source
        from streams import SourceError

        run = self.run
        notes = NoteRelay(self.note)
        try:
            self.choice = open_source(run.source, seed=run.monitor.seed, on_note=notes,
                                      max_lines=run.checkpoint_every if run.state else None,
                                      resume=self.position if run.source.file != "-" else None)
            if self.resume and hasattr(self.choice.source, "check_resume"):
                self.choice.source.check_resume()  # a file replaced since the checkpoint: refused before any output
        except SourceError as e:
            raise MonitorError(str(e))
        src = run.source
        self.progress = src.stream is None and not run.state and _progress_wanted(src.file, self.choice.live,
                                                                                 run.output.quiet)
        if self.plain_file and not self.choice.live and not self.progress:  # from its start, no bar
            self.reader = SourceProcess(self.choice.source, notes=notes)
            self.choice = replace(self.choice, source=self.reader)

    def _build_monitor(self) -> None:
        from monitor.keyed.keyed_monitor import KeyedMonitor

        run, src = self.run, self.run.source
        late_from = (src.n or 10_000) // 2 if src.stream == "circles" else None
        self.mon = KeyedMonitor.from_config(run.monitor, late_from=late_from, trace=bool(run.output.plot))
        if run.monitor.learn:  # scores lag training by a fixed schedule (issue 15); a live feed trains on a thread
            self.mon.train_behind(threaded=self.choice.live)
            if self.choice.live:  # a line arriving while the training thread runs Python waits for the GIL
                sys.setswitchinterval(LIVE_SWITCH)  # at most this long (the default is 5 ms)
        self.source = self.choice.source
        if self.progress:
            # (not with --state: the bar feeds a batch in pieces, and a checkpoint needs whole batches)
            self.source = _with_progress(src.file, src.format_in, self.source, self.mon.inner)
        if self.saved is not None:
            try:
                self.mon.load_state_dict(self.saved["monitor"], model_only=not run.monitor.learn)
            except Exception as e:  # a field the checks above let through but the monitor cannot take
                raise MonitorError(f"checkpoint {run.state} does not fit this monitor: "
                                   f"{(str(e).splitlines() or [type(e).__name__])[0]}")
        if self.resume:
            self.note(f"resuming from checkpoint {run.state}: {self.mon.n_scored} readings scored, "
                      + ("standard input goes on with whatever arrives next" if src.file == "-"
                         else f"going on at line {(self.position or {}).get('line', 1)}"))

    def _open_outputs(self, stack: ExitStack) -> _Outputs:
        """Records, rejects and alerts files (cut back to a checkpoint's sizes when resuming), the sink."""
        from monitor.keyed.alerts import AlertSink
        from monitor.app.replay_loop import RejectReport
        from monitor.output.sink_process import SinkProcess, wanted
        from monitor.output.sinks import make_sink

        out, kept = self.run.output, (self.resume["outputs"] if self.resume else {})
        dest = _open_output(out.out, kept.get("out"), stack) if out.out else sys.stdout
        rejects = _open_output(out.rejects, kept.get("rejects"), stack) if out.rejects else None
        alerts = _open_output(out.alerts, kept.get("alerts"), stack) if out.alerts else None
        colour = self.fmt == "table" and dest.isatty() and not os.environ.get("NO_COLOR")
        sink = make_sink(self.fmt, dest, colour=colour)
        if out.out and not (self.run.state or self.run.speed or self.dashboard) and wanted(dest, live=self.choice.live):
            sink = SinkProcess(self.fmt, dest)  # records formatted and written on the other core (issue 15)
            stack.callback(sink.close)  # (before dest closes: the writing is waited for, a failure raised)
        if self.resume and out.out and kept.get("out") and hasattr(sink, "header_written"):
            sink.header_written = True  # the header is in the part of the file kept
        only = out.alerts_only and not out.out  # --alerts-only: stdout gets alert records, not readings
        sink = AlertSink(None if only else sink, alerts=alerts, echo=sys.stdout if out.alerts_only else None)
        report = RejectReport(None if out.quiet else sys.stderr, file=rejects,
                              count=self.resume["counts"]["rejected"] if self.resume else 0,
                              unit=getattr(self.choice.source, "record_unit", "line"))
        if self.dashboard is not None:
            sink = _dashboard_tee(self.dashboard, sink, self.mon, report, self._about())
        return _Outputs(dest=dest, rejects=rejects, alerts=alerts, sink=sink, report=report)

    def _checkpointing(self, outs: _Outputs):
        """How the loop saves checkpoints (None without --state, or with --no-learn)."""
        from monitor.app.replay_loop import Checkpointing

        if self.ck is None or not self.run.monitor.learn:
            return None

        def save(pos, counts) -> None:
            outs.sink.flush()
            outs.report.flush()
            offsets = {"out": _synced_size(outs.dest) if self.run.output.out else None,
                       "rejects": _synced_size(outs.rejects) if outs.rejects else None,
                       "alerts": _synced_size(outs.alerts) if outs.alerts else None}
            self.ck.save({"monitor": self.mon.state_dict(), "position": pos, "outputs": offsets, "counts": counts})

        start = {"position": self.position, "header_lines": self.resume["counts"]["header_lines"]} \
            if self.resume else None
        return Checkpointing(save=save, every=self.run.checkpoint_every, start=start)

    def _run_loop(self) -> dict | None:
        """The replay itself; its summary, or None when standard output was closed by its reader."""
        from monitor.app.interrupts import Interrupts
        from monitor.app.pacing import Pacer
        from monitor.app.replay_loop import StrictStop, replay
        from streams import SourceError

        run = self.run
        with ExitStack() as stack:
            outs = self._open_outputs(stack)
            try:
                with Interrupts() as interrupts:
                    pacer = Pacer(speed=run.speed, sleep=interrupts.sleep, on_note=self.note, max_gap=run.max_gap)
                    return replay(self.source, self.mon, outs.sink, live=self.choice.live, pacer=pacer,
                                  rejects=outs.report, strict=run.strict, interrupts=interrupts,
                                  checkpointing=self._checkpointing(outs))
            except (SourceError, StrictStop) as e:
                raise MonitorError(str(e))
            except ValueError as e:
                if self.saved is None:
                    raise
                # e.g. a checkpoint of a keyed stream (2 inputs) given to an unkeyed file (1 input)
                raise MonitorError(f"checkpoint {run.state} does not fit this input: {str(e).splitlines()[0]}")
            except BrokenPipeError:
                _silence_stdout()
                return None

    def _about(self) -> dict:
        """The run's identity in its summary: source, seed, and the checkpoint it used."""
        about = {"source": self.choice.name, "seed": self.run.monitor.seed}
        if self.run.state:
            about["state"] = self.run.state
            if self.resume:
                about["resumed_from_line"] = (self.position or {}).get("line")
        return about

    def _finish(self, loop_summary: dict) -> int:
        """Summary (file, dashboard, stderr), plot, and the exit status."""
        from monitor.app.summary import format_summary

        run, out = self.run, self.run.output
        summary = {**loop_summary, **self._about()}
        if out.summary_json:
            try:
                with open(out.summary_json, "w", encoding="utf-8") as fh:
                    json.dump(summary, fh, indent=2)
                    fh.write("\n")
            except OSError as e:  # (checked writable before the run: a disk that filled up since)
                e.filename = e.filename or out.summary_json
                raise _write_failed(e)
        if self.dashboard is not None:
            self.dashboard.finish(summary)
        if not out.quiet:
            sys.stderr.write(format_summary(summary))
        if out.plot:
            threshold = None if run.source.label_column else run.monitor.threshold
            _write_replay_plot(self.mon.inner, out.plot, threshold=threshold, title=self.choice.name)
            if not out.quiet:
                sys.stderr.write(f"monitor: wrote {out.plot}\n")
        if summary["interrupted"]:
            return 128 + summary.get("signal", 2)
        return _circles_check(summary, quiet=out.quiet) if run.source.stream == "circles" else 0


def _plain_file(run: ReplayConfig) -> bool:
    """A regular file replayed without --state, on a system that can fork: its source may be read by
    a monitor.app.source_process.SourceProcess."""
    src = run.source
    return (src.stream is None and bool(src.file) and src.file != "-" and not run.state
            and hasattr(os, "fork") and os.path.isfile(src.file))


def _circles_check(summary: dict, *, quiet: bool) -> int:
    """The sanity check of --stream circles: 1 unless it learned (accuracy over the second half)."""
    acc = summary.get("accuracy_second_half")
    if acc is None or acc < CIRCLES_REQUIRED:
        sys.stderr.write(f"monitor: circles sanity check failed: accuracy over the second half "
                         f"{acc if acc is None else round(acc, 4)} < {CIRCLES_REQUIRED}\n")
        return 1
    if not quiet:
        sys.stderr.write(f"monitor: circles sanity check passed: accuracy over the second half {acc:.4f}\n")
    return 0


def lock_state(state, error=None):
    """Take the exclusive lock on --state for the whole run (MonitorError, exit 2, when it is held).

    (``error``: the exception type to raise instead, for callers not yet on MonitorError.)"""
    from monitor.state.state_lock import StateBusy, StateLock, StateUnwritable
    lock = StateLock(state)
    try:
        lock.acquire()
    except (StateBusy, StateUnwritable) as e:
        raise (error or MonitorError)(str(e))
    lock.remove_stale_temps()
    return lock


def _dashboard_tee(dashboard, sink, mon, report, extra: dict):
    """The sink that also feeds the dashboard, with the run's summary as it goes."""
    import time
    from monitor.app.summary import live_summary
    started = time.perf_counter()
    return dashboard.tee(sink, lambda: live_summary(mon, rejected=report.count, started=started, extra=extra))


def _check_paths(file, outputs: dict) -> None:
    """Refuse, before any work, outputs that would overwrite the input or each other, or that
    cannot be created (a missing directory)."""
    given = {opt: p for opt, p in outputs.items() if p}
    real = {opt: os.path.realpath(p) for opt, p in given.items() if not _is_device(p)}
    if file and file != "-" and not str(file).startswith("redis://"):
        src = os.path.realpath(file)
        for opt, p in real.items():
            if p == src:
                raise MonitorError(f"{opt} {given[opt]} is the input file: it would be overwritten; write elsewhere")
    seen: dict[str, str] = {}
    for opt, p in real.items():
        if p in seen:
            raise MonitorError(f"{seen[p]} and {opt} are the same file ({given[opt]}); give each its own file")
        seen[p] = opt
        parent = os.path.dirname(p) or "."
        if not os.path.isdir(parent):
            raise MonitorError(f"cannot write {given[opt]} ({opt}): no directory {os.path.dirname(given[opt]) or '.'}")
        if opt != "--state":  # (--state: its lock file is the probe)
            _probe(given[opt], opt)


def _probe(path: str, opt: str) -> None:
    """Refuse, before any work, an output that cannot be opened for writing (it is not changed)."""
    existed = os.path.exists(path)
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as e:
        raise MonitorError(f"cannot write {path} ({opt}): {e.strerror}")
    if not existed:
        os.unlink(path)


def _is_device(path: str) -> bool:
    return os.path.exists(path) and not os.path.isfile(path)


def _require_plotting() -> None:
    from monitor.output.plots import PlotUnavailable, require_matplotlib
    try:
        require_matplotlib()
    except PlotUnavailable as e:
        raise MonitorError(str(e))


def _write_replay_plot(mon, path, *, threshold, title) -> None:
    from monitor.output.plots import plot_replay
    if not mon.trace.p:
        raise MonitorError(f"nothing to plot in {path}: --plot draws one unkeyed series, and this stream was keyed "
                    "(or empty); replay one patient's readings to plot them")
    try:
        plot_replay(mon.trace.arrays(), path, threshold=threshold, flag_at=mon.flag_at, title=title)
    except OSError as e:
        raise MonitorError(f"cannot write {path}: {e.strerror or e}")


def _open_output(path: str, keep: int | None, stack: ExitStack) -> TextIO:
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
                raise MonitorError(f"cannot resume: {path} has {size} bytes but the checkpoint covers {keep}; "
                            "it was changed since the checkpoint: give another --state to start afresh")
            os.truncate(path, keep)
        return stack.enter_context(open(path, "a" if keep is not None else "w", encoding="utf-8",
                                        newline="\n", buffering=1 << 20))
    except OSError as e:
        raise MonitorError(f"cannot write {path}: {e.strerror}")


def _synced_size(fh) -> int | None:
    """Bytes of a flushed output file, made durable (fsync) before a checkpoint says they exist.

    None for an output that is not a regular file (/dev/null, a pipe): it cannot be cut back on
    resume, so the checkpoint does not claim a size for it (like standard output).
    """
    if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
        return None
    os.fsync(fh.fileno())
    return os.fstat(fh.fileno()).st_size


def _write_failed(e: OSError) -> RuntimeFailure:
    """The error for an output that could not be written (exit status 1); the last checkpoint stands."""
    _silence_stdout()  # what is still buffered for standard output cannot go anywhere either
    where = f" {e.filename}" if e.filename else " the output"
    return RuntimeFailure(f"cannot write{where}: {e.strerror or e}; stopped (a --state run resumes "
                          "from its last checkpoint)")


def _silence_stdout() -> None:
    """After a closed pipe (`monitor replay big.csv | head`), point stdout at /dev/null so exit is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # no standard output at all
        pass


def _progress_wanted(file, live: bool, quiet: bool) -> bool:
    from monitor.app.progress import wants_progress
    return wants_progress(path=file, live=live, quiet=quiet, stderr=sys.stderr)


def _with_progress(file, format_in, source, mon):
    """The source wrapped in a progress bar on stderr (see monitor.app.progress)."""
    from monitor.app.progress import estimate_records, with_progress
    from streams.formats import detect

    found = detect(file)
    total = estimate_records(file, format_in or found.format, found.gzip)
    return with_progress(source, mon, total=total, stream=sys.stderr)


_lock_state = lock_state
