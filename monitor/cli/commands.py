"""The `monitor` command. Commands parse options, call one function, print; heavy imports happen inside."""

from __future__ import annotations

import json
import os
import sys

import click

from monitor import __version__
from monitor.cli.dashboard import dashboard as dashboard_command
from monitor.cli.distributed import publish, replay_redis, serve
from monitor.config import MonitorConfig, OutputSpec, ReplayConfig, SourceSpec
from monitor.cli.options import (CONTEXT, FORMATS_IN, MonitorError, dashboard_option, key_options, learner_config,
                             model_options, open_dashboard, range_options, redis_wait_options, span, valid_range)

__all__ = ["main", "MonitorError"]


class _Group(click.Group):
    """click's group, with the application's errors (monitor.errors) turned into one line and their exit
    status (2 usage or input, 1 runtime failure), and Ctrl-C before a command installs its own handling
    (during the imports of torch and pandas) exiting 130 as a signal should, not 1 with "Aborted!"."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            sys.stderr.write("monitor: interrupted\n")
            sys.exit(130)
        except MonitorError as e:  # the application's error, turned into one line and its exit status here
            failure = click.ClickException(e.message)
            failure.exit_code = e.exit_code
            raise failure from None


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="monitor", message="%(prog)s %(version)s")
def main() -> None:
    """Flag abnormal heart-rate readings with a network that learns from the stream as it runs.

    \b
    Examples:
      monitor replay --stream sample                 the shipped MIT heart-rate series
      monitor replay hr.csv --out flags.jsonl        a CSV, a Fitbit JSON or an Apple Health export
      monitor info export.xml.gz                     what would be read, without running the model
      tail -f hr.log | monitor replay -              a live feed, each flag as it happens

    Shell completion (bash): eval "$(_MONITOR_COMPLETE=bash_source monitor)"
    """


@main.command(context_settings=CONTEXT)
@click.argument("file", required=False)
@click.option("--stream", type=click.Choice(["sample", "circles", "synthetic", "ward"]),
              help="A built-in stream instead of FILE: the shipped MIT sample, circles, synthetic heart rate, "
                   "or a simulated ward of many patients.")
@click.option("--n", "n", type=click.IntRange(1),
              help="Length of a circles or synthetic stream (readings), or of a ward (minutes).")
@click.option("--column", help="Column holding the heart rate (default: picked by name, or the only numeric one).")
@click.option("--time-column", help="Column holding the time (seconds or ISO 8601).")
@click.option("--label-column", help="Column with the data's own 0/1 labels, used instead of --threshold.")
@click.option("--format-in", type=click.Choice(FORMATS_IN),
              help="Input format of FILE [default: detected from its first bytes; gzip always detected].")
@model_options
@key_options
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "table"]),
              help="Record format [default: table on a terminal, else jsonl].")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="Write records to this file.")
@click.option("--summary-json", type=click.Path(dir_okay=False, writable=True),
              help="Write the summary as one JSON object to this file.")
@click.option("--speed", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="0: as fast as possible; 1: real time by the time column; 10: ten times faster.")
@click.option("--max-gap", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="With --speed: the longest wait between two readings, in seconds "
                   "(a longer gap is cut, with a note).")
@click.option("--plot", type=click.Path(dir_okay=False, writable=True),
              help="Write a PNG: the series, threshold and flags; loss and running accuracy below (needs matplotlib).")
@click.option("-q", "--quiet", is_flag=True, help="No notes or summary on stderr.")
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False, writable=True),
              help="Write each rejected line to this file as JSON Lines: line, raw (truncated), reason.")
@click.option("--strict", is_flag=True, help="Stop at the first bad line: one-line message, exit status 2.")
@range_options("rejected (files and standard input)")
@click.option("--max-line-bytes", "max_line", type=click.IntRange(1), default=1 << 20, show_default=True,
              help="A longer line (or JSON/XML record) is a counted reject, never held in memory.")
@click.option("--state", type=click.Path(dir_okay=False),
              help="Checkpoint file: resume from it if it exists, write it as the run goes and at exit.")
@click.option("--checkpoint-every", type=click.IntRange(1), default=10_000, show_default=True,
              help="With --state: write a checkpoint every this many readings.")
@click.option("--learn/--no-learn", default=True, show_default=True,
              help="--no-learn: score with the model as it is (with --state, the saved one), learn nothing.")
@click.option("--until-idle", is_flag=True,
              help="redis:// input: stop once the stream is drained (else wait for more readings).")
@redis_wait_options
@dashboard_option
def replay(file, stream, n, column, time_column, label_column, format_in, threshold, seed, hidden, lr, batch_size,
           normalise, batchnorm, loss, key_column, key_model, max_keys, patients, alert_after, alert_clear,
           alerts_path, alerts_only, fmt, out, summary_json, speed, max_gap, plot, quiet, rejects_path, strict,
           min_bpm, max_bpm, no_range_check, max_line, state, checkpoint_every, learn, until_idle, wait, retry_for,
           dashboard, dashboard_hold) -> None:
    """Replay FILE (CSV, Fitbit JSON, Apple Health XML, WFDB, FHIR, TCX, FIT, gzipped or not; - for standard input).

    One record per reading. A progress bar shows on stderr when a file is replayed and stderr is a
    terminal (not with --quiet).

    \b
    Examples:
      monitor replay --stream sample            the shipped MIT heart-rate series
      monitor replay hr.csv --out flags.jsonl   a file, records to a file
      monitor replay heart_rate-2024-04-01.json a Fitbit export (detected)
      monitor replay export.xml.gz              an Apple Health export, gzipped
      monitor replay mimic/p000020n.hea         a WFDB record (its HR signal)
      monitor replay observations.ndjson --alerts-only   FHIR: alerts per patient
      cat obs.ndjson | monitor replay - --format-in fhir  FHIR NDJSON live, one resource a line
      monitor replay data.txt --format-in csv   no detection
      tail -f hr.log | monitor replay -         a live feed, each flag as it happens
      monitor replay --stream circles           the sanity check: must learn circles
      monitor replay --stream ward --alerts-only   alerts on a simulated ward of 50 patients
      monitor replay hr.csv --out f.jsonl --state s.pt   resumable: rerun after a crash to go on
      monitor replay redis://127.0.0.1:6379/ward --until-idle   a Redis stream (see monitor publish)
    """
    if file is None and stream is None:
        if sys.stdin.isatty():
            raise click.UsageError("give a FILE, - for standard input, or --stream sample|circles|synthetic")
        file = "-"
    if file is not None and stream is not None:
        raise click.UsageError(f"give either FILE ({file}) or --stream {stream}, not both")
    _refuse_options_that_do_not_apply(click.get_current_context(), file, stream)
    if state and out and os.path.abspath(state) == os.path.abspath(out):
        raise click.UsageError("--state and --out must be different files")
    run = ReplayConfig(
        source=SourceSpec(file=file, stream=stream, n=n, patients=patients, format_in=format_in, column=column,
                          time_column=time_column, label_column=label_column, key_column=key_column,
                          valid_range=valid_range(min_bpm, max_bpm, no_range_check), max_line=max_line),
        monitor=MonitorConfig(learner=learner_config(hidden, lr, batch_size, normalise, batchnorm, loss),
                              threshold=threshold, seed=seed, learn=learn, key_model=key_model, max_keys=max_keys,
                              alert_after=span(alert_after, "--alert-after"),
                              alert_clear=span(alert_clear, "--alert-clear")),
        output=OutputSpec(fmt=fmt, out=out, alerts=alerts_path, alerts_only=alerts_only, rejects=rejects_path,
                          summary_json=summary_json, plot=plot, quiet=quiet),
        state=state, checkpoint_every=checkpoint_every, strict=strict, speed=speed, max_gap=max_gap)
    if run.source.is_redis:
        from monitor.distributed.config import EngineSpec
        engine = EngineSpec(engine="local", wait=wait, retry_for=retry_for, until_idle=until_idle)
        _replay_redis(run, engine, dashboard=dashboard, dashboard_hold=dashboard_hold)
    sys.exit(_replay_file(run, dashboard=dashboard, dashboard_hold=dashboard_hold))


# Options of `replay` that only some inputs use: given for another input, they are refused (one line, exit 2).
_REDIS_ONLY = ("until_idle", "wait", "retry_for")
_NOT_FOR_REDIS = ("n", "column", "time_column", "label_column", "format_in", "key_column", "patients", "fmt",
                  "speed", "max_gap", "plot", "rejects_path", "strict", "min_bpm", "max_bpm", "no_range_check",
                  "max_line", "learn")
_GENERATED = {"n": ("circles", "synthetic", "ward"), "patients": ("ward",)}


def _refuse_options_that_do_not_apply(ctx: click.Context, file: str | None, stream: str | None) -> None:
    """A MonitorError naming the first option given on the command line that this input does not use."""
    from click.core import ParameterSource

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)

    def flag(name: str) -> str:
        param = next(p for p in ctx.command.params if p.name == name)
        if getattr(param, "secondary_opts", None) and ctx.params[name] is False:
            return param.secondary_opts[0]
        return max(param.opts, key=len)

    redis = file is not None and file.startswith("redis://")
    for name in _NOT_FOR_REDIS if redis else _REDIS_ONLY:
        if given(name):
            if redis:
                raise MonitorError(f"{flag(name)} does not apply to a redis:// input (it reads readings, keys "
                                   "and labels as published)")
            raise MonitorError(f"{flag(name)} is for a redis:// input, not a file, standard input or a built-in stream")
    for name, streams in _GENERATED.items():
        if not redis and given(name) and stream not in streams:
            raise MonitorError(f"{flag(name)} applies to --stream {' or '.join(streams)} only")


def _replay_redis(run: ReplayConfig, engine, *, dashboard: str | None, dashboard_hold: bool) -> None:
    """`monitor replay redis://...`: one consumer in this process (monitor.distributed; exits)."""
    from monitor.distributed.config import ServeConfig, ServeOutputs
    mon, out = run.monitor, run.output
    config = ServeConfig(learner=mon.learner, threshold=mon.threshold, seed=mon.seed, key_model=mon.key_model,
                         max_keys=mon.max_keys, alert_after=mon.alert_after, alert_clear=mon.alert_clear,
                         checkpoint_every=run.checkpoint_every)
    outputs = ServeOutputs(out=out.out, alerts=out.alerts, alerts_only=out.alerts_only,
                           summary_json=out.summary_json, quiet=out.quiet)
    replay_redis(run.source.file, config, engine, outputs, state=run.state, dashboard=dashboard, hold=dashboard_hold)


def _replay_file(run: ReplayConfig, *, dashboard: str | None, dashboard_hold: bool) -> int:
    """`monitor replay FILE` (or -, or --stream), with its dashboard if asked: the exit status."""
    from monitor.app.replay_run import run_replay
    dash = open_dashboard(dashboard, source=run.source.name, quiet=run.output.quiet) if dashboard else None
    try:
        code = run_replay(run, dashboard=dash)
        if dash is not None and dashboard_hold and code not in (130, 143):
            code = dash.hold()  # the page stays up after a finite stream, until Ctrl-C or SIGTERM
    finally:
        if dash is not None:
            dash.__exit__(None, None, None)
    return code


@main.command(context_settings=CONTEXT)
@click.argument("file", required=False)
@click.option("--column", help="Column holding the heart rate (default: picked by name, or the only numeric one).")
@click.option("--passes", type=click.IntRange(1), default=3, show_default=True,
              help="Times the heart-rate series is replayed (the learner warms up over its first 2,000 readings).")
@click.option("--threshold", type=float, default=91.0, show_default=True,
              help="A reading strictly above this many bpm is labelled abnormal.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for weights, sampling and circles.")
@click.option("--loss", type=click.Choice(["bce-logits", "sigmoid-bce"]), default="bce-logits",
              show_default=True, help="BCEWithLogitsLoss, or a sigmoid output with BCELoss.")
@click.option("--plain", is_flag=True,
              help="Plain training instead of the learner's defaults: one step per mini-batch of 32, no replay, no warm-up.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="A text table, or a JSON list of rows (null where a level was never held).")
@click.option("--plot", type=click.Path(dir_okay=False, writable=True),
              help="Write a PNG of the training-loss curves, one panel per stream (needs matplotlib).")
@click.option("-q", "--quiet", is_flag=True, help="No progress notes on stderr.")
def ablate(file, column, passes, threshold, seed, loss, plain, fmt, plot, quiet) -> None:
    """Show why input normalisation matters: five input treatments on heart rate and on circles.

    Runs the monitor, test-then-train, over a heart-rate series (FILE, or the shipped sample) replayed
    --passes times, and over as many circles readings, with each input treatment: none, running
    (running mean/std normalisation), batchnorm (plain BatchNorm1d on the input), stream-batchnorm
    (BatchRenorm1d on the raw input), running+stream-batchnorm (both: the default). One row per
    stream and treatment: final_loss (mean training loss of the last 50 steps), accuracy
    (prequential, over the last pass, or as many final circles readings), readings_to_95 and
    readings_to_99 (readings until accuracy over the last 200 readings first held that level).

    \b
    Examples:
      monitor ablate                          the shipped sample, 3 passes
      monitor ablate --plot ablate.png        and the loss curves as a picture
      monitor ablate hr.csv --format json     your own series, rows as JSON
      monitor ablate --plain                  textbook training: no replay, no warm-up
    """
    from monitor.lab.ablate import run_ablate
    sys.exit(run_ablate(file=file, column=column, passes=passes, seed=seed, threshold=threshold, loss=loss,
                        plain=plain, fmt=fmt, plot=plot, quiet=quiet))


@main.command(context_settings=CONTEXT)
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format-in", type=click.Choice(FORMATS_IN),
              help="Input format of FILE [default: detected from its first bytes].")
@click.option("--column", help="Column holding the heart rate (CSV), or the signal (WFDB).")
@click.option("--time-column", help="Column holding the time (CSV).")
@click.option("--label-column", help="Column with the data's own 0/1 labels (CSV).")
@click.option("--threshold", type=float, default=91.0, show_default=True,
              help="Report the share of readings strictly above this many bpm.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the report.")
@range_options("counted as rejected, as by replay", accept="Count")
@click.option("--max-line-bytes", "max_line", type=click.IntRange(1), default=1 << 20, show_default=True,
              help="A longer line (or record) is counted as rejected, as by replay.")
def info(file, format_in, column, time_column, label_column, threshold, as_json, min_bpm, max_bpm,
         no_range_check, max_line) -> None:
    """Say what the monitor would read from FILE, without running the model.

    Format, columns chosen, readings and rejected records, time span, mean, spread, and the share
    of readings above the threshold.

    \b
    Examples:
      monitor info hr.csv
      monitor info heart_rate-2024-04-01.json --json
      monitor info export.xml.gz --threshold 100
      monitor info record.hea --column PULSE
    """
    from monitor.app.describe_input import describe, format_info
    from streams import SourceError

    try:
        d = describe(file, format_in=format_in, column=column, time_column=time_column,
                     label_column=label_column, threshold=threshold, max_line=max_line,
                     valid_range=valid_range(min_bpm, max_bpm, no_range_check))
    except SourceError as e:
        raise MonitorError(str(e))
    click.echo(json.dumps(d) if as_json else format_info(d), nl=as_json)


main.add_command(publish)  # the commands of monitor.cli.distributed and monitor.cli.dashboard, which do not import
main.add_command(serve)  # this module (their shared helpers are in monitor.cli.options)
main.add_command(dashboard_command)


if __name__ == "__main__":  # pragma: no cover
    main()

