"""Training off the scoring path: a learner trained on a worker thread, with deterministic scores.

On a live feed a training step (16 of them per mini-batch during the warm-up) used to run between
two readings, and every reading behind it waited. `BackgroundLearner` hands learning to a worker
thread and scores with a frozen copy of the model (``OnlineLearner.frozen``). Which copy scores
which reading does not depend on timing: the model after a mini-batch step over readings
``0 .. e - 1`` scores readings from ``e + lag`` on (``lag`` readings later). The scorer waits for the
worker only when that step has not finished by then. The learner itself sees exactly the readings,
in the same order, as without the worker, so its state (and a checkpoint of it) is the same; only
the scores lag behind by ``lag`` readings.

torch releases the GIL inside its operations, so the scoring thread gets in between the worker's
steps; the worker's Python code between them is short.

>>> import numpy as np
>>> from models.learner import LearnerConfig, OnlineLearner
>>> bg = BackgroundLearner(OnlineLearner(LearnerConfig(), seed=0), lag=8)
>>> x = np.linspace(80, 100, 40).reshape(-1, 1); y = (x[:, 0] > 91).astype(float)
>>> i = 0
>>> while i < 40:
...     k = min(bg.room(), 40 - i)
...     p = bg.predict_proba_many(x[i:i + k])
...     _ = bg.learn_many(x[i:i + k], y[i:i + k])
...     i += k
>>> _ = bg.drain(); bg.n_seen_, bg.n_steps_ > 0
(40, True)
>>> bg.close()
"""

from __future__ import annotations

import atexit
import bisect
import threading
from collections import deque

import numpy as np

from models.learner import FrozenScorer, OnlineLearner

__all__ = ["BackgroundLearner", "DEFAULT_LAG"]

DEFAULT_LAG = 256  # readings between a mini-batch's end and its weights scoring (0.26 s at 1,000/s)


class BackgroundLearner:
    """An OnlineLearner trained on a worker thread; see the module docstring.

    Parameters
    ----------
    learner
        The learner; the worker owns it from now on (read it only after `drain`).
    lag
        Readings after a mini-batch's last one from which its step's model scores (at least 1).
    """

    def __init__(self, learner: OnlineLearner, *, lag: int = DEFAULT_LAG) -> None:
        if lag < 1:
            raise ValueError(f"lag must be at least 1 reading, got {lag}")
        self.learner = learner
        self.config = learner.config  # frozen: safe to read while the worker trains
        self.lag = lag
        self.n_seen_ = learner.n_seen_  # readings handed over (scored, then queued for learning)
        self._done = learner.n_seen_  # readings the worker has learned from
        self._from: list[int] = [0]  # reading index from which each snapshot scores (sorted)
        self._snaps: list[FrozenScorer] = [learner.frozen()]
        self._jobs: deque = deque()
        self._losses: list[float] = []
        self._error: BaseException | None = None
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._work, name="monitor-training", daemon=True)
        self._thread.start()
        atexit.register(self.close)  # a worker still inside torch at exit aborts the interpreter

    def __repr__(self) -> str:
        return f"BackgroundLearner(lag={self.lag}, seen={self.n_seen_}, learned={self._done}, {self.learner!r})"

    # -- the scoring side ----------------------------------------------------------------------
    def _ready(self, upto: int) -> None:
        """Wait until the worker has learned from the first `upto` readings (or failed)."""
        with self._cond:
            while self._done < upto and self._error is None:
                self._cond.wait()
            if self._error is not None:
                raise self._error

    def room(self, x: np.ndarray | None = None, y: np.ndarray | None = None) -> int:
        """Readings from the next one on that one snapshot scores (waits for training if it must).

        x and y (the readings to come) are not needed: the worker finds the learner's early steps
        itself, and their models score from `lag` readings later like any other step's."""
        i = self.n_seen_
        self._ready(i - self.lag)  # every step over readings before i - lag has been published
        with self._cond:
            j = bisect.bisect_right(self._from, i)  # the snapshots from j on start after reading i
            unknown = self._done + 1 + self.lag  # a step not published yet scores from here at the earliest
            nxt = min(self._from[j], unknown) if j < len(self._from) else unknown
            self._drop_before(j - 1)
        return nxt - i

    def _drop_before(self, k: int) -> None:
        if k > 0:
            del self._from[:k], self._snaps[:k]

    def predict_proba_many(self, x: np.ndarray) -> np.ndarray:
        """Scores of the next readings; call with at most `room()` of them."""
        with self._cond:
            snap = self._snaps[bisect.bisect_right(self._from, self.n_seen_) - 1]
        return snap.predict_proba_many(x)

    def learn_many(self, x: np.ndarray, y: np.ndarray) -> list[float]:
        """Queue scored readings for the worker; returns the losses of the steps finished since."""
        with self._cond:
            if self._error is not None:
                raise self._error
            self._jobs.append((np.array(x, dtype=np.float64), np.array(y, dtype=np.float64)))
            self.n_seen_ += len(x)
            losses, self._losses = self._losses, []
            self._cond.notify_all()
        return losses

    def drain(self) -> list[float]:
        """Wait for every queued reading to be learned; the losses not yet returned."""
        self._ready(self.n_seen_)
        with self._cond:
            losses, self._losses = self._losses, []
        return losses

    def close(self) -> None:
        """Stop the worker (after the queued readings)."""
        atexit.unregister(self.close)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    # -- the worker ------------------------------------------------------------------------------
    def _work(self) -> None:
        ln = self.learner
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if not self._jobs:
                    return
                x, y = self._jobs.popleft()
            try:
                i = 0
                while i < len(x):  # piece by piece, so each step's model is published
                    room = ln.room(x[i:], y[i:])  # ends early after a reading the model got wrong
                    k = min(room, len(x) - i)
                    losses = ln.learn_many(x[i:i + k], y[i:i + k])
                    i += k
                    stepped = k == room  # the mini-batch filled: normaliser and weights moved
                    with self._cond:
                        self._losses += losses
                        if stepped:
                            self._from.append(ln.n_seen_ + self.lag)
                            self._snaps.append(ln.frozen())
                        self._done += k
                        self._cond.notify_all()
            except BaseException as e:  # handed to the scoring thread, which raises it
                with self._cond:
                    self._error = e
                    self._cond.notify_all()
                return

    # -- what the monitor reads ------------------------------------------------------------------
    def __getattr__(self, name: str):
        """Counters, config and state of the learner, once the worker has caught up."""
        if name.startswith("__") or name in ("learner", "_cond", "config"):
            raise AttributeError(name)
        self.drain()
        return getattr(self.learner, name)

    def state_dict(self) -> dict:
        self.drain()
        return self.learner.state_dict()
