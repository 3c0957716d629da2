"""The `monitor` command. Commands parse options, call one function, print; heavy imports happen inside."""

from __future__ import annotations

import json
import os
import sys

import click

from monitor import __version__

FORMATS_IN = ("csv", "fitbit", "apple-health")  # streams.formats.FORMATS, without importing it
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class MonitorError(click.ClickException):
    """A user error: one line on stderr, exit status 2."""

    exit_code = 2


@click.group(context_settings=CONTEXT)
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


def _model_options(f):
    opts = [
        click.option("--threshold", type=float, default=91.0, show_default=True,
                     help="A reading strictly above this many bpm is labelled abnormal."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seed for weights and sampling: the same input and seed give identical output."),
        click.option("--hidden", type=click.IntRange(1), default=16, show_default=True, help="Hidden layer width."),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.05, show_default=True,
                     help="Adam learning rate."),
        click.option("--batch-size", type=click.IntRange(4), default=256, show_default=True,
                     help="Largest mini-batch (the first ones are smaller and grow to this)."),
        click.option("--normalise/--no-normalise", default=True, show_default=True,
                     help="Running mean/std normalisation of the inputs."),
        click.option("--batchnorm/--no-batchnorm", default=True, show_default=True,
                     help="BatchNorm1d as the network's first layer."),
        click.option("--loss", type=click.Choice(["bce-logits", "sigmoid-bce"]), default="bce-logits",
                     show_default=True, help="BCEWithLogitsLoss, or a sigmoid output with BCELoss."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def learner_config(hidden: int, lr: float, batch_size: int, normalise: bool, batchnorm: bool, loss: str):
    from models.learner import LearnerConfig
    return LearnerConfig(hidden=hidden, lr=lr, batch_size=batch_size, normalise=normalise,
                         batchnorm=batchnorm, loss=loss)


@main.command(context_settings=CONTEXT)
@click.argument("file", required=False)
@click.option("--stream", type=click.Choice(["sample", "circles", "synthetic"]),
              help="A built-in stream instead of FILE: the shipped MIT sample, circles, or synthetic heart rate.")
@click.option("--n", "n", type=click.IntRange(1), help="Length of a circles or synthetic stream.")
@click.option("--column", help="Column holding the heart rate (default: picked by name, or the only numeric one).")
@click.option("--time-column", help="Column holding the time (seconds or ISO 8601).")
@click.option("--label-column", help="Column with the data's own 0/1 labels, used instead of --threshold.")
@click.option("--format-in", type=click.Choice(FORMATS_IN),
              help="Input format of FILE [default: detected from its first bytes; gzip always detected].")
@_model_options
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "table"]),
              help="Record format [default: table on a terminal, else jsonl].")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="Write records to this file.")
@click.option("--summary-json", type=click.Path(dir_okay=False, writable=True),
              help="Write the summary as one JSON object to this file.")
@click.option("--speed", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="0: as fast as possible; 1: real time by the time column; 10: ten times faster.")
@click.option("-q", "--quiet", is_flag=True, help="No notes or summary on stderr.")
def replay(file, stream, n, column, time_column, label_column, format_in, threshold, seed, hidden, lr,
           batch_size, normalise, batchnorm, loss, fmt, out, summary_json, speed, quiet) -> None:
    """Replay FILE (CSV, Fitbit JSON, Apple Health XML, gzipped or not; - for standard input).

    One record per reading. A progress bar shows on stderr when a file is replayed and stderr is a
    terminal (not with --quiet).

    \b
    Examples:
      monitor replay --stream sample            the shipped MIT heart-rate series
      monitor replay hr.csv --out flags.jsonl   a file, records to a file
      monitor replay heart_rate-2024-04-01.json a Fitbit export (detected)
      monitor replay export.xml.gz              an Apple Health export, gzipped
      monitor replay data.txt --format-in csv   no detection
      tail -f hr.log | monitor replay -         a live feed, each flag as it happens
      monitor replay --stream circles           the sanity check: must learn circles
    """
    if file is None and stream is None:
        if sys.stdin.isatty():
            raise click.UsageError("give a FILE, - for standard input, or --stream sample|circles|synthetic")
        file = "-"
    if file is not None and stream is not None:
        raise click.UsageError(f"give either FILE ({file}) or --stream {stream}, not both")
    config = learner_config(hidden, lr, batch_size, normalise, batchnorm, loss)
    from monitor.commands import run_replay
    code = run_replay(file=file, stream=stream, n=n, column=column, time_column=time_column,
                      label_column=label_column, format_in=format_in, threshold=threshold, seed=seed, config=config,
                      fmt=fmt, out=out, summary_json=summary_json, speed=speed, quiet=quiet,
                      error=MonitorError)
    sys.exit(code)


@main.command(context_settings=CONTEXT)
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format-in", type=click.Choice(FORMATS_IN),
              help="Input format of FILE [default: detected from its first bytes].")
@click.option("--column", help="Column holding the heart rate (CSV).")
@click.option("--time-column", help="Column holding the time (CSV).")
@click.option("--label-column", help="Column with the data's own 0/1 labels (CSV).")
@click.option("--threshold", type=float, default=91.0, show_default=True,
              help="Report the share of readings strictly above this many bpm.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the report.")
def info(file, format_in, column, time_column, label_column, threshold, as_json) -> None:
    """Say what the monitor would read from FILE, without running the model.

    Format, columns chosen, readings and rejected records, time span, mean, spread, and the share
    of readings above the threshold.

    \b
    Examples:
      monitor info hr.csv
      monitor info heart_rate-2024-04-01.json --json
      monitor info export.xml.gz --threshold 100
    """
    from monitor.info import describe, format_info
    from streams import SourceError

    try:
        d = describe(file, format_in=format_in, column=column, time_column=time_column,
                     label_column=label_column, threshold=threshold)
    except SourceError as e:
        raise MonitorError(str(e))
    click.echo(json.dumps(d) if as_json else format_info(d), nl=as_json)


if __name__ == "__main__":  # pragma: no cover
    main()
