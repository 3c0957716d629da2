"""What a serve runs with, as frozen configs: the monitor on each shard, the engine, the outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from monitor.config import Span

if TYPE_CHECKING:  # (models.learner_config: no torch in the driver)
    from models.learner_config import LearnerConfig

__all__ = ["ServeConfig", "EngineSpec", "ServeOutputs", "Hooks", "SHOW_REJECTS"]

SHOW_REJECTS = 5  # rejected entries kept with their id and reason for the summary (all of them counted)


@dataclass(frozen=True)
class ServeConfig:
    """How each shard's consumer runs: its KeyedMonitor, and how it reads and writes Redis.

    The fields down to ``alert_clear`` shape the results; a checkpoint saved with other values is
    refused (`options`).
    """

    learner: LearnerConfig | None = None  # the network and optimiser (None: LearnerConfig())
    threshold: float = 91.0  # a reading above this many bpm is labelled abnormal
    seed: int = 0  # seed of the weights and of sampling
    key_model: str = "shared"  # shared | per-key | shared-z | global (monitor.keyed.keyed_monitor)
    max_keys: int | None = None  # keys kept per shard (None: all)
    alert_after: Span = field(default_factory=lambda: Span(seconds=60.0))  # abnormal this long opens an alert
    alert_clear: Span = field(default_factory=lambda: Span(seconds=120.0))  # normal this long closes it
    checkpoint_every: int = 5_000  # readings between a shard's checkpoints (and its XACKs)
    count: int = 500  # entries per XREADGROUP, at most (packed entries: ~4,096 readings a batch)
    block_ms: int = 100  # how long one read waits for new entries
    maxlen: int | None = 1_000_000  # output streams trimmed to about this many entries
    records_stream: bool = True  # write records back to STREAM:records (alerts are always written)
    step_batches: int = 8  # batches per call of a worker (never one reading per call)
    valid_range: tuple[float, float] | None = (20.0, 300.0)  # bpm; entries outside, or holding no reading, are rejects

    def monitor_kwargs(self) -> dict:
        """The arguments of `monitor.keyed.keyed_monitor.KeyedMonitor`."""
        from models.learner_config import LearnerConfig

        return dict(config=self.learner or LearnerConfig(), threshold=self.threshold, seed=self.seed,
                    model=self.key_model, max_keys=self.max_keys, alert_after=self.alert_after,
                    alert_clear=self.alert_clear)

    def options(self) -> dict:
        """What a checkpoint is checked against: the learner's settings, labels, keys and alerts."""
        from models.learner_config import LearnerConfig

        model = {k: v for k, v in (self.learner or LearnerConfig()).to_dict().items() if k != "n_features"}
        return {**model, "threshold": self.threshold, "seed": self.seed, "key_model": self.key_model,
                "max_keys": self.max_keys, "alert_after": str(self.alert_after),
                "alert_clear": str(self.alert_clear)}


@dataclass(frozen=True)
class EngineSpec:
    """Where the shard consumers run and how long a lost Redis is waited for."""

    engine: str = "ray"  # ray: one actor per shard; local: every shard in this process, in turn
    shards: int | None = None  # None: as published (STREAM:layout), else 1
    address: str | None = None  # a Ray cluster to join; None: start a local Ray
    num_cpus: int = 2  # CPUs of a local Ray
    wait: bool = False  # wait for a stream that does not exist yet (else an error)
    retry_for: float = 30.0  # seconds of reconnection attempts to a lost Redis before giving up
    until_idle: bool = True  # stop once every shard is drained (False, the CLI default: wait for more readings)


@dataclass(frozen=True)
class ServeOutputs:
    """Where the records, alerts and summary of a serve go (replay's own, with more, is monitor.config.OutputSpec)."""

    out: str | None = None  # records file (None: stdout, unless alerts_only)
    alerts: str | None = None  # alerts file (None: stdout with alerts_only, else nowhere)
    alerts_only: bool = False  # no records on stdout
    summary_json: str | None = None  # the summary as JSON
    quiet: bool = False  # no notes, no summary on stderr


def _never() -> bool:
    return False


def _silent(message: str) -> None:
    return None


@dataclass(frozen=True)
class Hooks:
    """What the driver loop calls back, and a fault to inject (tests)."""

    stop: Callable[[], bool] = _never  # True: no new calls; finish and save
    note: Callable[[str], None] = _silent  # one line for the user (lost Redis, ...)
    on_result: Callable | None = None  # on_result(shard, result or None, workers) after each step
    fault: dict | None = None  # shard 0's worker ends mid-call (see monitor.distributed.worker)
