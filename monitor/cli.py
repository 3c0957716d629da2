"""The `monitor` command. Commands parse options, call one function, print; heavy imports happen inside."""

from __future__ import annotations

import json
import os
import sys

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class MonitorError(click.ClickException):
    """A user error: one line on stderr, exit status 2."""

    exit_code = 2


@click.group(context_settings=CONTEXT)
def main() -> None:
    """Flag abnormal heart-rate readings with a network that learns from the stream as it runs."""


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
        click.option("--batchnorm/--no-batchnorm", default=False, show_default=True,
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
@_model_options
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "table"]),
              help="Record format [default: table on a terminal, else jsonl].")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="Write records to this file.")
@click.option("--summary-json", type=click.Path(dir_okay=False, writable=True),
              help="Write the summary as one JSON object to this file.")
@click.option("--speed", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="0: as fast as possible; 1: real time by the time column; 10: ten times faster.")
@click.option("-q", "--quiet", is_flag=True, help="No notes or summary on stderr.")
def replay(file, stream, n, column, time_column, label_column, threshold, seed, hidden, lr, batch_size,
           normalise, batchnorm, loss, fmt, out, summary_json, speed, quiet) -> None:
    """Replay FILE (a CSV, or - for standard input) through the monitor, one record per reading.

    \b
    Examples:
      monitor replay --stream sample            the shipped MIT heart-rate series
      monitor replay hr.csv --out flags.jsonl   a file, records to a file
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
                      label_column=label_column, threshold=threshold, seed=seed, config=config,
                      fmt=fmt, out=out, summary_json=summary_json, speed=speed, quiet=quiet,
                      error=MonitorError)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
