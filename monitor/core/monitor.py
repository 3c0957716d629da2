"""The monitor: label -> normalise -> score -> learn, batch by batch, test-then-train.

>>> from streams import Batch
>>> mon = Monitor(seed=0)
>>> scored = mon.process(Batch.of_values([80.0, 95.0, 88.0, 99.0, 85.0]))
>>> scored.flag.dtype, len(scored)
(dtype('bool'), 5)
>>> mon.metrics.result()["readings"]
5
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from models.learner import LearnerConfig, OnlineLearner
from models.manual_step import ManualStepLearner  # the learner, its step written out in torch ops (replay speed)
from monitor.core.labels import DEFAULT_THRESHOLD, label
from monitor.core.metrics import PrequentialMetrics
from streams import Batch

__all__ = ["Scored", "Monitor", "Trace"]


@dataclass(frozen=True)
class Scored:
    """The records of n scored readings, as arrays in source order."""

    time: np.ndarray  # (n,) float64
    x: np.ndarray  # (n, d) float64 readings
    label: np.ndarray  # (n,) float64 0/1
    p: np.ndarray  # (n,) float64 probability of abnormal, scored before the reading was learned
    flag: np.ndarray  # (n,) bool, p > flag_at
    line: np.ndarray  # (n,) int64 source line numbers
    key: np.ndarray | None = None
    alerts: tuple = ()  # alert records (dicts) that these readings opened or closed, see monitor.keyed.alerts

    def __len__(self) -> int:
        return len(self.p)

    def take(self, start: int, stop: int) -> "Scored":
        """Records start:stop, without alert records."""
        return Scored(time=self.time[start:stop], x=self.x[start:stop], label=self.label[start:stop],
                      p=self.p[start:stop], flag=self.flag[start:stop], line=self.line[start:stop],
                      key=None if self.key is None else self.key[start:stop])


class Trace:
    """Per-reading history kept for plots and ablations (memory grows with the stream: opt-in)."""

    def __init__(self) -> None:
        self.p: list[np.ndarray] = []
        self.label: list[np.ndarray] = []
        self.x: list[np.ndarray] = []
        self.time: list[np.ndarray] = []
        self.loss_at: list[int] = []  # readings learned when each step's loss was recorded
        self.loss: list[float] = []

    def arrays(self) -> dict[str, np.ndarray]:
        cat = lambda parts, shape: np.concatenate(parts) if parts else np.empty(shape)  # noqa: E731
        return {"p": cat(self.p, 0), "label": cat(self.label, 0), "x": cat(self.x, (0, 1)),
                "time": cat(self.time, 0), "loss_at": np.asarray(self.loss_at, dtype=np.int64),
                "loss": np.asarray(self.loss, dtype=np.float64)}


class Monitor:
    """Scores each reading with the current model, then learns from it (unless learn=False).

    The learner is built on the first batch, when the number of features is known.
    """

    def __init__(self, config: LearnerConfig | None = None, *, threshold: float = DEFAULT_THRESHOLD,
                 seed: int = 0, learn: bool = True, flag_at: float = 0.5, late_from: int | None = None,
                 trace: bool = False) -> None:
        self.config = config
        self.threshold = threshold
        self.seed = seed
        self.learn = learn
        self.flag_at = flag_at
        self.late_from = late_from  # readings from this index on also count in metrics_late
        self.learner: OnlineLearner | None = None
        self.metrics = PrequentialMetrics()
        self.metrics_late = PrequentialMetrics()
        self.recent_losses: deque[float] = deque(maxlen=50)
        self.trace = Trace() if trace else None
        self.n_scored = 0
        self.n_nan_scores = 0  # readings the network could not score (p set to 0.5)
        self.train_lag = None  # set by train_behind: scores lag the learning (int or Lag)
        self._threaded = True  # ... and learning runs on a worker thread

    def train_behind(self, lag=None, *, threaded: bool = True) -> None:
        """Learn on a worker thread from now on, off the scoring path (monitor.core.background_learner).

        Scores become those of the model ``lag`` readings behind (an int, or a `monitor.core.background_learner.Lag`
        schedule; default: growing with the stream); they stay the same whatever the timing, and with
        ``threaded=False`` (training inline, for files: the same scores without a thread).
        """
        from monitor.core.background_learner import Lag
        self.train_lag = Lag() if lag is None else lag
        self._threaded = threaded
        self._wrap()

    @property
    def trains_behind(self) -> bool:
        """Learning runs on a worker thread (see `train_behind`)."""
        return bool(self.train_lag) and self.learn and self._threaded

    def _catch_up(self) -> None:
        """Wait for the training worker (if any) and take the losses of its last steps."""
        drain = getattr(self.learner, "drain", None)
        if drain is not None:
            losses = drain()
            self.recent_losses.extend(losses)
            if self.trace is not None and losses:
                self.trace.loss += losses
                self.trace.loss_at += [self.learner.n_seen_] * len(losses)

    def _wrap(self) -> None:
        from monitor.core.background_learner import BackgroundLearner
        if self.train_lag and self.learn and isinstance(self.learner, OnlineLearner):
            self.learner = BackgroundLearner(self.learner, lag=self.train_lag, threaded=self._threaded)

    def __repr__(self) -> str:
        return (f"Monitor(threshold={self.threshold}, learn={self.learn}, seed={self.seed}, "
                f"readings={self.n_scored}, learner={self.learner!r})")

    def _learner_for(self, d: int) -> OnlineLearner:
        if self.learner is None:
            config = (self.config or LearnerConfig()).with_(n_features=d)
            self.learner = ManualStepLearner(config, seed=self.seed)
            self._wrap()
        elif self.learner.config.n_features != d:
            raise ValueError(f"readings changed from {self.learner.config.n_features} to {d} features")
        return self.learner

    @np.errstate(over="ignore", invalid="ignore")  # extreme readings are caught below and by the learner
    def process(self, batch: Batch, emit: Callable[[Scored], None] | None = None) -> Scored:
        """Score every reading of the batch, then learn from it, in slices the learner accepts.

        With `emit`, each slice's records are handed to it as soon as they are scored, before the
        model learns from them (a live feed sees a flag before any training step it triggers).
        """
        x = batch.x
        n = len(x)
        y = label(x, batch.y, threshold=self.threshold)
        learner = self._learner_for(x.shape[1])

        def scored(i: int, k: int, p: np.ndarray) -> None:
            emit(Scored(time=batch.time[i:i + k], x=x[i:i + k], label=y[i:i + k], p=p,
                        flag=p > self.flag_at, line=batch.line[i:i + k],
                        key=None if batch.key is None else batch.key[i:i + k]))

        p = self.test_then_train(learner, x, y, scored if emit is not None else None)
        flag = p > self.flag_at
        start = self.n_scored
        self.n_scored += n
        self.metrics.update(y, p, flag)
        if self.late_from is not None and start + n > self.late_from:
            j = max(0, self.late_from - start)
            self.metrics_late.update(y[j:], p[j:], flag[j:])
        if self.trace is not None:
            self.trace.p.append(p)
            self.trace.label.append(y)
            self.trace.x.append(x)
            self.trace.time.append(batch.time)
        return Scored(time=batch.time, x=x, label=y, p=p, flag=flag, line=batch.line, key=batch.key)

    def test_then_train(self, learner: OnlineLearner, x: np.ndarray, y: np.ndarray,
                        scored: Callable[[int, int, np.ndarray], None] | None = None) -> np.ndarray:
        """The scores of readings x, each given before the learner learns from it (unless learn=False).

        The learner says how many readings it takes before its next step (``room``); each such slice
        is scored, finalised (`_finalise`), handed to ``scored(start, length, p)`` and then learned.
        `KeyedMonitor` runs its per-key learners through this same loop.
        """
        n = len(x)
        p = np.empty(n)
        i = 0
        while i < n:
            k = min(learner.room(x[i:], y[i:]), n - i) if self.learn else n - i
            p[i:i + k] = learner.predict_proba_many(x[i:i + k])  # scored first...
            self._finalise(p[i:i + k])  # before emitting: what is emitted is what is returned
            if scored is not None:
                scored(i, k, p[i:i + k])
            if self.learn:
                losses = learner.learn_many(x[i:i + k], y[i:i + k])  # ...learned after
                self.recent_losses.extend(losses)
                if self.trace is not None and losses:
                    self.trace.loss += losses
                    self.trace.loss_at += [learner.n_seen_] * len(losses)
            i += k
        return p

    def network(self) -> str:
        """One line saying what the model is (as it runs, or will run once the first batch comes)."""
        from models.network import build_network, describe_network

        net = self.learner.net if self.learner is not None else None
        config = self.learner.config if self.learner is not None else (self.config or LearnerConfig())
        if net is None:
            net = build_network(config.network)
        return describe_network(net, normalise=config.normalise)

    def _finalise(self, p: np.ndarray) -> None:
        """Replace, in place, scores the network could not give (NaN: inf - inf inside it, readings
        near 1e300) by 0.5, and count them."""
        bad = np.isnan(p)
        if bad.any():
            p[bad] = 0.5
            self.n_nan_scores += int(bad.sum())

    def summary(self) -> dict:
        """Metrics and learning counters, JSON-ready."""
        self._catch_up()
        out = dict(self.metrics.result())
        ln = self.learner
        out.update({
            "learn": self.learn,
            "threshold": self.threshold,
            "steps": ln.n_steps_ if ln else 0,
            "skipped_steps": ln.n_skipped_ if ln else 0,
            "normaliser_skipped": getattr(ln.normaliser, "n_refused_", 0) if ln else 0,
            "nan_scores": self.n_nan_scores,
            "final_loss": float(np.mean(self.recent_losses)) if self.recent_losses else None,
            "network": self.network(),
        })
        if self.late_from is not None:
            out["accuracy_second_half"] = self.metrics_late.result()["accuracy"]
        return out

    def state_dict(self) -> dict:
        """The learner, both metrics, the recent losses and the counts (see monitor.state.checkpoint)."""
        self._catch_up()
        lagged = getattr(self.learner, "lag_state", None)
        return {"threshold": self.threshold, "seed": self.seed, "late_from": self.late_from,
                "learner": None if self.learner is None else self.learner.state_dict(),
                "lagged": None if lagged is None else lagged(),  # models still to score (train_behind)
                "metrics": self.metrics.state_dict(), "metrics_late": self.metrics_late.state_dict(),
                "recent_losses": list(self.recent_losses), "n_scored": self.n_scored,
                "n_nan_scores": self.n_nan_scores}

    def load_state_dict(self, state: dict, *, model_only: bool = False) -> None:
        """Continue from a `state_dict`; ``model_only`` takes the learner and leaves the metrics new.

        The learner is rebuilt from the saved config (the number of features included).
        """
        if state["learner"] is not None:
            config = LearnerConfig(**state["learner"]["config"])
            learner = ManualStepLearner(config, seed=state["learner"]["seed"])
            learner.load_state_dict(state["learner"])
            self.learner = learner
            self._wrap()
            if state.get("lagged") is not None and hasattr(self.learner, "load_lag_state"):
                self.learner.load_lag_state(state["lagged"])
        if model_only:
            return
        self.metrics.load_state_dict(state["metrics"])
        self.metrics_late.load_state_dict(state["metrics_late"])
        self.recent_losses.clear()
        self.recent_losses.extend(float(v) for v in state["recent_losses"])
        self.n_scored = int(state["n_scored"])
        self.n_nan_scores = int(state["n_nan_scores"])
