"""What shapes a network and its learning, without torch: `NetworkConfig`, `LearnerConfig`, `mini_batch_size`.

A process that only builds or checks options (the CLI, the driver of `monitor serve` that hands
them to Ray actors) imports this module, not torch (~1.3 s of CPU at start-up); `models.network`
and `models.learner` re-export these names and build the networks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

__all__ = ["NetworkConfig", "LearnerConfig", "mini_batch_size", "batchnorm_name", "LOSSES", "BATCHNORMS",
           "ACTIVATION_NAMES"]

ACTIVATION_NAMES = ("relu", "tanh")  # models.network.ACTIVATIONS maps them to torch modules
LOSSES = ("bce-logits", "sigmoid-bce")
BATCHNORMS = ("renorm", "plain", "none")  # input layer: BatchRenorm1d, nn.BatchNorm1d, or none


def batchnorm_name(value) -> str:
    """The input-layer choice as one of BATCHNORMS; True/False (older configs) mean "plain"/"none"."""
    if value is True:
        return "plain"
    if value is False or value is None:
        return "none"
    if value not in BATCHNORMS:
        raise ValueError(f"batchnorm {value!r} is not one of {list(BATCHNORMS)}")
    return value


@dataclass(frozen=True)
class NetworkConfig:
    """Shape of the network. Frozen: two configs are equal when the weights are interchangeable."""

    n_features: int = 1  # inputs per reading: 1 for heart rate, 2 for circles
    hidden: int = 16  # width of the single hidden layer
    batchnorm: str = "renorm"  # input layer: "renorm" (BatchRenorm1d, for streams), "plain" (BatchNorm1d), "none"
    activation: str = "relu"  # one of ACTIVATION_NAMES
    loss: str = "bce-logits"  # BCEWithLogitsLoss (stable) or "sigmoid-bce" (sigmoid then BCELoss)

    def __post_init__(self) -> None:
        object.__setattr__(self, "batchnorm", batchnorm_name(self.batchnorm))
        if self.n_features < 1:
            raise ValueError(f"n_features must be at least 1, got {self.n_features}")
        if self.hidden < 1:
            raise ValueError(f"hidden must be at least 1, got {self.hidden}")
        if self.activation not in ACTIVATION_NAMES:
            raise ValueError(f"activation {self.activation!r} is not one of {sorted(ACTIVATION_NAMES)}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss {self.loss!r} is not one of {list(LOSSES)}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LearnerConfig:
    """Everything that shapes learning. Two runs with equal configs and seeds are identical."""

    n_features: int = 1  # inputs per reading
    normalise: bool = True  # running mean/std normalisation of the inputs (float64, Chan merge)
    batchnorm: str = "renorm"  # input layer: "renorm" (BatchRenorm1d), "plain" (BatchNorm1d) or "none"
    hidden: int = 16  # hidden layer width
    activation: str = "relu"  # hidden activation
    loss: str = "bce-logits"  # "bce-logits" (default, stable) or "sigmoid-bce"
    lr: float = 0.05  # Adam learning rate
    batch_size: int = 256  # largest mini-batch of new readings per training step while warming up
    max_batch: int = 4096  # after the warm-up, mini-batches go on growing (readings seen / growth) up to this (or batch_size if larger)
    min_batch: int = 4  # first mini-batches are this small, growing to batch_size as readings are seen
    growth: int = 16  # mini-batch size ~= readings seen / growth, clipped to [min_batch, batch_size]
    replay: int = 1024  # recent raw readings kept and replayed (re-normalised) at each step; 0 = off
    steps: int = 1  # optimiser steps per mini-batch once warmed up
    warm_steps: int = 16  # optimiser steps per mini-batch during the first `warm_until` readings
    warm_until: int = 2000  # readings seen before stepping down from warm_steps to steps
    preserve: bool = True  # when the normaliser's statistics move, rescale the first layer to keep the function
    warm_restart: bool = True  # a class seen for the first time restarts the warm-up (warm_until more readings)
    init_bias: bool = True  # output bias from `prior` at start, then from the first mini-batch's label rate
    prior: float = 0.1  # P(abnormal) an untrained model says: a new monitor does not raise alarms blindly
    replay_unique: bool = True  # replayed readings drawn without replacement (False: with, as before issue 13)
    early: bool = True  # a misclassified reading ends the mini-batch: the step runs right after it
    early_gap: int = 2  # ... once the mini-batch holds at least this many readings (bounds the extra steps)
    early_errors: int = 2  # ... once warmed up, only when it is at least the early_errors-th wrong one within
    # drift_window readings: a lone mistake on stationary data waits for the scheduled step
    drift_errors: int = 8  # at least this many readings scored wrong within drift_window readings (and 3 sd above
    # the error rate since the last change) is a change of regime: 0 = off
    drift_window: int = 100  # ... on a change the replay ring keeps only the readings since the window's first error
    drift_warm: int = 500  # ... and the learner warms up again (warm_steps per mini-batch) for this many readings
    early_until: int = 0  # an early step after the warm-up repeats, up to this many optimiser steps, until the
    # mini-batch's readings are all scored right: 0 = off (8 fixed the patients stream, see docs/learning.md)
    margin: int = 4  # once warmed up, every step's batch also holds, per class, this many readings the model puts
    # nearest its boundary (chosen again after each step among them and the new readings; emptied at a change of
    # regime): a boundary pinned by both classes does not wander while one class is absent for a long time. 0 = off
    recentre: bool = True  # on a change of regime or a class seen for the first time, BatchRenorm1d's running
    # statistics are set to those of the readings trained on from then (each class weighing half at a new class),
    # the next Linear layer rescaled so the function is kept: learning restarts on inputs near 0 (needs preserve)

    def __post_init__(self) -> None:
        object.__setattr__(self, "batchnorm", batchnorm_name(self.batchnorm))  # True/False: older configs
        if self.min_batch < 2:
            raise ValueError(f"min_batch must be at least 2 (BatchNorm trains on 2 or more), got {self.min_batch}")
        if self.batch_size < self.min_batch:
            raise ValueError(f"batch_size ({self.batch_size}) must be at least min_batch ({self.min_batch})")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if not 0 < self.prior < 1:
            raise ValueError(f"prior must be strictly between 0 and 1, got {self.prior}")
        for name in ("replay", "steps", "warm_steps", "warm_until", "growth", "early_gap", "early_errors",
                     "drift_errors", "drift_window", "drift_warm", "margin"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        self.network  # validates the network fields

    @property
    def network(self):
        return NetworkConfig(n_features=self.n_features, hidden=self.hidden, batchnorm=self.batchnorm,
                             activation=self.activation, loss=self.loss)

    @property
    def largest_batch(self) -> int:
        """The largest mini-batch this config ever asks for (the pending buffer's size)."""
        return max(self.batch_size, self.max_batch)

    def to_dict(self) -> dict:
        return asdict(self)

    def with_(self, **changes) -> "LearnerConfig":
        return replace(self, **changes)


def mini_batch_size(config: LearnerConfig, n_seen: int, *, warm: bool) -> int:
    """Readings in the next mini-batch: small early, growing with the readings seen (issue 15).

    ``n_seen / growth``, rounded down to a multiple of ``min_batch`` and clipped to
    ``[min_batch, batch_size]`` while warming up, to ``[min_batch, max_batch]`` after: a short or
    live stream keeps its small early mini-batches, a long one ends with few, large steps (a step of
    the small network costs about the same at 256 rows as at 4,096).

    >>> c = LearnerConfig()
    >>> [mini_batch_size(c, n, warm=n <= 2000) for n in (0, 100, 4000, 20_000, 1_000_000)]
    [4, 4, 248, 1248, 4096]
    """
    grown = n_seen // config.growth if config.growth else config.batch_size
    top = config.batch_size if warm else config.largest_batch
    return int(min(top, max(config.min_batch, grown - grown % config.min_batch)))
