"""The settings of a run as frozen dataclasses (in the style of nanoGPT's GPTConfig).

One `ReplayConfig` is built by the CLI from its options and flows, unchanged, to the run
(monitor.app.replay_run), to the monitor (`KeyedMonitor.from_config`), to the source (`open_source`) and
to the checkpoint, whose options are `checkpoint_options(config)`: the fields that shape the
records, flat, so that a resumed run with other settings is refused naming each difference.

>>> run = ReplayConfig(source=SourceSpec(stream="sample"), monitor=MonitorConfig(threshold=95.0))
>>> run.source.name, run.monitor.threshold, run.output.fmt
('sample', 95.0, None)
>>> opts = checkpoint_options(run, fmt="jsonl")
>>> opts["threshold"], opts["source"], opts["range"], opts["alert_after"]
(95.0, 'sample', [20.0, 300.0], '60s')
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (models.learner_config: no torch)
    from models.learner_config import LearnerConfig

__all__ = ["Span", "SourceSpec", "MonitorConfig", "OutputSpec", "ReplayConfig", "checkpoint_options", "model_keys"]

DEFAULT_RANGE = (20.0, 300.0)  # bpm a reading must lie within (--min, --max)

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_SPAN = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|min|sec)?\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Span:
    """A number of readings (``readings``) or a duration in seconds (``seconds``), never both.

    >>> Span.parse("10m"), Span.parse("30s"), Span.parse("12")
    (Span(seconds=600.0), Span(seconds=30.0), Span(readings=12))
    """

    readings: int | None = None
    seconds: float | None = None

    @classmethod
    def parse(cls, text: str) -> "Span":
        """'10m', '30s', '1h', '90sec' (durations) or '12' (readings); ValueError otherwise."""
        m = _SPAN.fullmatch(str(text))
        if m is None:
            raise ValueError(f"{text!r} is not a duration like 10m, 30s, 1h or a number of readings like 12")
        number, unit = m.group(1), (m.group(2) or "").lower()
        if not unit:
            if "." in number or int(number) < 1:
                raise ValueError(f"{text!r}: a number of readings must be a whole number of at least 1")
            return cls(readings=int(number))
        return cls(seconds=float(number) * _UNITS[unit[0]])

    def __repr__(self) -> str:
        return f"Span(readings={self.readings})" if self.readings is not None else f"Span(seconds={self.seconds})"

    def __str__(self) -> str:
        return str(self.readings) if self.readings is not None else f"{self.seconds:g}s"


@dataclass(frozen=True)
class SourceSpec:
    """Where the readings come from and how they are read."""

    file: str | None = None  # a path, "-" for standard input, or a redis://HOST:PORT/STREAM URL
    stream: str | None = None  # or a built-in stream: sample, circles, synthetic, ward
    n: int | None = None  # length of circles or synthetic (readings), or of a ward (minutes)
    patients: int | None = None  # patients of a ward [50]
    format_in: str | None = None  # input format of the file; None: detected from its first bytes
    column: str | None = None  # column of the heart rate; None: picked by name, or the only numeric one
    time_column: str | None = None  # column of the time (seconds or ISO 8601)
    label_column: str | None = None  # column of the data's own 0/1 labels (instead of the threshold)
    key_column: str | None = None  # column of the patient or device id
    valid_range: tuple[float, float] | None = DEFAULT_RANGE  # readings outside are rejected; None: any finite
    max_line: int | None = None  # a longer line (or record) is a counted reject; None: the reader's default

    @property
    def name(self) -> str:
        """The source as the summary names it: the path, "-", or the stream."""
        return str(self.file) if self.file is not None else str(self.stream)

    @property
    def is_redis(self) -> bool:
        return self.file is not None and str(self.file).startswith("redis://")

    @property
    def is_file(self) -> bool:
        """A file that can be re-read (not standard input, a stream or Redis)."""
        return self.file is not None and self.file != "-" and not self.is_redis


def _span(text: str) -> "Span":
    return Span.parse(text)


@dataclass(frozen=True)
class MonitorConfig:
    """What the monitor is: the learner, the labels, the keys and the alerts."""

    learner: LearnerConfig | None = None  # the network and its training; None: LearnerConfig()
    threshold: float = 91.0  # a reading strictly above this many bpm is labelled abnormal
    seed: int = 0  # weights, sampling and generated streams: same input and seed, same output
    learn: bool = True  # False: score with the model as it is, learn nothing
    key_model: str = "shared"  # how keys share the network (monitor.keyed.keyed_monitor.KEY_MODELS)
    max_keys: int | None = None  # keys kept at once (least recently seen evicted); None: no bound
    alert_after: Span = field(default_factory=lambda: _span("1m"))  # flags held this long open an alert
    alert_clear: Span = field(default_factory=lambda: _span("2m"))  # normal this long closes it


@dataclass(frozen=True)
class OutputSpec:
    """Where records, alerts, rejects and the summary go."""

    fmt: str | None = None  # jsonl, csv or table; None: table on a terminal, else jsonl
    out: str | None = None  # records file; None: standard output
    alerts: str | None = None  # alert records file (JSON Lines)
    alerts_only: bool = False  # standard output gets alert records, not readings
    rejects: str | None = None  # rejected lines file (JSON Lines)
    summary_json: str | None = None  # the summary as one JSON object
    plot: str | None = None  # a PNG of the run (needs matplotlib)
    quiet: bool = False  # no notes or summary on stderr


@dataclass(frozen=True)
class ReplayConfig:
    """One `monitor replay`: source, monitor, outputs, and how the run goes."""

    source: SourceSpec = field(default_factory=SourceSpec)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    output: OutputSpec = field(default_factory=OutputSpec)
    state: str | None = None  # checkpoint file: resumed from if it exists, written as the run goes
    checkpoint_every: int = 10_000  # readings between checkpoints (with state)
    strict: bool = False  # the first rejected line stops the run (exit 2)
    speed: float = 0.0  # 0: as fast as possible; 1: real time by the time column
    max_gap: float = 60.0  # with speed: the longest wait between two readings (s)


def model_keys(monitor: MonitorConfig) -> tuple[str, ...]:
    """The checkpoint options of the model alone (what a frozen run, --no-learn, compares)."""
    return tuple(sorted(_learner_options(monitor)))


def _learner_options(monitor: MonitorConfig) -> dict:
    from models.learner_config import LearnerConfig
    return {k: v for k, v in asdict(monitor.learner or LearnerConfig()).items() if k != "n_features"}


def checkpoint_options(run: ReplayConfig, *, fmt: str) -> dict:
    """The options a checkpoint is saved with and checked against: flat plain values.

    ``fmt`` is the record format chosen (``run.output.fmt`` resolved). Settings that do not change
    the records (paths of the summary and plot, quiet, speed, strict, how often to checkpoint) are
    left out: a resumed run may change them.
    """
    src, mon, out = run.source, run.monitor, run.output
    return {**_learner_options(mon), "threshold": mon.threshold, "seed": mon.seed, "source": src.name,
            "n": src.n, "column": src.column, "time_column": src.time_column,
            "label_column": src.label_column,
            "range": None if src.valid_range is None else list(src.valid_range), "format": fmt,
            "out": out.out, "rejects": out.rejects, "key_column": src.key_column, "key_model": mon.key_model,
            "max_keys": mon.max_keys, "patients": src.patients, "alert_after": str(mon.alert_after),
            "alert_clear": str(mon.alert_clear), "alerts": out.alerts, "alerts_only": out.alerts_only,
            "max_line": src.max_line}
