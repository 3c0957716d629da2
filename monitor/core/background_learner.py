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
import math
import threading
from collections import deque

from dataclasses import dataclass

import numpy as np

from models.learner import FrozenScorer, OnlineLearner

__all__ = ["BackgroundLearner", "DEFAULT_LAG", "Lag"]

STEP_READINGS = 0.0  # readings charged per optimiser step by default: none (see Lag.step and docs/performance.md)
GATHER = 4  # the worker learns once a quarter of the lag has queued (see BackgroundLearner._gather) ...
GATHER_FROM = 32  # ... once the lag is at least this many readings
DEFAULT_LAG = 256  # a fixed lag: readings between a mini-batch's end and its weights scoring (0.26 s at 1,000/s)


@dataclass(frozen=True)
class Lag:
    """How many readings after a step over readings ``0 .. e - 1`` its model starts scoring.

    ``lag(e) = min(most, max(least, e // growth))``: a few readings early (the model changes fast and a
    stale one costs accuracy), growing with the stream like the mini-batches, up to ``most`` (room for
    the training thread to run a whole large step while the scoring thread parses, scores and writes).
    ``e + lag(e)`` never decreases, so a step not finished yet scores from ``done + 1 + lag(done + 1)``
    at the earliest. ``Lag.fixed(n)`` is the constant lag n.

    >>> lag = Lag()
    >>> [lag(e) for e in (0, 100, 2000, 10_000, 1_000_000)]
    [1, 1, 31, 156, 256]
    """

    least: int = 1  # readings, at least 1
    growth: int = 64  # lag ~= readings seen / growth in between (sample and synthetic streams, seeds 0-2:
    # 64 loses at most 1 reading of accuracy to the synchronous model, 16 loses 4 to 6)
    most: int = 256  # readings (0.26 s at 1,000 lines/s: room for a warm-up's 16 steps on a loaded machine)
    step: float = STEP_READINGS  # readings charged on the training clock per optimiser step (0: no clock)

    def __post_init__(self) -> None:
        if self.least < 1 or self.growth < 1 or self.most < self.least or not self.step >= 0:
            raise ValueError(f"a lag needs 1 <= least <= most, growth >= 1 and step >= 0, got {self}")

    @classmethod
    def fixed(cls, n: int) -> "Lag":
        return cls(least=n, growth=1 << 62, most=n, step=0.0)

    def start(self, e: int, clock: float) -> int:
        """The reading from which a step over readings ``0 .. e - 1`` scores, the training clock
        standing at ``clock`` (readings) once that step's optimiser steps are charged."""
        return max(e + self(e), math.ceil(clock) + self.least)

    def __call__(self, e: int) -> int:
        return min(self.most, max(self.least, e // self.growth))

    def last_end(self, i: int) -> int:
        """The largest step end e whose model scores reading i or earlier (e + lag(e) <= i); -1 if none."""
        lo, hi = -1, i  # e + lag(e) is increasing: bisect on it
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if mid + self(mid) <= i:
                lo = mid
            else:
                hi = mid - 1
        return lo


class BackgroundLearner:
    """An OnlineLearner trained on a worker thread; see the module docstring.

    Parameters
    ----------
    learner
        The learner; the worker owns it from now on (read it only after `drain`).
    lag
        Readings after a mini-batch's last one from which its step's model scores: a number (at
        least 1) or a `Lag` schedule (the default: growing with the stream).
    threaded
        False: no worker; each `learn_many` trains at once on the calling thread. The scores are the
        same as with the worker (a file replayed gives the records of the same readings read live),
        without the threads' contention for the GIL: a step of this small network is mostly Python.
    """

    def __init__(self, learner: OnlineLearner, *, lag: "int | Lag | None" = None, threaded: bool = True) -> None:
        if isinstance(lag, int) and lag < 1:
            raise ValueError(f"lag must be at least 1 reading, got {lag}")
        self.learner = learner
        self.config = learner.config  # frozen: safe to read while the worker trains
        self.lag = Lag() if lag is None else Lag.fixed(lag) if isinstance(lag, int) else lag
        self.n_seen_ = learner.n_seen_  # readings handed over (scored, then queued for learning)
        self._done = learner.n_seen_  # readings the worker has learned from
        self._clock = float(learner.n_seen_)  # the training clock (readings): see `_publish`
        self._from: list[int] = [0]  # reading index from which each snapshot scores (sorted)
        self._snaps: list[FrozenScorer] = [learner.frozen()]
        self._jobs: deque = deque()
        self._scored = None  # (x, p, snapshot) of the last readings scored
        self._losses: list[float] = []
        self._error: BaseException | None = None
        self._closed = False
        self._queued = 0  # readings in _jobs
        self._urgent = False  # the scoring thread waits for the worker: learn what is queued now
        self._cond = threading.Condition()
        self._thread = None
        if threaded:
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
                self._wait_for_worker()
            if self._error is not None:
                raise self._error

    def _ready_for(self, i: int) -> None:
        """Wait until every step whose model scores reading i or earlier is published (or failed):
        all readings before i learned, or the next step (not published yet) starts after i."""
        with self._cond:
            while self._done < i and self._next_start() <= i and self._error is None:
                self._wait_for_worker()
            if self._error is not None:
                raise self._error

    def _wait_for_worker(self) -> None:
        """Wait (holding the lock) for the worker, telling it not to gather more readings first."""
        self._urgent = True
        self._cond.notify_all()
        self._cond.wait()
        self._urgent = False

    def _gather(self) -> int:
        """Readings the worker waits for before it learns (call holding the lock): a quarter of the
        current lag once it is at least GATHER_FROM readings, so a live line costs the worker one
        call per few readings, not one per line, and a step's model still has three quarters of the
        lag (24 readings or more) to be trained in; 1 before (the first ~2,000 readings with the
        default schedule: the warm-up's 16 steps per mini-batch need all of a short lag)."""
        lag = self.lag(self.n_seen_)
        return lag // GATHER if lag >= GATHER_FROM else 1

    def _next_start(self) -> int:
        """The earliest reading a step not published yet can score from (call holding the lock)."""
        e = self._done + 1
        return self.lag.start(e, max(self._clock, e))

    def room(self, x: np.ndarray | None = None, y: np.ndarray | None = None) -> int:
        """Readings from the next one on that one snapshot scores (waits for training if it must).

        x and y (the readings to come) are not needed: the worker finds the learner's early steps
        itself, and their models score from `lag` readings later like any other step's. Inline
        (no worker), they let the learner say where its next step ends (`_ahead`), so a slice can
        reach past ``lag`` readings: the same scores, in fewer and larger slices."""
        i = self.n_seen_
        self._ready_for(i)  # every step whose model scores reading i has been published
        ahead = self._ahead(x, y) if self._thread is None and x is not None else None
        with self._cond:
            j = bisect.bisect_right(self._from, i)  # the snapshots from j on start after reading i
            unknown = self._next_start() if ahead is None else ahead  # a step not published yet scores from here at the earliest
            nxt = min(self._from[j], unknown) if j < len(self._from) else unknown
            self._drop_before(j - 1)
        return nxt - i

    def _ahead(self, x: np.ndarray, y: np.ndarray) -> int | None:
        """Inline only (the learner has learned every reading handed over): the earliest reading the
        model of the learner's next step can score from, given the readings to come x (n, d) and
        their labels y (n,); None when x holds a reading that is not finite (the scorer reports it).

        The learner's ``room(x, y)`` says after which reading its next step runs: the end of the
        mini-batch, or sooner after a reading its current model gets wrong (issue 13's early steps).
        Past the readings given, a step can end at the next reading at the soonest. Its model scores
        from ``lag.start`` of that end on, as `_publish` will schedule it (the training clock only
        pushes that later), so the scorer may go on with the models it has until then.
        """
        ln = self.learner
        k = ln.room(x, y) if np.isfinite(x[:ln.room()]).all() else None
        if k is None:
            return None
        e = self._done + min(k, len(x) + 1)  # the next step's end, or a bound below it
        return self.lag.start(e, max(self._clock, e))

    def _drop_before(self, k: int) -> None:
        if k > 0:
            del self._from[:k], self._snaps[:k]

    def predict_proba_many(self, x: np.ndarray) -> np.ndarray:
        """Scores of the next readings; call with at most `room()` of them."""
        with self._cond:
            snap = self._snaps[bisect.bisect_right(self._from, self.n_seen_) - 1]
        # inline: the readings room(x, y) scored with the current model are not scored again
        p = self.learner.current_scores(x, snap) if self._thread is None else snap.predict_proba_many(x)
        self._scored = (x, p.copy(), snap)  # the learner may take these scores (see learn_many)
        return p

    def learn_many(self, x: np.ndarray, y: np.ndarray) -> list[float]:
        """Queue scored readings for the worker; returns the losses of the steps finished since."""
        if self._thread is None:  # inline: learn now, on this thread
            last, self._scored = self._scored, None
            if last is not None and _same_rows(last[0], x):  # the readings just scored: not scored twice
                self.learner.remember_scores(x, y, last[1], last[2])
            self.n_seen_ += len(x)
            self._learn(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
            losses, self._losses = self._losses, []
            return losses
        last, self._scored = self._scored, None
        scores = last[1:] if last is not None and _same_rows(last[0], x) else None  # (p, snapshot) or None
        with self._cond:
            if self._error is not None:
                raise self._error
            self._jobs.append((np.array(x, dtype=np.float64), np.array(y, dtype=np.float64), scores))
            self.n_seen_ += len(x)
            self._queued += len(x)
            losses, self._losses = self._losses, []
            if self._queued >= self._gather():
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
        if self._thread is None:
            return
        atexit.unregister(self.close)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    # -- the worker ------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cond:  # learn once enough readings are queued, the scorer waits, or at the end
                while not self._jobs or not (self._closed or self._urgent or self._queued >= self._gather()):
                    if self._closed and not self._jobs:
                        return
                    self._cond.wait()
                x, y, scores = _joined(self._jobs)
                self._jobs.clear()
                self._queued = 0
            try:
                if scores is not None:  # scored by the learner's current model: not scored again (a live
                    # line's worker otherwise runs the network once more per reading)
                    self.learner.remember_scores(x, y, *scores)
                self._learn(x, y)
            except BaseException as e:  # handed to the scoring thread, which raises it
                with self._cond:
                    self._error = e
                    self._cond.notify_all()
                return

    def _learn(self, x: np.ndarray, y: np.ndarray) -> None:
        """Learn from readings (n, d) and labels (n,) piece by piece, publishing each step's model."""
        ln = self.learner
        i = 0
        while i < len(x):
            room = ln.room(x[i:], y[i:])  # ends early after a reading the model got wrong
            k = min(room, len(x) - i)
            before = ln.n_steps_ + ln.n_skipped_
            losses = ln.learn_many(x[i:i + k], y[i:i + k])
            i += k
            stepped = k == room  # the mini-batch filled: normaliser and weights moved
            with self._cond:
                self._losses += losses
                if stepped:
                    self._publish(ln.n_seen_, ln.n_steps_ + ln.n_skipped_ - before, ln.frozen())
                self._done += k
                self._cond.notify_all()

    def _publish(self, e: int, steps: int, snap: FrozenScorer) -> None:
        """Schedule the model of a step over readings ``0 .. e - 1`` that took `steps` optimiser steps
        (call holding the lock).

        The training clock counts readings: a step starts when its last reading arrives (or when the
        step before it is done, if later) and takes ``lag.step`` readings per optimiser step. The
        model scores from the clock's reading on (plus ``lag.least``), and never before
        ``e + lag(e)``. With ``lag.step`` 1 at 1,000 lines/s one reading of clock is 1 ms: a warm-up's
        16 steps per mini-batch push the start back by 16 readings, where training needs 2-4 ms (one
        TorchScript call, `models.scripted_steps`; ~8 ms as Python steps), so
        a live feed does not wait for training; after the warm-up (one step per mini-batch) the clock
        falls back to the readings and ``lag(e)`` alone decides. Readings only, never the time: the
        same input gives the same scores whatever the timing. The default ``step`` is 0 (no clock):
        the warm-up's models would score later, which costs accuracy (docs/performance.md).
        """
        self._clock = max(self._clock, float(e)) + steps * self.lag.step
        self._from.append(self.lag.start(e, self._clock))
        self._snaps.append(snap)

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

    def lag_state(self) -> dict:
        """The models that score readings from `n_seen_` on (the one in effect first), for a checkpoint:
        a resumed run scores with them as the uninterrupted run would have."""
        self.drain()
        j = bisect.bisect_right(self._from, self.n_seen_) - 1
        return {"starts": [int(v) for v in self._from[j:]], "models": [_snap_state(m) for m in self._snaps[j:]],
                "clock": self._clock}

    def load_lag_state(self, state: dict) -> None:
        """Take the models of `lag_state` (saved with the learner this one wraps)."""
        self.drain()
        self._from = [int(v) for v in state["starts"]]
        self._snaps = [_snap_from(m) for m in state["models"]]
        self._clock = float(state.get("clock", self.learner.n_seen_))  # (absent before the training clock)


def _joined(jobs) -> tuple:
    """The queued jobs as one: readings (n, d), labels (n,), and their scores if one snapshot gave them all."""
    if len(jobs) == 1:
        return jobs[0]
    x = np.concatenate([j[0] for j in jobs])
    y = np.concatenate([j[1] for j in jobs])
    snaps = {id(j[2][1]) if j[2] is not None else None for j in jobs}
    scores = None
    if None not in snaps and len(snaps) == 1:
        scores = (np.concatenate([j[2][0] for j in jobs]), jobs[0][2][1])
    return x, y, scores


def _same_rows(a: np.ndarray, b: np.ndarray) -> bool:
    """a and b are views of the same readings (the same memory, shape and strides)."""
    return (a.shape == b.shape and a.strides == b.strides
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def _snap_state(snap: FrozenScorer) -> dict:
    """A FrozenScorer as tensors and plain values (loadable with torch.load(weights_only=True))."""
    import torch

    sc = snap.scorer
    t = lambda a: None if a is None else torch.from_numpy(np.array(a, dtype=np.float64))  # noqa: E731
    return {"w1": t(sc.w1), "b1": t(sc.b1), "w2": t(sc.w2), "b2": t([sc.b2]), "relu": sc.act == "relu",
            "bn_scale": t(None if sc.bn is None else sc.bn[0]), "bn_shift": t(None if sc.bn is None else sc.bn[1]),
            "centre": t(snap.centre), "inv_scale": t(snap.inv_scale), "normalise": snap.normalise,
            "n_seen": int(snap.n_seen)}


def _snap_from(d: dict) -> FrozenScorer:
    from models.network import NumpyScorer

    a = lambda v: None if v is None else v.numpy().astype(np.float64)  # noqa: E731
    sc = NumpyScorer.__new__(NumpyScorer)
    sc.w1, sc.b1, sc.w2, sc.b2 = a(d["w1"]), a(d["b1"]), a(d["w2"]), float(a(d["b2"])[0])
    sc.act = "relu" if d["relu"] else "tanh"
    sc.bn = None if d["bn_scale"] is None else (a(d["bn_scale"]), a(d["bn_shift"]))
    return FrozenScorer(sc, a(d["centre"]), a(d["inv_scale"]), normalise=bool(d["normalise"]), n_seen=int(d["n_seen"]))
