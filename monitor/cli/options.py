"""What the `monitor` commands share: context settings, option groups, the user-error type.

MonitorError is monitor.errors.MonitorError (re-exported here): the application raises it, the
`monitor` group turns it into one line and its exit status (see monitor.cli.commands).

A leaf module: it imports only click and monitor.errors (heavy imports inside functions), so `monitor.cli.commands`,
`monitor.cli.distributed` and `monitor.cli.dashboard` use it without importing each other.
"""

from __future__ import annotations

from typing import Callable

import os
import sys

import click

from monitor.errors import MonitorError

__all__ = ["FORMATS_IN", "CONTEXT", "MonitorError", "model_options", "key_options", "dashboard_option",
           "open_dashboard", "span", "learner_config", "range_options", "valid_range", "redis_wait_options"]

FORMATS_IN = ("csv", "fitbit", "apple-health", "wfdb", "fhir", "tcx", "fit")  # streams.formats.FORMATS, not imported
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def model_options(f: Callable) -> Callable:
    """Add the options of the model and its labels (threshold, seed, network, optimiser) to a command."""
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
        click.option("--batchnorm", type=click.Choice(["renorm", "plain", "none"]), default="renorm",
                     show_default=True,
                     help="The network's first layer: BatchRenorm1d (a BatchNorm for streams), plain "
                          "BatchNorm1d (fails on a stream: see docs/learning.md), or none."),
        click.option("--loss", type=click.Choice(["bce-logits", "sigmoid-bce"]), default="bce-logits",
                     show_default=True, help="BCEWithLogitsLoss, or a sigmoid output with BCELoss."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def key_options(f: Callable) -> Callable:
    """Add the options of keyed streams (key column, key model, alert spans, alert outputs) to a command."""
    opts = [
        click.option("--key", "--key-column", "key_column",
                     help="Column holding the patient or device id (default: a column named patient, "
                          "patient_id, subject or device). Each key gets its own normaliser and alerts."),
        click.option("--key-model", type=click.Choice(["shared", "per-key", "shared-z", "global"]),
                     default="shared", show_default=True,
                     help="Keys share one network (fed the reading and its per-key z-score), or each "
                          "key has its own; shared-z and global are for comparison (see docs/keys.md)."),
        click.option("--max-keys", type=click.IntRange(1),
                     help="Keep at most this many keys; the least recently seen is evicted (counted)."),
        click.option("--patients", type=click.IntRange(1), help="Patients of --stream ward [default: 50]."),
        click.option("--alert-after", default="1m", show_default=True,
                     help="An alert opens when a key's flags hold this long: a duration (30s, 10m, 1h) "
                          "or a number of readings (12)."),
        click.option("--alert-clear", default="2m", show_default=True,
                     help="An open alert closes after this long of normal readings (duration or count)."),
        click.option("--alerts", "alerts_path", type=click.Path(dir_okay=False, writable=True),
                     help="Write alert records (JSON Lines, one on open and one on close) to this file."),
        click.option("--alerts-only", is_flag=True, help="Print only alert records to stdout."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def dashboard_option(f: Callable) -> Callable:
    """Add --dashboard and --dashboard-hold to a command."""
    return click.option(
        "--dashboard", metavar="[HOST:]PORT",
        help="Serve a live page of the run (per-key tiles, alerts, figures), /api/state, /events and "
             "/metrics (Prometheus) on 127.0.0.1:PORT (PORT 0: any free port; the URL is said on stderr). "
             "A HOST that is not loopback needs MONITOR_DASHBOARD_TOKEN set: every request must then "
             "carry it (Authorization: Bearer TOKEN, or ?token=TOKEN). After a finite stream the page "
             "stays up until Ctrl-C.")(click.option(
        "--dashboard-hold/--no-dashboard-hold", default=True, show_default=True,
        help="With --dashboard: keep the page up after a finite stream (--no-dashboard-hold: exit, "
             "for scripts and benchmarks).")(f))


def open_dashboard(spec: str, *, source: str, quiet: bool):
    """A started monitor.dashboard.Dashboard for --dashboard SPEC; a one-line error otherwise."""
    from monitor.dashboard.address import TOKEN_ENV, Address
    try:
        address = Address.parse(spec)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--dashboard")
    try:
        from monitor.dashboard.live import Dashboard
    except ImportError as e:
        raise MonitorError(f"--dashboard needs {e.name or 'aiohttp'}: pip install 'monitor[dashboard]'")
    try:
        return Dashboard(address, token=os.environ.get(TOKEN_ENV) or None, source=source,
                         note=None if quiet else sys.stderr).__enter__()
    except ValueError as e:
        raise MonitorError(f"--dashboard {spec}: {e}")


def span(text: str, option: str):
    """Parse an alert span (``30s``, ``10m``, ``12``) as monitor.config.Span; bad text is a usage error."""
    from monitor.config import Span
    try:
        return Span.parse(text)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=option)


def learner_config(hidden: int, lr: float, batch_size: int, normalise: bool, batchnorm: str, loss: str):
    """The models.learner.LearnerConfig of the model options (torch is not imported here)."""
    from models.learner_config import LearnerConfig
    return LearnerConfig(hidden=hidden, lr=lr, batch_size=batch_size, normalise=normalise,
                         batchnorm=batchnorm, loss=loss)


def redis_wait_options(f: Callable) -> Callable:
    """Add --wait and --retry-for (a redis:// input that is not there yet, or lost) to a command."""
    f = click.option("--retry-for", type=click.FloatRange(min=0), default=30.0, show_default=True,
                     help="redis:// input: seconds to keep reconnecting to a lost Redis before giving up "
                          "(exit 1).")(f)
    return click.option("--wait", is_flag=True,
                        help="redis:// input: wait for the stream to be published (else: an error if it "
                             "does not exist).")(f)


def range_options(rejected: str = "rejected", accept: str = "Accept") -> Callable[[Callable], Callable]:
    """Add --min, --max and --no-range-check (the plausible range of a reading) to a command.

    ``rejected`` says what happens to a reading outside it for this command; read them with `valid_range`.
    """
    def add(f: Callable) -> Callable:
        f = click.option("--no-range-check", is_flag=True,
                         help=f"{accept} any finite reading (ignore --min/--max).")(f)
        f = click.option("--max", "max_bpm", type=float, default=300.0, show_default=True,
                         help=f"Readings above this many bpm are {rejected}.")(f)
        return click.option("--min", "min_bpm", type=float, default=20.0, show_default=True,
                            help=f"Readings below this many bpm are {rejected}.")(f)
    return add


def valid_range(min_bpm: float, max_bpm: float, no_range_check: bool) -> tuple[float, float] | None:
    """The range a source checks readings against (None: any finite reading); --min must be below --max."""
    if no_range_check:
        return None
    if not min_bpm < max_bpm:
        raise click.BadParameter(f"--min ({min_bpm:g}) must be below --max ({max_bpm:g})", param_hint="--min")
    return (min_bpm, max_bpm)
